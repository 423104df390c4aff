"""`justice`: run the stack, work with reports, verify offline, run the demo."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from justice.cli import audit, evidence, exchange, fines, partner, reports
from justice.platform.config import Settings
from justice.platform.logs import configure_logging

app = typer.Typer(
    no_args_is_help=True, help="Justice Exchange: signed reports, evidence, exchange."
)
app.add_typer(reports.app, name="report")
app.add_typer(exchange.app, name="exchange")
app.add_typer(partner.app, name="partner")
app.add_typer(evidence.app, name="evidence")
app.add_typer(audit.app, name="audit")
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
    # Settings are read once, here, and handed down; an option wins over the environment.
    given: dict[str, Any] = {"listen": listen, "state_dir": state_dir, "pki_root": pki_root}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    ctx.obj = reports.CliContext(settings=settings, principal=as_, purpose=purpose)


@app.command()
def run(ctx: typer.Context) -> None:
    """Start the whole platform on embedded defaults; Ctrl-C stops everything."""
    from justice.cli.stack import run_stack

    configure_logging(ctx.obj.settings.log_format)
    asyncio.run(run_stack(ctx.obj.settings, console))


@app.command()
def serve(ctx: typer.Context) -> None:
    """Serve every service with the configured database, PKI, NATS and S3 (production entry)."""
    from justice.cli.stack import serve_only
    from justice.platform.production import ProductionRefused

    configure_logging(ctx.obj.settings.log_format)
    try:
        asyncio.run(serve_only(ctx.obj.settings))
    except ProductionRefused as refused:
        console.print(f"[red]{refused}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def verify(
    ctx: typer.Context,
    file: Path,
    ca: Annotated[Path | None, typer.Option(help="Trusted CA (default: the state dir's)")] = None,
    evidence: Annotated[
        Path | None,
        typer.Option(help="Directory with the evidence files; each attachment's hash is checked"),
    ] = None,
) -> None:
    """Verify a signed report offline, with no server. Exits 1 unless intact and trusted."""
    from justice.cli.offline import verify_file

    ok = verify_file(file, ca or ctx.obj.settings.pki_dir / "ca.pem", console, evidence)
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
