"""AuditService servicer: proto in, domain call, proto out. No SQL, no rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from justice.audit.messages import alert_to_proto, record_to_proto
from justice.audit.model import AlertRule
from justice.audit.service import AccessQuery, AuditService
from justice.audit.v1 import audit_pb2 as pb
from justice.audit.v1 import audit_pb2_grpc
from justice.audit.witness import WitnessedLog
from justice.platform.listing import next_token, page, parse_filter
from justice.platform.timestamps import moment
from justice.security.identity import current_principal

Context = grpc.aio.ServicerContext[Any, Any]


def _rule(value: str) -> str:
    return AlertRule(value).value  # ValueError becomes a filter violation


_ALERT_FILTER: dict[str, Callable[[str], Any]] = {"principal": str, "rule": _rule}


class AuditApi(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, service: AuditService, witnessed: WitnessedLog) -> None:
        self._service = service
        self._witnessed = witnessed

    async def QueryAccess(
        self, request: pb.QueryAccessRequest, context: Context
    ) -> pb.QueryAccessResponse:
        query = AccessQuery(
            resource=request.resource or None,
            principal=request.principal or None,
            start=moment(request, "start_time"),
            end=moment(request, "end_time"),
            page=page(request.page_size, request.page_token),
        )
        records = await self._service.query_access(query)
        last = str(records[-1].sequence) if len(records) == query.page.size else None
        return pb.QueryAccessResponse(
            records=[record_to_proto(r) for r in records], next_page_token=next_token(last)
        )

    async def VerifyAuditChain(
        self, request: pb.VerifyAuditChainRequest, context: Context
    ) -> pb.VerifyAuditChainResponse:
        check = await self._service.verify_chain(request.from_sequence, request.to_sequence)
        return pb.VerifyAuditChainResponse(
            intact=check.intact,
            records_checked=check.checked,
            first_broken_sequence=check.broken_at,
            problem=check.problem.value if check.problem else "",
            head_sequence=check.head_sequence,
            head_hash=check.head_hash,
        )

    async def ExportAudit(
        self, request: pb.ExportAuditRequest, context: Context
    ) -> pb.ExportAuditResponse:
        export = await self._service.export(request.from_sequence, request.to_sequence)
        return pb.ExportAuditResponse(
            signed_xml=export.signed_xml,
            first_sequence=export.first_sequence,
            last_sequence=export.last_sequence,
            record_count=export.record_count,
            sha256=export.sha256,
        )

    async def ListAlerts(
        self, request: pb.ListAlertsRequest, context: Context
    ) -> pb.ListAlertsResponse:
        terms = parse_filter(request.filter, _ALERT_FILTER)
        listing = page(request.page_size, request.page_token)
        alerts = await self._service.list_alerts(terms.get("principal"), terms.get("rule"), listing)
        last = (
            f"{alerts[-1].create_time.isoformat()}|{alerts[-1].id}"
            if len(alerts) == listing.size
            else None
        )
        return pb.ListAlertsResponse(
            alerts=[alert_to_proto(a) for a in alerts], next_page_token=next_token(last)
        )

    async def GetAuditCheckpoint(
        self, request: pb.GetAuditCheckpointRequest, context: Context
    ) -> pb.AuditCheckpoint:
        return _checkpoint(await self._witnessed.checkpoint(fresh=request.fresh))

    async def GetAuditConsistencyProof(
        self, request: pb.GetAuditConsistencyProofRequest, context: Context
    ) -> pb.AuditConsistencyProof:
        first = request.first_tree_size
        second, proof = await self._witnessed.consistency(first, request.second_tree_size)
        return pb.AuditConsistencyProof(
            first_tree_size=first, second_tree_size=second, consistency_path=proof
        )

    async def AddAuditCosignature(
        self, request: pb.AddAuditCosignatureRequest, context: Context
    ) -> pb.AuditCheckpoint:
        witness = current_principal().partner or current_principal().id
        return _checkpoint(await self._witnessed.add_cosignature(witness, request.note))

    async def GetCosignedAuditCheckpoint(
        self, request: pb.GetCosignedAuditCheckpointRequest, context: Context
    ) -> pb.AuditCheckpoint:
        return _checkpoint(await self._witnessed.cosigned())

    async def GetAuditInclusionProof(
        self, request: pb.GetAuditInclusionProofRequest, context: Context
    ) -> pb.AuditInclusionProof:
        note = ""
        size = request.tree_size
        if not size:
            note = await self._witnessed.cosigned()
            size = _size_of(note)
        inclusion = await self._witnessed.inclusion(request.sequence, size)
        return pb.AuditInclusionProof(
            record=record_to_proto(inclusion.record),
            tree_size=inclusion.tree_size,
            inclusion_path=inclusion.proof,
            checkpoint=note,
        )


def _size_of(note: str) -> int:
    return int(note.split("\n")[1])


def _checkpoint(note: str) -> pb.AuditCheckpoint:
    return pb.AuditCheckpoint(note=note, tree_size=_size_of(note))
