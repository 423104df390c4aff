"""Report use cases. Owns the transaction; receives its ports from the composition root."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Protocol

from justice.exchange.message import Inbox, Link, OutboxWriter, OutgoingMessage, is_subject_token
from justice.platform import ports
from justice.platform.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    JusticeError,
    NotFound,
    PermissionDenied,
)
from justice.platform.listing import visible_page
from justice.reports import document
from justice.reports.model import (
    Attachment,
    Content,
    Limits,
    ReportQuery,
    ReportState,
    ReportVersion,
    check_complete,
    check_content,
)

MESSAGE_TYPE_SUBMITTED = "report_submitted"
# What the recipient answers (justice.reports.v1.ReportAcknowledgement / ReportRejection).
MESSAGE_TYPE_ACKNOWLEDGED = "report_acknowledged"
MESSAGE_TYPE_REJECTED = "report_rejected"
_NAME = re.compile(r"^reports/([A-Za-z0-9_-]{1,64})(?:@([1-9][0-9]{0,5}))?$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class ReportScope:
    """Which reports a restricted caller may see (resource-level authorisation conditions).

    A report is visible when ANY set field matches: the caller wrote it, it was written for
    the caller's unit, or it was submitted to the caller's office.
    """

    author: str | None = None
    unit: str | None = None
    office: str | None = None

    def sees(self, report: ReportVersion) -> bool:
        return bool(
            (self.author and report.author == self.author)
            or (self.unit and report.content.reporting_unit == self.unit)
            or (self.office and report.recipient == self.office)
        )


class ReportRepository(Protocol):
    async def add(self, report: ReportVersion) -> None: ...
    async def get(self, report_id: str, version: int | None = None) -> ReportVersion | None: ...
    async def by_request(self, author: str, request_id: str) -> ReportVersion | None: ...
    async def update(self, report: ReportVersion) -> None:
        """Write a changed version; raises Aborted if someone else changed it first."""

    async def list_latest(self, query: ReportQuery) -> Sequence[ReportVersion]: ...


class ReportReads(Protocol):
    """Reads outside a transaction, for the hot path (GetReport)."""

    async def get(self, report_id: str, version: int | None = None) -> ReportVersion | None:
        """The version as committed now."""

    async def view(self, report_id: str, version: int | None = None) -> ReportVersion | None:
        """The version to show a reader: as `get`, but it may be one read before, as long as
        no change to it can have been committed since, up to the delivery of another
        process's announcement of one."""


class UnitOfWork(ports.UnitOfWork, Protocol):
    @property
    def reports(self) -> ReportRepository: ...
    @property
    def outbox(self) -> OutboxWriter: ...
    @property
    def inbox(self) -> Inbox: ...


class VersionWrites(Protocol):
    async def get(self, report_id: str, version: int | None = None) -> ReportVersion | None: ...
    async def update(self, report: ReportVersion) -> None:
        """Write a changed version; raises Aborted (at the latest on commit) if someone else
        changed it first."""


class SubmissionWork(ports.UnitOfWork, Protocol):
    """What a submission (or a partner's answer) writes: a version's change, its message, its
    processed claims, committed together."""

    @property
    def reports(self) -> VersionWrites: ...
    @property
    def outbox(self) -> OutboxWriter: ...
    @property
    def inbox(self) -> Inbox: ...


class Signer(Protocol):
    async def sign(self, document: bytes, signer_id: str) -> bytes: ...


@dataclass(frozen=True)
class StoredEvidence:
    """What the evidence store says about an attachment: its recorded facts, and whether
    the stored bytes still hash to them."""

    attachment: Attachment
    intact: bool


class EvidenceCatalog(Protocol):
    """The evidence service, seen from reports (implemented by justice.evidence)."""

    async def stored(self, evidence: str) -> StoredEvidence | None:
        """None when there is no such evidence or its stored object is gone."""

    async def links(
        self, attachments: Sequence[Attachment], recipient: str, sharer: str, purpose: str
    ) -> tuple[Link, ...]:
        """A presigned link per attachment for `recipient`, each one a recorded share."""


