"""Audit use cases: who consulted what, chain verification, signed export, alerts."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from justice.audit import bundle
from justice.audit.chain import GENESIS_HASH, ChainCheck, ChainVerifier
from justice.audit.detection import Detector
from justice.audit.model import Alert, AuditRecord, Baseline
from justice.audit.tail import Batch, CursorRecords, TailTransaction, checkpoint
from justice.platform.errors import FieldViolation, InvalidArgument
from justice.platform.listing import Page

log = logging.getLogger(__name__)

EXPORT_MAX_RECORDS = 10_000
_VERIFY_BATCH = 5_000
_SEQUENCE = re.compile(r"^[0-9]{1,18}$")


class Records(CursorRecords, Protocol):
    async def at(self, sequence: int) -> AuditRecord | None: ...
    async def head(self) -> int: ...
    async def access(
        self,
        *,
        resource: str | None,
        principal: str | None,
        start: datetime | None,
        end: datetime | None,
        after: int,
        limit: int,
    ) -> list[AuditRecord]: ...


class Alerts(Protocol):
    async def add_new(self, alerts: Sequence[Alert]) -> list[Alert]: ...
    async def count(self) -> int: ...
    async def list(
        self,
        *,
        principal: str | None,
        rule: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Alert]: ...


class Baselines(Protocol):
    async def of(self, principals: Collection[str]) -> dict[str, Baseline]: ...
    async def save(self, baselines: Mapping[str, Baseline]) -> None: ...


class UnitOfWork(TailTransaction, Protocol):
    @property
    def records(self) -> Records: ...
    @property
    def alerts(self) -> Alerts: ...
    @property
    def baselines(self) -> Baselines: ...


class Signer(Protocol):
    async def sign(self, document: bytes, signer_id: str) -> bytes: ...


@dataclass(frozen=True)
class AccessQuery:
    resource: str | None
    principal: str | None
    start: datetime | None
    end: datetime | None
    page: Page


@dataclass(frozen=True)
class AuditFigures:
    chain_length: int
    alerts: int


@dataclass(frozen=True)
class Export:
    signed_xml: bytes
    first_sequence: int
    last_sequence: int
    record_count: int
    sha256: str


class AuditService:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        signer: Signer,
        signer_id: str,
        clock: Callable[[], datetime],
        detector: Detector,
        publish_alerts: Callable[[list[Alert]], Awaitable[None]] | None = None,
    ) -> None:
        self._uow = uow
        self._signer = signer
        self._signer_id = signer_id
        self._clock = clock
        self._detector = detector
        self._publish_alerts = publish_alerts

    async def query_access(self, query: AccessQuery) -> list[AuditRecord]:
        if (query.resource is None) == (query.principal is None):
            raise InvalidArgument.of(
                [FieldViolation("resource", "give exactly one of resource or principal")]
            )
        if query.start and query.end and query.end <= query.start:
            raise InvalidArgument.of([FieldViolation("end_time", "must be after start_time")])
        after = 0
        if query.page.after:
            if not _SEQUENCE.match(query.page.after):
                raise InvalidArgument.of([FieldViolation("page_token", "not a token we issued")])
            after = int(query.page.after)
        async with self._uow() as uow:
            return await uow.records.access(
                resource=query.resource,
                principal=query.principal,
                start=query.start,
                end=query.end,
                after=after,
                limit=query.page.size,
            )

    async def verify_chain(self, first: int, last: int) -> ChainCheck:
        if first < 0 or last < 0 or (last and last < first):
            raise InvalidArgument.of(
                [FieldViolation("to_sequence", "a range of sequences, from <= to, both >= 0")]
            )
        first = max(first, 1)
        async with self._uow() as uow:
            previous = GENESIS_HASH
            if first > 1:
                before = await uow.records.at(first - 1)
                previous = before.hash if before else ""
            verifier = ChainVerifier(first, previous)
            cursor = first - 1
            while True:
                records = await uow.records.after(cursor, _VERIFY_BATCH, last)
                if not records or not verifier.feed(records):
                    break
                cursor = records[-1].sequence
            return verifier.result()

    async def export(self, first: int, last: int) -> Export:
        """At most EXPORT_MAX_RECORDS records; the caller continues after last_sequence."""
        if first < 0 or last < 0 or (last and last < first):
            raise InvalidArgument.of(
                [FieldViolation("to_sequence", "a range of sequences, from <= to, both >= 0")]
            )
        async with self._uow() as uow:
            records = await uow.records.after(max(first, 1) - 1, EXPORT_MAX_RECORDS, last)
        document = bundle.render(records, self._clock(), self._signer_id)
        signed = await self._signer.sign(document, self._signer_id)
        return Export(
            signed_xml=signed,
            first_sequence=records[0].sequence if records else 0,
            last_sequence=records[-1].sequence if records else 0,
            record_count=len(records),
            sha256=hashlib.sha256(signed).hexdigest(),
        )

    async def figures(self) -> AuditFigures:
        """How long the chain is and how many alerts it raised, for monitoring."""
        async with self._uow() as uow:
            return AuditFigures(await uow.records.head(), await uow.alerts.count())

    async def list_alerts(self, principal: str | None, rule: str | None, page: Page) -> list[Alert]:
        after = None
        if page.after:
            moment, _, alert_id = page.after.partition("|")
            try:
                after = (datetime.fromisoformat(moment), alert_id)
            except ValueError:
                raise InvalidArgument.of(
                    [FieldViolation("page_token", "not a page token")]
                ) from None
        async with self._uow() as uow:
            return await uow.alerts.list(
                principal=principal, rule=rule, after=after, limit=page.size
            )

    async def _announce(self, fresh: list[Alert]) -> None:
        if fresh and self._publish_alerts is not None:
            try:
                await self._publish_alerts(fresh)
            except Exception as error:
                log.warning("alerts not announced on NATS: %s", type(error).__name__)

    async def detect(self, batch: Batch) -> list[Alert]:
        """Run the rules over newly logged records; store and announce new alerts.

        The alerts, the users' new baselines and the detector's cursor commit together: a
        batch that fails anywhere is observed again later from the same stored baselines.
        """
        principals = {r.entry.principal for r in batch.records if r.entry.principal}
        async with self._uow() as uow:
            baselines = await uow.baselines.of(principals)
        observed = await self._detector.observe(batch.records, baselines)
        async with self._uow() as uow:
            fresh = await uow.alerts.add_new(observed.alerts)
            await uow.baselines.save(observed.baselines)
            await checkpoint(uow.records, batch)
            await uow.commit()
        await self._announce(fresh)
        return fresh
