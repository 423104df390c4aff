"""The evidence store as reports see it: implements reports.service.EvidenceCatalog."""

from __future__ import annotations

from justice.evidence.service import EvidenceService
from justice.reports.model import Attachment
from justice.reports.service import StoredEvidence


class EvidenceAttachments:
    """Recorded facts of an attachment, and whether its stored bytes still match them."""

    def __init__(self, evidence: EvidenceService) -> None:
        self._evidence = evidence

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
