"""Authorisation: ONE declarative table, every RPC of every service -> roles and conditions.

A method missing from the table is denied (PERMISSION_DENIED, reason NO_RULE), so a new RPC
cannot ship without a rule; tests/api/test_security_rules.py enumerates the registered
services and fails on any method without one.

A rule maps each allowed role to a resource-level condition, or to None (no condition).
The interceptor checks the role here, with no database access, and hands the conditions to
the service through `current_access()`; the service applies them to the resource it loads
(the condition names below say what each one means, and which service applies it).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from justice.platform.errors import PermissionDenied
from justice.platform.rpc import Around, Call
from justice.security.identity import Principal, Role, current_principal


class Condition(enum.StrEnum):
    # Only the author may act: ReportService checks the actor against the report's author.
    AUTHOR = "AUTHOR"
    # Written by the caller or by the caller's unit (reports, evidence).
    OWN_UNIT = "OWN_UNIT"
    # Submitted or shared to the caller's office (Principal.partner).
    SUBMITTED_TO_OFFICE = "SUBMITTED_TO_OFFICE"
    # A custodian sees the items in their own custody.
    IN_CUSTODY = "IN_CUSTODY"
    # A partner agency sees only the deliveries addressed to it (Principal.partner).
    OWN_DELIVERIES = "OWN_DELIVERIES"
    # Approvals: the approval mechanism checks approver roles and forbids self-approval.
    APPROVER = "APPROVER"


@dataclass(frozen=True)
class Rule:
    allow: Mapping[Role, Condition | None]
    # Any authenticated principal (health checks and reflection only).
    public: bool = False


def rule(**allow: Condition | None) -> Rule:
    return Rule({Role[name]: condition for name, condition in allow.items()})


PUBLIC = Rule({}, public=True)

_REPORTS = "/justice.reports.v1.ReportService/"
_EVIDENCE = "/justice.evidence.v1.EvidenceService/"
_EXCHANGE = "/justice.exchange.v1.ExchangeService/"
_AUDIT = "/justice.audit.v1.AuditService/"
_ACCESS = "/justice.access.v1.AccessService/"
_CUSTODY = "/justice.custody.v1.CustodyService/"
_FINES = "/justice.fines.v1.FineService/"

_C = Condition

RULES: Mapping[str, Rule] = {
    # Health and reflection: public to any authenticated caller (grpcurl works unmodified).
    "/grpc.health.v1.Health/Check": PUBLIC,
    "/grpc.health.v1.Health/Watch": PUBLIC,
    "/grpc.health.v1.Health/List": PUBLIC,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": PUBLIC,
    # Reports.
    _REPORTS + "CreateReport": rule(REPORT_WRITER=None),
    _REPORTS + "UpdateReport": rule(REPORT_WRITER=_C.AUTHOR),
    _REPORTS + "GetReport": rule(REPORT_WRITER=_C.OWN_UNIT, PROSECUTOR=_C.SUBMITTED_TO_OFFICE),
    _REPORTS + "ListReports": rule(REPORT_WRITER=_C.OWN_UNIT, PROSECUTOR=_C.SUBMITTED_TO_OFFICE),
    _REPORTS + "SignReport": rule(REPORT_WRITER=_C.AUTHOR),
    _REPORTS + "AmendReport": rule(REPORT_WRITER=_C.AUTHOR),
    _REPORTS + "VerifyReport": rule(
        REPORT_WRITER=_C.OWN_UNIT, PROSECUTOR=_C.SUBMITTED_TO_OFFICE, AUDITOR=None
    ),
    _REPORTS + "ExportReport": rule(REPORT_WRITER=_C.OWN_UNIT, PROSECUTOR=_C.SUBMITTED_TO_OFFICE),
    _REPORTS + "SubmitReport": rule(REPORT_WRITER=_C.AUTHOR),
    # Internal: evidence and audit, running apart, ask about cases and reports.
    _REPORTS + "CheckCase": rule(SERVICE=None),
    _REPORTS + "DescribeReport": rule(SERVICE=None),
    # Evidence.
    _EVIDENCE + "UploadEvidence": rule(REPORT_WRITER=None, CUSTODIAN=None, SERVICE=None),
    _EVIDENCE + "GetUpload": rule(REPORT_WRITER=_C.AUTHOR, CUSTODIAN=_C.AUTHOR, SERVICE=None),
    _EVIDENCE + "DownloadEvidence": rule(
        REPORT_WRITER=_C.OWN_UNIT, PROSECUTOR=_C.SUBMITTED_TO_OFFICE, CUSTODIAN=_C.IN_CUSTODY
    ),
    _EVIDENCE + "GetEvidence": rule(
        REPORT_WRITER=_C.OWN_UNIT, PROSECUTOR=_C.SUBMITTED_TO_OFFICE, CUSTODIAN=_C.IN_CUSTODY
    ),
    _EVIDENCE + "ListEvidence": rule(
        REPORT_WRITER=_C.OWN_UNIT, PROSECUTOR=_C.SUBMITTED_TO_OFFICE, CUSTODIAN=_C.IN_CUSTODY
    ),
    _EVIDENCE + "SetLegalHold": rule(PROSECUTOR=_C.SUBMITTED_TO_OFFICE, CUSTODY_SUPERVISOR=None),
    _EVIDENCE + "ReleaseLegalHold": rule(PROSECUTOR=_C.SUBMITTED_TO_OFFICE),
    _EVIDENCE + "ShareEvidence": rule(REPORT_WRITER=_C.OWN_UNIT, PROSECUTOR=_C.SUBMITTED_TO_OFFICE),
    _EVIDENCE + "VerifyEvidence": rule(
        REPORT_WRITER=_C.OWN_UNIT, PROSECUTOR=_C.SUBMITTED_TO_OFFICE, AUDITOR=None, SERVICE=None
    ),
    # Internal: the report service, running apart, checks and shares its attachments.
    _EVIDENCE + "CheckAttachment": rule(SERVICE=None),
    _EVIDENCE + "ShareAttachment": rule(SERVICE=None),
    # Internal: the audit detector, running apart, asks which report evidence belongs to.
    _EVIDENCE + "DescribeEvidence": rule(SERVICE=None),
    # Exchange administration: registering a partner opens access, so it is an admin task.
    _EXCHANGE + "CreatePartner": rule(ACCESS_ADMIN=None),
    _EXCHANGE + "GetPartner": rule(ACCESS_ADMIN=None, SERVICE=None, AUDITOR=None),
    _EXCHANGE + "ListPartners": rule(ACCESS_ADMIN=None, SERVICE=None, AUDITOR=None),
    _EXCHANGE + "UpdatePartner": rule(ACCESS_ADMIN=None),
    _EXCHANGE + "DeletePartner": rule(ACCESS_ADMIN=None),
    # A prosecutor's office is a partner too: it sees the deliveries addressed to it.
    _EXCHANGE + "ListDeliveries": rule(
        PARTNER_AGENCY=_C.OWN_DELIVERIES, PROSECUTOR=_C.OWN_DELIVERIES, SERVICE=None, AUDITOR=None
    ),
    _EXCHANGE + "GetDelivery": rule(
        PARTNER_AGENCY=_C.OWN_DELIVERIES, PROSECUTOR=_C.OWN_DELIVERIES, SERVICE=None, AUDITOR=None
    ),
    _EXCHANGE + "GetDeliveryReceipt": rule(
        PARTNER_AGENCY=_C.OWN_DELIVERIES, PROSECUTOR=_C.OWN_DELIVERIES, SERVICE=None, AUDITOR=None
    ),
    _EXCHANGE + "RedeliverDelivery": rule(SERVICE=None),
    _EXCHANGE + "ListDeadLetters": rule(SERVICE=None, AUDITOR=None),
    _EXCHANGE + "GetRelayStatus": rule(SERVICE=None, AUDITOR=None),
    # Audit: auditors only (and their own calls are audited like any other).
    _AUDIT + "QueryAccess": rule(AUDITOR=None),
    _AUDIT + "VerifyAuditChain": rule(AUDITOR=None),
    _AUDIT + "ExportAudit": rule(AUDITOR=None),
    _AUDIT + "ListAlerts": rule(AUDITOR=None),
    # The witnessed log: partners witness checkpoints (hashes only, no record content);
    # inclusion proofs carry a record, so they stay with auditors.
    _AUDIT + "GetAuditCheckpoint": rule(
        AUDITOR=None, PARTNER_AGENCY=None, PROSECUTOR=None, SERVICE=None
    ),
    _AUDIT + "GetAuditConsistencyProof": rule(
        AUDITOR=None, PARTNER_AGENCY=None, PROSECUTOR=None, SERVICE=None
    ),
    _AUDIT + "AddAuditCosignature": rule(PARTNER_AGENCY=None, PROSECUTOR=None),
    _AUDIT + "GetCosignedAuditCheckpoint": rule(
        AUDITOR=None, PARTNER_AGENCY=None, PROSECUTOR=None, SERVICE=None
    ),
    _AUDIT + "GetAuditInclusionProof": rule(AUDITOR=None),
    # Access administration.
    _ACCESS + "CreateUnit": rule(ACCESS_ADMIN=None),
    # SERVICE: the audit detector, running apart, maps reporting units to unit ids.
    _ACCESS + "ListUnits": rule(ACCESS_ADMIN=None, AUDITOR=None, SERVICE=None),
    _ACCESS + "GetUser": rule(ACCESS_ADMIN=None, AUDITOR=None),
    _ACCESS + "ListUsers": rule(ACCESS_ADMIN=None, AUDITOR=None),
    # SERVICE: the HR system's feed may also call the API instead of NATS.
    _ACCESS + "RecordPersonnelEvent": rule(ACCESS_ADMIN=None, SERVICE=None),
    _ACCESS + "GrantRole": rule(ACCESS_ADMIN=None),
    _ACCESS + "RevokeGrant": rule(ACCESS_ADMIN=None),
    _ACCESS + "ListGrants": rule(ACCESS_ADMIN=None, AUDITOR=None),
    # Every role that can approve something (grants now, seized-goods disposal next).
    _ACCESS + "ListApprovals": rule(ACCESS_ADMIN=_C.APPROVER, CUSTODY_SUPERVISOR=_C.APPROVER),
    _ACCESS + "ApproveRequest": rule(ACCESS_ADMIN=_C.APPROVER, CUSTODY_SUPERVISOR=_C.APPROVER),
    _ACCESS + "RejectRequest": rule(ACCESS_ADMIN=_C.APPROVER, CUSTODY_SUPERVISOR=_C.APPROVER),
    _ACCESS + "RevokeCertificate": rule(ACCESS_ADMIN=None),
    # Seized goods. IN_CUSTODY: the custody services check that the caller holds the item
    # (or, for reads and acceptance, that it is on its way to them); a supervisor is not
    # restricted. A court registry or lab clerk (PARTNER_AGENCY) receives items.
    _CUSTODY + "RegisterSeizure": rule(REPORT_WRITER=None, CUSTODIAN=None),
    _CUSTODY + "GetSeizure": rule(
        REPORT_WRITER=_C.AUTHOR, CUSTODIAN=None, CUSTODY_SUPERVISOR=None, PROSECUTOR=None
    ),
    _CUSTODY + "GetSeizureReceipt": rule(
        REPORT_WRITER=_C.AUTHOR, CUSTODIAN=None, CUSTODY_SUPERVISOR=None, PROSECUTOR=None
    ),
    _CUSTODY + "GetItem": rule(
        REPORT_WRITER=_C.IN_CUSTODY,
        CUSTODIAN=_C.IN_CUSTODY,
        PARTNER_AGENCY=_C.IN_CUSTODY,
        CUSTODY_SUPERVISOR=None,
        PROSECUTOR=None,
        AUDITOR=None,
    ),
    _CUSTODY + "ListItems": rule(
        REPORT_WRITER=_C.IN_CUSTODY,
        CUSTODIAN=_C.IN_CUSTODY,
        PARTNER_AGENCY=_C.IN_CUSTODY,
        CUSTODY_SUPERVISOR=None,
        PROSECUTOR=None,
        AUDITOR=None,
    ),
    _CUSTODY + "TransferCustody": rule(
        REPORT_WRITER=_C.IN_CUSTODY, CUSTODIAN=_C.IN_CUSTODY, PARTNER_AGENCY=_C.IN_CUSTODY
    ),
    _CUSTODY + "AcceptCustody": rule(
        REPORT_WRITER=_C.IN_CUSTODY, CUSTODIAN=_C.IN_CUSTODY, PARTNER_AGENCY=_C.IN_CUSTODY
    ),
    _CUSTODY + "GetAcceptance": rule(
        CUSTODIAN=_C.IN_CUSTODY,
        PARTNER_AGENCY=_C.IN_CUSTODY,
        CUSTODY_SUPERVISOR=None,
        PROSECUTOR=None,
        AUDITOR=None,
    ),
    _CUSTODY + "RejectCustody": rule(
        REPORT_WRITER=_C.IN_CUSTODY, CUSTODIAN=_C.IN_CUSTODY, PARTNER_AGENCY=_C.IN_CUSTODY
    ),
    _CUSTODY + "CheckOut": rule(CUSTODIAN=_C.IN_CUSTODY),
    _CUSTODY + "CheckIn": rule(CUSTODIAN=_C.IN_CUSTODY),
    _CUSTODY + "MoveItems": rule(CUSTODIAN=_C.IN_CUSTODY),
    _CUSTODY + "SplitItem": rule(CUSTODIAN=_C.IN_CUSTODY),
    # Locations: a supervisor creates them (label printed from the id or barcode); those
    # who store, receive, count or audit read them.
    _CUSTODY + "CreateLocation": rule(CUSTODY_SUPERVISOR=None),
    _CUSTODY + "GetLocation": rule(
        CUSTODIAN=None, PARTNER_AGENCY=None, CUSTODY_SUPERVISOR=None, AUDITOR=None
    ),
    _CUSTODY + "ListLocations": rule(
        CUSTODIAN=None, PARTNER_AGENCY=None, CUSTODY_SUPERVISOR=None, AUDITOR=None
    ),
    _CUSTODY + "RequestDecision": rule(CUSTODIAN=_C.IN_CUSTODY),
    _CUSTODY + "RecordDecision": rule(PROSECUTOR=None),
    _CUSTODY + "PlaceHold": rule(PROSECUTOR=None, CUSTODY_SUPERVISOR=None),
    _CUSTODY + "ReleaseHold": rule(PROSECUTOR=None, CUSTODY_SUPERVISOR=None),
    _CUSTODY + "RequestDisposal": rule(CUSTODIAN=_C.IN_CUSTODY),
    _CUSTODY + "ApproveDisposal": rule(CUSTODY_SUPERVISOR=_C.APPROVER),
    _CUSTODY + "Dispose": rule(CUSTODIAN=_C.IN_CUSTODY),
    # Inventories are taken by someone outside the holding unit (checked by the service).
    _CUSTODY + "StartInventory": rule(CUSTODY_SUPERVISOR=None, AUDITOR=None),
    _CUSTODY + "SubmitInventory": rule(CUSTODY_SUPERVISOR=None, AUDITOR=None),
    _CUSTODY + "GetCustodyChain": rule(
        CUSTODIAN=_C.IN_CUSTODY, CUSTODY_SUPERVISOR=None, PROSECUTOR=None, AUDITOR=None
    ),
    _CUSTODY + "VerifyCustodyChain": rule(
        CUSTODIAN=_C.IN_CUSTODY, CUSTODY_SUPERVISOR=None, PROSECUTOR=None, AUDITOR=None
    ),
    _CUSTODY + "ExportCustodyCertificate": rule(
        CUSTODIAN=_C.IN_CUSTODY, CUSTODY_SUPERVISOR=None, PROSECUTOR=None, AUDITOR=None
    ),
    # Fines: officers and cameras (SERVICE) register; the fine agency runs the rest; a
    # payment provider's system (SERVICE) may also report payments over the API.
    _FINES + "RegisterOffence": rule(FINES_OFFICER=None, SERVICE=None),
    _FINES + "GetFine": rule(FINES_OFFICER=None, AUDITOR=None),
    _FINES + "ListFines": rule(FINES_OFFICER=None, AUDITOR=None),
    _FINES + "IssueNotice": rule(FINES_OFFICER=None),
    _FINES + "DesignateDriver": rule(FINES_OFFICER=None),
    _FINES + "RegisterPayment": rule(FINES_OFFICER=None, SERVICE=None),
    _FINES + "ContestFine": rule(FINES_OFFICER=None),
    _FINES + "DecideContest": rule(FINES_OFFICER=None),
    _FINES + "GetFineStatistics": rule(FINES_OFFICER=None, AUDITOR=None),
    _FINES + "ListLetters": rule(FINES_OFFICER=None),
}


@dataclass(frozen=True)
class Access:
    """What the authorisation interceptor decided for the call being served."""

    principal: Principal
    # None: some held role is allowed with no condition. Otherwise the caller may act on a
    # resource when ANY of these conditions holds for it.
    conditions: frozenset[Condition] | None

    @property
    def unrestricted(self) -> bool:
        return self.conditions is None

    def allows(self, condition: Condition) -> bool:
        return self.conditions is None or condition in self.conditions


_access: ContextVar[Access | None] = ContextVar("justice_access", default=None)


def current_access() -> Access:
    """The authorisation decision for the current call (unrestricted outside RPCs is wrong:
    a call path without the interceptor gets PERMISSION_DENIED)."""
    access = _access.get()
    if access is None:
        raise PermissionDenied("NO_AUTHORISATION", "the call was not authorised")
    return access


def decide(rules: Mapping[str, Rule], method: str, principal: Principal) -> Access:
    found = rules.get(method)
    if found is None:
        raise PermissionDenied(
            "NO_RULE", "no authorisation rule covers this method", metadata={"method": method}
        )
    if found.public:
        return Access(principal, None)
    held = [role for role in found.allow if role in principal.roles]
    if not held:
        raise PermissionDenied(
            "ROLE_REQUIRED",
            "none of the caller's roles may call this method",
            metadata={"method": method, "roles": ",".join(sorted(found.allow))},
        )
    conditions = [found.allow[role] for role in held]
    if any(condition is None for condition in conditions):
        return Access(principal, None)
    return Access(principal, frozenset(c for c in conditions if c is not None))


def authorisation(rules: Mapping[str, Rule] = RULES) -> Around:
    """Denies by default: a method without a rule, or a caller without an allowed role."""

    @asynccontextmanager
    async def around(call: Call) -> AsyncIterator[None]:
        token = _access.set(decide(rules, call.method, current_principal()))
        try:
            yield
        finally:
            _access.reset(token)

    return around
