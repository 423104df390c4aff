"""Peers: the ports of justice.bridges answered by a service that runs in another process.

`justice serve --service NAME` mounts only the named services. Where one of them uses
another through a port (reports check and share evidence, evidence asks reports about
cases, the audit detector asks who owns a record), the composition root connects the port
to the in-process adapter of justice.bridges when both run in the process, and to one of
these gRPC clients otherwise; co-located services never take a network hop.

Each client presents the platform's service certificate over mTLS (the SERVICE role) and
calls the peer's internal RPCs, restricted to that role and audited there like any call.
A peer that cannot answer becomes UNAVAILABLE, one that refuses FAILED_PRECONDITION, both
with ErrorInfo naming the peer and its status; never INTERNAL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from google.protobuf import duration_pb2

from justice.access.v1 import access_pb2, access_pb2_grpc
from justice.audit.personal_data import PURPOSE_HEADER
from justice.evidence.v1 import evidence_pb2, evidence_pb2_grpc
from justice.exchange.message import Link
from justice.platform.config import MissingSetting, Settings
from justice.platform.errors import FailedPrecondition, JusticeError, Unavailable
from justice.platform.listing import Page, next_token
from justice.platform.rpc import error_details
from justice.reports.model import Attachment
from justice.reports.service import StoredEvidence
from justice.reports.v1 import reports_pb2, reports_pb2_grpc

# Statuses a retry may cure: the peer is down, overloaded, or failed on its own side.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)
# The declared purpose of the shares made for a submission (the purpose header allows no
# '@', so the report version goes in the request's own purpose field).
_SUBMISSION_PURPOSE = "report submission"


def peer_failure(peer: str, error: grpc.aio.AioRpcError) -> JusticeError:
    """A failed peer call as the error the caller hears."""
    details = error_details(error)
    metadata = {"peer": peer, "peer_code": details.code.name}
    if details.reason:
        metadata["peer_reason"] = details.reason
    if details.code in _TRANSIENT:
        return Unavailable(
            "PEER_UNAVAILABLE",
            f"the {peer} service did not answer ({details.code.name}); retry later",
            metadata=metadata,
        )
    return FailedPrecondition(
        "PEER_REFUSED",
        f"the {peer} service refused the call ({details.code.name})",
        metadata=metadata,
    )


@asynccontextmanager
async def _calling(peer: str) -> AsyncIterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as error:
        raise peer_failure(peer, error) from None


def _not_found(error: grpc.aio.AioRpcError) -> bool:
    return error.code() is grpc.StatusCode.NOT_FOUND


# A restarted peer is found again within seconds (gRPC's default backoff grows to 120 s).
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]


class Peers:
    """mTLS channels to the peers named by settings, closed together.

    The adapters open theirs when the composition root builds them, so a missing address or
    service certificate stops the start.
    """

    def __init__(self, settings: Settings, trust: Path) -> None:
        self._settings = settings
        self._trust = trust
        self._credentials: grpc.ChannelCredentials | None = None
        self._channels: dict[str, grpc.aio.Channel] = {}

    @property
    def timeout(self) -> float:
        return self._settings.peer_timeout_seconds

    def channel(self, peer: str) -> grpc.aio.Channel:
        if peer in self._channels:
            return self._channels[peer]
        address = {
            "reports": self._settings.reports_address,
            "evidence": self._settings.evidence_address,
            "access": self._settings.access_address,
        }[peer]
        if not address:
            raise MissingSetting(
                f"the {peer} service does not run in this process: set "
                f"JUSTICE_{peer.upper()}_ADDRESS to where it answers (or add --service {peer})"
            )
        channel = grpc.aio.secure_channel(address, self._service_identity(), _CHANNEL_OPTIONS)
        self._channels[peer] = channel
        return channel

    def _service_identity(self) -> grpc.ChannelCredentials:
        if self._credentials is None:
            settings = self._settings
            clients = settings.pki_dir / "clients"
            cert = settings.service_cert or clients / f"{settings.exchange.platform_id}.pem"
            key = settings.service_key or clients / f"{settings.exchange.platform_id}.key"
            self._credentials = grpc.ssl_channel_credentials(
                self._trust.read_bytes(), key.read_bytes(), cert.read_bytes()
            )
        return self._credentials

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()


class RemoteEvidence:
    """reports.EvidenceCatalog over gRPC (justice.bridges.EvidenceAttachments in-process),
    and the evidence side of the audit detector's owners (bridges.EvidenceReports)."""

    def __init__(self, peers: Peers, link_lifetime: timedelta) -> None:
        self._stub = evidence_pb2_grpc.EvidenceServiceStub(peers.channel("evidence"))
        self._timeout = peers.timeout
        self._lifetime = duration_pb2.Duration()
        self._lifetime.FromTimedelta(link_lifetime)

    async def stored(self, evidence: str) -> StoredEvidence | None:
        request = evidence_pb2.CheckAttachmentRequest(name=evidence)
        try:
            found = await self._stub.CheckAttachment(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            if _not_found(error):
                return None
            raise peer_failure("evidence", error) from None
        attachment = Attachment(
            evidence=found.name,
            sha256=found.sha256,
            size_bytes=found.size_bytes,
            media_type=found.media_type,
        )
        return StoredEvidence(attachment, found.intact)

    async def links(
        self, attachments: Sequence[Attachment], recipient: str, sharer: str, purpose: str
    ) -> tuple[Link, ...]:
        links = []
        for attachment in attachments:
            request = evidence_pb2.ShareAttachmentRequest(
                name=attachment.evidence,
                partner=recipient,
                sharer=sharer,
                expiry=self._lifetime,
                purpose=purpose,
            )
            async with _calling("evidence"):
                shared = await self._stub.ShareAttachment(
                    request,
                    timeout=self._timeout,
                    metadata=((PURPOSE_HEADER, _SUBMISSION_PURPOSE),),
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

    async def report_of(self, evidence: str) -> str | None:
        request = evidence_pb2.DescribeEvidenceRequest(name=evidence)
        try:
            facts = await self._stub.DescribeEvidence(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            if _not_found(error):
                return None
            raise peer_failure("evidence", error) from None
        return facts.report or None


class RemoteReports:
    """evidence.CaseDirectory over gRPC (justice.bridges.ReportCases in-process), and the
    reports' side of the audit detector's owners (DescribeReport's reporting unit)."""

    def __init__(self, peers: Peers) -> None:
        self._stub = reports_pb2_grpc.ReportServiceStub(peers.channel("reports"))
        self._timeout = peers.timeout

    async def case_known(self, case_number: str) -> bool:
        request = reports_pb2.CheckCaseRequest(case_number=case_number)
        async with _calling("reports"):
            answer = await self._stub.CheckCase(request, timeout=self._timeout)
        return answer.known

    async def _facts(self, report: str) -> reports_pb2.ReportFacts | None:
        request = reports_pb2.DescribeReportRequest(name=report)
        try:
            return await self._stub.DescribeReport(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            if _not_found(error):
                return None
            raise peer_failure("reports", error) from None

    async def report_case(self, report: str) -> str | None:
        facts = await self._facts(report)
        return facts.case_number if facts else None

    async def report_recipient(self, report: str) -> str | None:
        facts = await self._facts(report)
        return (facts.recipient or None) if facts else None

    async def reporting_unit(self, report: str) -> str | None:
        facts = await self._facts(report)
        return facts.reporting_unit if facts else None


@dataclass(frozen=True)
class UnitName:
    id: str
    display_name: str


class RemoteUnits:
    """The access registry's units over gRPC (bridges.UnitListing; AccessService in-process)."""

    def __init__(self, peers: Peers) -> None:
        self._stub = access_pb2_grpc.AccessServiceStub(peers.channel("access"))
        self._timeout = peers.timeout

    async def list_units(self, page: Page) -> list[UnitName]:
        request = access_pb2.ListUnitsRequest(
            page_size=page.size, page_token=next_token(page.after)
        )
        async with _calling("access"):
            answer = await self._stub.ListUnits(request, timeout=self._timeout)
        return [
            UnitName(unit.name.removeprefix("units/"), unit.display_name) for unit in answer.units
        ]
