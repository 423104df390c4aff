"""The exchange as a domain sees it inside its own transaction: the outbox it writes and the
inbox of keys it has processed (justice.exchange.message's OutboxWriter and Inbox), kept in
the domain's in-memory tables."""

from __future__ import annotations

from dataclasses import replace

from justice.exchange.message import OutgoingMessage


class InMemoryOutbox:
    def __init__(self, messages: list[OutgoingMessage]) -> None:
        self._messages = messages

    async def add(self, message: OutgoingMessage) -> None:
        self._messages.append(message)

    async def forget(self, subject_ref: str) -> None:
        """Blank the payloads of the messages about `subject_ref` (erasure)."""
        for i, message in enumerate(self._messages):
            if message.subject_ref == subject_ref:
                self._messages[i] = replace(message, payload=b"")


class InMemoryInbox:
    def __init__(self, claimed: set[str]) -> None:
        self._claimed = claimed

    async def claim(self, key: str) -> bool:
        if key in self._claimed:
            return False
        self._claimed.add(key)
        return True
