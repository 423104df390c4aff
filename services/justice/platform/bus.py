"""NATS, the one way in: credentials, TLS, reconnect policy, the JetStream context.

Every NATS connection of the platform (the exchange's relay and inbound consumer, the audit
stream, the personnel feed) and of the partner SDK is made here, with one policy:
  * the first attempt fails fast and says why: refused credentials raise `BusRefused`
    (nothing retries a wrong password), an unreachable server raises `BusUnavailable`,
    which callers retry like any other NATS outage;
  * once connected, the client reconnects forever (every 0.25 s) and buffers meanwhile.
nats-py alone would retry the first attempt forever, a wrong password included, so a
misconfigured process used to hang or go quiet instead of stopping.

Streams and durable consumers are created idempotently by whoever owns their subjects;
`DurableConsumer` is the pull loop for an inbound feed that must survive our downtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from justice.platform.config import Settings

log = logging.getLogger(__name__)

RECONNECT_WAIT_SECONDS = 0.25
ACK_TIMEOUT_SECONDS = 5.0
# Bounds the publishes awaiting their PubAck on one connection.
PUBLISH_WINDOW = 4096


class BusRefused(RuntimeError):
    """The server refused our credentials or TLS: configuration, not an outage."""


class BusUnavailable(RuntimeError):
    """The first connection attempt found no server; try again later."""


# Transient failures of a NATS call while the server is down or restarting.
NATS_UNAVAILABLE: tuple[type[BaseException], ...] = (
    BusUnavailable,
    nats.errors.Error,
    nats.js.errors.Error,
    asyncio.TimeoutError,
    OSError,
)


@dataclass(frozen=True)
class BusTls:
    """Client TLS: a private CA to trust, and a client certificate when the server asks."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.cert is not None:
            context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class NatsCredentials:
    """Where and as whom to connect. Credentials in the URL (nats://user:pw@host) work too."""

    url: str
    user: str = ""
    password: str = ""
    inbox_prefix: str = "_INBOX"
    tls: BusTls | None = None

    @property
    def server(self) -> str:
        """The URL without credentials, for logs and errors."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.hostname else "?"

    @property
    def who(self) -> str:
        return self.user or urlsplit(self.url).username or "(anonymous)"


def platform_credentials(settings: Settings) -> NatsCredentials:
    """The platform's own NATS user, from `nats_url`, `nats_user`/`nats_password`, `nats_tls_*`."""
    tls = None
    if settings.nats_tls_ca or settings.nats_tls_cert or settings.nats_url.startswith("tls://"):
        tls = BusTls(settings.nats_tls_ca, settings.nats_tls_cert, settings.nats_tls_key)
    return NatsCredentials(
        settings.nats_url,
        settings.nats_user,
        settings.nats_password.get_secret_value(),
        tls=tls,
    )


