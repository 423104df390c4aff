"""`justice`: run the stack, work with reports, verify offline, run the demo."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from justice.cli import audit, custody, evidence, exchange, fines, partner, reports
from justice.platform.config import SERVICES, MissingSetting, Settings, renamed_variables
from justice.platform.logs import configure_logging
from justice.platform.tracing import configure_tracing

app = typer.Typer(
    no_args_is_help=True, help="Justice Exchange: signed reports, evidence, exchange."
)
app.add_typer(reports.app, name="report")
app.add_typer(exchange.app, name="exchange")
app.add_typer(partner.app, name="partner")
app.add_typer(evidence.app, name="evidence")
app.add_typer(audit.app, name="audit")
app.add_typer(custody.app, name="custody")
app.add_typer(fines.app, name="fines")
console = Console()


@app.callback()
def main(
    ctx: typer.Context,
    listen: Annotated[
        str | None,
        typer.Option(
            envvar="JUSTICE_LISTEN",
            help="The stack's gRPC address: where `run` and `serve` listen, and where every "
            "other command connects. [default: 127.0.0.1:50443]",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="JUSTICE_STATE_DIR",
            help="State directory: the dev stack's data, and the dev PKI (PKI_ROOT) the "
            "commands take their certificates from. [default: ./.justice]",
        ),
    ] = None,
    pki_root: Annotated[
        Path | None,
        typer.Option(
            envvar="JUSTICE_PKI_ROOT",
            help="Where the CA and the client certificates are: ca.pem and "
            "clients/<principal>.pem/.key. [default: STATE_DIR/pki]",
        ),
    ] = None,
    as_: Annotated[
        str,
        typer.Option("--as", envvar="JUSTICE_AS", help="Principal whose client certificate to use"),
    ] = "officer-1001",
    purpose: Annotated[
        str,
        typer.Option(envvar="JUSTICE_PURPOSE", help="Why you read personal data (audited)"),
    ] = "",
) -> None:
    renamed = renamed_variables(os.environ)
    if renamed:
        console.print(f"[red]renamed settings: {'; '.join(renamed)}[/red]", soft_wrap=True)
        raise typer.Exit(2)
    # Settings are read once, here, and handed down; an option wins over the environment.
    given: dict[str, Any] = {"listen": listen, "state_dir": state_dir, "pki_root": pki_root}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    ctx.obj = reports.CliContext(settings=settings, principal=as_, purpose=purpose)


@app.command()
def run(ctx: typer.Context) -> None:
    """Start the whole platform on embedded defaults; Ctrl-C stops everything."""
    from justice.cli.stack import run_stack

    configure_logging(ctx.obj.settings.log_format)
    configure_tracing(ctx.obj.settings.otlp_endpoint, "justice")
    asyncio.run(run_stack(ctx.obj.settings, console))


@app.command()
def serve(
    ctx: typer.Context,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes sharing the port (SO_REUSEPORT), one per core")
    ] = 1,
    service: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="Mount only this service (repeatable, or comma-separated): "
            f"{', '.join(SERVICES)}. Peers it uses elsewhere are reached at "
            "JUSTICE_<PEER>_ADDRESS. [default: every service]",
        ),
    ] = None,
) -> None:
    """Serve every service, or those named by --service, with the configured database, PKI,
    NATS and S3 (production entry)."""
    from justice.cli.stack import serve_only, serve_workers
    from justice.platform.production import ProductionRefused

    services = _service_names(service)
    configure_logging(ctx.obj.settings.log_format)
    if workers > 1:
        raise typer.Exit(serve_workers(ctx.obj.settings, workers, services))
    configure_tracing(ctx.obj.settings.otlp_endpoint, "justice")
    try:
        asyncio.run(serve_only(ctx.obj.settings, services=services))
    except (ProductionRefused, MissingSetting) as refused:
        console.print(f"[red]{refused}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None


def _service_names(given: list[str] | None) -> frozenset[str] | None:
    if not given:
        return None
    names = frozenset(n.strip() for value in given for n in value.split(",") if n.strip())
    unknown = sorted(names - set(SERVICES))
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown service {', '.join(unknown) or '(none)'}; choose from {', '.join(SERVICES)}",
            param_hint="--service",
        )
    return names


@app.command()
def verify(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="A signed report (XML)")] = None,
    ca: Annotated[Path | None, typer.Option(help="Trusted CA (default: the state dir's)")] = None,
    evidence: Annotated[
        Path | None,
        typer.Option(help="Directory with the evidence files; each attachment's hash is checked"),
    ] = None,
    receipt: Annotated[
        Path | None,
        typer.Option(help="A partner's kept receipt (GetDeliveryReceipt / ExportReport)"),
    ] = None,
    audit_record: Annotated[
        Path | None,
        typer.Option(help="An audit record with its inclusion proof (GetAuditInclusionProof)"),
    ] = None,
    log_key: Annotated[
        str | None, typer.Option(help="The audit log's checkpoint vkey (default: this stack's)")
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(help="A witness vkey whose cosignature is required (repeatable)"),
    ] = None,
) -> None:
    """Verify a signed report, a partner's receipt or an audit record offline, with no
    server. Exits 1 unless intact and trusted."""
    from justice.cli.offline import verify_audit_record_file, verify_file, verify_receipt_file

    trusted = ca or ctx.obj.settings.pki_dir / "ca.pem"
    if sum(x is not None for x in (file, receipt, audit_record)) != 1:
        console.print("[red]give one of: a report FILE, --receipt FILE, --audit-record FILE[/red]")
        raise typer.Exit(2)
    if audit_record is not None:
        ok = verify_audit_record_file(
            audit_record, ctx.obj.settings, console, log_key=log_key, witnesses=witness
        )
    elif receipt is not None:
        ok = verify_receipt_file(receipt, trusted, console)
    else:
        assert file is not None
        ok = verify_file(file, trusted, console, evidence)
    raise typer.Exit(0 if ok else 1)


@app.command()
def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Where to write ca.pem, the signed XML and VERIFY.txt")],
) -> None:
    """Create, sign, amend, sign again and submit a report on the running stack."""
    from justice.cli.demo import run_demo

    run_demo(ctx.obj.settings, ctx.obj.principal, out, console)


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Apply the database migrations and exit (a Kubernetes hook Job; serve does it too)."""
    from justice.app import migrate as run_migrations

    configure_logging(ctx.obj.settings.log_format)
    asyncio.run(run_migrations(ctx.obj.settings))


@app.command("bootstrap-storage")
def bootstrap_storage(ctx: typer.Context) -> None:
    """Create the evidence buckets (object lock, versioning) and exit; serve does it too."""
    from justice.app import bootstrap_storage as run_bootstrap

    configure_logging(ctx.obj.settings.log_format)
    try:
        asyncio.run(run_bootstrap(ctx.obj.settings))
    except RuntimeError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
