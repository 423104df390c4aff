"""A prosecutor's office, built only on the partner SDK (used by `justice demo`).

For each seized item it is asked about it decides destruction (custody_decision).
For each submitted report it checks the XAdES signature against the platform CA and the
evidence behind every presigned link, answers with a signed receipt, and then acknowledges
the report, or rejects it with the reason the check gave.
"""

from __future__ import annotations

import json

from google.type import date_pb2

from justice.custody.ledger import MESSAGE_TYPE_DECISION, MESSAGE_TYPE_DECISION_REQUESTED
from justice.custody.v1 import custody_pb2
from justice.partner.client import Answer, PartnerClient, Received
from justice.reports.service import (
    MESSAGE_TYPE_ACKNOWLEDGED,
    MESSAGE_TYPE_REJECTED,
    MESSAGE_TYPE_SUBMITTED,
)
from justice.reports.v1 import reports_pb2


class ProsecutorSimulator:
    def __init__(self, client: PartnerClient) -> None:
        self._client = client
        self.acknowledged: list[str] = []
        self.rejected: list[tuple[str, str]] = []
        self.decided: list[str] = []

    async def handle(self, received: Received) -> Answer:
        if received.type == MESSAGE_TYPE_DECISION_REQUESTED:
            return self.decide(received)
        if received.type != MESSAGE_TYPE_SUBMITTED:
            return Answer.accept()
        verdict = self._client.verify_report(received.payload)
        report = self._client.report_identity(verdict)
        if not (verdict.integrity_ok and verdict.chains_to_ca) or not report:
            # Unreadable as a report: the receipt itself refuses it.
            self.rejected.append((report, verdict.reason))
            return Answer.reject(verdict.reason or "NOT_A_REPORT", verdict.detail)
        for link in received.links:
            try:
                self._client.fetch_evidence(link)
            except (OSError, ValueError) as error:
                self.rejected.append((report, "EVIDENCE_UNAVAILABLE"))
                rejection = reports_pb2.ReportRejection(
                    report=report, reason="EVIDENCE_UNAVAILABLE", detail=str(error)[:200]
                )
                return Answer.accept((MESSAGE_TYPE_REJECTED, rejection.SerializeToString()))
        self.acknowledged.append(report)
        acknowledgement = reports_pb2.ReportAcknowledgement(report=report)
        return Answer.accept((MESSAGE_TYPE_ACKNOWLEDGED, acknowledgement.SerializeToString()))

    def decide(self, received: Received) -> Answer:
        item = json.loads(received.payload)["item"]
        self.decided.append(item)
        decision = custody_pb2.CustodyDecisionMessage(
            item=item,
            decision=custody_pb2.DESTROY,
            reference=f"PK-ANT-{item.removeprefix('items/')[-8:]}",
            decision_date=date_pb2.Date(year=2026, month=3, day=2),
            authority="Procureur des Konings Antwerpen",
        )
        return Answer.accept((MESSAGE_TYPE_DECISION, decision.SerializeToString()))
