"""The running audit machinery: the group-commit writer, the stream publisher and the
detector following the log, and the use cases over it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from justice.audit.detection import Detector, Rules, UnitOf
from justice.audit.personal_data import PERSONAL_DATA_READS
from justice.audit.publisher import AuditStream
from justice.audit.service import AuditService, Signer
from justice.audit.store import AuditTransaction
from justice.audit.tail import LogTail, then_checkpoint
from justice.audit.writer import AuditWriter
from justice.platform.config import AuditDetection
from justice.platform.db import Database


@dataclass
class AuditTrail:
    writer: AuditWriter
    service: AuditService
    stream: AuditStream | None
    tails: list[LogTail] = field(default_factory=list)

    def start(self) -> None:
        self.writer.start()
        for tail in self.tails:
            tail.start()

    async def close(self) -> None:
        await self.writer.close()
        for tail in self.tails:
            await tail.close()
        if self.stream is not None:
            await self.stream.close()


def detection_rules(config: AuditDetection) -> Rules:
    """The configured rules; personal-data reads are the lookups the bulk rule counts."""
    return Rules(
        window_seconds=config.window_seconds,
        spike_factor=config.spike_factor,
        spike_min_calls=config.spike_min_calls,
        spike_min_history=config.spike_min_history,
        bulk_lookup_distinct=config.bulk_lookup_distinct,
        lookup_methods=PERSONAL_DATA_READS,
        duty_start=config.duty_start,
        duty_end=config.duty_end,
        timezone=config.timezone,
        duty_hours_by_unit=dict(config.duty_hours_by_unit),
        denials_per_window=config.denials_per_window,
        unit_bound_agencies=frozenset(config.unit_bound_agencies),
    )


def build_trail(
    database: Database,
    *,
    clock: Callable[[], datetime],
    signer: Signer,
    signer_id: str,
    rules: Rules,
    unit_of: UnitOf,
    stream: AuditStream | None,
    batch_max: int,
) -> AuditTrail:
    """Not started: call `start()` on the event loop that serves the RPCs. Without a
    stream (no NATS configured) records and alerts stay in the database only."""

    def uow() -> AuditTransaction:
        return AuditTransaction(database.sessions)

    service = AuditService(
        uow=uow,
        signer=signer,
        signer_id=signer_id,
        clock=clock,
        detector=Detector(rules, unit_of, clock),
        publish_alerts=stream.publish_alerts if stream else None,
    )

    # The detector follows in batches of up to a quarter second of records; alerts are
    # that much later, and it costs a transaction per batch, not per writer commit.
    tails = [LogTail("detector", uow, service.detect, settle_seconds=0.25)]
    if stream is not None:
        tails.append(LogTail("publisher", uow, then_checkpoint(uow, stream.publish)))

    def committed(_: object) -> None:
        for tail in tails:
            tail.notify()

    writer = AuditWriter(database, max_batch=batch_max, on_commit=committed)
    return AuditTrail(writer=writer, service=service, stream=stream, tails=tails)
