"""`justice partner listen | send`: a partner's side of the exchange, on the partner SDK.

Credentials come from the dev stack (PKI under the state dir, NATS password derived from
the platform secret); a real partner would configure its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from justice.exchange.bus import partner_inbox_prefix
from justice.exchange.model import nats_user_of
from justice.exchange.nats_config import derive_password
from justice.partner.client import Answer, PartnerClient, PartnerConfig, ProcessedLog, Received
from justice.partner.client import listen as listen_loop
from justice.partner.simulator import ProsecutorSimulator
from justice.platform.bus import NatsCredentials
from justice.platform.config import Settings
from justice.platform.tracing import configure_tracing
from justice.signing.keystore import FileKeyStore

app = typer.Typer(no_args_is_help=True, help="Act as a partner: pull the inbox, send messages.")
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


@app.command()
def listen(
    ctx: typer.Context,
    partner: Annotated[str, typer.Option(help="Partner id, e.g. prosecutor-antwerp")],
    simulate_prosecutor: Annotated[
        bool, typer.Option(help="Verify reports and acknowledge them like a prosecutor")
    ] = False,
    state: Annotated[Path | None, typer.Option(help="SQLite file of answered envelope ids")] = None,
    count: Annotated[int, typer.Option(help="Stop after this many messages (0: never)")] = 0,
) -> None:
    """Pull the partner's inbox, verify every envelope and answer with signed receipts."""
    logging.basicConfig(level=logging.WARNING)
    settings: Settings = ctx.find_root().obj.settings
    configure_tracing(settings.otlp_endpoint, f"partner-{partner}")
    handled = asyncio.run(run_listener(settings, partner, simulate_prosecutor, state, count))
    console.print(f"handled {handled} message(s)")


@app.command()
def send(
    ctx: typer.Context,
    partner: Annotated[str, typer.Option(help="Partner id to send as")],
    message_type: Annotated[str, typer.Option("--type", help="e.g. report_acknowledged")],
    payload: Annotated[Path, typer.Option(help="File with the payload bytes")],
    in_reply_to: Annotated[str, typer.Option(help="Envelope id this answers")] = "",
) -> None:
    """Sign and send one message from the partner to the platform."""
    settings: Settings = ctx.find_root().obj.settings

    async def go() -> str:
        client = await connect(settings, partner)
        try:
            return await client.send(message_type, payload.read_bytes(), in_reply_to)
        finally:
            await client.close()

    console.print(f"sent envelope {asyncio.run(go())}")
