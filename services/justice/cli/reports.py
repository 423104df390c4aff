"""`justice report ...`: the report RPCs from a terminal."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import grpc
import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from justice.cli import rpc
from justice.cli.connection import open_channel
from justice.platform.config import Settings
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc

if TYPE_CHECKING:
    from justice.reports.v1.reports_pb2_grpc import ReportServiceAsyncStub

app = typer.Typer(no_args_is_help=True, help="Create, sign, submit and read official reports.")
console = Console()
T = TypeVar("T")


@dataclass(frozen=True)
class CliContext:
    settings: Settings
    principal: str
    # Legal basis sent with every call; reads of personal data are refused without one.
    purpose: str = ""

    def channel(self) -> grpc.aio.Channel:
        return open_channel(self.settings, self.principal, self.purpose)


def call(ctx: typer.Context, action: Callable[[ReportServiceAsyncStub], Awaitable[T]]) -> T:
    """Run one RPC; a failure prints its status and details and exits 1."""
    return rpc.run(
        ctx, lambda channel: action(reports_pb2_grpc.ReportServiceStub(channel)), console
    )


def show(message: Message) -> None:
    console.print_json(json_format.MessageToJson(message, preserving_proto_field_name=True))


@app.command()
def create(
    ctx: typer.Context,
    case: Annotated[str, typer.Option(help="Case number")],
    narrative: Annotated[str, typer.Option(help="The facts, in the report's language")],
    place: Annotated[str, typer.Option(help="Where the facts happened")],
    offence: Annotated[list[str], typer.Option(help="CODE=ARTICLE, repeatable")],
    language: Annotated[str, typer.Option(help="nl, fr, de or en")] = "nl",
    facts_time: Annotated[
        datetime | None, typer.Option(help="When the facts happened (ISO 8601, UTC)")
    ] = None,
    unit: Annotated[str, typer.Option(help="Reporting unit (default: your unit)")] = "",
    request_id: Annotated[str, typer.Option(help="Idempotency key")] = "",
) -> None:
    """Create a draft report."""
    report = pb.Report(
        case_number=case,
        reporting_unit=unit,
        place=place,
        language=language,
        narrative=narrative,
        offences=[pb.Offence(code=c, article=a) for c, _, a in (o.partition("=") for o in offence)],
    )
    report.facts_time.FromDatetime((facts_time or datetime.now(UTC)).astimezone(UTC))
    request = pb.CreateReportRequest(report=report, request_id=request_id or str(uuid.uuid4()))
    show(call(ctx, lambda stub: stub.CreateReport(request)))


@app.command()
def get(ctx: typer.Context, name: str) -> None:
    """Show a report: reports/{id} or reports/{id}@{version}."""
    show(call(ctx, lambda stub: stub.GetReport(pb.GetReportRequest(name=name))))


@app.command("list")
def list_(
    ctx: typer.Context,
    filter_: Annotated[str, typer.Option("--filter", help="e.g. state = SIGNED")] = "",
    page_size: int = 50,
) -> None:
    """List the latest version of each report."""
    response = call(
        ctx,
        lambda stub: stub.ListReports(pb.ListReportsRequest(filter=filter_, page_size=page_size)),
    )
    table = Table("name", "version", "state", "case", "author")
    for r in response.reports:
        table.add_row(r.name, str(r.version), pb.ReportState.Name(r.state), r.case_number, r.author)
    console.print(table)


@app.command()
def sign(ctx: typer.Context, name: str) -> None:
    """Sign the draft with your key (you must be the author)."""
    show(call(ctx, lambda stub: stub.SignReport(pb.SignReportRequest(name=name))))


@app.command()
def amend(ctx: typer.Context, name: str) -> None:
    """Open a new draft version amending the latest signed one."""
    request = pb.AmendReportRequest(name=name, request_id=str(uuid.uuid4()))
    show(call(ctx, lambda stub: stub.AmendReport(request)))


@app.command()
def submit(
    ctx: typer.Context,
    name: str,
    to: Annotated[str, typer.Option(help="Prosecutor's partner id")] = "",
) -> None:
    """Submit a signed version to the prosecutor's office."""
    request = pb.SubmitReportRequest(name=name, recipient=to)
    show(call(ctx, lambda stub: stub.SubmitReport(request)))


@app.command()
def export(
    ctx: typer.Context,
    name: str,
    out: Annotated[Path | None, typer.Option(help="File or directory to write")] = None,
) -> None:
    """Write the exact signed XML bytes of a version."""
    response = call(ctx, lambda stub: stub.ExportReport(pb.ExportReportRequest(name=name)))
    target = out or Path(response.filename)
    if target.is_dir():
        target = target / response.filename
    target.write_bytes(response.signed_xml)
    console.print(f"wrote {target} ({len(response.signed_xml)} bytes)")
