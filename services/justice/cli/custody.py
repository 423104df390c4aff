"""`justice custody ...`: the seized-goods RPCs from a terminal."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from google.type import date_pb2
from rich.console import Console
from rich.table import Table

from justice.cli import rpc
from justice.custody.v1 import custody_pb2 as pb
from justice.custody.v1 import custody_pb2_grpc

if TYPE_CHECKING:
    from justice.custody.v1.custody_pb2_grpc import CustodyServiceAsyncStub

app = typer.Typer(no_args_is_help=True, help="Seized goods: seize, hand over, decide, dispose.")
console = Console()
T = TypeVar("T")
Name = Annotated[str, typer.Argument(help="items/{item}")]


def call(ctx: typer.Context, action: Callable[[CustodyServiceAsyncStub], Awaitable[T]]) -> T:
    """Run one RPC; a failure prints its status and details and exits 1."""
    return rpc.run(
        ctx, lambda channel: action(custody_pb2_grpc.CustodyServiceStub(channel)), console
    )


def show(message: Message) -> None:
    console.print_json(json_format.MessageToJson(message, preserving_proto_field_name=True))


def write(directory: Path, filename: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / filename
    target.write_bytes(data)
    console.print(f"wrote {target} ({len(data)} bytes)")
    return target


@app.command()
def seize(
    ctx: typer.Context,
    case: Annotated[str, typer.Option(help="Case number")],
    report: Annotated[str, typer.Option(help="Seizure report: reports/{id} or PV number")],
    place: Annotated[str, typer.Option(help="Where the goods were seized")],
    ground: Annotated[str, typer.Option(help="Legal ground")],
    items: Annotated[Path, typer.Option(help="JSON list of Item messages (category, seal...)")],
    person: Annotated[str, typer.Option(help="Seized from: 'Given Family'")] = "",
    language: Annotated[str, typer.Option(help="The person's language: nl, fr, de, en")] = "nl",
) -> None:
    """Register a seizure and its items."""
    seizure = pb.Seizure(case_number=case, report=report, place=place, legal_ground=ground)
    seizure.seize_time.FromDatetime(datetime.now(UTC))
    if person:
        given, _, family = person.rpartition(" ")
        seizure.seized_from.CopyFrom(
            pb.Person(given_name=given, family_name=family, language=language)
        )
    listed = [json_format.ParseDict(i, pb.Item()) for i in json.loads(items.read_text())]
    request = pb.RegisterSeizureRequest(seizure=seizure, items=listed)
    show(call(ctx, lambda stub: stub.RegisterSeizure(request)))


@app.command()
def get(ctx: typer.Context, name: Name) -> None:
    """Show an item."""
    show(call(ctx, lambda stub: stub.GetItem(pb.GetItemRequest(name=name))))


@app.command("list")
def list_(
    ctx: typer.Context,
    filter_: Annotated[str, typer.Option("--filter", help='e.g. state = "IN_STORAGE"')] = "",
    page_size: int = 50,
) -> None:
    """List items (case_number, state, category, location, custodian, seal)."""
    request = pb.ListItemsRequest(filter=filter_, page_size=page_size)
    response = call(ctx, lambda stub: stub.ListItems(request))
    table = Table("name", "state", "category", "seal", "custodian", "location")
    for i in response.items:
        table.add_row(
            i.name,
            pb.ItemState.Name(i.state),
            pb.Category.Name(i.category),
            i.seal,
            i.custodian,
            i.location,
        )
    console.print(table)


@app.command()
def transfer(ctx: typer.Context, name: Name, to: Annotated[str, typer.Option()]) -> None:
    """Hand an item over; it is in transit until the receiver accepts it."""
    request = pb.TransferCustodyRequest(name=name, receiver=to)
    show(call(ctx, lambda stub: stub.TransferCustody(request)))


@app.command()
def accept(
    ctx: typer.Context,
    name: Name,
    seal_broken: bool = False,
    weight: Annotated[str, typer.Option(help="Weight found, as a decimal")] = "",
    location: str = "",
) -> None:
    """Accept an item addressed to you, recording the seal and what you found."""
    request = pb.AcceptCustodyRequest(
        name=name,
        seal_intact=not seal_broken,
        found=pb.Quantity(weight=weight),
        location=location,
    )
    show(call(ctx, lambda stub: stub.AcceptCustody(request)))


@app.command()
def move(
    ctx: typer.Context,
    names: list[str],
    to: Annotated[str, typer.Option(help="locations/{location}")] = "",
    barcode: Annotated[str, typer.Option(help="The location's barcode, as scanned")] = "",
) -> None:
    """Move items to a storage location, by name or by its scanned barcode."""
    request = pb.MoveItemsRequest(names=names, location=to, location_barcode=barcode)
    show(call(ctx, lambda stub: stub.MoveItems(request)))


@app.command("create-location")
def create_location(
    ctx: typer.Context,
    location_id: Annotated[str, typer.Argument(help="The id in locations/{id}, e.g. gent.r1.a")],
    display_name: Annotated[str, typer.Option("--name", help="Shown on the label")],
    unit: Annotated[str, typer.Option(help="The unit that holds it")],
    kind: Annotated[str, typer.Option(help="VAULT, SAFE, ROOM, SHELF, FREEZER, ...")] = "SHELF",
    secure: Annotated[bool, typer.Option(help="Fit for cash, drugs and firearms")] = False,
    capacity: Annotated[int, typer.Option(help="Items it may hold; 0: no limit")] = 0,
    barcode: Annotated[str, typer.Option(help="Defaults to the id")] = "",
) -> None:
    """Create a storage location (custody supervisors)."""
    request = pb.CreateLocationRequest(
        location_id=location_id,
        location=pb.Location(
            display_name=display_name,
            unit=unit,
            # An unknown kind goes as UNSPECIFIED, which the server names as the bad field.
            kind=dict(pb.LocationKind.items()).get(kind.upper(), pb.LOCATION_KIND_UNSPECIFIED),
            secure=secure,
            capacity=capacity,
            barcode=barcode,
        ),
    )
    show(call(ctx, lambda stub: stub.CreateLocation(request)))


@app.command("acceptance")
def acceptance(
    ctx: typer.Context,
    name: Name,
    sequence: Annotated[int, typer.Option(help="The ACCEPTED event's sequence")],
    out: Annotated[Path, typer.Option(help="Folder to write the signed XML to")] = Path("."),
) -> None:
    """Write the receiver's signed acceptance of a hand-over (verify it with xmlsec1)."""
    request = pb.GetAcceptanceRequest(name=name, sequence=sequence)
    found = call(ctx, lambda stub: stub.GetAcceptance(request))
    stem = name.removeprefix("items/")
    write(out, f"acceptance-{stem}-{sequence}.xml", found.signed_xml)


