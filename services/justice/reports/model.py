"""Official reports: the record, its states and the rules a version obeys.

Imports nothing from grpc, sqlmodel, nats, minio or signxml.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from justice.platform.cases import case_number_violations
from justice.platform.errors import FailedPrecondition, FieldViolation, InvalidArgument
from justice.platform.listing import Page


class ReportState(enum.Enum):
    DRAFT = "DRAFT"
    SIGNED = "SIGNED"
    SUBMITTED = "SUBMITTED"
    DELIVERED = "DELIVERED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    SUPERSEDED = "SUPERSEDED"
    # The recipient refused this version; amending it is the way forward.
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class ReportQuery:
    """Which reports ListReports asks the repository for (a port's value, so stores have it
    without importing the service)."""

    page: Page
    case_number: str | None = None
    author: str | None = None
    state: ReportState | None = None


# Every legal move. A signed version only ever moves forward along the exchange,
# or is superseded by a newer signed version; it never returns to DRAFT.
TRANSITIONS: dict[ReportState, frozenset[ReportState]] = {
    ReportState.DRAFT: frozenset({ReportState.SIGNED}),
    ReportState.SIGNED: frozenset({ReportState.SUBMITTED, ReportState.SUPERSEDED}),
    ReportState.SUBMITTED: frozenset(
        {ReportState.DELIVERED, ReportState.REJECTED, ReportState.SUPERSEDED}
    ),
    ReportState.DELIVERED: frozenset(
        {ReportState.ACKNOWLEDGED, ReportState.REJECTED, ReportState.SUPERSEDED}
    ),
    ReportState.ACKNOWLEDGED: frozenset({ReportState.SUPERSEDED}),
    ReportState.REJECTED: frozenset({ReportState.SUPERSEDED}),
    ReportState.SUPERSEDED: frozenset(),
}


class PersonRole(enum.Enum):
    SUSPECT = "SUSPECT"
    VICTIM = "VICTIM"
    WITNESS = "WITNESS"
    COMPLAINANT = "COMPLAINANT"


LANGUAGES = frozenset({"nl", "fr", "de", "en"})


@dataclass(frozen=True)
class Offence:
    code: str
    article: str
    description: str = ""


@dataclass(frozen=True)
class Person:
    role: PersonRole | None
    given_name: str
    family_name: str
    birth_date: date | None
    national_id: str = ""


@dataclass(frozen=True)
class Attachment:
    evidence: str
    sha256: str
    size_bytes: int
    media_type: str


@dataclass(frozen=True)
class Content:
    """What the author writes; everything else about a version is the platform's."""

    case_number: str = ""
    reporting_unit: str = ""
    offences: tuple[Offence, ...] = ()
    place: str = ""
    facts_time: datetime | None = None
    persons: tuple[Person, ...] = ()
    language: str = ""
    narrative: str = ""
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Limits:
    narrative_max_chars: int = 100_000
    max_offences: int = 50
    max_persons: int = 200
    max_attachments: int = 1_000
    max_short_text: int = 256


@dataclass
class ReportVersion:
    report_id: str
    version: int
    author: str
    content: Content
    written_time: datetime
    create_time: datetime
    update_time: datetime
    state: ReportState = ReportState.DRAFT
    amends_version: int = 0
    request_id: str = ""
    sign_time: datetime | None = None
    signed_xml: bytes | None = None
    signed_sha256: str = ""
    # Bumped on every change; the store refuses a write based on a stale revision.
    revision: int = 1
    # Partner id the version was submitted to, and why it refused it (if it did).
    recipient: str = ""
    rejection_reason: str = ""

    @property
    def name(self) -> str:
        return f"reports/{self.report_id}"

    def move_to(self, target: ReportState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION",
                f"a {self.state.value} report cannot become {target.value}",
                metadata={"from": self.state.value, "to": target.value},
            )
        self.state = target

    def acknowledge(self, now: datetime) -> None:
        """The recipient's acknowledgement; it implies delivery if that receipt is late."""
        if self.state is ReportState.SUBMITTED:
            self.move_to(ReportState.DELIVERED)
        self.move_to(ReportState.ACKNOWLEDGED)
        self.update_time = now

    def reject(self, reason: str, detail: str, now: datetime) -> None:
        self.move_to(ReportState.REJECTED)
        self.rejection_reason = f"{reason}: {detail}" if detail else reason
        self.update_time = now

    def edit(self, content: Content, now: datetime) -> None:
        self.ensure_draft()
        self.content = content
        self.written_time = now
        self.update_time = now

    def ensure_draft(self) -> None:
        if self.state is not ReportState.DRAFT:
            raise FailedPrecondition(
                "REPORT_NOT_DRAFT",
                f"version {self.version} is {self.state.value}; signed versions never change",
                metadata={"state": self.state.value},
            )

    def sign(self, signed_xml: bytes, sha256: str, now: datetime) -> None:
        self.move_to(ReportState.SIGNED)
        self.signed_xml = signed_xml
        self.signed_sha256 = sha256
        self.sign_time = now
        self.update_time = now

    def amendment(self, request_id: str, now: datetime) -> ReportVersion:
        """A new draft carrying this version's content, pointing back at it."""
        if self.state in (ReportState.DRAFT, ReportState.SUPERSEDED):
            raise FailedPrecondition(
                "NOT_AMENDABLE",
                f"only the latest signed version can be amended; this one is {self.state.value}",
                metadata={"state": self.state.value},
            )
        return ReportVersion(
            report_id=self.report_id,
            version=self.version + 1,
            author=self.author,
            content=self.content,
            written_time=now,
            create_time=now,
            update_time=now,
            amends_version=self.version,
            request_id=request_id,
        )


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MEDIA_TYPE = re.compile(r"^[a-z]+/[a-z0-9][a-z0-9.+-]{0,126}$")
_EVIDENCE = re.compile(r"^evidence/[A-Za-z0-9_-]{1,64}$")
_NATIONAL_ID = re.compile(r"^[A-Za-z0-9.-]{1,32}$")
# XML 1.0 cannot carry these; refusing them here keeps rendering total.
_FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(field_name: str, value: str, max_len: int) -> Iterable[FieldViolation]:
    if len(value) > max_len:
        yield FieldViolation(field_name, f"at most {max_len} characters")
    if _FORBIDDEN_CHARS.search(value):
        yield FieldViolation(field_name, "contains control characters")


