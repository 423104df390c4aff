"""Production mode refuses to start on what is only safe for development.

`JUSTICE_PRODUCTION=true` turns a forgotten dev default into a refusal at start, naming the
setting, instead of a platform that runs with a passphrase printed in the source code.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from justice.platform.config import Settings

__all__ = ["ProductionRefused", "Refusal", "refusals", "refuse_development_settings"]


@dataclass(frozen=True)
class Refusal:
    setting: str  # the environment variable, e.g. JUSTICE_KEY_PASSPHRASE
    reason: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.reason}"


class ProductionRefused(Exception):
    def __init__(self, found: list[Refusal]) -> None:
        super().__init__(
            "production mode (JUSTICE_PRODUCTION=true) refuses to start: "
            + "; ".join(str(r) for r in found)
        )
        self.refusals = found


def _env(field: str) -> str:
    """The environment variable of a field, a section's named `section.field`."""
    delimiter = Settings.model_config.get("env_nested_delimiter") or "__"
    name = field.replace(".", delimiter)
    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def _is_default(settings: Settings, field: str) -> bool:
    # Compared with the declared default, so the dev value is written in one place only.
    owner: BaseModel = settings
    *sections, name = field.split(".")
    for section in sections:
        owner = getattr(owner, section)
    default = type(owner).model_fields[name].get_default(call_default_factory=True)
    value = getattr(owner, name)
    return bool(value.get_secret_value() == default.get_secret_value())


def refusals(settings: Settings) -> list[Refusal]:
    """Every development-only setting in use; empty outside production mode."""
    if not settings.production:
        return []
    found = []
    for secret in ("key_passphrase", "exchange.nats_secret"):
        if _is_default(settings, secret):
            found.append(Refusal(_env(secret), "is the development default"))
    if settings.access.dev_tokens:
        found.append(Refusal(_env("access.dev_tokens"), "dev bearer tokens must be off (false)"))
    if not settings.require_client_cert:
        found.append(
            Refusal(_env("require_client_cert"), "client certificates must be required (true)")
        )
    if settings.resolved_database_url().startswith("sqlite"):
        found.append(Refusal(_env("database_url"), "SQLite is for development; use PostgreSQL"))
    if settings.key_store == "file" and settings.pkcs11_module is not None:
        found.append(
            Refusal(
                _env("key_store"),
                "signing keys are files while an HSM is configured (JUSTICE_PKCS11_MODULE);"
                " set it to pkcs11",
            )
        )
    return found


def refuse_development_settings(settings: Settings) -> None:
    found = refusals(settings)
    if found:
        raise ProductionRefused(found)