class Verdict(Protocol):
    @property
    def integrity_ok(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def signer_subject(self) -> str | None: ...
    @property
    def signing_time(self) -> datetime | None: ...
    @property
    def chains_to_ca(self) -> bool: ...
    @property
    def signed_root(self) -> Any: ...


class Verifier(Protocol):
    def verify(self, data: bytes) -> Verdict: ...


@dataclass(frozen=True)
class Verification:
    integrity_ok: bool
    reason: str
    detail: str
    signer_subject: str
    signing_time: datetime | None
    chains_to_ca: bool
    report: str
    version: int


def verification(verdict: Verdict) -> Verification:
    """What a signature check says about a report."""
    # Read identity only from what the signature covers (defence against wrapping).
    report, version = document.identify(verdict.signed_root) if verdict.integrity_ok else ("", 0)
    return Verification(
        integrity_ok=verdict.integrity_ok,
        reason=verdict.reason,
        detail=verdict.detail,
        signer_subject=verdict.signer_subject or "",
        signing_time=verdict.signing_time,
        chains_to_ca=verdict.chains_to_ca,
        report=report,
        version=version,
    )


def parse_name(name: str, field: str = "name") -> tuple[str, int | None]:
    match = _NAME.match(name)
    if match is None:
        raise InvalidArgument.of(
            [FieldViolation(field, "expected reports/{report} or reports/{report}@{version}")]
        )
    report_id, version = match.groups()
    return report_id, int(version) if version else None


def _visible(report: ReportVersion, scope: ReportScope | None) -> ReportVersion:
    if scope is not None and not scope.sees(report):
        raise PermissionDenied("REPORT_NOT_VISIBLE", "the report is not visible to the caller")
    return report


def _found(report: ReportVersion | None, report_id: str, version: int | None) -> ReportVersion:
    if report is None:
        what = f"reports/{report_id}" + (f"@{version}" if version else "")
        raise NotFound("REPORT_NOT_FOUND", f"no report {what}", metadata={"name": what})
    return report


def _new_id() -> str:
    # Time-ordered, so that ids sort by creation and page tokens are stable.
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


class ReportService:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        signer: Signer,
        verifier: Verifier,
        clock: Callable[[], datetime],
        limits: Limits,
        default_recipient: str,
        evidence: EvidenceCatalog,
        reads: ReportReads | None = None,
        submissions: Callable[[], SubmissionWork] | None = None,
    ) -> None:
        self._uow = uow
        self._reads = reads
        # The hot write paths (SignReport, SubmitReport): a unit of their own when the
        # platform gives one.
        self._submissions: Callable[[], SubmissionWork] = submissions or uow
        self._signer = signer
        self._verifier = verifier
        self._clock = clock
        self._limits = limits
        self._default_recipient = default_recipient
        self._evidence = evidence

    def _today(self) -> date:
        return self._clock().date()

    async def create(self, author: str, content: Content, request_id: str) -> ReportVersion:
        if request_id and not _REQUEST_ID.match(request_id):
            raise InvalidArgument.of([FieldViolation("request_id", "1-128 of A-Z a-z 0-9 _ . : -")])
        check_content(content, self._limits, self._today())
        async with self._uow() as uow:
            if request_id:
                earlier = await uow.reports.by_request(author, request_id)
                if earlier is not None:
                    return earlier
            now = self._clock()
            report = ReportVersion(
                report_id=_new_id(),
                version=1,
                author=author,
                content=content,
                written_time=now,
                create_time=now,
                update_time=now,
                request_id=request_id,
            )
            await uow.reports.add(report)
            await uow.commit()
            return report

    async def update(self, actor: str, name: str, content: Content, etag: str) -> ReportVersion:
        report_id, version = parse_name(name, "report.name")
        check_content(content, self._limits, self._today())
        async with self._uow() as uow:
            report = await self._load(uow, report_id, version)
            self._require_author(report, actor, "edit")
            report.ensure_draft()
            if etag and etag != str(report.revision):
                raise FailedPrecondition(
                    "ETAG_MISMATCH",
                    "the report changed since you read it",
                    metadata={"etag": str(report.revision)},
                )
            report.edit(content, self._clock())
            await uow.reports.update(report)
            await uow.commit()
            return report

    async def get(self, name: str, scope: ReportScope | None = None) -> ReportVersion:
        """The version as committed now: what a change builds on."""
        return _visible(await self._read(*parse_name(name)), scope)

    async def show(self, name: str, scope: ReportScope | None = None) -> ReportVersion:
        """The version to show a reader (GetReport), as ReportReads.view gives it."""
        return _visible(await self._read(*parse_name(name), to_show=True), scope)

    async def list(
        self, query: ReportQuery, scope: ReportScope | None = None
    ) -> Sequence[ReportVersion]:
        async with self._uow() as uow:
            if scope is None:
                return await uow.reports.list_latest(query)
            return await visible_page(
                lambda page: uow.reports.list_latest(replace(query, page=page)),
                scope.sees,
                lambda report: report.report_id,
                query.page,
            )

    async def sign(self, actor: str, name: str) -> ReportVersion:
        """Signs outside the transaction: the evidence check, the rendering and the signature
        hold no connection and no write lock. The transaction only writes, and the revision
        check refuses (ABORTED) a draft that changed since it was read."""
        report_id, version = parse_name(name)
        report = await self._read(report_id, version)
        self._require_author(report, actor, "sign")
        if report.state is not ReportState.DRAFT:
            raise FailedPrecondition(
                "ALREADY_SIGNED",
                f"version {report.version} is {report.state.value}; it was signed before",
                metadata={"state": report.state.value},
            )
        now = self._clock()
        check_complete(report.content, now)
        # The signature covers the evidence: its facts come from the store, checked now.
        report.content = replace(
            report.content, attachments=await self._stored_attachments(report.content)
        )
        try:
            unsigned = document.render(report)
        except document.SchemaViolation as error:
            raise FailedPrecondition("SCHEMA_VIOLATION", str(error)) from None
        signed = await self._signer.sign(unsigned, report.author)
        report.sign(signed, hashlib.sha256(signed).hexdigest(), now)
        # Group-committed where the platform gives a unit for it: through the ORM the
        # UPDATE held SQLite's write lock across its event-loop round trips.
        async with self._submissions() as uow:
            await uow.reports.update(report)
            if report.amends_version:
                previous = _found(
                    await uow.reports.get(report_id, report.amends_version),
                    report_id,
                    report.amends_version,
                )
                previous.move_to(ReportState.SUPERSEDED)
                previous.update_time = now
                await uow.reports.update(previous)
            await uow.commit()
        return report

    async def _stored_attachments(self, content: Content) -> tuple[Attachment, ...]:
        checked = []
        for i, wanted in enumerate(content.attachments):
            stored = await self._evidence.stored(wanted.evidence)
            where = f"attachments[{i}]"
            if stored is None:
                raise FailedPrecondition(
                    "EVIDENCE_MISSING",
                    f"{wanted.evidence} is not in the evidence store",
                    violations=[FieldViolation(f"{where}.evidence", "no such stored evidence")],
                    metadata={"evidence": wanted.evidence},
                )
            if not stored.intact:
                raise FailedPrecondition(
                    "EVIDENCE_CORRUPT",
                    f"the stored bytes of {wanted.evidence} no longer match their hash",
                    violations=[FieldViolation(f"{where}.evidence", "stored hash mismatch")],
                    metadata={"evidence": wanted.evidence},
                )
            if wanted.sha256 and wanted.sha256 != stored.attachment.sha256:
                raise FailedPrecondition(
                    "ATTACHMENT_HASH_DIFFERS",
                    f"the draft names other content than {wanted.evidence} holds",
                    violations=[FieldViolation(f"{where}.sha256", "differs from the evidence")],
                    metadata={"evidence": wanted.evidence},
                )
            checked.append(stored.attachment)
        return tuple(checked)

    async def amend(self, actor: str, name: str, request_id: str) -> ReportVersion:
        report_id, version = parse_name(name)
        async with self._uow() as uow:
            if request_id:
                earlier = await uow.reports.by_request(actor, request_id)
                if earlier is not None:
                    return earlier
            latest = await self._load(uow, report_id, None)
            if version is not None and version != latest.version:
                raise FailedPrecondition(
                    "NOT_LATEST_VERSION",
                    f"only the latest version ({latest.version}) can be amended",
                    metadata={"latest_version": str(latest.version)},
                )
            self._require_author(latest, actor, "amend")
            draft = latest.amendment(request_id, self._clock())
            await uow.reports.add(draft)
            await uow.commit()
            return draft

    async def submit(self, actor: str, name: str, recipient: str) -> ReportVersion:
        report_id, version = parse_name(name)
        recipient = recipient or self._default_recipient
        if not is_subject_token(recipient):
            raise InvalidArgument.of([FieldViolation("recipient", "a partner id")])
        async with self._submissions() as uow:
            report = _found(await uow.reports.get(report_id, version), report_id, version)
            self._require_author(report, actor, "submit")
            report.move_to(ReportState.SUBMITTED)
            report.recipient = recipient
            report.update_time = self._clock()
            # Evidence travels as links, never inside the message. Minted (and recorded as
            # shares) before anything is written here: a failed submission can leave a share
            # record for a link nobody received, never a sent link without its record.
            links = await self._evidence.links(
                report.content.attachments,
                recipient,
                actor,
                f"submission of {report.name}@{report.version}",
            )
            await uow.reports.update(report)
            # Same transaction as the state change: the message exists iff the submission does.
            await uow.outbox.add(
                OutgoingMessage(
                    recipient=recipient,
                    message_type=MESSAGE_TYPE_SUBMITTED,
                    payload=report.signed_xml or b"",
                    subject_ref=f"{report.name}@{report.version}",
                    links=links,
                )
            )
            await uow.commit()
            return report

    async def delivered(
        self, partner: str, versions: Sequence[tuple[str, str]]
    ) -> Sequence[tuple[str, JusticeError]]:
        """The recipient's signed receipt arrived for each (name, claim key): SUBMITTED
        becomes DELIVERED, all in one transaction, as one receipt names a whole batch (one
        transaction per version queued each behind SubmitReport's writes on SQLite).

        Returns the versions it could not apply (unknown, or submitted to another office)
        with why; those stay unclaimed.
        """
        refused: list[tuple[str, JusticeError]] = []
        # Group-committed where the platform gives a unit for it: through the ORM this
        # transaction held SQLite's write lock across a round trip per version.
        async with self._submissions() as uow:
            now = self._clock()
            for name, key in versions:
                try:
                    report = await self._answerable(uow, partner, name)
                except JusticeError as error:
                    refused.append((name, error))
                    continue
                # A late receipt for a version already answered or superseded changes nothing.
                if await uow.inbox.claim(key) and report.state is ReportState.SUBMITTED:
                    report.move_to(ReportState.DELIVERED)
                    report.update_time = now
                    await uow.reports.update(report)
            await uow.commit()
        return refused

    async def acknowledge(self, partner: str, name: str, key: str) -> None:
        """The recipient accepted the version (report_acknowledged)."""
        await self._answer(partner, name, key, lambda report, now: report.acknowledge(now))

    async def reject(self, partner: str, name: str, reason: str, detail: str, key: str) -> None:
        """The recipient refused the version (report_rejected, or a REJECTED receipt)."""
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,63}", reason):
            raise InvalidArgument.of([FieldViolation("reason", "UPPER_SNAKE, at most 64")])
        await self._answer(
            partner, name, key, lambda report, now: report.reject(reason, detail[:512], now)
        )

    async def _answer(
        self,
        partner: str,
        name: str,
        key: str,
        apply: Callable[[ReportVersion, datetime], None],
    ) -> None:
        """A partner's answer about one submitted version, applied at most once per `key`."""
        async with self._uow() as uow:
            report = await self._answerable(uow, partner, name)
            # The claim commits with the state change, or not at all.
            if not await uow.inbox.claim(key):
                return
            state = report.state
            apply(report, self._clock())
            if report.state is not state:
                await uow.reports.update(report)
            # An answer that changes nothing is still recorded as processed.
            await uow.commit()

    async def _answerable(
        self, uow: UnitOfWork | SubmissionWork, partner: str, name: str
    ) -> ReportVersion:
        """The submitted version `name`, which only its recipient `partner` may answer."""
        report_id, version = parse_name(name, "report")
        if version is None:
            raise InvalidArgument.of([FieldViolation("report", "name the version: @{version}")])
        report = await self._load(uow, report_id, version)
        if report.recipient != partner:
            raise PermissionDenied(
                "NOT_RECIPIENT",
                "only the office the version was submitted to may answer it",
                metadata={"name": f"{report.name}@{report.version}"},
            )
        return report

    async def export(self, name: str, scope: ReportScope | None = None) -> ReportVersion:
        report = await self.get(name, scope)
        if report.signed_xml is None:
            raise FailedPrecondition(
                "NOT_SIGNED", "only signed versions can be exported", metadata={"state": "DRAFT"}
            )
        return report

    async def verify_stored(self, name: str, scope: ReportScope | None = None) -> Verification:
        return self.verify_xml((await self.export(name, scope)).signed_xml or b"")

    def verify_xml(self, signed_xml: bytes) -> Verification:
        return verification(self._verifier.verify(signed_xml))

    async def _read(
        self, report_id: str, version: int | None, *, to_show: bool = False
    ) -> ReportVersion:
        """The version as committed now, outside any transaction; `to_show` a reader, as
        ReportReads.view gives it."""
        if self._reads is not None:
            read = self._reads.view if to_show else self._reads.get
            return _found(await read(report_id, version), report_id, version)
        async with self._uow() as uow:
            return await self._load(uow, report_id, version)

    async def _load(
        self, uow: UnitOfWork | SubmissionWork, report_id: str, version: int | None
    ) -> ReportVersion:
        return _found(await uow.reports.get(report_id, version), report_id, version)

    @staticmethod
    def _require_author(report: ReportVersion, actor: str, action: str) -> None:
        if report.author != actor:
            raise PermissionDenied(
                "NOT_AUTHOR",
                f"only the author may {action} this report",
                metadata={"action": action},
            )
