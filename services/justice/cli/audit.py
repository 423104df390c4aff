"""`justice audit ...`: who consulted what, the chain, signed exports and misuse alerts.

`verify-bundle` needs no server: an exported bundle is checked with the CA certificate only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from cryptography import x509
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table

from justice.audit.v1 import audit_pb2 as pb
from justice.audit.v1 import audit_pb2_grpc
from justice.cli import rpc
from justice.cli.reports import CliContext

if TYPE_CHECKING:
    from justice.audit.v1.audit_pb2_grpc import AuditServiceAsyncStub

app = typer.Typer(
    no_args_is_help=True,
    help="Who consulted what: query, verify and export the audit log; misuse alerts.",
)
console = Console()
T = TypeVar("T")

First = Annotated[int, typer.Option("--from", help="First sequence (default: the first)")]
Last = Annotated[int, typer.Option("--to", help="Last sequence (default: the head)")]
PageSize = Annotated[int, typer.Option(help="At most this many rows")]
PageToken = Annotated[str, typer.Option(help="Continue where a previous page ended")]


def call(ctx: typer.Context, action: Callable[[AuditServiceAsyncStub], Awaitable[T]]) -> T:
    return rpc.run(ctx, lambda channel: action(audit_pb2_grpc.AuditServiceStub(channel)), console)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _time(stamp: Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _next(token: str) -> None:
    if token:
        console.print(f"more: --page-token {token}")


@app.command()
def query(
    ctx: typer.Context,
    resource: Annotated[str, typer.Option(help="Who consulted this, e.g. reports/0191ab")] = "",
    principal: Annotated[str, typer.Option(help="What this principal consulted")] = "",
    since: Annotated[datetime | None, typer.Option(help="From this time (UTC)")] = None,
    until: Annotated[datetime | None, typer.Option(help="Before this time (UTC)")] = None,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> None:
    """Who consulted a resource, or what a principal consulted (needs --purpose)."""
    request = pb.QueryAccessRequest(
        resource=resource, principal=principal, page_size=page_size, page_token=page_token
    )
    for field, moment in (("start_time", _utc(since)), ("end_time", _utc(until))):
        if moment is not None:
            getattr(request, field).FromDatetime(moment)
    response = call(ctx, lambda stub: stub.QueryAccess(request))
    table = Table("seq", "time (UTC)", "principal", "unit", "method", "resources", "purpose")
    table.add_column("outcome")
    for r in response.records:
        outcome = r.outcome if not r.reason else f"{r.outcome} {r.reason}"
        table.add_row(
            str(r.sequence),
            _time(r.time),
            r.principal,
            r.unit,
            r.method,
            " ".join(r.resources),
            r.purpose,
            outcome,
        )
    console.print(table)
    _next(response.next_page_token)


@app.command()
def verify(ctx: typer.Context, first: First = 0, last: Last = 0) -> None:
    """Recompute the hash chain on the server. Exits 1 unless it is intact."""
    request = pb.VerifyAuditChainRequest(from_sequence=first, to_sequence=last)
    result = call(ctx, lambda stub: stub.VerifyAuditChain(request))
    if result.intact:
        console.print(
            f"[green]INTACT[/green] {result.records_checked} record(s) checked; "
            f"head {result.head_sequence} {result.head_hash}"
        )
        return
    console.print(
        f"[red]BROKEN[/red] {result.problem} at sequence {result.first_broken_sequence} "
        f"({result.records_checked} record(s) checked)"
    )
    raise typer.Exit(1)


@app.command()
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="File to write the signed bundle to")],
    first: First = 0,
    last: Last = 0,
) -> None:
    """Write a signed XML bundle of the records (needs --purpose); check it with verify-bundle."""
    from justice.audit.service import EXPORT_MAX_RECORDS

    request = pb.ExportAuditRequest(from_sequence=first, to_sequence=last)
    response = call(ctx, lambda stub: stub.ExportAudit(request))
    if hashlib.sha256(response.signed_xml).hexdigest() != response.sha256:
        console.print("[red]CORRUPT[/red] the bundle does not hash to what the server sent")
        raise typer.Exit(1)
    out.write_bytes(response.signed_xml)
    console.print(
        f"wrote {out}: {response.record_count} record(s), "
        f"sequences {response.first_sequence}-{response.last_sequence}, sha256 {response.sha256}"
    )
    if response.record_count >= EXPORT_MAX_RECORDS:
        console.print(f"more may follow: --from {response.last_sequence + 1}")


@app.command("verify-bundle")
def verify_bundle(
    ctx: typer.Context,
    file: Path,
    ca: Annotated[Path | None, typer.Option(help="Trusted CA (default: the state dir's)")] = None,
    signer: Annotated[
        str, typer.Option(help="The platform's audit signer id (default: from the settings)")
    ] = "",
    after_hash: Annotated[
        str,
        typer.Option(help="Require the bundle to continue this hash (a previous bundle's last)"),
    ] = "",
) -> None:
    """Check an exported bundle offline, with no server. Exits 1 unless it is good."""
    from justice.audit import bundle
    from justice.signing.xades import XadesVerifier

    obj: CliContext = ctx.find_root().obj
    anchors = x509.load_pem_x509_certificates((ca or obj.settings.pki_dir / "ca.pem").read_bytes())
    verdict = XadesVerifier(anchors).verify(file.read_bytes())
    result = bundle.check(verdict, signer or obj.settings.audit.signer)
    if (
        result.ok
        and after_hash
        and result.records
        and result.records[0].previous_hash != after_hash
    ):
        console.print(f"[red]INVALID[/red] NOT_CONTINUOUS: it does not follow {after_hash}")
        raise typer.Exit(1)
    if not result.ok:
        console.print(f"[red]INVALID[/red] {result.problem}: {result.detail}")
        raise typer.Exit(1)
    records = result.records
    span = f"sequences {records[0].sequence}-{records[-1].sequence}" if records else "no records"
    console.print(f"[green]VALID[/green] {len(records)} record(s), {span}, chain intact")
    console.print(f"  signer: {result.signer}")
    if result.signing_time:
        console.print(f"  signed at: {result.signing_time.isoformat()}")
    if records:
        console.print(f"  follows: {records[0].previous_hash}")
        console.print(f"  ends with: {records[-1].hash}")


@app.command()
def alerts(
    ctx: typer.Context,
    principal: Annotated[str, typer.Option(help="Only this principal's alerts")] = "",
    rule: Annotated[str, typer.Option(help="Only this rule, e.g. BULK_LOOKUP")] = "",
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> None:
    """Alerts raised by the atypical-use rules, newest first."""
    terms = [
        f'{key} = "{value}"' for key, value in (("principal", principal), ("rule", rule)) if value
    ]
    request = pb.ListAlertsRequest(
        filter=" AND ".join(terms),
        page_size=page_size,
        page_token=page_token,
    )
    response = call(ctx, lambda stub: stub.ListAlerts(request))
    table = Table("time (UTC)", "rule", "principal", "unit", "summary", "records")
    for a in response.alerts:
        table.add_row(
            _time(a.create_time),
            a.rule,
            a.principal,
            a.unit,
            a.summary,
            f"{a.first_sequence}-{a.last_sequence}",
        )
    console.print(table)
    _next(response.next_page_token)


@app.command()
def proof(
    ctx: typer.Context,
    sequence: int,
    out: Annotated[Path, typer.Option(help="Where to write the record and its proof")],
) -> None:
    """A record's inclusion proof in the latest cosigned checkpoint, for `justice verify
    --audit-record`."""
    found = call(
        ctx,
        lambda stub: stub.GetAuditInclusionProof(
            pb.GetAuditInclusionProofRequest(sequence=sequence)
        ),
    )
    out.write_bytes(found.SerializeToString())
    console.print(f"wrote {out}: record {sequence} in a tree of {found.tree_size}")


@app.command()
def checkpoint(ctx: typer.Context) -> None:
    """The latest cosigned checkpoint of the audit log (a signed note)."""
    found = call(
        ctx, lambda stub: stub.GetCosignedAuditCheckpoint(pb.GetCosignedAuditCheckpointRequest())
    )
    typer.echo(found.note, nl=False)
