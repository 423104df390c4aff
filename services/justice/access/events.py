"""Personnel events from NATS (justice.v1.events.access.personnel): the HR feed's way in.

Each message is a protobuf justice.access.v1.PersonnelEvent. The feed is a durable
JetStream consumer, so an event published while the platform is down (a departure, most
of all) waits in the stream and is applied when the platform starts. Applying is
idempotent by event_id, so redeliveries and a replay of the feed are harmless; with
several replicas the durable consumer hands each event to one of them.
"""

from __future__ import annotations

import logging

from google.protobuf.message import DecodeError

from justice.access.api import event_from_proto
from justice.access.service import AccessService
from justice.access.v1 import access_pb2 as pb
from justice.platform.bus import Bus, DurableConsumer, durable, stream_config
from justice.platform.errors import Aborted, JusticeError, Unavailable

SUBJECT = "justice.v1.events.access.personnel"
STREAM = "JUSTICE_ACCESS_EVENTS"
CONSUMER = "justice-access-personnel"
# Long enough to cover any outage of the platform; the HR system is the record beyond it.
RETENTION_SECONDS = 90 * 24 * 3600.0
# An HR system that sets Nats-Msg-Id to the event id is deduplicated within this window.
DUPLICATE_WINDOW_SECONDS = 15 * 60.0
# The feed is an actor in the audit trail of grants it changes.
FEED_ACTOR = "personnel-feed"

log = logging.getLogger(__name__)


class PersonnelFeed:
    """Applies each personnel event through AccessService; acknowledged once committed."""

    def __init__(self, service: AccessService, bus: Bus) -> None:
        self._service = service
        self._consumer = DurableConsumer(
            bus,
            stream_config(
                STREAM,
                ["justice.v1.events.access.>"],
                max_age_seconds=RETENTION_SECONDS,
                duplicate_window_seconds=DUPLICATE_WINDOW_SECONDS,
                replicas=bus.stream_replicas,
            ),
            durable(CONSUMER, SUBJECT, ack_wait_seconds=30.0, max_ack_pending=1_000),
            self.apply,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def apply(self, data: bytes) -> None:
        """Apply one event. A malformed or refused event is dropped (it would never apply);
        any other failure (the database is down) raises, and the event comes back."""
        try:
            event = event_from_proto(pb.PersonnelEvent.FromString(data))
            await self._service.record_event(event, FEED_ACTOR)
        except DecodeError:
            log.warning("personnel event: not a PersonnelEvent protobuf; dropped")
        except (Aborted, Unavailable):
            raise  # a concurrent edit or a dependency down: worth another try
        except JusticeError as error:
            # Ids and reasons only, never personal data.
            log.warning("personnel event refused: %s", error.reason)
