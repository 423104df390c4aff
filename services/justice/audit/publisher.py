"""The audit stream on NATS JetStream, for a central log platform, and the alert subject."""

from __future__ import annotations

import asyncio
import logging
import re

from nats.js import JetStreamContext

from justice.audit.messages import alert_to_proto, record_to_proto
from justice.audit.model import Alert, AuditRecord
from justice.platform.bus import Bus, ensure_stream, stream_config

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


# No age limit, like the log itself; operators who want less configure the stream themselves.
RETENTION_SECONDS = 0.0


class AuditStream:
    """Publishes on the process's bus; every failure surfaces to the caller (the tail),
    which retries from its cursor."""

    def __init__(self, bus: Bus, *, ack_timeout: float = 5.0) -> None:
        self._bus = bus
        self._ack_timeout = ack_timeout
        self._js: JetStreamContext | None = None
        self._ensuring = asyncio.Lock()

    async def _jetstream(self) -> JetStreamContext:
        async with self._ensuring:  # the publisher and the detector may ask at once
            js = await self._bus.jetstream()
            if js is not self._js:
                # A stream that exists with another configuration is the operators' (production).
                config = stream_config(
                    STREAM,
                    [SUBJECTS],
                    max_age_seconds=RETENTION_SECONDS,
                    duplicate_window_seconds=DUPLICATE_WINDOW_SECONDS,
                    replicas=self._bus.stream_replicas,
                )
                await ensure_stream(js, config, update=False)
                self._js = js
            return js

    async def publish(self, records: list[AuditRecord]) -> None:
        js = await self._jetstream()
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
        js = await self._jetstream()
        size = note.split("\n", 2)[1]
        ack = await js.publish_async(
            CHECKPOINT_SUBJECT,
            note.encode(),
            headers={"Nats-Msg-Id": f"checkpoint-{size}"},
        )
        async with asyncio.timeout(self._ack_timeout):
            await ack

    async def publish_alerts(self, alerts: list[Alert]) -> None:
        client = await self._bus.client()
        for alert in alerts:
            await client.publish(ALERT_SUBJECT, alert_to_proto(alert).SerializeToString())
        await client.flush(timeout=int(self._ack_timeout))
