"""`justice run`: the dev stack and every service, in the foreground."""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.table import Table

from justice.app import build
from justice.devstack.demo import register_demo_partners
from justice.devstack.stack import DevStack
from justice.platform.config import Settings
from justice.platform.server import limit_malloc_arenas, serve


async def serve_only(settings: Settings) -> None:
    """Build every service on the configured adapters and serve until SIGTERM or Ctrl-C."""
    limit_malloc_arenas()
    application = await build(settings)
    try:
        await serve(
            application.server,
            settings.shutdown_grace_seconds,
            settle=settings.shutdown_settle_seconds,
        )
    finally:
        await application.close()


async def run_stack(settings: Settings, console: Console) -> None:
    limit_malloc_arenas()
    stack = DevStack(settings, nats_port=settings.dev_nats_port, s3_port=settings.dev_s3_port)
    with console.status("starting PKI, nats-server and SeaweedFS"):
        effective = await asyncio.to_thread(stack.start)
    try:
        application = await build(effective)
        try:
            exchange = application.exchange.service
            await register_demo_partners(exchange, stack.pki)
            # Every registered partner, demo or not, gets its NATS user.
            partners = [p.id for p in await exchange.list_partners(10_000, "")]
            stack.allow_partners(partners)
            _show(effective, application.server.port, stack, partners, console)
            await serve(application.server, effective.shutdown_grace_seconds)
        finally:
            await application.close()
    finally:
        console.print("stopping nats-server and SeaweedFS")
        await asyncio.to_thread(stack.stop)


def _show(
    settings: Settings, port: int, stack: DevStack, partners: list[str], console: Console
) -> None:
    pki = stack.pki
    table = Table("part", "where", title="Justice Exchange (embedded defaults)")
    table.add_row("gRPC (mTLS, every service)", f"localhost:{port}")
    table.add_row("NATS JetStream", stack.nats.url)
    table.add_row("S3 (SeaweedFS)", f"http://{stack.s3.endpoint}")
    table.add_row("database", settings.resolved_database_url().split("///")[-1])
    table.add_row("PKI (CA, certificates, keys)", str(pki.root))
    table.add_row("exchange partners", ", ".join(partners))
    table.add_row("state", str(settings.state_dir))
    console.print(table)
    cert, key = pki.client_paths("officer-1001")
    console.print(
        "Try it:\n"
        f"  grpcurl -cacert {pki.ca_path} -cert {cert} -key {key} localhost:{port} list\n"
        "  .venv/bin/justice demo --out demo-output\n"
        f"  .venv/bin/justice partner listen --partner {settings.default_prosecutor}"
        " --simulate-prosecutor\n"
        "Ctrl-C stops everything; data stays in the state dir."
    )
