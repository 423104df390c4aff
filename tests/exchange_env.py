"""A real exchange environment for tests and benchmarks: a nats-server whose users come
from the generated partner configuration, the dev PKI, and partner SDK clients."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from justice.app import Application, build
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.exchange.bus import partner_inbox_prefix
from justice.exchange.model import Partner, PartnerKind, nats_user_of
from justice.exchange.nats_config import PLATFORM_USER, derive_password, render_authorization
from justice.partner.client import PartnerClient, PartnerConfig
from justice.platform.bus import NatsCredentials
from justice.platform.config import Settings
from justice.platform.server import start
from justice.signing.keystore import FileKeyStore

SECRET = b"test-exchange-secret"
# The demo's fines partners too: `justice demo` runs the Dutch register simulator.
PARTNERS = ("prosecutor-antwerp", "court-brussels", "vehicle-register-nl", "fines-agency")


def nats_with_partners(
    store: Path, partner_ids: tuple[str, ...] = PARTNERS, **kw: Any
) -> NatsServer:
    return NatsServer(store, config_text_extra=render_authorization(partner_ids, SECRET), **kw)


def platform_url(nats: NatsServer) -> str:
    password = derive_password(SECRET, PLATFORM_USER)
    return nats.url.replace("nats://", f"nats://{PLATFORM_USER}:{password}@")


def partner_credentials(nats: NatsServer, partner_id: str) -> NatsCredentials:
    user = nats_user_of(partner_id)
    return NatsCredentials(
        nats.url, user, derive_password(SECRET, user), partner_inbox_prefix(partner_id)
    )


def exchange_settings(
    pki: DevPki, nats: NatsServer, state_dir: Path, database_url: str, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "pki_root": pki.root,
        "database_url": database_url,
        "listen": "127.0.0.1:0",
        "key_passphrase": PKI_PASSPHRASE.decode(),
        "shutdown_grace_seconds": 1.0,
        # Every platform component connects as the platform user, named in the URL.
        "nats_url": platform_url(nats),
        "exchange": {"nats_secret": SECRET.decode()},
    }
    for name, value in overrides.items():
        # A section's fields join the ones set here (exchange={"relay": False} keeps the secret).
        given = values.get(name)
        values[name] = {**given, **value} if isinstance(given, dict) else value
    return Settings(**values)


async def serve_platform(
    pki: DevPki, nats: NatsServer, state_dir: Path, database_url: str
) -> Application:
    """The whole platform on this NATS and database, serving on a free port."""
    application = await build(exchange_settings(pki, nats, state_dir, database_url))
    await start(application.server)
    return application


async def stop_platform(application: Application) -> None:
    await application.server.server.stop(None)
    await application.close()


def partner_record(
    pki: DevPki,
    partner_id: str,
    *,
    kind: PartnerKind = PartnerKind.PROSECUTOR,
    send: frozenset[str] = frozenset({"report_acknowledged", "report_rejected"}),
    receive: frozenset[str] = frozenset({"report_submitted"}),
) -> Partner:
    cert_path, _ = pki.envelope_paths(partner_id)
    now = datetime.now(UTC)
    return Partner(
        id=partner_id,
        kind=kind,
        country="BE",
        certificate_pem=cert_path.read_text(),
        send_types=send,
        receive_types=receive,
        create_time=now,
        update_time=now,
    )


@dataclass
class PartnerSide:
    keys: FileKeyStore
    pki: DevPki

    async def connect(self, nats: NatsServer, partner_id: str) -> PartnerClient:
        config = PartnerConfig(partner_id, partner_credentials(nats, partner_id))
        return await PartnerClient.connect(
            config,
            self.keys.identity(partner_id),
            self.keys.identity("justice-server").certificate,
            [self.pki.ca_certificate()],
        )


def partner_side(pki: DevPki) -> PartnerSide:
    return PartnerSide(FileKeyStore(pki.envelope_dir, PKI_PASSPHRASE), pki)


def platform_env(settings: Settings, nats: NatsServer, state_dir: Path) -> dict[str, str]:
    """The environment of a `justice` process on the test's database, PKI and NATS."""
    return {
        **os.environ,
        "JUSTICE_STATE_DIR": str(state_dir),
        "JUSTICE_PKI_ROOT": str(settings.pki_dir),
        "JUSTICE_DATABASE_URL": settings.database_url,
        "JUSTICE_LISTEN": "127.0.0.1:0",
        "JUSTICE_KEY_PASSPHRASE": PKI_PASSPHRASE.decode(),
        "JUSTICE_NATS_URL": platform_url(nats),
        "JUSTICE_EXCHANGE__NATS_SECRET": SECRET.decode(),
    }


def platform_process(
    command: str, settings: Settings, nats: NatsServer, log: Path
) -> subprocess.Popen[bytes]:
    """`justice exchange <command>` on the test's database and NATS, in its own process."""
    env = platform_env(settings, nats, settings.state_dir / command)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "justice", "exchange", command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
