"""`justice evidence ...`: upload (resuming by itself), download, verify, share, hold, sweep."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import mimetypes
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import grpc
import typer
from google.protobuf.duration_pb2 import Duration
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from justice.cli import rpc
from justice.cli.reports import CliContext, show
from justice.evidence.headers import RANGE_HEADER, SHA256_HEADER, SIZE_HEADER
from justice.evidence.v1 import evidence_pb2 as pb
from justice.evidence.v1 import evidence_pb2_grpc
from justice.platform.rpc import ErrorDetails, error_details

if TYPE_CHECKING:
    from justice.evidence.v1.evidence_pb2_grpc import EvidenceServiceAsyncStub

app = typer.Typer(no_args_is_help=True, help="Upload, download, verify, share and hold evidence.")
console = Console()
T = TypeVar("T")

CHUNK_BYTES = 2 * 1024 * 1024
# A cut connection is retried this many times, each resuming at the committed offset.
RESUME_ATTEMPTS = 20
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
)
# grpc core answers a write on a connection cut mid-message with a local INTERNAL that
# carries no server details ("Internal error from Core"): that is a lost connection too.
_LOCAL_INTERNAL = "Internal error from Core"
# Answers that mean "ask where the upload stands and go on from there".
_RESUMABLE = frozenset({"UPLOAD_BUSY", "OFFSET_MISMATCH", "UPLOAD_INCOMPLETE"})
# The server can no longer continue this upload (it restarted, or the upload expired
# and was cleaned up): start a new one from byte zero.
_RESUME_FROM_ZERO = frozenset({"UPLOAD_STATE_LOST", "UPLOAD_EXPIRED", "UPLOAD_NOT_FOUND"})


def _backoff(attempt: int) -> float:
    return min(0.2 * 2.0**attempt, 5.0)


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
            if on_bytes:
                on_bytes(len(block))
    return digest.hexdigest()


async def _stream(
    first: pb.UploadEvidenceRequest,
    path: Path,
    offset: int,
    on_bytes: Callable[[int], None],
    chunk_bytes: int,
) -> AsyncIterator[pb.UploadEvidenceRequest]:
    yield first
    with path.open("rb") as handle:
        handle.seek(offset)
        while block := await asyncio.to_thread(handle.read, chunk_bytes):
            yield pb.UploadEvidenceRequest(chunk=block)
            on_bytes(len(block))


def _connection_lost(details: ErrorDetails) -> bool:
    if details.code in _RETRYABLE:
        return True
    return (
        details.code == grpc.StatusCode.INTERNAL
        and not details.reason
        and (details.message == _LOCAL_INTERNAL)
    )


async def upload_file(
    stub: EvidenceServiceAsyncStub,
    path: Path,
    metadata: pb.EvidenceMetadata,
    *,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_resume: Callable[[int], None] = lambda offset: None,
    chunk_bytes: int = CHUNK_BYTES,
    attempts: int = RESUME_ATTEMPTS,
) -> pb.Evidence:
    """Stream a file in; after a dropped connection, ask where the upload stands and resume."""
    meta = pb.EvidenceMetadata()
    meta.CopyFrom(metadata)
    if not meta.request_id:
        meta.request_id = uuid.uuid4().hex
    upload = f"uploads/{meta.request_id}"
    first = pb.UploadEvidenceRequest(metadata=meta)
    offset = 0
    # After a dropped stream: ask the server where the upload stands before sending again.
    # Until it answers, nothing is sent: a stale offset would send committed bytes again.
    ask = False
    for attempt in range(attempts):
        last = attempt == attempts - 1
        if ask:
            try:
                state = await stub.GetUpload(pb.GetUploadRequest(name=upload))
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    if last:
                        raise
                    await asyncio.sleep(_backoff(attempt))
                    continue
                # Never started, or finished: the metadata again starts it or returns the result.
                first, offset = pb.UploadEvidenceRequest(metadata=meta), 0
            else:
                offset = state.committed_offset
                resume = pb.ResumeUpload(upload=upload, offset=offset)
                first = pb.UploadEvidenceRequest(resume=resume)
            ask = False
            on_resume(offset)
        try:
            return await stub.UploadEvidence(_stream(first, path, offset, on_bytes, chunk_bytes))
        except grpc.aio.AioRpcError as error:
            details = error_details(error)
            from_zero = details.reason in _RESUME_FROM_ZERO
            if last or not (from_zero or _connection_lost(details) or details.reason in _RESUMABLE):
                raise
        await asyncio.sleep(_backoff(attempt))
        if from_zero:
            meta.request_id = uuid.uuid4().hex
            upload = f"uploads/{meta.request_id}"
            first, offset = pb.UploadEvidenceRequest(metadata=meta), 0
            on_resume(offset)
        else:
            ask = True
    raise AssertionError("unreachable")


class IncompleteDownloadError(Exception):
    """The bytes that arrived are not the ones the server announced; nothing was written."""


@dataclass(frozen=True)
class Downloaded:
    first: int
    last: int
    sha256: str


async def download_file(
    stub: EvidenceServiceAsyncStub,
    request: pb.DownloadEvidenceRequest,
    out: Path,
    *,
    on_total: Callable[[int], None] = lambda total: None,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> Downloaded:
    """Stream into a temporary file beside `out` and rename it onto `out` only when the range
    the server announced arrived whole and, for the whole object, hashes to the sha256 the
    server reports. On any failure the temporary file is removed: `out` is never created
    half-written or empty, and an existing `out` is left as it was."""
    stream = stub.DownloadEvidence(request)
    headers = dict(await stream.initial_metadata() or ())
    if RANGE_HEADER not in headers:
        # A refused call has no headers; reading the stream raises its status.
        async for _ in stream:
            break
    expected = str(headers.get(SHA256_HEADER, ""))
    try:
        # "first-last", inclusive ("0--1" for an empty object).
        first, last = (int(n) for n in str(headers.get(RANGE_HEADER, "")).split("-", 1))
    except ValueError:
        raise IncompleteDownloadError("the server announced no byte range") from None
    size = last - first + 1
    on_total(size)
    whole = request.offset == 0 and size == int(str(headers.get(SIZE_HEADER, "-1")))
    digest = hashlib.sha256()
    received = 0
    # Same folder, so the final rename is atomic; a dot name, so it is not taken for the result.
    fd, part = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            async for response in stream:
                handle.write(response.chunk)
                digest.update(response.chunk)
                received += len(response.chunk)
                on_bytes(len(response.chunk))
            handle.flush()
            os.fsync(handle.fileno())
        if received != size:
            raise IncompleteDownloadError(f"{received} of {size} bytes arrived")
        if whole and digest.hexdigest() != expected:
            raise IncompleteDownloadError(
                f"sha256 {digest.hexdigest()}, the server reports {expected or 'none'}"
            )
        os.replace(part, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise
    return Downloaded(first, last, digest.hexdigest())


def call(ctx: typer.Context, action: Callable[[EvidenceServiceAsyncStub], Awaitable[T]]) -> T:
    """Run RPCs; a failure prints its status and details and exits 1."""
    stub = evidence_pb2_grpc.EvidenceServiceStub
    return rpc.run(ctx, lambda channel: action(stub(channel)), console)


def _rewind(progress: Progress, task: TaskID, offset: int) -> None:
    progress.update(task, completed=offset)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@app.command()
def upload(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    case: Annotated[str, typer.Option(help="Case number")],
    report: Annotated[str, typer.Option(help="reports/{report} it belongs to")] = "",
    media_type: Annotated[str, typer.Option(help="Media type (default: from the name)")] = "",
    category: Annotated[str, typer.Option(help="Retention category (default: the server's)")] = "",
    device: Annotated[str, typer.Option(help="Capture device")] = "",
    captured: Annotated[datetime | None, typer.Option(help="Capture time (ISO 8601, UTC)")] = None,
) -> None:
    """Upload files with a progress bar; a dropped connection resumes by itself."""

    async def go(stub: EvidenceServiceAsyncStub) -> list[pb.Evidence]:
        done = []
        with _progress() as progress:
            for path in files:
                size = path.stat().st_size
                hashing = progress.add_task(f"hashing {path.name}", total=size)
                sha = await asyncio.to_thread(
                    sha256_file, path, functools.partial(progress.advance, hashing)
                )
                progress.remove_task(hashing)
                task = progress.add_task(f"uploading {path.name}", total=size)
                meta = pb.EvidenceMetadata(
                    case_number=case,
                    report=report,
                    media_type=media_type
                    or mimetypes.guess_type(path.name)[0]
                    or "application/octet-stream",
                    original_filename=path.name,
                    capture_device=device,
                    category=category,
                    declared_size=size,
                    declared_sha256=sha,
                    request_id=uuid.uuid4().hex,
                )
                if captured is not None:
                    meta.capture_time.FromDatetime(captured.astimezone(UTC))
                done.append(
                    await upload_file(
                        stub,
                        path,
                        meta,
                        on_bytes=functools.partial(progress.advance, task),
                        on_resume=functools.partial(_rewind, progress, task),
                    )
                )
        return done

    for evidence in call(ctx, go):
        console.print(f"[green]stored[/green] {evidence.name} sha256 {evidence.sha256}")


@app.command()
def download(
    ctx: typer.Context,
    name: str,
    out: Annotated[Path, typer.Option(help="File to write")],
    offset: Annotated[int, typer.Option(help="First byte")] = 0,
    length: Annotated[int, typer.Option(help="Bytes from offset (0: to the end)")] = 0,
) -> None:
    """Download evidence (or a byte range); a whole file is checked against its sha256.

    OUT appears only once every byte arrived (and, for a whole file, its sha256 matched);
    a failed download leaves no file behind.
    """
    request = pb.DownloadEvidenceRequest(name=name, offset=offset, length=length)

    async def go(stub: EvidenceServiceAsyncStub) -> Downloaded:
        with _progress() as progress:
            task = progress.add_task(f"downloading {name}", total=None)
            return await download_file(
                stub,
                request,
                out,
                on_total=lambda total: progress.update(task, total=total),
                on_bytes=functools.partial(progress.advance, task),
            )

    try:
        done = call(ctx, go)
    except IncompleteDownloadError as error:
        console.print(f"[red]NOT WRITTEN[/red] {out}: {error}")
        raise typer.Exit(1) from None
    if offset or length:
        console.print(f"wrote bytes {done.first}-{done.last} of {name} to {out}")
    else:
        console.print(f"[green]OK[/green] {out} sha256 {done.sha256}")


@app.command()
def verify(ctx: typer.Context, name: str) -> None:
    """Have the server re-read and re-hash the stored object."""
    result = call(ctx, lambda stub: stub.VerifyEvidence(pb.VerifyEvidenceRequest(name=name)))
    show(result)
    if result.integrity != pb.INTACT:
        raise typer.Exit(1)


@app.command()
def share(
    ctx: typer.Context,
    name: str,
    partner: Annotated[str, typer.Option(help="Partner id receiving the link")],
    purpose: Annotated[str, typer.Option(help="Why it is shared (recorded)")],
    expiry: Annotated[int, typer.Option(help="Seconds the link works (0: default)")] = 0,
) -> None:
    """Make a presigned download link for a partner; the share is recorded."""
    request = pb.ShareEvidenceRequest(name=name, partner=partner, purpose=purpose)
    if expiry:
        request.expiry.CopyFrom(Duration(seconds=expiry))
    show(call(ctx, lambda stub: stub.ShareEvidence(request)))


@app.command()
def hold(
    ctx: typer.Context,
    name: str,
    release: Annotated[bool, typer.Option(help="Release the hold instead")] = False,
) -> None:
    """Place (or release) a legal hold: no deletion while it stands, whatever the retention."""
    if release:
        show(call(ctx, lambda stub: stub.ReleaseLegalHold(pb.ReleaseLegalHoldRequest(name=name))))
    else:
        show(call(ctx, lambda stub: stub.SetLegalHold(pb.SetLegalHoldRequest(name=name))))


@app.command("list")
def list_(
    ctx: typer.Context,
    case: Annotated[str, typer.Option(help="Only this case")] = "",
    report: Annotated[str, typer.Option(help="Only this report")] = "",
) -> None:
    """List evidence."""
    terms = [f'{k} = "{v}"' for k, v in (("case_number", case), ("report", report)) if v]
    request = pb.ListEvidenceRequest(filter=" AND ".join(terms), page_size=500)
    show(call(ctx, lambda stub: stub.ListEvidence(request)))


@app.command()
def sweep(ctx: typer.Context) -> None:
    """Re-hash every stored object now (the server also does this on its interval)."""
    from justice.app import evidence_sweep
    from justice.devstack.stack import with_dev_s3

    obj: CliContext = ctx.find_root().obj
    # Beside `justice run`, S3 is the dev stack's unless the settings name one.
    summary = asyncio.run(evidence_sweep(with_dev_s3(obj.settings)))
    console.print(
        f"{summary.objects} objects: {summary.intact} intact, "
        f"{summary.mismatched} mismatched, {summary.missing} missing"
    )
    if summary.mismatched or summary.missing:
        raise typer.Exit(1)
