"""Personnel events from NATS (justice.v1.events.access.personnel): the HR feed's way in.

Each message is a protobuf justice.access.v1.PersonnelEvent. Applying is idempotent by
event_id, so redeliveries and a replay of the feed are harmless.
"""

from __future__ import annotations

import logging

import nats
from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from justice.access.api import event_from_proto
from justice.access.service import AccessService
from justice.access.v1 import access_pb2 as pb
from justice.platform.errors import JusticeError

SUBJECT = "justice.v1.events.access.personnel"
# The feed is an actor in the audit trail of grants it changes.
FEED_ACTOR = "personnel-feed"

log = logging.getLogger(__name__)


class PersonnelFeed:
    """Subscribes to the personnel subject and applies each event through AccessService."""

    def __init__(self, service: AccessService, nats_url: str) -> None:
        self._service = service
        self._url = nats_url
        self._client: Client | None = None
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._client = await nats.connect(
            self._url, name="justice-access", max_reconnect_attempts=-1
        )
        # A queue group: with several replicas each event is applied by one of them.
        self._subscription = await self._client.subscribe(SUBJECT, queue="access", cb=self._on)

    async def _on(self, message: Msg) -> None:
        try:
            event = event_from_proto(pb.PersonnelEvent.FromString(message.data))
            await self._service.record_event(event, FEED_ACTOR)
        except DecodeError:
            log.warning("personnel event: not a PersonnelEvent protobuf; dropped")
        except JusticeError as error:
            # Ids and reasons only, never personal data.
            log.warning("personnel event refused: %s", error.reason)
        except Exception:
            log.exception("personnel event failed")

    async def stop(self) -> None:
        client, self._client, self._subscription = self._client, None, None
        if client is None:
            return
        try:
            # Unsubscribes and lets the events in hand finish.
            await client.drain()
        except NatsError:
            # Reconnecting (NATS restarted meanwhile): nothing to drain, just close.
            await client.close()
