"""The audit interceptor: one chained record per RPC, and the purpose gate for personal data.

Two `around`s, placed by the composition root:
- `recorder` sits just inside identity and outside authorisation, so it sees the caller and
  the final outcome of every call: PERMISSION_DENIED from authorisation, a refused purpose,
  domain errors (mapped with the same `status_code_of` the error interceptor uses).
- `purpose_gate` sits inside authorisation, so an unauthorised caller learns PERMISSION_DENIED
  before being told a purpose is missing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from justice.audit.model import AuditEntry
from justice.audit.personal_data import PURPOSE_HEADER
from justice.audit.writer import AuditWriter
from justice.platform.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    JusticeError,
)
from justice.platform.rpc import Around, Call, status_code_of
from justice.security.identity import current_principal

log = logging.getLogger(__name__)

# A declared purpose or legal basis: a code or short phrase ("investigation PV/2025/1234").
_PURPOSE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:/#()-]{2,127}$")
# Resource names are ids: anything else is not recorded, so no payload leaks into the log.
_RESOURCE = re.compile(r"^[a-z][a-z0-9-]{0,31}/[A-Za-z0-9_.@:/-]{1,200}$")
_ID = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")
MALFORMED = "(malformed)"
_MAX_RESOURCES = 16
# Request fields that name a resource by name, or by a bare id of a collection.
_NAME_FIELDS = frozenset({"name", "parent", "resource", "names"})
_ID_FIELDS = {"principal": "principals", "plate": "plates", "national_id": "persons"}


# Resource names a handler adds to its call's record (e.g. an item's new chain head).
_annotations: ContextVar[list[str] | None] = ContextVar("justice_audit_annotations", default=None)


def annotate(resource: str) -> None:
    """Add `resource` (a resource name) to the audit record of the call being served;
    outside an audited call it is dropped."""
    found = _annotations.get()
    if found is not None and len(found) < _MAX_RESOURCES:
        found.append(resource if _RESOURCE.match(resource) else MALFORMED)


def purpose_of(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The declared purpose; None when absent. Raises InvalidArgument when malformed."""
    values = [v for k, v in context.invocation_metadata() or () if k == PURPOSE_HEADER]
    if not values:
        return None
    value = values[-1]
    if not isinstance(value, str) or not _PURPOSE.match(value.strip()):
        raise InvalidArgument.of(
            [FieldViolation(PURPOSE_HEADER, "3-128 of A-Z a-z 0-9 space _ . : / # ( ) -")]
        )
    return value.strip()


def _name_values(message: Message, field: FieldDescriptor) -> list[str]:
    value = getattr(message, field.name)
    if field.is_repeated:
        return [str(v) for v in list(value)[:_MAX_RESOURCES]]
    return [str(value)] if value else []


def resources_of(request: Any) -> tuple[str, ...]:
    """Resource names a request addresses: name/parent fields, one level of nesting deep
    (UpdateReportRequest.report.name), and ids of persons, plates and principals."""
    if not isinstance(request, Message):
        return ()
    found: list[str] = []
    nested: list[Message] = []
    for field, _ in request.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.name in _NAME_FIELDS or field.name.endswith("_name"):
                found += [
                    v if _RESOURCE.match(v) else MALFORMED for v in _name_values(request, field)
                ]
            elif field.name in _ID_FIELDS:
                found += [
                    f"{_ID_FIELDS[field.name]}/{v}" if _ID.match(v) else MALFORMED
                    for v in _name_values(request, field)
                ]
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
            nested.append(getattr(request, field.name))
    for message in nested:
        name_field = message.DESCRIPTOR.fields_by_name.get("name")
        if name_field is not None and name_field.type == FieldDescriptor.TYPE_STRING:
            value = getattr(message, name_field.name)
            if value:
                found.append(value if _RESOURCE.match(value) else MALFORMED)
    return tuple(dict.fromkeys(found))[:_MAX_RESOURCES]


def _outcome(
    error: BaseException | None, context: grpc.aio.ServicerContext[Any, Any]
) -> tuple[str, str]:
    if error is None:
        return "OK", ""
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED", ""
    if isinstance(error, grpc.aio.AbortError):
        # The handler aborted by itself: the context holds the code it set.
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            return code.name, ""
        return grpc.StatusCode.UNKNOWN.name, ""
    reason = error.reason if isinstance(error, JusticeError) else ""
    return status_code_of(error).name, reason


def _peer(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    try:
        return str(context.peer())[:128]
    except Exception:
        return ""


def recorder(
    writer: AuditWriter,
    clock: Callable[[], datetime],
    unaudited_services: Collection[str] = ("grpc.health.v1.Health",),
) -> Around:
    """Writes one record per RPC, after it ran, and answers only once the record is durable."""
    # Appends for cancelled calls run on their own; the loop holds tasks only weakly.
    detached: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def around(call: Call) -> AsyncIterator[None]:
        if call.service in unaudited_services:
            yield
            return
        started = clock()
        error: BaseException | None = None
        annotations: list[str] = []
        token = _annotations.set(annotations)
        try:
            yield
        except BaseException as failure:
            error = failure
        finally:
            _annotations.reset(token)
        try:
            purpose = purpose_of(call.context) or ""
        except InvalidArgument:
            purpose = ""
        try:
            principal = current_principal()
            who = (principal.id, principal.agency, principal.unit)
        except JusticeError:
            who = ("", "", "")
        outcome, reason = _outcome(error, call.context)
        entry = AuditEntry(
            time=started,
            principal=who[0],
            agency=who[1],
            unit=who[2],
            service=call.service,
            method=call.method_name,
            resources=tuple(dict.fromkeys(resources_of(call.request) + tuple(annotations)))[
                :_MAX_RESOURCES
            ],
            purpose=purpose,
            outcome=outcome,
            reason=reason,
            peer=_peer(call.context),
        )
        if isinstance(error, asyncio.CancelledError):
            # The caller is gone; the record still goes into the next batch.
            task = asyncio.get_running_loop().create_task(_append_quietly(writer, entry))
            detached.add(task)
            task.add_done_callback(detached.discard)
        else:
            await writer.append(entry)
        if error is not None:
            raise error

    return around


async def _append_quietly(writer: AuditWriter, entry: AuditEntry) -> None:
    try:
        await writer.append(entry)
    except JusticeError:
        log.error("audit record of a cancelled call was lost")


def purpose_gate(personal_data_reads: Collection[str]) -> Around:
    """Refuses reads of personal data (full method names) that declare no purpose."""

    @asynccontextmanager
    async def around(call: Call) -> AsyncIterator[None]:
        if call.method in personal_data_reads and purpose_of(call.context) is None:
            raise FailedPrecondition(
                "PURPOSE_REQUIRED",
                f"{call.method_name} reads personal data: declare a purpose or legal basis "
                f"in the {PURPOSE_HEADER} request metadata",
                metadata={"header": PURPOSE_HEADER},
            )
        yield

    return around
