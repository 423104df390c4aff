"""`justice`: run the stack, work with reports, verify offline, run the demo."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from justice.cli import audit, evidence, exchange, partner, reports
from justice.platform.config import Settings

app = typer.Typer(
    no_args_is_help=True, help="Justice Exchange: signed reports, evidence, exchange."
)
app.add_typer(reports.app, name="report")
app.add_typer(exchange.app, name="exchange")
app.add_typer(partner.app, name="partner")
app.add_typer(evidence.app, name="evidence")
app.add_typer(audit.app, name="audit")
console = Console()


@app.callback()
def main(
    ctx: typer.Context,
    state_dir: Annotated[
        Path | None, typer.Option(help="State directory (default $JUSTICE_STATE_DIR or .justice)")
    ] = None,
    as_: Annotated[str, typer.Option("--as", help="Principal whose certificate to use")] = (
        "officer-1001"
    ),
    purpose: Annotated[
        str,
        typer.Option(envvar="JUSTICE_PURPOSE", help="Why you read personal data (audited)"),
    ] = "",
) -> None:
    # Settings are read once, here, and handed down.
    settings = Settings() if state_dir is None else Settings(state_dir=state_dir)
    ctx.obj = reports.CliContext(settings=settings, principal=as_, purpose=purpose)


@app.command()
def run(ctx: typer.Context) -> None:
    """Start the whole platform on embedded defaults; Ctrl-C stops everything."""
    from justice.cli.stack import run_stack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_stack(ctx.obj.settings, console))


@app.command()
def serve(
    ctx: typer.Context,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes sharing the port (SO_REUSEPORT), one per core")
    ] = 1,
) -> None:
    """Serve every service with the configured database, PKI, NATS and S3 (production entry)."""
    from justice.cli.stack import serve_only, serve_workers

    if workers > 1:
        raise typer.Exit(serve_workers(ctx.obj.settings, workers))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve_only(ctx.obj.settings))


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
