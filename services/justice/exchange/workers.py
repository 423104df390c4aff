"""The exchange's background work in one process: a NATS link, the relay, the consumer.

`justice serve` runs them next to the gRPC server; `justice exchange relay` and
`justice exchange inbound` run them on their own (the crash tests kill those processes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext

from justice.exchange.bus import ensure_partner_consumer, ensure_streams
from justice.exchange.inbound import InboundConsumer
from justice.exchange.relay import Relay
from justice.platform.bus import NATS_UNAVAILABLE, Bus
from justice.platform.db import Database
from justice.platform.notify import Listener

log = logging.getLogger(__name__)

_RESWEEP_SECONDS = 30.0


class NatsLink:
    """The exchange's view of the process's bus.

    On each new connection it makes sure the streams and every registered partner's
    inbox consumer exist, and repeats that now and then for partners added elsewhere.
    """

    def __init__(
        self,
        bus: Bus,
        partner_ids: Callable[[], Awaitable[list[str]]],
    ) -> None:
        self._bus = bus
        self._partner_ids = partner_ids
        self._js: JetStreamContext | None = None
        self._ensured: set[str] = set()
        self._swept_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._bus.connected

    async def jetstream(self) -> JetStreamContext:
        async with self._lock:
            js = await self._bus.jetstream()
            if js is not self._js:
                await ensure_streams(js, self._bus.stream_replicas)
                self._js = js
                self._ensured.clear()
                self._swept_at = 0.0
            if time.monotonic() - self._swept_at > _RESWEEP_SECONDS:
                for partner_id in await self._partner_ids():
                    await self._ensure(partner_id)
                self._swept_at = time.monotonic()
            return js

    async def _ensure(self, partner_id: str) -> None:
        if partner_id not in self._ensured and self._js is not None:
            await ensure_partner_consumer(self._js, partner_id)
            self._ensured.add(partner_id)

    async def ensure_partner(self, partner_id: str) -> None:
        """A partner was registered: create its inbox consumer now if NATS is up."""
        try:
            await self.jetstream()
            await self._ensure(partner_id)
        except NATS_UNAVAILABLE as error:
            log.warning("exchange: inbox consumer for a new partner deferred: %s", error)


class ExchangeWorkers:
    def __init__(
        self,
        link: NatsLink,
        relay: Relay | None,
        consumer: InboundConsumer | None,
        outbox_listener: Listener | None = None,
        own_database: Database | None = None,
    ) -> None:
        self.link = link
        self.relay = relay
        self.consumer = consumer
        # On PostgreSQL: outbox rows other processes commit wake the relay (no polling).
        self.outbox_listener = outbox_listener
        # The workers' own connection pool, closed with them.
        self._database = own_database
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._stop.clear()
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(self.link.jetstream, self._stop)))
            if self.outbox_listener is not None:
                self._tasks.append(
                    asyncio.create_task(self.outbox_listener.run(self.relay.nudge, self._stop))
                )
        if self.consumer is not None:
            self._tasks.append(
                asyncio.create_task(self.consumer.run(self.link.jetstream, self._stop))
            )

    async def wait(self) -> None:
        await asyncio.gather(*self._tasks)

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self, grace: float = 5.0) -> None:
        self._stop.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._database is not None:
            await self._database.close()
