"""The embedded default: PKI, nats-server, SeaweedFS and SQLite under one state dir."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from justice.devstack.nats import NatsServer
from justice.devstack.pki import DEMO_PARTNER_IDS, DevPki
from justice.devstack.seaweed import SeaweedS3
from justice.exchange.nats_config import PLATFORM_USER, derive_password, render_authorization
from justice.platform.config import Settings


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str

    @classmethod
    def load_or_create(cls, path: Path) -> S3Credentials:
        """Made once per state dir, so a second run opens the same buckets."""
        if path.exists():
            data = json.loads(path.read_text())
            return cls(data["access_key"], data["secret_key"])
        credentials = cls(f"justice-{secrets.token_hex(8)}", secrets.token_urlsafe(32))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(credentials.__dict__, handle)
        return credentials


class DevStack:
    """Starts the components the services need and says where they listen."""

    def __init__(self, settings: Settings, *, nats_port: int = 0, s3_port: int = 0) -> None:
        self.settings = settings
        state = settings.state_dir
        self.pki = DevPki(settings.pki_dir, settings.key_passphrase.get_secret_value().encode())
        self.credentials = S3Credentials.load_or_create(state / "s3" / "credentials.json")
        # Each partner gets its own NATS user, confined to its own subjects, as in production.
        self._nats_secret = settings.exchange.nats_secret.get_secret_value().encode()
        self.nats = NatsServer(
            state / "nats",
            port=nats_port,
            config_text_extra=render_authorization(DEMO_PARTNER_IDS, self._nats_secret),
        )
        self.s3 = SeaweedS3(
            state / "s3" / "data",
            access_key=self.credentials.access_key,
            secret_key=self.credentials.secret_key,
            port=s3_port,
        )

    def start(self) -> Settings:
        """Start everything; returns the settings that point the services at it."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.pki.ensure()
        self.nats.start()
        self.s3.start()
        try:
            self.nats.wait_ready()
            self.s3.wait_ready()
        except BaseException:
            self.stop()
            raise
        evidence = self.settings.evidence
        started = self.settings.updated(
            evidence={
                "s3_endpoint": evidence.s3_endpoint or self.s3.endpoint,
                "s3_access_key": evidence.s3_access_key or self.credentials.access_key,
                # model_copy does not validate: keep the secret a SecretStr.
                "s3_secret_key": SecretStr(
                    evidence.s3_secret_key.get_secret_value() or self.credentials.secret_key
                ),
            }
        )
        return started.model_copy(
            update={"nats_url": self.settings.nats_url or self.platform_nats_url}
        )

    @property
    def platform_nats_url(self) -> str:
        """The embedded nats-server as the platform's own user (all subjects)."""
        password = derive_password(self._nats_secret, PLATFORM_USER)
        return self.nats.url.replace("nats://", f"nats://{PLATFORM_USER}:{password}@")

    def allow_partners(self, partner_ids: list[str]) -> None:
        """Give registered partners their NATS users (the server reloads its config)."""
        self.nats.reload(render_authorization(partner_ids, self._nats_secret))

    def stop(self) -> None:
        self.s3.stop()
        self.nats.stop()


def with_dev_s3(settings: Settings) -> Settings:
    """Settings pointing at the dev stack's SeaweedFS when they name no S3 endpoint.

    For CLI tools that talk to S3 themselves (`justice evidence sweep`) beside a running
    `justice run`: its credentials are in the state dir and its port is `dev_s3_port`.
    Unchanged when an endpoint is configured or no dev stack ever ran in this state dir.
    """
    path = settings.state_dir / "s3" / "credentials.json"
    if settings.evidence.s3_endpoint or not path.exists():
        return settings
    credentials = S3Credentials.load_or_create(path)
    return settings.updated(
        evidence={
            "s3_endpoint": f"127.0.0.1:{settings.dev_s3_port}",
            "s3_access_key": settings.evidence.s3_access_key or credentials.access_key,
            "s3_secret_key": SecretStr(
                settings.evidence.s3_secret_key.get_secret_value() or credentials.secret_key
            ),
        }
    )