def check_case_number(case_number: str) -> None:
    """A case number asked about (CheckCase) has the syntax a stored one has."""
    violations = case_number_violations("case_number", case_number)
    if violations:
        raise InvalidArgument.of(violations)


def check_content(content: Content, limits: Limits, today: date) -> None:
    """Format rules every draft obeys; raises InvalidArgument listing every bad field."""
    v: list[FieldViolation] = []
    if content.case_number:
        v += case_number_violations("case_number", content.case_number)
    v += _text("reporting_unit", content.reporting_unit, limits.max_short_text)
    v += _text("place", content.place, limits.max_short_text)
    if content.language and content.language not in LANGUAGES:
        v.append(FieldViolation("language", "one of " + ", ".join(sorted(LANGUAGES))))
    v += _text("narrative", content.narrative, limits.narrative_max_chars)
    if len(content.offences) > limits.max_offences:
        v.append(FieldViolation("offences", f"at most {limits.max_offences}"))
    for i, offence in enumerate(content.offences):
        where = f"offences[{i}]"
        if not offence.code.strip():
            v.append(FieldViolation(f"{where}.code", "required"))
        if not offence.article.strip():
            v.append(FieldViolation(f"{where}.article", "required"))
        v += _text(f"{where}.code", offence.code, 32)
        v += _text(f"{where}.article", offence.article, limits.max_short_text)
        v += _text(f"{where}.description", offence.description, 4 * limits.max_short_text)
    if len(content.persons) > limits.max_persons:
        v.append(FieldViolation("persons", f"at most {limits.max_persons}"))
    for i, person in enumerate(content.persons):
        where = f"persons[{i}]"
        if person.role is None:
            v.append(FieldViolation(f"{where}.role", "required"))
        if not person.family_name.strip():
            v.append(FieldViolation(f"{where}.family_name", "required"))
        v += _text(f"{where}.given_name", person.given_name, limits.max_short_text)
        v += _text(f"{where}.family_name", person.family_name, limits.max_short_text)
        if person.birth_date is not None and person.birth_date > today:
            v.append(FieldViolation(f"{where}.birth_date", "in the future"))
        if person.national_id and not _NATIONAL_ID.match(person.national_id):
            v.append(FieldViolation(f"{where}.national_id", "1-32 letters, digits, . or -"))
    if len(content.attachments) > limits.max_attachments:
        v.append(FieldViolation("attachments", f"at most {limits.max_attachments}"))
    for i, att in enumerate(content.attachments):
        where = f"attachments[{i}]"
        if not _EVIDENCE.match(att.evidence):
            v.append(FieldViolation(f"{where}.evidence", "an evidence/{id} name"))
        # Empty hash and media type: filled in from the evidence record at signing.
        if att.sha256 and not _SHA256.match(att.sha256):
            v.append(FieldViolation(f"{where}.sha256", "64 lower-case hex digits"))
        if att.size_bytes < 0:
            v.append(FieldViolation(f"{where}.size_bytes", "not negative"))
        if att.media_type and not _MEDIA_TYPE.match(att.media_type):
            v.append(FieldViolation(f"{where}.media_type", "a media type such as video/mp4"))
    if v:
        raise InvalidArgument.of(v)


def check_complete(content: Content, now: datetime) -> None:
    """What a version needs before it can carry a signature."""
    v: list[FieldViolation] = []
    for name in ("case_number", "reporting_unit", "place", "language", "narrative"):
        if not getattr(content, name).strip():
            v.append(FieldViolation(name, "required before signing"))
    if not content.offences:
        v.append(FieldViolation("offences", "at least one before signing"))
    if content.facts_time is None:
        v.append(FieldViolation("facts_time", "required before signing"))
    elif content.facts_time > now:
        v.append(FieldViolation("facts_time", "in the future"))
    if v:
        raise FailedPrecondition(
            "REPORT_INCOMPLETE", "the report is not complete enough to sign", violations=v
        )
