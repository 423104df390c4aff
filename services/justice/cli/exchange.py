"""`justice exchange ...`: run the relay or the inbound consumer on their own, generate the
NATS configuration, and administer partners and deliveries through the ExchangeService."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from justice.cli import rpc
from justice.cli.reports import show
from justice.exchange.v1 import exchange_pb2 as pb
from justice.exchange.v1 import exchange_pb2_grpc
from justice.platform.config import Settings
from justice.platform.logs import configure_logging
from justice.platform.tracing import configure_tracing

if TYPE_CHECKING:
    from justice.exchange.v1.exchange_pb2_grpc import ExchangeServiceAsyncStub

app = typer.Typer(no_args_is_help=True, help="Partner exchange: relay, NATS config, deliveries.")
console = Console()
T = TypeVar("T")


def _call(ctx: typer.Context, action: Callable[[ExchangeServiceAsyncStub], Awaitable[T]]) -> T:
    return rpc.run(
        ctx, lambda channel: action(exchange_pb2_grpc.ExchangeServiceStub(channel)), console
    )


async def _run_workers(settings: Settings) -> None:
    """Build the exchange's workers only (no gRPC port, no evidence); run until SIGTERM."""
    from justice.app import build_exchange_workers
    from justice.platform.server import freeze_heap

    application = await build_exchange_workers(settings)
    freeze_heap()  # as `justice serve` does: full GC passes skip what start-up built
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await application.close()


def _workers(ctx: typer.Context, relay: bool, inbound: bool) -> None:
    settings: Settings = ctx.find_root().obj.settings
    configure_logging(settings.log_format)
    configure_tracing(settings.otlp_endpoint, "justice-exchange")
    if not settings.nats_url:
        console.print("[red]JUSTICE_NATS_URL is not set[/red]")
        raise typer.Exit(2)
    only = settings.updated(exchange={"relay": relay, "inbound": inbound})
    asyncio.run(_run_workers(only))


@app.command()
def relay(ctx: typer.Context) -> None:
    """Run the outbox relay in its own process (publishes pending rows to JetStream)."""
    _workers(ctx, relay=True, inbound=False)


@app.command()
def inbound(ctx: typer.Context) -> None:
    """Run the inbound consumer (every partner's outbox) in its own process."""
    _workers(ctx, relay=False, inbound=True)


@app.command("nats-config")
def nats_config(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option(help="Write here (mode 0600) instead of stdout")
    ] = None,
) -> None:
    """The nats-server `authorization` block for every registered partner."""
    from justice.exchange.nats_config import render_for
    from justice.exchange.store import ExchangeTransaction
    from justice.platform.db import Database

    settings: Settings = ctx.find_root().obj.settings

    async def partners() -> str:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        database = Database(settings.resolved_database_url())
        try:
            await database.migrate()
            async with ExchangeTransaction(database.sessions) as tx:
                found = await tx.partners.list(10_000, "")
        finally:
            await database.close()
        return render_for(found, settings.exchange.nats_secret.get_secret_value().encode())

    text = asyncio.run(partners())
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    out.chmod(0o600)
    console.print(f"wrote {out}")


@app.command("partner-credentials")
def partner_credentials(ctx: typer.Context, partner: str) -> None:
    """The NATS user and password to hand to one partner (derived from the platform secret)."""
    from justice.exchange.bus import partner_inbox_prefix
    from justice.exchange.model import nats_user_of
    from justice.exchange.nats_config import derive_password

    settings: Settings = ctx.find_root().obj.settings
    user = nats_user_of(partner)
    secret = settings.exchange.nats_secret.get_secret_value().encode()
    typer.echo(f"user={user}\npassword={derive_password(secret, user)}")
    typer.echo(f"inbox_prefix={partner_inbox_prefix(partner)}")


@app.command("platform-credentials")
def platform_credentials(ctx: typer.Context) -> None:
    """The platform's own NATS user and password (for JUSTICE_NATS_URL), derived like the
    partners' from JUSTICE_EXCHANGE__NATS_SECRET."""
    from justice.exchange.nats_config import PLATFORM_USER, derive_password

    settings: Settings = ctx.find_root().obj.settings
    secret = settings.exchange.nats_secret.get_secret_value().encode()
    typer.echo(f"user={PLATFORM_USER}\npassword={derive_password(secret, PLATFORM_USER)}")


