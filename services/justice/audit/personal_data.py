"""Which RPCs read personal data: they need a declared purpose, and they count as lookups
for the bulk-lookup rule. Full method names; a new service adds its reads here.

Not listed, on purpose:
- writes (Create/Update/Sign/Submit...): they return what the caller sent, and are audited;
- VerifyReport/VerifyEvidence/GetUpload/CheckAttachment: hashes, signer and upload state,
  no content;
- CheckCase/DescribeReport/DescribeEvidence: case numbers, report names, recipient office
  and unit, no person;
- ExchangeService: partners are organisations, and deliveries and dead letters carry
  envelope metadata (type, recipient, resource name), never the payload.
"""

from __future__ import annotations

# The request header that declares the purpose (or legal basis) of a personal-data read.
PURPOSE_HEADER = "x-justice-purpose"

_REPORTS = "/justice.reports.v1.ReportService/"
_EVIDENCE = "/justice.evidence.v1.EvidenceService/"
_AUDIT = "/justice.audit.v1.AuditService/"
_ACCESS = "/justice.access.v1.AccessService/"
_CUSTODY = "/justice.custody.v1.CustodyService/"
_FINES = "/justice.fines.v1.FineService/"

PERSONAL_DATA_READS: frozenset[str] = frozenset(
    {
        # Reports: the narrative, the persons involved.
        _REPORTS + "GetReport",
        _REPORTS + "ListReports",
        _REPORTS + "ExportReport",
        # Evidence: the media itself, and metadata naming cases, files and uploaders.
        _EVIDENCE + "DownloadEvidence",
        _EVIDENCE + "GetEvidence",
        _EVIDENCE + "ListEvidence",
        # A share hands the content to a partner: a disclosure needs a legal basis too.
        _EVIDENCE + "ShareEvidence",
        _EVIDENCE + "ShareAttachment",
        # Who consulted what is itself personal data about officers.
        _AUDIT + "QueryAccess",
        _AUDIT + "ExportAudit",
        # Officers' names, placements and grants are their personnel data.
        _ACCESS + "GetUser",
        _ACCESS + "ListUsers",
        _ACCESS + "ListGrants",
        # Seized goods: the person seized from and the owner. Items and chains name no one.
        _CUSTODY + "GetSeizure",
        _CUSTODY + "GetSeizureReceipt",
        # Fines: holder, owner, end user and driver serve the fine's purpose only.
        _FINES + "GetFine",
        _FINES + "ListFines",
        _FINES + "ListLetters",
    }
)


def full_method(service: str, method: str) -> str:
    return f"/{service}/{method}"
