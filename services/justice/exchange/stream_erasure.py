"""Erasing the copies JetStream holds of messages about a subject, for a domain whose
personal data has reached its retention (the fines after closing).

The partner streams keep every message for RETENTION_SECONDS whatever happened to it; a
domain erasing a case must not leave its names and addresses there. The streams' subjects
name partner and type, not the case, so purging by subject would take other cases along:
instead both streams are read once (an ordered consumer, no state on the server) and every
message that is one of the given envelopes, or answers one (`in_reply_to`), is deleted by
sequence. The server erases a deleted message's bytes (no_erase is false), so the data is
not left in the stream's files either.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from justice.exchange import envelope as envelopes
from justice.exchange.bus import INBOX_STREAM, OUTBOX_STREAM
from justice.exchange.envelope import EnvelopeRefused
from justice.platform.bus import NATS_UNAVAILABLE
from justice.platform.errors import Unavailable

log = logging.getLogger(__name__)

_SUBJECTS = {
    INBOX_STREAM: "justice.v1.partner.*.inbox.>",
    OUTBOX_STREAM: "justice.v1.partner.*.outbox.>",
}
# A stream read that stalls this long is trouble, not the end of the stream.
_READ_TIMEOUT_SECONDS = 10.0


class StreamErasure:
    def __init__(self, jetstream: Callable[[], Awaitable[JetStreamContext]]) -> None:
        self._jetstream = jetstream

    async def erase(self, envelope_ids: Collection[str]) -> int:
        """Deletes (and erases) every copy of these envelopes and of the replies to them in
        both partner streams; returns how many messages went. Idempotent."""
        if not envelope_ids:
            return 0
        wanted = frozenset(envelope_ids)
        try:
            js = await self._jetstream()
            erased = 0
            for stream, subject in _SUBJECTS.items():
                for seq in await self._matching(js, stream, subject, wanted):
                    try:
                        await js.delete_msg(stream, seq)
                        erased += 1
                    except NotFoundError:
                        pass  # gone meanwhile (age limit, an earlier run)
        except NATS_UNAVAILABLE as error:
            # The caller keeps its data and tries again on its next pass.
            detail = f"stream erasure: {type(error).__name__}"
            raise Unavailable("BUS_UNAVAILABLE", detail) from None
        return erased

    async def _matching(
        self, js: JetStreamContext, stream: str, subject: str, wanted: frozenset[str]
    ) -> list[int]:
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return []  # never created here: it holds nothing
        if not info.state.messages:
            return []
        last = info.state.last_seq
        found: list[int] = []
        subscription = await js.subscribe(
            subject, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        try:
            while True:
                msg = await subscription.next_msg(timeout=_READ_TIMEOUT_SECONDS)
                meta = msg.metadata
                if _concerns(msg.data, wanted):
                    found.append(meta.sequence.stream)
                if meta.num_pending == 0 or meta.sequence.stream >= last:
                    return found
        finally:
            await subscription.unsubscribe()


def _concerns(data: bytes, wanted: frozenset[str]) -> bool:
    try:
        envelope = envelopes.parse(data)
    except EnvelopeRefused:
        return False  # unreadable: it carries nothing a domain wrote
    return envelope.id in wanted or envelope.in_reply_to in wanted
