"""Audit records and alerts as protobuf messages: for the API and the audit stream alike."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from justice.audit.model import Alert, AuditEntry, AuditRecord
from justice.audit.v1 import audit_pb2 as pb


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def record_to_proto(record: AuditRecord) -> pb.AuditRecord:
    e = record.entry
    return pb.AuditRecord(
        sequence=record.sequence,
        time=timestamp(e.time),
        principal=e.principal,
        agency=e.agency,
        unit=e.unit,
        service=e.service,
        method=e.method,
        resources=list(e.resources),
        purpose=e.purpose,
        outcome=e.outcome,
        reason=e.reason,
        peer=e.peer,
        previous_hash=record.previous_hash,
        hash=record.hash,
    )


def record_from_proto(message: pb.AuditRecord) -> AuditRecord:
    """For offline checks of a record someone handed over (its fields make its leaf)."""
    entry = AuditEntry(
        time=message.time.ToDatetime(tzinfo=UTC),
        principal=message.principal,
        agency=message.agency,
        unit=message.unit,
        service=message.service,
        method=message.method,
        resources=tuple(message.resources),
        purpose=message.purpose,
        outcome=message.outcome,
        reason=message.reason,
        peer=message.peer,
    )
    return AuditRecord(message.sequence, entry, message.previous_hash, message.hash)


def alert_to_proto(alert: Alert) -> pb.Alert:
    return pb.Alert(
        name=alert.name,
        rule=alert.rule.value,
        principal=alert.principal,
        agency=alert.agency,
        unit=alert.unit,
        summary=alert.summary,
        create_time=timestamp(alert.create_time),
        first_sequence=alert.first_sequence,
        last_sequence=alert.last_sequence,
    )
