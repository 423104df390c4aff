"""`justice partner listen | send`: a partner's side of the exchange, on the partner SDK.

Credentials come from the dev stack (PKI under the state dir, NATS password derived from
the platform secret); a real partner would configure its own.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from justice.platform.config import Settings
from justice.platform.tracing import configure_tracing

app = typer.Typer(no_args_is_help=True, help="Act as a partner: pull the inbox, send messages.")
console = Console()


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
    from justice.cli.partner_connection import run_listener

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
    from justice.cli.partner_connection import connect

    settings: Settings = ctx.find_root().obj.settings

    async def go() -> str:
        client = await connect(settings, partner)
        try:
            return await client.send(message_type, payload.read_bytes(), in_reply_to)
        finally:
            await client.close()

    console.print(f"sent envelope {asyncio.run(go())}")