@app.command()
def checkout(
    ctx: typer.Context, name: Name, to: Annotated[str, typer.Option()], days: int = 7
) -> None:
    """Check an item out to a lab or court for `days`."""
    request = pb.CheckOutRequest(name=name, destination=to)
    request.due_time.FromDatetime(datetime.now(UTC) + timedelta(days=days))
    show(call(ctx, lambda stub: stub.CheckOut(request)))


@app.command()
def checkin(ctx: typer.Context, name: Name, seal_broken: bool = False) -> None:
    """Check an item back in."""
    request = pb.CheckInRequest(name=name, seal_intact=not seal_broken)
    show(call(ctx, lambda stub: stub.CheckIn(request)))


@app.command()
def decide(
    ctx: typer.Context,
    name: Name,
    decision: Annotated[str, typer.Option(help="RETURN_TO_OWNER, DESTROY, FORFEIT, SELL...")],
    reference: Annotated[str, typer.Option()],
    authority: Annotated[str, typer.Option()],
) -> None:
    """Record the prosecutor's decision (prosecutors only)."""
    today = datetime.now(UTC).date()
    request = pb.RecordDecisionRequest(
        name=name,
        decision=pb.DecisionKind.Value(decision.upper()),
        reference=reference,
        authority=authority,
        decision_date=date_pb2.Date(year=today.year, month=today.month, day=today.day),
    )
    show(call(ctx, lambda stub: stub.RecordDecision(request)))


def _disposal(witness: str, method: str, licence: str) -> pb.Disposal:
    return pb.Disposal(witness=witness, method=method, licence_reference=licence)


@app.command("request-disposal")
def request_disposal(
    ctx: typer.Context, name: Name, witness: str = "", method: str = "", licence: str = ""
) -> None:
    """Ask a custody supervisor to approve the disposal (four eyes)."""
    request = pb.RequestDisposalRequest(name=name, disposal=_disposal(witness, method, licence))
    show(call(ctx, lambda stub: stub.RequestDisposal(request)))


@app.command()
def approve(ctx: typer.Context, approval: str) -> None:
    """Approve someone else's disposal request (custody supervisors)."""
    request = pb.ApproveDisposalRequest(approval=approval)
    show(call(ctx, lambda stub: stub.ApproveDisposal(request)))


@app.command()
def dispose(
    ctx: typer.Context,
    name: Name,
    approval: str = "",
    witness: str = "",
    method: str = "",
    licence: str = "",
) -> None:
    """Execute the decision (with the approval where four eyes are required)."""
    request = pb.DisposeRequest(
        name=name, approval=approval, disposal=_disposal(witness, method, licence)
    )
    show(call(ctx, lambda stub: stub.Dispose(request)))


@app.command()
def verify(ctx: typer.Context, name: Name) -> None:
    """Check an item's chain against its anchors outside the custody tables."""
    request = pb.VerifyCustodyChainRequest(name=name)
    result = call(ctx, lambda stub: stub.VerifyCustodyChain(request))
    show(result)
    if not result.intact:
        raise typer.Exit(2)


@app.command()
def certificate(ctx: typer.Context, name: Name, out: Path = Path()) -> None:
    """Write the signed custody certificate (check it with xmlsec1 and verify_certificate.py)."""
    request = pb.ExportCustodyCertificateRequest(name=name)
    response = call(ctx, lambda stub: stub.ExportCustodyCertificate(request))
    write(out, response.filename, response.signed_xml)


@app.command()
def receipt(ctx: typer.Context, seizure: str, out: Path = Path()) -> None:
    """Write the seizure receipt: signed PDF and signed XML (needs --purpose)."""
    request = pb.GetSeizureReceiptRequest(name=seizure)
    response = call(ctx, lambda stub: stub.GetSeizureReceipt(request))
    write(out, response.pdf_filename, response.pdf)
    write(out, response.xml_filename, response.signed_xml)
