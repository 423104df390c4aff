"""The report domain and its use cases, with in-memory fakes: no sockets, no database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from justice.exchange.message import Link
from justice.platform.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from justice.reports.model import (
    TRANSITIONS,
    Attachment,
    Content,
    Limits,
    Offence,
    Person,
    PersonRole,
    ReportState,
    check_content,
)
from justice.reports.service import ReportService, StoredEvidence, parse_name
from tests.fakes.reports import ReportTables, ReportUnit
from tests.fakes.unit_of_work import Tables

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
COMPLETE = Content(
    case_number="AN.12.L3.1/26",
    reporting_unit="PZ Antwerpen",
    offences=(Offence("43A", "Art. 461 Sw."),),
    place="Meir 1",
    facts_time=NOW - timedelta(hours=2),
    persons=(Person(PersonRole.VICTIM, "An", "Peeters", date(1980, 1, 2)),),
    language="nl",
    narrative="Fietsdiefstal.",
)


class FakeSigner:
    def __init__(self) -> None:
        self.signed: list[tuple[bytes, str]] = []

    async def sign(self, document: bytes, signer_id: str) -> bytes:
        self.signed.append((document, signer_id))
        return document + b"<!-- signed -->"


@dataclass(frozen=True)
class FakeVerdict:
    integrity_ok: bool
    reason: str = "OK"
    detail: str = ""
    signer_subject: str | None = "CN=x"
    signing_time: datetime | None = NOW
    chains_to_ca: bool = True
    signed_root: Any = None


class FakeVerifier:
    def verify(self, data: bytes) -> FakeVerdict:
        return FakeVerdict(integrity_ok=data.endswith(b"<!-- signed -->"))


class FakeEvidence:
    """Evidence as the catalog reports it; `corrupt` ids fail their re-hash."""

    def __init__(self) -> None:
        self.items: dict[str, Attachment] = {}
        self.corrupt: set[str] = set()

    async def stored(self, evidence: str) -> StoredEvidence | None:
        found = self.items.get(evidence)
        return None if found is None else StoredEvidence(found, evidence not in self.corrupt)

    async def links(
        self, attachments: Sequence[Attachment], recipient: str, sharer: str, purpose: str
    ) -> tuple[Link, ...]:
        return tuple(
            Link(a.evidence, f"https://s3.test/{a.evidence}?for={recipient}", a.sha256, 1)
            for a in attachments
        )


@pytest.fixture
def evidence() -> FakeEvidence:
    return FakeEvidence()


@pytest.fixture
def store() -> Tables[ReportTables]:
    return Tables(ReportTables())


@pytest.fixture
def signer() -> FakeSigner:
    return FakeSigner()


@pytest.fixture
def service(
    store: Tables[ReportTables], signer: FakeSigner, evidence: FakeEvidence
) -> ReportService:
    return ReportService(
        uow=lambda: ReportUnit(store),
        signer=signer,
        verifier=FakeVerifier(),
        clock=lambda: NOW,
        limits=Limits(narrative_max_chars=50),
        default_recipient="prosecutor-antwerp",
        evidence=evidence,
    )


def test_transitions_never_return_to_draft_and_superseded_is_final() -> None:
    assert all(ReportState.DRAFT not in targets for targets in TRANSITIONS.values())
    assert TRANSITIONS[ReportState.SUPERSEDED] == frozenset()
    assert set(TRANSITIONS) == set(ReportState)


def test_content_checks_list_every_bad_field() -> None:
    bad = replace(
        COMPLETE,
        language="xx",
        narrative="x" * 51,
        persons=(Person(None, "A", "", date(2100, 1, 1), "no spaces!"),),
        attachments=(Attachment("evidence/a", "ABC", -1, "video"),),
    )
    with pytest.raises(InvalidArgument) as caught:
        check_content(bad, Limits(narrative_max_chars=50), NOW.date())
    fields = {v.field for v in caught.value.violations}
    assert fields == {
        "language",
        "narrative",
        "persons[0].role",
        "persons[0].family_name",
        "persons[0].birth_date",
        "persons[0].national_id",
        "attachments[0].sha256",
        "attachments[0].size_bytes",
        "attachments[0].media_type",
    }


def test_control_characters_are_refused_because_xml_cannot_carry_them() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_content(replace(COMPLETE, narrative="a\x00b"), Limits(), NOW.date())
    assert caught.value.violations[0].field == "narrative"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("reports/abc", ("abc", None)), ("reports/abc@3", ("abc", 3))],
)
def test_names(name: str, expected: tuple[str, int | None]) -> None:
    assert parse_name(name) == expected


@pytest.mark.parametrize(
    "name", ["reports/", "reports/a@0", "report/a", "reports/a/b", "reports/a@x"]
)
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_name(name)


async def test_sign_renders_valid_xml_signs_as_author_and_freezes(
    service: ReportService, signer: FakeSigner
) -> None:
    report = await service.create("officer-1", COMPLETE, "req-1")
    signed = await service.sign("officer-1", report.name)
    assert signed.state is ReportState.SIGNED
    document, signer_id = signer.signed[0]
    assert signer_id == "officer-1"
    assert b'<pv:Narrative xml:lang="nl">Fietsdiefstal.</pv:Narrative>' in document
    with pytest.raises(FailedPrecondition) as caught:
        await service.update("officer-1", report.name, COMPLETE, "")
    assert caught.value.reason == "REPORT_NOT_DRAFT"


async def test_only_the_author_signs(service: ReportService, store: Tables[ReportTables]) -> None:
    report = await service.create("officer-1", COMPLETE, "")
    with pytest.raises(PermissionDenied):
        await service.sign("officer-2", report.name)
    assert (await service.get(report.name)).state is ReportState.DRAFT


async def test_a_draft_edited_while_it_is_signed_is_not_signed(
    service: ReportService, signer: FakeSigner
) -> None:
    """The signature is made outside the transaction; the write refuses a stale draft."""
    report = await service.create("officer-1", COMPLETE, "")
    sign = signer.sign

    async def edited_meanwhile(document: bytes, signer_id: str) -> bytes:
        edited = replace(COMPLETE, narrative="Anders.")
        await service.update("officer-1", report.name, edited, "")
        return await sign(document, signer_id)

    signer.sign = edited_meanwhile  # type: ignore[method-assign]
    with pytest.raises(Aborted) as caught:
        await service.sign("officer-1", report.name)
    assert caught.value.reason == "CONCURRENT_CHANGE"
    stored = await service.get(report.name)
    assert (stored.state, stored.content.narrative) == (ReportState.DRAFT, "Anders.")


async def test_a_failed_submit_leaves_no_outbox_message(
    service: ReportService, store: Tables[ReportTables]
) -> None:
    report = await service.create("officer-1", COMPLETE, "")
    with pytest.raises(FailedPrecondition):
        await service.submit("officer-1", report.name, "")
    assert store.state.outbox == []
    await service.sign("officer-1", report.name)
    await service.submit("officer-1", report.name, "")
    (message,) = store.state.outbox
    assert message.recipient == "prosecutor-antwerp"
    assert message.subject == "justice.v1.partner.prosecutor-antwerp.inbox.report_submitted"
    assert message.payload.endswith(b"<!-- signed -->")


async def test_bad_recipient_is_invalid(service: ReportService) -> None:
    report = await service.create("officer-1", COMPLETE, "")
    await service.sign("officer-1", report.name)
    with pytest.raises(InvalidArgument):
        await service.submit("officer-1", report.name, "prosecutor.*")


async def test_amendment_supersedes_on_signing(service: ReportService) -> None:
    report = await service.create("officer-1", COMPLETE, "")
    with pytest.raises(FailedPrecondition):
        await service.amend("officer-1", report.name, "")  # a draft is not amendable
    await service.sign("officer-1", report.name)
    draft = await service.amend("officer-1", report.name, "am-1")
    assert (draft.version, draft.amends_version) == (2, 1)
    assert (await service.amend("officer-1", report.name, "am-1")).version == 2
    await service.sign("officer-1", report.name)
    assert (await service.get(f"{report.name}@1")).state is ReportState.SUPERSEDED
    assert (await service.get(report.name)).state is ReportState.SIGNED


async def test_unknown_report(service: ReportService) -> None:
    with pytest.raises(NotFound):
        await service.get("reports/nothere")


async def test_incomplete_report_is_refused_before_signing(
    service: ReportService, signer: FakeSigner
) -> None:
    report = await service.create("officer-1", replace(COMPLETE, offences=(), place=""), "")
    with pytest.raises(FailedPrecondition) as caught:
        await service.sign("officer-1", report.name)
    assert {v.field for v in caught.value.violations} == {"offences", "place"}
    assert signer.signed == []


async def test_facts_in_the_future_cannot_be_signed(service: ReportService) -> None:
    report = await service.create(
        "officer-1", replace(COMPLETE, facts_time=NOW + timedelta(days=1)), ""
    )
    with pytest.raises(FailedPrecondition):
        await service.sign("officer-1", report.name)


async def test_verify_reads_identity_only_from_a_valid_signature(service: ReportService) -> None:
    assert not service.verify_xml(b"<x/>").integrity_ok
    assert service.verify_xml(b"<x/><!-- signed -->").report == ""  # no signed root given


async def test_signing_takes_attachment_facts_from_the_evidence_store(
    service: ReportService, evidence: FakeEvidence, signer: FakeSigner
) -> None:
    stored = Attachment("evidence/cam-1", "ab" * 32, 4096, "video/mp4")
    evidence.items[stored.evidence] = stored
    draft = replace(COMPLETE, attachments=(Attachment("evidence/cam-1", "", 0, ""),))
    report = await service.create("officer-1", draft, "")
    signed = await service.sign("officer-1", report.name)
    assert signed.content.attachments == (stored,)
    assert f'sha256="{"ab" * 32}"'.encode() in signer.signed[0][0]


async def test_submission_carries_a_link_per_attachment_not_the_evidence(
    service: ReportService, evidence: FakeEvidence, store: Tables[ReportTables]
) -> None:
    stored = Attachment("evidence/cam-1", "ab" * 32, 4096, "video/mp4")
    evidence.items[stored.evidence] = stored
    draft = replace(COMPLETE, attachments=(stored,))
    report = await service.create("officer-1", draft, "")
    await service.sign("officer-1", report.name)
    await service.submit("officer-1", report.name, "")
    (message,) = store.state.outbox
    (link,) = message.links
    assert (link.name, link.sha256) == ("evidence/cam-1", "ab" * 32)
    assert link.url.endswith("for=prosecutor-antwerp")


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("missing", "EVIDENCE_MISSING"),
        ("corrupt", "EVIDENCE_CORRUPT"),
        ("differs", "ATTACHMENT_HASH_DIFFERS"),
    ],
)
async def test_signing_refuses_missing_or_altered_evidence(
    service: ReportService, evidence: FakeEvidence, signer: FakeSigner, setup: str, reason: str
) -> None:
    if setup != "missing":
        evidence.items["evidence/cam-1"] = Attachment("evidence/cam-1", "cd" * 32, 1, "image/jpeg")
    if setup == "corrupt":
        evidence.corrupt.add("evidence/cam-1")
    claimed = "ab" * 32 if setup == "differs" else ""
    draft = replace(COMPLETE, attachments=(Attachment("evidence/cam-1", claimed, 0, ""),))
    report = await service.create("officer-1", draft, "")
    with pytest.raises(FailedPrecondition) as caught:
        await service.sign("officer-1", report.name)
    assert caught.value.reason == reason
    assert signer.signed == []
    assert (await service.get(report.name)).state is ReportState.DRAFT


async def test_one_receipt_delivers_its_versions_in_one_transaction(
    service: ReportService, store: Tables[ReportTables]
) -> None:
    names = []
    for recipient in ("prosecutor-antwerp", "prosecutor-antwerp", "prosecutor-gent"):
        report = await service.create("officer-1", COMPLETE, "")
        await service.sign("officer-1", report.name)
        submitted = await service.submit("officer-1", report.name, recipient)
        names.append(f"{submitted.name}@{submitted.version}")
    commits = store.commits
    versions = [(name, f"settled:{i}") for i, name in enumerate(names)]
    unknown = "reports/0123456789abcdef01234567@1"

    refused = await service.delivered("prosecutor-antwerp", [*versions, (unknown, "settled:x")])

    assert store.commits == commits + 1
    # Another office's version and an unknown one do not stop the others.
    assert [(name, error.reason) for name, error in refused] == [
        (names[2], "NOT_RECIPIENT"),
        (unknown, "REPORT_NOT_FOUND"),
    ]
    states = [(await service.get(name)).state for name in names]
    assert states == [ReportState.DELIVERED, ReportState.DELIVERED, ReportState.SUBMITTED]
    assert store.state.claimed == {"settled:0", "settled:1"}