class _FirstAttempt(Exception):
    """Stops nats-py's endless first attempt; not a nats or OS error, so it escapes connect."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _refused(error: Exception) -> bool:
    text = str(error).lower()
    return (
        isinstance(error, (nats.errors.AuthorizationError, ssl.SSLError))
        or "authorization violation" in text
        or "authentication" in text
    )


async def connect(
    credentials: NatsCredentials, *, name: str, connect_timeout: float = 2.0
) -> NatsClient:
    """One fast first attempt (BusRefused, BusUnavailable), then reconnection forever."""
    connected = False

    async def on_error(error: Exception) -> None:
        if not connected:
            raise _FirstAttempt(error)
        if _refused(error):
            log.error("nats %s: %s refused by %s", name, credentials.who, credentials.server)
        else:
            log.debug("nats %s: %s", name, error)

    options: dict[str, Any] = {
        "servers": [credentials.url],
        "name": name,
        "connect_timeout": connect_timeout,
        "reconnect_time_wait": RECONNECT_WAIT_SECONDS,
        "max_reconnect_attempts": -1,
        "allow_reconnect": True,
        "inbox_prefix": credentials.inbox_prefix,
        "error_cb": on_error,
    }
    if credentials.user:
        options["user"] = credentials.user
        options["password"] = credentials.password
    if credentials.tls is not None:
        options["tls"] = credentials.tls.context()
    client = NatsClient()
    try:
        await client.connect(**options)
    except _FirstAttempt as failed:
        # Bounded: after a failed TLS handshake nats-py's close waits on a dead transport.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(connect_timeout):
                await client.close()
        where = f"{credentials.who} at {credentials.server}"
        if _refused(failed.error):
            raise BusRefused(f"NATS refused {where}: {failed.error}") from None
        raise BusUnavailable(f"NATS unreachable ({where}): {failed.error}") from None
    connected = True
    return client


class Bus:
    """One process's NATS connection, made on first use and again if it was closed.

    The exchange, the audit stream and the personnel feed share it; each asks for the
    JetStream context and compares it with the one it saw to know a connection is new.
    Each creates its streams with `stream_replicas` copies: 3 on a JetStream cluster of
    three, 1 on a single server.
    """

    def __init__(
        self,
        credentials: NatsCredentials,
        *,
        name: str = "justice",
        publish_window: int = PUBLISH_WINDOW,
        ack_timeout: float = ACK_TIMEOUT_SECONDS,
        stream_replicas: int = 1,
    ) -> None:
        self.credentials = credentials
        self.stream_replicas = stream_replicas
        self._name = name
        self._window = publish_window
        self._ack_timeout = ack_timeout
        self._client: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def client(self) -> NatsClient:
        async with self._lock:
            if self._client is None or self._client.is_closed:
                self._client = await connect(self.credentials, name=self._name)
                self._js = self._client.jetstream(
                    timeout=self._ack_timeout, publish_async_max_pending=self._window
                )
            return self._client

    async def jetstream(self) -> JetStreamContext:
        await self.client()
        assert self._js is not None
        return self._js

    async def check(self) -> None:
        """At start-up: refused credentials stop the process; an outage only warns."""
        try:
            await self.client()
        except BusUnavailable as error:
            log.warning("%s; will keep trying", error)

    async def close(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(*NATS_UNAVAILABLE):
                await client.close()


def stream_config(
    name: str,
    subjects: list[str],
    *,
    max_age_seconds: float,
    duplicate_window_seconds: float,
    max_msg_size: int = -1,
    replicas: int = 1,
) -> StreamConfig:
    """A file-backed stream that keeps messages for `max_age_seconds`, on `replicas` servers
    of a JetStream cluster."""
    return StreamConfig(
        name=name,
        subjects=subjects,
        num_replicas=replicas,
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_msg_size=max_msg_size,
        max_age=max_age_seconds,
        duplicate_window=duplicate_window_seconds,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig, *, update: bool) -> None:
    """Create the stream; when it exists, bring it to `config` or (update=False) leave it as
    the operators configured it."""
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        if update:
            await js.update_stream(config)


def durable(
    name: str, filter_subject: str, *, ack_wait_seconds: float, max_ack_pending: int
) -> ConsumerConfig:
    # Explicit acks: a message counts as handled only once its effect is committed.
    return ConsumerConfig(
        durable_name=name,
        name=name,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_seconds,
        filter_subject=filter_subject,
        max_ack_pending=max_ack_pending,
    )


class DurableConsumer:
    """Pulls a durable consumer and hands each message to `handle`: acknowledged when it
    returns, offered again after `retry_seconds` when it raises. `handle` must be
    idempotent (redelivery is at least once) and must return for a message it refuses
    for good, or that message comes back forever.

    The stream and the consumer are created (idempotently) on every new connection, so
    what was published while this process was down is waiting for it.
    """

    def __init__(
        self,
        bus: Bus,
        stream: StreamConfig,
        consumer: ConsumerConfig,
        handle: Callable[[bytes], Awaitable[None]],
        *,
        batch: int = 64,
        retry_seconds: float = 1.0,
    ) -> None:
        if not stream.name or not consumer.durable_name:
            raise ValueError("a durable consumer needs a named stream and a durable name")
        self._stream_name, self._durable = stream.name, consumer.durable_name
        self._bus = bus
        self._stream = stream
        self._consumer = consumer
        self._handle = handle
        self._batch = batch
        self._retry = retry_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe now when NATS is up, so the stream exists once we are started; pull in
        the background."""
        if self._task is not None:
            return
        subscription = None
        try:
            subscription = await self._subscribe()
        except NATS_UNAVAILABLE as error:
            log.warning("%s: %s: %s; retrying", self._durable, type(error).__name__, error)
        self._task = asyncio.create_task(self._run(subscription), name=f"bus-{self._durable}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        js = await self._bus.jetstream()
        await ensure_stream(js, self._stream, update=True)
        await js.add_consumer(self._stream_name, self._consumer)
        return await js.pull_subscribe_bind(durable=self._durable, stream=self._stream_name)

    async def _run(self, subscription: JetStreamContext.PullSubscription | None) -> None:
        while True:
            try:
                if subscription is None:
                    subscription = await self._subscribe()
                while True:
                    try:
                        messages = await subscription.fetch(self._batch, timeout=1.0)
                    except TimeoutError:
                        continue
                    for message in messages:
                        try:
                            await self._handle(message.data)
                        except Exception as error:
                            log.warning(
                                "%s: handling failed (%s); offered again",
                                self._durable,
                                type(error).__name__,
                            )
                            await message.nak(delay=self._retry)
                        else:
                            await message.ack()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("%s: %s: %s; retrying", self._durable, type(error).__name__, error)
                subscription = None
                await asyncio.sleep(self._retry)
