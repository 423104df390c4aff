"""Finding evidence by name or query, and who may see it (resource-level authorisation).

Every capability that acts on one record (download, share, hold, verify) finds it here
first, so a restricted caller is refused the same way by each of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from justice.evidence.model import Evidence, parse_evidence_name
from justice.evidence.ports import CaseDirectory, EvidenceQuery, UnitOfWork
from justice.platform.errors import NotFound, PermissionDenied
from justice.platform.listing import visible_page


@dataclass(frozen=True)
class EvidenceScope:
    """Which evidence a restricted caller may see (resource-level authorisation conditions).

    Evidence is visible when ANY set field matches: the caller uploaded it, the caller's
    unit did, or it was shared with the caller's office or belongs to a report submitted
    there.
    """

    uploader: str | None = None
    unit: str | None = None
    office: str | None = None


async def load(uow: UnitOfWork, evidence_id: str) -> Evidence:
    """The record, or NOT_FOUND EVIDENCE_NOT_FOUND."""
    evidence = await uow.evidence.get(evidence_id)
    if evidence is None:
        raise NotFound(
            "EVIDENCE_NOT_FOUND",
            f"no evidence/{evidence_id}",
            metadata={"name": f"evidence/{evidence_id}"},
        )
    return evidence


class Catalogue:
    def __init__(self, uow: Callable[[], UnitOfWork], cases: CaseDirectory) -> None:
        self._uow = uow
        self._cases = cases

    async def get(self, name: str, scope: EvidenceScope | None = None) -> Evidence:
        evidence_id = parse_evidence_name(name)
        async with self._uow() as uow:
            evidence = await load(uow, evidence_id)
            if scope is not None and not await self._sees(uow, scope, evidence):
                raise PermissionDenied(
                    "EVIDENCE_NOT_VISIBLE", "the evidence is not visible to the caller"
                )
            return evidence

    async def list(
        self, query: EvidenceQuery, scope: EvidenceScope | None = None
    ) -> Sequence[Evidence]:
        async with self._uow() as uow:
            if scope is None:
                return await uow.evidence.list(query)
            return await visible_page(
                lambda page: uow.evidence.list(replace(query, page=page)),
                lambda evidence: self._sees(uow, scope, evidence),
                lambda evidence: evidence.evidence_id,
                query.page,
            )

    async def _sees(self, uow: UnitOfWork, scope: EvidenceScope, evidence: Evidence) -> bool:
        if scope.uploader and evidence.uploader == scope.uploader:
            return True
        if scope.unit and evidence.unit == scope.unit:
            return True
        if not scope.office:
            return False
        if await uow.shares.shared_with(evidence.evidence_id, scope.office):
            return True
        report = evidence.metadata.report
        return bool(report) and await self._cases.report_recipient(report) == scope.office
