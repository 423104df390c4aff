"""The audit domain assembled from the platform's parts: the group-commit writer, the stream
publisher and the detector following the log, the use cases over it, and its gRPC mount.

Not started by building: `start()` on the event loop that serves the RPCs. Without a bus
(no NATS configured) records and alerts stay in the database only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from justice.audit.alarms import PlatformAlarms
from justice.audit.api import AuditApi
from justice.audit.checkpoints import NoteSigner, NoteVerifier
from justice.audit.detection import Detector, Rules, UnitOf
from justice.audit.model import AuditRecord
from justice.audit.personal_data import PERSONAL_DATA_READS
from justice.audit.publisher import AuditStream
from justice.audit.service import AuditService, Signer
from justice.audit.store import AuditTransaction
from justice.audit.tail import LogTail, then_checkpoint
from justice.audit.v1 import audit_pb2, audit_pb2_grpc
from justice.audit.witness import TREE_TAIL, WitnessedLog
from justice.audit.witness_store import TreeReader, WitnessTransaction
from justice.audit.writer import AuditWriter
from justice.platform.bus import Bus
from justice.platform.config import AuditDetection, AuditSettings
from justice.platform.db import Database, PlainReads
from justice.platform.server import Mount

# How long the detector and the tree let records gather once caught up.
FOLLOW_SETTLE_SECONDS = 0.25


@dataclass(frozen=True)
class CheckpointSettings:
    """The witnessed log: the key signing checkpoints (its name is the origin), the partners'
    witness keys, how often a checkpoint is signed and published."""

    signer: NoteSigner
    witnesses: Sequence[NoteVerifier]
    interval_seconds: float


@dataclass
class AuditComponent:
    writer: AuditWriter
    service: AuditService
    mount: Mount
    tails: tuple[LogTail, ...]
    witnessed: WitnessedLog
    checkpoint_interval_seconds: float
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _checkpoints: asyncio.Task[None] | None = None

    def start(self, *, followers: bool = True) -> None:
        """The writer always; the log's followers (detector, publisher, tree, checkpoints)
        only in the one process that runs the singletons (justice.platform.leadership)."""
        self.writer.start()
        if followers:
            self.start_followers()

    @property
    def following(self) -> bool:
        """Whether this process runs the followers."""
        return self._checkpoints is not None

    def start_followers(self) -> None:
        for tail in self.tails:
            tail.start()
        if self._checkpoints is None:
            self._stop = asyncio.Event()
            self._checkpoints = asyncio.create_task(
                self.witnessed.run(self.checkpoint_interval_seconds, self._stop),
                name="audit-checkpoints",
            )

    async def stop_followers(self) -> None:
        self._stop.set()
        if self._checkpoints is not None:
            await self._checkpoints
            self._checkpoints = None
        for tail in self.tails:
            await tail.close()

    async def close(self) -> None:
        await self.writer.close()
        await self.stop_followers()


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


def build(
    settings: AuditSettings,
    database: Database,
    bus: Bus | None,
    signer: Signer,
    clock: Callable[[], datetime],
    unit_of: UnitOf,
    checkpoints: CheckpointSettings,
    reads: PlainReads,
) -> AuditComponent:
    """`unit_of` says which unit owns a record (the detector's OUTSIDE_UNIT rule);
    `checkpoints` sign the witnessed log's tree heads; `reads` serve inclusion proofs."""

    def uow() -> AuditTransaction:
        return AuditTransaction(database.sessions)

    stream = AuditStream(bus) if bus is not None else None
    service = AuditService(
        uow=uow,
        signer=signer,
        signer_id=settings.signer,
        clock=clock,
        detector=Detector(detection_rules(settings.detection), unit_of, clock),
        publish_alerts=stream.publish_alerts if stream else None,
    )
    # The detector and the tree follow in batches of up to a quarter second of records:
    # alerts and inclusion are that much later, and each costs a transaction per batch, not
    # per writer commit (under GetReport load the tree's per-commit growth took 12 % of the
    # server's GIL).
    tails = [LogTail("detector", uow, service.detect, settle_seconds=FOLLOW_SETTLE_SECONDS)]
    if stream is not None:
        tails.append(LogTail("publisher", uow, then_checkpoint(uow, stream.publish)))
    witnessed = WitnessedLog(
        lambda: WitnessTransaction(database.sessions),
        checkpoints.signer,
        {w.name: w for w in checkpoints.witnesses},
        clock,
        stream.publish_checkpoint if stream else None,
        TreeReader(database, reads),
    )
    tails.append(
        LogTail(TREE_TAIL, uow, witnessed.grow, batch=5_000, settle_seconds=FOLLOW_SETTLE_SECONDS)
    )

    def committed(records: Sequence[AuditRecord]) -> None:
        for tail in tails:
            tail.notify(records)

    writer = AuditWriter(database, max_batch=settings.batch_max, on_commit=committed)
    mount = Mount.of(
        audit_pb2.DESCRIPTOR.services_by_name["AuditService"],
        audit_pb2_grpc.add_AuditServiceServicer_to_server,
        AuditApi(service, witnessed),
    )
    return AuditComponent(
        writer, service, mount, tuple(tails), witnessed, checkpoints.interval_seconds
    )


def alarms(database: Database, bus: Bus | None, clock: Callable[[], datetime]) -> PlatformAlarms:
    """The alerts the platform raises itself, stored beside the detector's and announced on
    the same subject."""
    stream = AuditStream(bus) if bus is not None else None
    return PlatformAlarms(
        lambda: AuditTransaction(database.sessions),
        clock,
        stream.publish_alerts if stream else None,
    )
