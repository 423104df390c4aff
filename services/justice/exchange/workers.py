"""The exchange's background work in one process: a NATS link, the relay, the consumer.

`justice serve` runs them next to the gRPC server; `justice exchange relay` and
`justice exchange inbound` run them on their own (the crash tests kill those processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from justice.exchange import bus
from justice.exchange.bus import NatsCredentials
from justice.exchange.inbound import InboundConsumer
from justice.exchange.relay import Relay
from justice.platform.db import Database
from justice.platform.notify import Listener

log = logging.getLogger(__name__)

_RESWEEP_SECONDS = 30.0


class NatsLink:
    """One connection for this process's exchange workers, made (again) when needed.

    On each new connection it makes sure the streams and every registered partner's
    inbox consumer exist, and repeats that now and then for partners added elsewhere.
    """

    def __init__(
        self,
        credentials: NatsCredentials,
        partner_ids: Callable[[], Awaitable[list[str]]],
        *,
        name: str = "justice-exchange",
        publish_window: int = 4096,
    ) -> None:
        self._credentials = credentials
        self._partner_ids = partner_ids
        self._name = name
        self._window = publish_window
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._ensured: set[str] = set()
        self._swept_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def jetstream(self) -> JetStreamContext:
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                self._nc = await bus.connect(self._credentials, name=self._name)
                # The window bounds publishes awaiting their PubAck.
                self._js = self._nc.jetstream(publish_async_max_pending=self._window)
                await bus.ensure_streams(self._js)
                self._ensured.clear()
                self._swept_at = 0.0
            assert self._js is not None
            if time.monotonic() - self._swept_at > _RESWEEP_SECONDS:
                for partner_id in await self._partner_ids():
                    await self._ensure(partner_id)
                self._swept_at = time.monotonic()
            return self._js

    async def _ensure(self, partner_id: str) -> None:
        if partner_id not in self._ensured and self._js is not None:
            await bus.ensure_partner_consumer(self._js, partner_id)
            self._ensured.add(partner_id)

    async def ensure_partner(self, partner_id: str) -> None:
        """A partner was registered: create its inbox consumer now if NATS is up."""
        try:
            await self.jetstream()
            await self._ensure(partner_id)
        except bus.NATS_UNAVAILABLE as error:
            log.warning("exchange: inbox consumer for a new partner deferred: %s", error)

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(*bus.NATS_UNAVAILABLE):
                await self._nc.close()
        self._nc = None


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
        await self.link.close()
        if self._database is not None:
            await self._database.close()
