"""The audit stream on NATS JetStream, for a central log platform, and the alert subject."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from justice.audit.messages import alert_to_proto, record_to_proto
from justice.audit.model import Alert, AuditRecord

log = logging.getLogger(__name__)

STREAM = "JUSTICE_AUDIT"
SUBJECTS = "justice.v1.audit.>"
ALERT_SUBJECT = "justice.v1.events.audit.alert"
# Signed checkpoints of the audit log's Merkle tree (C2SP signed notes, UTF-8 text).
CHECKPOINT_SUBJECT = "justice.v1.audit.checkpoints"
# Covers a publisher that crashed after the PubAck and before moving its cursor, and restarts;
# older duplicates carry a sequence the central log platform has seen already.
DUPLICATE_WINDOW_SECONDS = 120.0
_PACKAGE = re.compile(r"^justice\.([a-z0-9_]+)\.v\d+\.")


def subject_of(service: str) -> str:
    """justice.reports.v1.ReportService -> justice.v1.audit.reports (one token per service)."""
    match = _PACKAGE.match(service)
    token = match.group(1) if match else re.sub(r"[^a-z0-9_]", "_", service.lower())[:64]
    return f"justice.v1.audit.{token or 'unknown'}"


class AuditStream:
    """Connects lazily and again after a failure; every failure surfaces to the caller (the
    tail), which retries from its cursor."""

    def __init__(
        self,
        url: str,
        *,
        user: str = "",
        password: str = "",
        connect_timeout: float = 2.0,
        ack_timeout: float = 5.0,
    ) -> None:
        self._url = url
        self._credentials = {"user": user, "password": password} if user else {}
        self._connect_timeout = connect_timeout
        self._ack_timeout = ack_timeout
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting = asyncio.Lock()

    async def _jetstream(self) -> tuple[Client, JetStreamContext]:
        async with self._connecting:  # the publisher and the detector share the connection
            return await self._connected()

    async def _connected(self) -> tuple[Client, JetStreamContext]:
        if self._client is None or self._js is None or not self._client.is_connected:
            await self.close()
            client = await nats.connect(
                self._url,
                name="justice-audit",
                connect_timeout=self._connect_timeout,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                **self._credentials,
            )
            self._client, self._js = client, client.jetstream(timeout=self._ack_timeout)
            config = StreamConfig(
                name=STREAM,
                subjects=[SUBJECTS],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
            try:
                # A stream that exists with another configuration is the operators' (production).
                with contextlib.suppress(BadRequestError):
                    await self._js.add_stream(config)
            except BaseException:
                await self.close()
                raise
        return self._client, self._js

    async def publish(self, records: list[AuditRecord]) -> None:
        _, js = await self._jetstream()
        acks = [
            await js.publish_async(
                subject_of(r.entry.service),
                record_to_proto(r).SerializeToString(),
                # The sequence is the message id: a retried batch is deduplicated by the stream.
                headers={"Nats-Msg-Id": f"audit-{r.sequence}"},
            )
            for r in records
        ]
        async with asyncio.timeout(self._ack_timeout):  # cancel-safe, unlike 3.11's wait_for
            await asyncio.gather(*acks)

    async def publish_checkpoint(self, note: str) -> None:
        _, js = await self._jetstream()
        size = note.split("\n", 2)[1]
        ack = await js.publish_async(
            CHECKPOINT_SUBJECT,
            note.encode(),
            headers={"Nats-Msg-Id": f"checkpoint-{size}"},
        )
        async with asyncio.timeout(self._ack_timeout):
            await ack

    async def publish_alerts(self, alerts: list[Alert]) -> None:
        client, _ = await self._jetstream()
        for alert in alerts:
            await client.publish(ALERT_SUBJECT, alert_to_proto(alert).SerializeToString())
        await client.flush(timeout=int(self._ack_timeout))

    async def close(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            try:
                await client.close()
            except Exception:
                log.debug("closing the NATS connection failed")
