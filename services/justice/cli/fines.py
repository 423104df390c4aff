"""`justice fines ...`: the FineService RPCs from a terminal."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from justice.cli import rpc
from justice.fines.v1 import fines_pb2 as pb
from justice.fines.v1 import fines_pb2_grpc

if TYPE_CHECKING:
    from justice.fines.v1.fines_pb2_grpc import FineServiceAsyncStub

app = typer.Typer(no_args_is_help=True, help="Cross-border traffic fines: register, pay, escalate.")
console = Console()
T = TypeVar("T")


def call(ctx: typer.Context, action: Callable[[FineServiceAsyncStub], Awaitable[T]]) -> T:
    return rpc.run(ctx, lambda channel: action(fines_pb2_grpc.FineServiceStub(channel)), console)


def show(message: Message) -> None:
    # Bytes (letters) are left out: `justice fines letters --out` writes them.
    console.print_json(json_format.MessageToJson(message, preserving_proto_field_name=True))


def _source(value: str) -> pb.DetectionSource.ValueType:
    try:
        return pb.DetectionSource.Value(value.upper())
    except ValueError:
        raise typer.BadParameter(f"unknown detection source {value}") from None


def _offence(value: str) -> pb.Offence.ValueType:
    try:
        return pb.Offence.Value(value.upper())
    except ValueError:
        raise typer.BadParameter(f"unknown offence {value}") from None


@app.command()
def register(
    ctx: typer.Context,
    plate: Annotated[str, typer.Option(help="Registration plate")],
    country: Annotated[str, typer.Option(help="Registration state, ISO 3166-1 alpha-2")],
    offence: Annotated[str, typer.Option(help="e.g. SPEEDING, DANGEROUS_PARKING")],
    provision: Annotated[str, typer.Option(help="The provision infringed")],
    place: Annotated[str, typer.Option(help="Where it happened")],
    device: Annotated[str, typer.Option(help="Detection device id")] = "CAM-1",
    source: Annotated[str, typer.Option(help="FIXED_CAMERA, SECTION_CONTROL, ANPR, OFFICER")] = (
        "FIXED_CAMERA"
    ),
    speed: Annotated[str, typer.Option(help="MEASURED/CORRECTED/ALLOWED km/h")] = "",
    offence_country: Annotated[str, typer.Option(help="Where, ISO 3166-1 alpha-2")] = "BE",
    when: Annotated[datetime | None, typer.Option(help="Offence time (ISO 8601, UTC)")] = None,
    evidence: Annotated[list[str] | None, typer.Option(help="evidence/{id}, repeatable")] = None,
) -> None:
    """Record an offence; a foreign plate starts the owner lookup."""
    fine = pb.Fine(
        detection_source=_source(source),
        device_id=device,
        place=place,
        offence_country=offence_country,
        plate=plate,
        registration_country=country,
        vehicle_category="M1",
        offence=_offence(offence),
        provision=provision,
        evidence=evidence or [],
    )
    if speed:
        measured, corrected, allowed = (int(x) for x in speed.split("/"))
        fine.speed.CopyFrom(pb.Speed(measured=measured, corrected=corrected, allowed=allowed))
    fine.offence_time.FromDatetime((when or datetime.now(UTC)).astimezone(UTC))
    request = pb.RegisterOffenceRequest(fine=fine, request_id=str(uuid.uuid4()))
    show(call(ctx, lambda stub: stub.RegisterOffence(request)))


@app.command()
def get(ctx: typer.Context, name: str) -> None:
    """Show a fine (fines/{id}); needs --purpose."""
    show(call(ctx, lambda stub: stub.GetFine(pb.GetFineRequest(name=name))))


@app.command("list")
def list_(
    ctx: typer.Context,
    filter_: Annotated[str, typer.Option("--filter", help="e.g. state = NOTICE_SENT")] = "",
    page_size: int = 50,
) -> None:
    """List fines; needs --purpose."""
    request = pb.ListFinesRequest(filter=filter_, page_size=page_size)
    response = call(ctx, lambda stub: stub.ListFines(request))
    table = Table("name", "state", "plate", "country", "offence", "amount", "paid")
    for f in response.fines:
        table.add_row(
            f.name,
            pb.FineState.Name(f.state),
            f.plate,
            f.registration_country,
            pb.Offence.Name(f.offence),
            f.amount.amount,
            f.paid.amount,
        )
    console.print(table)


@app.command()
def notice(ctx: typer.Context, name: str) -> None:
    """Send the article 5 letter (when it did not go out by itself)."""
    show(call(ctx, lambda stub: stub.IssueNotice(pb.IssueNoticeRequest(name=name))))


@app.command()
def driver(
    ctx: typer.Context,
    name: str,
    full_name: Annotated[str, typer.Option("--name", help="The driver's name")],
    street: Annotated[str, typer.Option()],
    postal_code: Annotated[str, typer.Option()],
    city: Annotated[str, typer.Option()],
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2")],
    language: Annotated[str, typer.Option(help="Document language, ISO 639-1")] = "",
) -> None:
    """The holding company names the driver: the fine moves to them, with a new letter."""
    person = pb.Person(
        kind=pb.NATURAL,
        name=full_name,
        address=pb.Address(street=street, postal_code=postal_code, city=city, country_code=country),
        document_language=language,
    )
    request = pb.DesignateDriverRequest(name=name, driver=person)
    show(call(ctx, lambda stub: stub.DesignateDriver(request)))


@app.command()
def pay(
    ctx: typer.Context,
    reference: Annotated[str, typer.Option(help="+++ddd/dddd/ddddd+++")],
    amount: Annotated[str, typer.Option(help="e.g. 53.00")],
    currency: str = "EUR",
    payment_id: Annotated[str, typer.Option(help="Idempotency key (the bank's id)")] = "",
) -> None:
    """Register a payment."""
    request = pb.RegisterPaymentRequest(
        payment_id=payment_id or str(uuid.uuid4()),
        payment_reference=reference,
        amount=pb.Money(amount=amount, currency_code=currency),
    )
    request.paid_time.FromDatetime(datetime.now(UTC))
    show(call(ctx, lambda stub: stub.RegisterPayment(request)))


@app.command()
def contest(ctx: typer.Context, name: str, grounds: Annotated[str, typer.Option()]) -> None:
    """Record that the liable person contests the fine."""
    show(
        call(ctx, lambda stub: stub.ContestFine(pb.ContestFineRequest(name=name, grounds=grounds)))
    )


@app.command()
def decide(
    ctx: typer.Context,
    name: str,
    upheld: Annotated[bool, typer.Option("--upheld/--cancelled")],
) -> None:
    """Decide a contest: the fine stands (--upheld) or is cancelled."""
    request = pb.DecideContestRequest(name=name, upheld=upheld)
    show(call(ctx, lambda stub: stub.DecideContest(request)))


@app.command()
def stats(ctx: typer.Context) -> None:
    """Counts and amounts by state, country and offence; lookups, letters, collection rate."""
    show(call(ctx, lambda stub: stub.GetFineStatistics(pb.GetFineStatisticsRequest())))


def write_letters(name: str, letters: pb.ListLettersResponse, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = name.replace("/", "-")
    written = []
    for letter in letters.letters:
        base = out / f"{stem}-{letter.seq}-{letter.language}"
        base.with_suffix(".pdf").write_bytes(letter.pdf)
        base.with_suffix(".xml").write_bytes(letter.signed_xml)
        written += [base.with_suffix(".pdf"), base.with_suffix(".xml")]
    return written


@app.command()
def letters(
    ctx: typer.Context,
    name: str,
    out: Annotated[Path, typer.Option(help="Directory for the PDFs and signed XML")] = Path("."),
) -> None:
    """Write every letter of a fine (signed PDF and signed XML); needs --purpose."""
    response = call(ctx, lambda stub: stub.ListLetters(pb.ListLettersRequest(name=name)))
    for path in write_letters(name, response, out):
        console.print(f"wrote {path}")
