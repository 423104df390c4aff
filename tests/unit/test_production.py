"""Production mode refuses development-only settings, naming each one; the key store is the
one the settings choose."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from justice.platform.config import ExchangeSettings, Settings
from justice.platform.production import (
    ProductionRefused,
    refusals,
    refuse_development_settings,
)
from justice.signing.keystore import FileKeyStore, KeyStoreError, configured_key_store
from tests.cli_process import run_cli

POSTGRES = "postgresql+psycopg://justice@db.internal/justice"


def production(**overrides: Any) -> Settings:
    """Production settings with nothing left at a development default."""
    values: dict[str, Any] = {
        "production": True,
        "key_passphrase": "a-real-passphrase",
        "exchange": {"nats_secret": "a-real-nats-secret"},
        "access": {"dev_tokens": False},
        "require_client_cert": True,
        "database_url": POSTGRES,
        **overrides,
    }
    return Settings(**values)


def refused_settings(settings: Settings) -> list[str]:
    return [r.setting for r in refusals(settings)]


def test_production_settings_without_dev_defaults_start() -> None:
    refuse_development_settings(production())


def test_development_mode_refuses_nothing() -> None:
    assert refusals(Settings()) == []


def test_dev_key_passphrase_is_refused() -> None:
    settings = production(key_passphrase=Settings.model_fields["key_passphrase"].default)
    assert refused_settings(settings) == ["JUSTICE_KEY_PASSPHRASE"]


def test_dev_nats_secret_is_refused() -> None:
    settings = production(
        exchange={"nats_secret": ExchangeSettings.model_fields["nats_secret"].default}
    )
    assert refused_settings(settings) == ["JUSTICE_EXCHANGE__NATS_SECRET"]


def test_dev_tokens_are_refused() -> None:
    assert refused_settings(production(access={"dev_tokens": True})) == [
        "JUSTICE_ACCESS__DEV_TOKENS"
    ]


def test_optional_client_certificates_are_refused() -> None:
    settings = production(require_client_cert=False)
    assert refused_settings(settings) == ["JUSTICE_REQUIRE_CLIENT_CERT"]


@pytest.mark.parametrize("url", ["", "sqlite+aiosqlite:////var/lib/justice/justice.db"])
def test_sqlite_is_refused(url: str) -> None:
    assert refused_settings(production(database_url=url)) == ["JUSTICE_DATABASE_URL"]


def test_file_keys_while_an_hsm_is_configured_are_refused() -> None:
    settings = production(pkcs11_module=Path("/usr/lib/softhsm/libsofthsm2.so"))
    assert refused_settings(settings) == ["JUSTICE_KEY_STORE"]


def test_the_error_names_every_refused_setting() -> None:
    with pytest.raises(ProductionRefused) as refused:
        refuse_development_settings(Settings(production=True))
    message = str(refused.value)
    for setting in (
        "JUSTICE_KEY_PASSPHRASE",
        "JUSTICE_EXCHANGE__NATS_SECRET",
        "JUSTICE_ACCESS__DEV_TOKENS",
        "JUSTICE_DATABASE_URL",
    ):
        assert setting in message


def test_serve_refuses_to_start_on_dev_defaults(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JUSTICE_")},
        "JUSTICE_STATE_DIR": str(tmp_path),
        "JUSTICE_PRODUCTION": "true",
    }
    result = run_cli(env, "serve", timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "JUSTICE_KEY_PASSPHRASE" in result.stdout
    # Refused before anything was created.
    assert not (tmp_path / "justice.db").exists()


def test_file_key_store_by_default(tmp_path: Path) -> None:
    assert isinstance(configured_key_store(Settings(state_dir=tmp_path), ()), FileKeyStore)


def test_pkcs11_key_store_names_its_missing_settings() -> None:
    with pytest.raises(KeyStoreError, match=r"JUSTICE_PKCS11_TOKEN_LABEL, JUSTICE_PKCS11_PIN_FILE"):
        configured_key_store(Settings(key_store="pkcs11", pkcs11_module=Path("/usr/lib/x.so")), ())


def test_pkcs11_pin_file_must_be_readable(tmp_path: Path) -> None:
    settings = Settings(
        key_store="pkcs11",
        pkcs11_module=Path("/usr/lib/x.so"),
        pkcs11_token_label="justice",
        pkcs11_pin_file=tmp_path / "absent",
    )
    with pytest.raises(KeyStoreError, match="JUSTICE_PKCS11_PIN_FILE"):
        configured_key_store(settings, ())
