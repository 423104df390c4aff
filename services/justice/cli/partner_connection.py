"""A partner's connection built from the dev stack's settings (PKI under the state dir, NATS
password derived from the platform secret); a real partner would configure its own. Apart from
the `justice partner` commands so that the CLI starts without NATS and the signing stack.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from rich.console import Console

from justice.exchange.bus import partner_inbox_prefix
from justice.exchange.model import nats_user_of
from justice.exchange.nats_config import derive_password
from justice.partner.client import Answer, PartnerClient, PartnerConfig, ProcessedLog, Received
from justice.partner.client import listen as listen_loop
from justice.partner.simulator import ProsecutorSimulator
from justice.platform.bus import NatsCredentials
from justice.platform.config import Settings
from justice.signing.keystore import FileKeyStore

console = Console()


def partner_config(settings: Settings, partner: str) -> PartnerConfig:
    user = nats_user_of(partner)
    secret = settings.exchange.nats_secret.get_secret_value().encode()
    url = settings.nats_url or f"nats://127.0.0.1:{settings.dev_nats_port}"
    return PartnerConfig(
        partner,
        NatsCredentials(url, user, derive_password(secret, user), partner_inbox_prefix(partner)),
        platform_id=settings.exchange.platform_id,
    )


async def connect(settings: Settings, partner: str) -> PartnerClient:
    from cryptography import x509

    passphrase = settings.key_passphrase.get_secret_value().encode()
    envelope_keys = FileKeyStore(settings.pki_dir / "envelope", passphrase)
    report_keys = FileKeyStore(settings.pki_dir / "signing", passphrase)
    anchors = x509.load_pem_x509_certificates((settings.pki_dir / "ca.pem").read_bytes())
    platform = settings.exchange.platform_id
    return await PartnerClient.connect(
        partner_config(settings, partner),
        envelope_keys.identity(partner),
        # Its P-256 envelope key, and its RSA key for envelopes sealed before the change.
        [envelope_keys.identity(platform).certificate, report_keys.identity(platform).certificate],
        anchors,
    )


async def run_listener(
    settings: Settings, partner: str, simulate: bool, state: Path | None, count: int
) -> int:
    client = await connect(settings, partner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    handled = 0
    simulator = ProsecutorSimulator(client)

    async def handle(received: Received) -> Answer:
        nonlocal handled
        handled += 1
        console.print(f"{received.type} {received.id} ({len(received.payload)} bytes)")
        answer = await simulator.handle(received) if simulate else Answer.accept()
        if count and handled >= count:
            stop.set()
        return answer

    try:
        await listen_loop(client, handle, ProcessedLog(state or ":memory:"), stop)
    finally:
        await client.close()
    return handled
