"""The evidence store as reports see it: implements reports.service.EvidenceCatalog."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from justice.evidence.service import EvidenceService
from justice.exchange.message import Link
from justice.reports.model import Attachment
from justice.reports.service import StoredEvidence


class EvidenceAttachments:
    """Recorded facts of an attachment, whether its stored bytes still match them, and
    links for the partner a report goes to."""

    def __init__(self, evidence: EvidenceService, link_lifetime: timedelta) -> None:
        self._evidence = evidence
        # Long enough for a partner to fetch after a delayed delivery (the share maximum).
        self._lifetime = link_lifetime

    async def stored(self, evidence: str) -> StoredEvidence | None:
        record, intact = await self._evidence.check_stored(evidence)
        if record is None:
            return None
        attachment = Attachment(
            evidence=record.name,
            sha256=record.sha256,
            size_bytes=record.size_bytes,
            media_type=record.metadata.media_type,
        )
        return StoredEvidence(attachment, intact)

    async def links(
        self, attachments: Sequence[Attachment], recipient: str, sharer: str, purpose: str
    ) -> tuple[Link, ...]:
        links = []
        for attachment in attachments:
            shared = await self._evidence.share(
                sharer, attachment.evidence, recipient, self._lifetime, purpose
            )
            links.append(
                Link(
                    attachment.evidence,
                    shared.url,
                    attachment.sha256,
                    attachment.size_bytes,
                    attachment.media_type,
                )
            )
        return tuple(links)
