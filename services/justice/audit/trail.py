"""The running audit machinery: the group-commit writer, the stream publisher and the
detector following the log, and the use cases over it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from justice.audit.checkpoints import NoteSigner, NoteVerifier
from justice.audit.detection import Detector, Rules, UnitOf
from justice.audit.personal_data import PERSONAL_DATA_READS
from justice.audit.publisher import AuditStream
from justice.audit.service import AuditService, Signer
from justice.audit.store import AuditTransaction
from justice.audit.tail import LogTail, then_checkpoint
from justice.audit.witness import TREE_TAIL, WitnessedLog
from justice.audit.witness_store import TreeReader, WitnessTransaction
from justice.audit.writer import AuditWriter
from justice.platform.config import AuditDetection
from justice.platform.db import Database


@dataclass
class AuditTrail:
    writer: AuditWriter
    service: AuditService
    stream: AuditStream | None
    tails: list[LogTail] = field(default_factory=list)
    witnessed: WitnessedLog | None = None
    checkpoint_interval_seconds: float = 60.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _checkpoints: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.writer.start()
        for tail in self.tails:
            tail.start()
        if self.witnessed is not None and self._checkpoints is None:
            self._checkpoints = asyncio.create_task(
                self.witnessed.run(self.checkpoint_interval_seconds, self._stop),
                name="audit-checkpoints",
            )

    async def close(self) -> None:
        await self.writer.close()
        self._stop.set()
        if self._checkpoints is not None:
            await self._checkpoints
            self._checkpoints = None
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
    checkpoints: CheckpointSettings | None = None,
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

    tails = [LogTail("detector", uow, service.detect)]
    if stream is not None:
        tails.append(LogTail("publisher", uow, then_checkpoint(uow, stream.publish)))
    witnessed = None
    if checkpoints is not None:
        witnessed = WitnessedLog(
            lambda: WitnessTransaction(database.sessions),
            checkpoints.signer,
            {w.name: w for w in checkpoints.witnesses},
            clock,
            stream.publish_checkpoint if stream else None,
            TreeReader(database),
        )
        tails.append(LogTail(TREE_TAIL, uow, witnessed.grow, batch=5_000))

    def committed(_: object) -> None:
        for tail in tails:
            tail.notify()

    writer = AuditWriter(database, max_batch=batch_max, on_commit=committed)
    return AuditTrail(
        writer=writer,
        service=service,
        stream=stream,
        tails=tails,
        witnessed=witnessed,
        checkpoint_interval_seconds=checkpoints.interval_seconds if checkpoints else 60.0,
    )


@dataclass(frozen=True)
class CheckpointSettings:
    """The witnessed log: the key signing checkpoints (its name is the origin), the partners'
    witness keys, how often a checkpoint is signed and published."""

    signer: NoteSigner
    witnesses: Sequence[NoteVerifier]
    interval_seconds: float