@app.command()
def partners(ctx: typer.Context) -> None:
    """List the registered partners."""
    response = _call(ctx, lambda stub: stub.ListPartners(pb.ListPartnersRequest(page_size=500)))
    table = Table("partner", "kind", "country", "sends", "receives")
    for p in response.partners:
        table.add_row(
            p.name,
            pb.PartnerKind.Name(p.kind),
            p.country,
            ", ".join(p.send_types),
            ", ".join(p.receive_types),
        )
    console.print(table)


@app.command("add-partner")
def add_partner(
    ctx: typer.Context,
    partner: str,
    kind: Annotated[str, typer.Option(help="PROSECUTOR, COURT, FINE_AGENCY, ...")],
    certificate: Annotated[Path, typer.Option(help="PEM of its signing certificate")],
    country: Annotated[str, typer.Option()] = "BE",
    sends: Annotated[
        list[str] | None, typer.Option("--sends", help="Message type it sends")
    ] = None,
    receives: Annotated[
        list[str] | None, typer.Option("--receives", help="Message type it receives")
    ] = None,
) -> None:
    """Register a partner (its inbox consumer is created at once when NATS is up)."""
    request = pb.CreatePartnerRequest(
        partner_id=partner,
        partner=pb.Partner(
            kind=pb.PartnerKind.Value(kind.upper()),
            country=country,
            signing_certificate_pem=certificate.read_text(),
            send_types=sends or [],
            receive_types=receives or [],
        ),
    )
    show(_call(ctx, lambda stub: stub.CreatePartner(request)))


@app.command()
def deliveries(
    ctx: typer.Context,
    filter_: Annotated[str, typer.Option("--filter", help='e.g. state = "REJECTED"')] = "",
) -> None:
    """Outgoing messages and their state (a partner sees only its own)."""
    request = pb.ListDeliveriesRequest(page_size=100, filter=filter_)
    response = _call(ctx, lambda stub: stub.ListDeliveries(request))
    table = Table("delivery", "recipient", "type", "about", "state", "reason")
    for d in response.deliveries:
        table.add_row(
            d.name,
            d.recipient,
            d.message_type,
            d.subject_ref,
            pb.DeliveryState.Name(d.state),
            d.reason,
        )
    console.print(table)


@app.command()
def receipt(
    ctx: typer.Context,
    delivery: str,
    out: Annotated[Path, typer.Option(help="Where to write the receipt (for `justice verify`)")],
) -> None:
    """Fetch a partner's signed receipt for deliveries/{id}, as kept, into a file."""
    name = delivery if delivery.endswith("/receipt") else f"{delivery}/receipt"
    kept = _call(ctx, lambda stub: stub.GetDeliveryReceipt(pb.GetDeliveryReceiptRequest(name=name)))
    out.write_bytes(kept.SerializeToString())
    console.print(f"wrote {out}: receipt from {kept.partner}; check it with")
    console.print(f"  justice verify --receipt {out} --ca ca.pem")


@app.command()
def redeliver(ctx: typer.Context, name: str) -> None:
    """Send a rejected or expired delivery again."""
    show(_call(ctx, lambda stub: stub.RedeliverDelivery(pb.RedeliverDeliveryRequest(name=name))))


@app.command("dead-letters")
def dead_letters(ctx: typer.Context) -> None:
    """Messages refused on arrival or never delivered."""
    response = _call(
        ctx, lambda stub: stub.ListDeadLetters(pb.ListDeadLettersRequest(page_size=100))
    )
    table = Table("dead letter", "direction", "partner", "type", "reason", "detail")
    for x in response.dead_letters:
        table.add_row(
            x.name, pb.Direction.Name(x.direction), x.partner, x.message_type, x.reason, x.detail
        )
    console.print(table)


@app.command()
def status(ctx: typer.Context) -> None:
    """The relay's backlog and the deliveries waiting for a receipt."""
    show(_call(ctx, lambda stub: stub.GetRelayStatus(pb.GetRelayStatusRequest())))
