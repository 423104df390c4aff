"""The outbox relay: pending rows to JetStream, marked published on the PubAck.

Each pass claims a batch of pending rows for `lease` (SqlRelayQueue.claim: other relays
leave them alone meanwhile, so several relays publish each row once), signs them into
envelopes, publishes them with `publish_async` (the JetStream context bounds the window of
unacknowledged publishes) and `Nats-Msg-Id` = the row id, waits for the PubAcks, and marks
the acknowledged rows published in one transaction. A crash anywhere in between only means
that once the lease ends a relay publishes those rows again, which JetStream's duplicate
window (and, beyond it, the receiver's idempotency by envelope id) absorbs. While NATS is
down rows simply accumulate; the backlog is logged and reported by GetRelayStatus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext
from nats.js.api import PubAck

from justice.exchange.envelope import EnvelopeSigner
from justice.exchange.model import DeadLetter
from justice.exchange.registry import PartnerDirectory
from justice.exchange.store import (
    ExchangeTransaction,
    PendingMessage,
    RelayWrites,
    time_ordered_uuid,
)
from justice.platform import tracing
from justice.platform.db import GroupCommit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelaySettings:
    batch: int = 512
    # While messages flow: look again after this.
    poll_seconds: float = 0.01
    # Idle, the interval doubles up to this. A commit in this process wakes the relay at
    # once (Database.on_commit), and on PostgreSQL so does one in another process (LISTEN/
    # NOTIFY, where the composition root makes this a 5 s safety net); on SQLite messages
    # other processes write wait for the poll, so it bounds their extra latency (ten small
    # queries a second).
    idle_seconds: float = 0.1
    ack_timeout_seconds: float = 5.0
    # How long a claim keeps other relays off a batch: longer than publishing and marking it
    # takes (ack_timeout_seconds and a transaction), as short as a dead relay's rows may wait.
    lease: timedelta = timedelta(seconds=30)
    receipt_deadline: timedelta = timedelta(hours=24)
    sweep_seconds: float = 5.0
    backlog_log_seconds: float = 5.0


@dataclass
class RelayCounters:
    published: int = 0
    failed_passes: int = 0
    backlog: int = 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Relay:
    def __init__(
        self,
        uow: Callable[[], ExchangeTransaction],
        writer: GroupCommit,
        signer: EnvelopeSigner,
        directory: PartnerDirectory,
        settings: RelaySettings = RelaySettings(),
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._uow = uow
        self._writes = RelayWrites(writer)
        self._signer = signer
        self._directory = directory
        self._settings = settings
        self._clock = clock
        # Names this relay's claims on outbox rows.
        self.identity = time_ordered_uuid()
        self.counters = RelayCounters()
        self._wake = asyncio.Event()
        # Published rows whose acks are being awaited and recorded, and those tasks.
        self._in_flight: set[str] = set()
        self._settling: set[asyncio.Task[None]] = set()
        self._trouble: Exception | None = None

    def nudge(self) -> None:
        """Something was just committed to the outbox: look now rather than at the next poll."""
        self._wake.set()

    async def pass_once(self, js: JetStreamContext) -> int:
        """Publish one batch; returns how many rows were published.

        Their PubAcks are awaited, and the rows marked published, by a task of their own:
        the next pass (a message committed meanwhile) does not wait for JetStream's fsync and
        the mark's transaction. Rows in flight are left out of the passes until then, and at
        most one batch more than in flight is read. A batch not fully acknowledged makes the
        next pass raise, so that the relay backs off and publishes the rest again.
        """
        if self._trouble is not None:
            trouble, self._trouble = self._trouble, None
            raise trouble
        while len(self._in_flight) >= self._settings.batch and self._settling:
            await asyncio.wait(self._settling, return_when=asyncio.FIRST_COMPLETED)
        now = self._clock()
        # The rows in flight are this relay's: claiming them again renews their lease.
        limit = self._settings.batch + len(self._in_flight)
        rows = await self._writes.claim(self.identity, limit, now, now + self._settings.lease)
        rows = [row for row in rows if row.id not in self._in_flight][: self._settings.batch]
        if not rows:
            return 0
        refused: list[tuple[PendingMessage, str, str]] = []
        sent: list[tuple[PendingMessage, asyncio.Future[PubAck]]] = []
        try:
            for row in rows:
                known = await self._directory.get(row.recipient)
                if known is None:
                    refused.append((row, "UNKNOWN_PARTNER", f"{row.recipient} is not registered"))
                    continue
                if not known.partner.may_receive(row.message_type):
                    refused.append(
                        (row, "MESSAGE_TYPE_NOT_ALLOWED", f"{row.recipient} does not receive it")
                    )
                    continue
                future = await self._publish(js, row)
                sent.append((row, future))
        finally:
            # Whatever happens, the acks that do arrive are collected and recorded.
            ids = [row.id for row, _ in sent] + [row.id for row, _, _ in refused]
            self._in_flight.update(ids)
            task = asyncio.create_task(self._settle(sent, refused, ids))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
        return len(sent)

    async def _publish(self, js: JetStreamContext, row: PendingMessage) -> asyncio.Future[PubAck]:
        """Seal and publish one row, in the trace of the call that wrote it; the message's
        headers carry that trace on to the partner."""
        with tracing.continued(
            f"publish {row.message_type}",
            {"traceparent": row.traceparent},
            kind=tracing.SpanKind.PRODUCER,
        ):
            envelope = self._signer.seal(
                envelope_id=row.id,
                message_type=row.message_type,
                recipient=row.recipient,
                created_at=row.created_at,
                payload=row.payload,
                in_reply_to=row.in_reply_to,
                links=row.links,
            )
            return await js.publish_async(
                row.subject,
                envelope.SerializeToString(),
                wait_stall=self._settings.ack_timeout_seconds,
                headers={"Nats-Msg-Id": row.nats_msg_id, **tracing.carrier()},
            )

    async def _settle(
        self,
        sent: list[tuple[PendingMessage, asyncio.Future[PubAck]]],
        refused: list[tuple[PendingMessage, str, str]],
        ids: list[str],
    ) -> None:
        try:
            acked = await self._collect(sent)
            await self._record(acked, refused)
            if len(acked) < len(sent):
                missing = len(sent) - len(acked)
                done = set(acked)
                await self._release([row.id for row, _ in sent if row.id not in done])
                self._trouble = TimeoutError(f"{missing} of {len(sent)} publishes not acked")
        except Exception as error:
            # The rows stay pending and go out again (JetStream drops the duplicates).
            self._trouble = error
        finally:
            self._in_flight.difference_update(ids)

    async def _release(self, ids: list[str] | None = None) -> None:
        """Hand rows this relay could not publish (all of its rows, without `ids`) back to
        whichever relay claims next."""
        async with self._uow() as tx:
            await tx.relay.release(self.identity, ids)
            await tx.commit()

    async def settled(self) -> None:
        """Wait for the acknowledgements of every batch published so far to be recorded."""
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def _collect(
        self, sent: list[tuple[PendingMessage, asyncio.Future[PubAck]]]
    ) -> list[str]:
        if not sent:
            return []
        futures = [future for _, future in sent]
        _, waiting = await asyncio.wait(futures, timeout=self._settings.ack_timeout_seconds)
        for future in waiting:
            future.cancel()
        return [
            row.id
            for row, future in sent
            if future.done() and not future.cancelled() and future.exception() is None
        ]

    async def _record(
        self, acked: list[str], refused: list[tuple[PendingMessage, str, str]]
    ) -> None:
        if not acked and not refused:
            return
        now = self._clock()
        if acked:
            await self._writes.mark_published(acked, now, now + self._settings.receipt_deadline)
        if refused:
            async with self._uow() as tx:
                for row, reason, detail in refused:
                    await tx.relay.refuse(row.id, reason, detail, now)
                    await tx.dead_letters.add(
                        DeadLetter.outbound(time_ordered_uuid(), row, reason, detail, now)
                    )
                await tx.commit()
        self.counters.published += len(acked)

    async def sweep(self) -> int:
        """Expire deliveries whose receipt deadline passed; each goes to the dead letters."""
        now = self._clock()
        expired = 0
        async with self._uow() as tx:
            for delivery in await tx.deliveries.overdue(now, 1000):
                if await tx.deliveries.expire(delivery, now):
                    expired += 1
                    detail = f"no receipt by {delivery.deadline}"
                    await tx.dead_letters.add(
                        DeadLetter.outbound(
                            time_ordered_uuid(), delivery, "NO_RECEIPT", detail, now
                        )
                    )
            await tx.commit()
        if expired:
            log.warning("relay: %d deliveries expired without a receipt", expired)
        return expired

    async def backlog(self) -> int:
        async with self._uow() as tx:
            count, _ = await tx.relay.backlog()
        self.counters.backlog = count
        return count

    async def run(
        self, jetstream: Callable[[], Awaitable[JetStreamContext]], stop: asyncio.Event
    ) -> None:
        """Relay until `stop`; NATS or database trouble only pauses it."""
        loop = asyncio.get_running_loop()
        next_sweep = next_gauge = loop.time()
        last_logged = -1
        delay = self._settings.poll_seconds
        while not stop.is_set():
            # Cleared before the pass reads, not after it: a commit during the pass must
            # cut the wait below short, or it waits for the poll (up to idle_seconds).
            self._wake.clear()
            failed = False
            try:
                if loop.time() >= next_gauge:
                    next_gauge = loop.time() + self._settings.backlog_log_seconds
                    backlog = await self.backlog()
                    if backlog != last_logged and (backlog or last_logged > 0):
                        log.info(
                            "relay backlog=%d published_total=%d", backlog, self.counters.published
                        )
                        last_logged = backlog
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self._settings.sweep_seconds
                    await self.sweep()
                published = await self.pass_once(await jetstream())
                if published >= self._settings.batch:
                    delay = 0.0
                elif published:
                    delay = self._settings.poll_seconds
                else:
                    idle = max(delay * 2, self._settings.poll_seconds)
                    delay = min(idle, self._settings.idle_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.counters.failed_passes += 1
                failed = True
                log.warning("relay pass failed (%s: %s); retrying", type(error).__name__, error)
                delay = min(max(delay * 2, 0.1), 2.0)
            if delay and (failed or not self._wake.is_set()):
                # A back-off is not cut short by commits; an idle wait is.
                waits = {asyncio.ensure_future(stop.wait())}
                if not failed:
                    waits.add(asyncio.ensure_future(self._wake.wait()))
                await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                for waiting in waits:
                    waiting.cancel()
        await self.settled()
        with contextlib.suppress(Exception):  # a dead database: the leases simply end
            await self._release()
