"""Fines end to end over a real nats-server: the register simulator answers owner lookups,
the mail house receives the letters, a bank pays, the executing state collects."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import nats as nats_client
import pytest
from nats.js.errors import NotFoundError
from sqlalchemy.engine import make_url
from sqlmodel import select

from justice.app import Application, build
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.exchange.bus import INBOX_STREAM, OUTBOX_STREAM
from justice.exchange.model import Direction
from justice.exchange.store import DeadLetterQuery, OutboxRow
from justice.fines.model import (
    Address,
    FineState,
    Money,
    Offence,
    PaymentOutcome,
    Person,
    PersonKind,
    Speed,
    TransferOutcome,
)
from justice.fines.service import (
    MESSAGE_TYPE_LOOKUP,
    MESSAGE_TYPE_LOOKUP_REPLY,
    MESSAGE_TYPE_PAYMENT,
    MESSAGE_TYPE_TRANSFER,
    MESSAGE_TYPE_TRANSFER_RESULT,
)
from justice.fines.v1 import fines_pb2 as pb
from justice.platform.config import FineRules
from justice.platform.errors import FailedPrecondition
from justice.platform.timestamps import timestamp
from tests.databases import postgres_schema
from tests.eventually import eventually
from tests.exchange_env import exchange_settings, nats_with_partners, partner_side, platform_url
from tests.fines_env import (
    EXECUTING_NL,
    MAIL_HOUSE,
    PARTNER_IDS,
    Clock,
    FinePartners,
    offence,
    register_partners,
    running_partners,
)


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_with_partners(tmp_path_factory.mktemp("nats"), PARTNER_IDS) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fines_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test's own database: a SQLite file, or (param "postgres") a private schema."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'justice.db'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture
async def app(
    pki: DevPki, nats: NatsServer, tmp_path: Path, clock: Clock, fines_database: str
) -> AsyncIterator[Application]:
    tariff = FineRules().tariff
    tariff["DANGEROUS_PARKING"] = {"*": Decimal("40")}
    rules = FineRules(
        tariff=tariff,
        notice_partner=MAIL_HOUSE,
        scheduler_interval_seconds=0,
        lookup_timeout_seconds=5,
        lookup_backoff_seconds=5,
        lookup_attempts=2,
    )
    settings = exchange_settings(pki, nats, tmp_path / "state", fines_database, fines=rules)
    application = await build(settings, clock)
    await register_partners(application, pki)
    yield application
    await application.close()


@pytest.fixture
async def partners(pki: DevPki, nats: NatsServer) -> AsyncIterator[FinePartners]:
    async with running_partners(pki, nats, answer_twice=True) as running:
        yield running


async def _state(app: Application, name: str, state: FineState) -> bool:
    return (await app.fines.service.get(name)).state is state


async def test_foreign_offence_is_noticed_then_paid_in_part_then_in_full(
    app: Application, partners: FinePartners
) -> None:
    service = app.fines.service
    fine = await service.register(offence("AB123C"), "cam-1")
    assert fine.state is FineState.OWNER_REQUESTED
    assert fine.amount == Money(Decimal("53.00"))
    await eventually(lambda: _state(app, fine.name, FineState.NOTICE_SENT), what="notice")
    noticed = await service.get(fine.name)
    assert noticed.holder is not None
    assert noticed.holder.name == "Jan de Vries"
    assert noticed.vehicle is not None
    assert noticed.vehicle.vin == "WVWZZZ1KZ6W000001"
    assert noticed.notice_language == "nl"
    letters = await eventually(lambda: _async(partners.mail.notices()))
    assert [letter.fine.payment_reference for letter in letters] == [noticed.payment_reference]
    assert letters[0].kind == pb.LETTER_NOTICE
    assert letters[0].pdf.startswith(b"%PDF")
    assert b"Signature" in letters[0].signed_xml
    # The register answered twice: the second reply changed nothing.
    await eventually(lambda: _async(len(partners.register.answered) >= 1))
    assert noticed.notices_sent == 1

    partial = await service.register_payment(
        "bank-tx-1", noticed.payment_reference, Money(Decimal("20.00")), noticed.create_time
    )
    assert partial.outcome is PaymentOutcome.PARTIAL
    assert partial.fine is not None
    assert partial.fine.state is FineState.PARTIALLY_PAID
    assert partial.fine.outstanding == Money(Decimal("33.00"))
    # The rest through the bank's partner message, sent twice: it applies once.
    notification = pb.PaymentNotification(
        payment_id="bank-tx-2",
        payment_reference=noticed.payment_reference,
        amount=pb.Money(amount="33.00", currency_code="EUR"),
        paid_time=timestamp(noticed.create_time),
    )
    await partners.bank.send(MESSAGE_TYPE_PAYMENT, notification.SerializeToString())
    await partners.bank.send(MESSAGE_TYPE_PAYMENT, notification.SerializeToString())
    await eventually(lambda: _state(app, fine.name, FineState.PAID), what="paid")
    paid = await service.get(fine.name)
    assert paid.paid == Money(Decimal("53.00"))
    again = await service.register_payment(
        "bank-tx-1", noticed.payment_reference, Money(Decimal("20.00")), noticed.create_time
    )
    assert again.outcome is PaymentOutcome.PARTIAL  # the first answer, nothing applied again
    assert (await service.get(fine.name)).paid == Money(Decimal("53.00"))
    stats = await service.statistics()
    assert stats.lookups_sent == 1
    assert stats.letters_sent == 1
    assert stats.collection_rate == Decimal("1.0000")


async def _async(value: object) -> object:
    return value


async def test_leasing_company_names_the_driver_who_gets_a_letter_in_german(
    app: Application, partners: FinePartners
) -> None:
    service = app.fines.service
    fine = await service.register(offence("LE999S"), "")
    await eventually(lambda: _state(app, fine.name, FineState.NOTICE_SENT), what="notice")
    first = await service.get(fine.name)
    assert first.holder is not None
    assert first.holder.kind is PersonKind.LEGAL
    assert first.holder.name == "Lease Holland B.V."
    assert first.owner is not None
    assert first.owner.name == "ING Lease B.V."
    assert first.end_user is not None
    assert first.end_user.name == "Pieter Bakker"
    assert first.notice_language == "nl"
    driver = Person(
        PersonKind.NATURAL,
        "Jürgen Weiß",
        Address("Königsallee 1", "40212", "Düsseldorf", "DE"),
    )
    moved = await service.designate_driver(fine.name, driver)
    assert moved.state is FineState.NOTICE_SENT
    assert moved.driver == driver
    assert moved.notice_language == "de"
    assert moved.notices_sent == 2

    async def two_letters() -> list[pb.FineNotice] | None:
        letters = [n for n in partners.mail.notices() if n.fine.name == fine.name]
        return letters if len(letters) == 2 else None

    letters = await eventually(two_letters, what="second letter")
    assert [letter.language for letter in letters] == ["nl", "de"]
    assert letters[1].fine.driver.name == "Jürgen Weiß"
    stored = await service.letters(fine.name)
    assert [(s.language, s.pdf) for s in stored] == [(n.language, n.pdf) for n in letters]


async def test_luxembourg_car_without_document_language_gets_french_not_english(
    app: Application, partners: FinePartners
) -> None:
    fine = await app.fines.service.register(offence("LX4242", "LU"), "")
    await eventually(lambda: _state(app, fine.name, FineState.NOTICE_SENT), what="notice")
    noticed = await app.fines.service.get(fine.name)
    assert noticed.holder is not None
    assert noticed.holder.document_language == ""
    assert noticed.notice_language in ("fr", "de")
    assert noticed.notice_language != "en"


async def test_a_letter_the_queue_never_wrote_is_written_by_the_scheduler(
    app: Application, partners: FinePartners, clock: Clock
) -> None:
    """Letters are written off the inbound path and nothing holds them durably but the
    fine's state: a process that stops before writing one leaves OWNER_IDENTIFIED, which
    the scheduler's sweep turns into the letter."""
    service = app.fines.service
    await service.close()  # as a stopping process: the queue takes no more letters
    # Not the Polish car: the erasure test looks for its owner in the shared streams.
    fine = await service.register(offence("LX4242", "LU"), "")
    await eventually(lambda: _state(app, fine.name, FineState.OWNER_IDENTIFIED), what="owner")
    assert (await service.get(fine.name)).notices_sent == 0
    await app.fines.scheduler.tick()
    noticed = await service.get(fine.name)
    assert noticed.state is FineState.NOTICE_SENT
    assert [letter.language for letter in await service.letters(fine.name)] == ["fr"]
    # Another pass finds nothing to write: one letter per fine.
    await app.fines.scheduler.tick()
    assert len(await service.letters(fine.name)) == 1
    # Past the article 5 deadline the sweep writes nothing: the fine is time-barred.
    late = await service.register(offence("AB123C"), "")
    await eventually(lambda: _state(app, late.name, FineState.OWNER_IDENTIFIED), what="owner")
    clock.advance(days=61)
    await app.fines.scheduler.tick()
    assert (await service.get(late.name)).state is FineState.TIME_BARRED
    assert await service.letters(late.name) == []


async def test_unknown_plate_ends_owner_unknown(app: Application, partners: FinePartners) -> None:
    fine = await app.fines.service.register(offence("ZZ000Z"), "")
    await eventually(lambda: _state(app, fine.name, FineState.OWNER_UNKNOWN), what="unknown")
    stats = await app.fines.service.statistics()
    assert stats.lookups_failed == 1


async def test_a_silent_register_is_asked_again_then_the_owner_is_unknown(
    app: Application, clock: Clock
) -> None:
    service = app.fines.service
    fine = await service.register(offence("MAB1234", "DE"), "")
    assert await app.fines.scheduler.tick() == 0
    clock.advance(seconds=6)  # past the 5 s timeout: backoff before the second attempt
    assert await app.fines.scheduler.tick() == 1
    assert (await service.get(fine.name)).state is FineState.OWNER_REQUESTED
    clock.advance(seconds=6)  # the backoff is over: asked again
    await app.fines.scheduler.tick()
    clock.advance(seconds=6)  # the second attempt times out: no attempts left
    await app.fines.scheduler.tick()
    assert (await service.get(fine.name)).state is FineState.OWNER_UNKNOWN
    stats = await service.statistics()
    assert stats.lookups_sent == 2
    assert stats.lookups_failed == 1


async def test_unpaid_fine_escalates_to_transfer_and_a_40_euro_fine_never_does(
    app: Application, partners: FinePartners, clock: Clock
) -> None:
    service = app.fines.service
    big = await service.register(offence(speed=Speed(152, 145, 120)), "")
    small = await service.register(
        offence(offence=Offence.DANGEROUS_PARKING, speed=None, provision="art. 24 WVR"), ""
    )
    assert small.amount == Money(Decimal("40.00"))
    for fine in (big, small):
        await eventually(lambda f=fine: _state(app, f.name, FineState.NOTICE_SENT))
    seen = []
    for days in (45, 16, 31):
        clock.advance(days=days)
        await app.fines.scheduler.tick()
        seen.append((await service.get(big.name)).state)
    assert seen == [FineState.REMINDER_SENT, FineState.PAYMENT_ORDER, FineState.FINAL]
    reminded = await service.get(big.name)
    assert reminded.surcharge == Money(Decimal("15.00"))
    await app.fines.scheduler.tick()
    transferred = await service.get(big.name)
    assert transferred.state is FineState.TRANSFERRED
    assert transferred.executing_partner == "fine-authority-nl"

    async def certificate() -> pb.TransferCertificate | None:
        for payload in partners.executing.received.get(MESSAGE_TYPE_TRANSFER, []):
            found = pb.TransferCertificate()
            found.ParseFromString(payload)
            return found
        return None

    seen_certificate = await eventually(certificate, what="transfer certificate")
    assert seen_certificate.fine == big.name
    assert seen_certificate.outstanding.amount == "174.00"  # 159 + 15 reminder surcharge
    # The 40 EUR fine reaches FINAL and stays there however long one waits.
    clock.advance(days=400)
    await app.fines.scheduler.tick()
    assert (await service.get(small.name)).state is FineState.FINAL
    # A payment after the transfer is reported to the executing state, not counted here.
    late = await service.register_payment(
        "bank-late", big.payment_reference, Money(Decimal("174.00")), transferred.update_time
    )
    assert late.outcome is PaymentOutcome.REPORTED_TO_EXECUTING_STATE
    assert (await service.get(big.name)).paid == Money(Decimal("0.00"))
    # The executing state collects in two goes: part first, then the rest.
    part = pb.TransferResult(
        fine=big.name,
        outcome=pb.OUTCOME_PARTIALLY_EXECUTED,
        collected=pb.Money(amount="100.00", currency_code="EUR"),
    )
    await partners.executing_client.send(MESSAGE_TYPE_TRANSFER_RESULT, part.SerializeToString())
    await eventually(lambda: _state(app, big.name, FineState.PARTIALLY_EXECUTED), what="part")
    partly = await service.get(big.name)
    assert (partly.paid, partly.outstanding) == (Money(Decimal("100.00")), Money(Decimal("74.00")))
    rest = pb.TransferResult(
        fine=big.name,
        outcome=pb.OUTCOME_EXECUTED,
        collected=pb.Money(amount="74.00", currency_code="EUR"),
    )
    await partners.executing_client.send(MESSAGE_TYPE_TRANSFER_RESULT, rest.SerializeToString())
    await eventually(lambda: _state(app, big.name, FineState.EXECUTED_ABROAD), what="executed")
    assert (await service.get(big.name)).outstanding == Money(Decimal("0.00"))
    # Once executed, a further partial report is an illegal move, refused with its states.
    with pytest.raises(FailedPrecondition) as late:
        await service.transfer_result(
            EXECUTING_NL,
            big.name,
            TransferOutcome.PARTIALLY_EXECUTED,
            Money(Decimal("1.00")),
            "fine-authority-nl/late-report",
        )
    assert late.value.reason == "ILLEGAL_TRANSITION"
    assert late.value.metadata == {"from": "EXECUTED_ABROAD", "to": "PARTIALLY_EXECUTED"}


async def _streams(nats: NatsServer) -> bytes:
    """Every message the partner streams still hold, read directly as the platform."""
    client = await nats_client.connect(platform_url(nats))
    try:
        js = client.jetstream()
        held = []
        for stream in (INBOX_STREAM, OUTBOX_STREAM):
            state = (await js.stream_info(stream)).state
            for seq in range(state.first_seq, state.last_seq + 1):
                with contextlib.suppress(NotFoundError):  # deleted
                    held.append((await js.get_msg(stream, seq)).data or b"")
        return b"\n".join(held)
    finally:
        await client.close()


def _dump(database_url: str) -> str:
    """Every row of every table, blobs as text and as hex, as a backup would hold them:
    SQLite's iterdump, or pg_dump of the test's schema (bytea comes out as hex)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(url.database or "") as connection:
            return "\n".join(connection.iterdump())
    schema = str(url.query["options"]).removeprefix("-csearch_path=")
    command = ["pg_dump", "--data-only", f"--schema={schema}", "--host", str(url.host)]
    command += ["--port", str(url.port or 5432), "--username", str(url.username)]
    return subprocess.run(
        [*command, str(url.database)], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("fines_database", ["sqlite", "postgres"], indirect=True)
async def test_closed_fines_lose_personal_data_after_retention_and_statistics_stay(
    app: Application, partners: FinePartners, clock: Clock, nats: NatsServer
) -> None:
    service = app.fines.service
    paid = await service.register(offence("AB123C"), "")
    leased = await service.register(offence("LE999S"), "")
    polish = await service.register(offence("WX12345", "PL"), "")
    for fine in (paid, leased, polish):
        await eventually(lambda f=fine: _state(app, f.name, FineState.NOTICE_SENT))
    driver = Person(
        PersonKind.NATURAL, "Günther Strauß", Address("Zeil 7", "60313", "Frankfurt", "DE")
    )
    await service.designate_driver(leased.name, driver)
    for n, fine in enumerate((paid, polish)):
        noticed = await service.get(fine.name)
        await service.register_payment(
            f"erase-tx-{n}", noticed.payment_reference, noticed.outstanding, noticed.create_time
        )
    await service.contest(leased.name, "I sold the car")
    await service.decide_contest(leased.name, upheld=False)
    # Every letter reached the mail house, so every message about the fines was sent.
    await eventually(lambda: _async(len(partners.mail.notices()) >= 4), what="letters")
    clock.advance(days=31)  # the outcome shows for 30 days, then the fines close
    await app.fines.scheduler.tick()
    fines = (paid, leased, polish)
    assert {(await service.get(f.name)).state for f in fines} == {FineState.CLOSED}
    # The register's answer (owner) and the letters (holder, driver) sit in the streams.
    # Only this test's people are looked for there: the module's other tests share them.
    in_streams = ["Łukasz Żółkiewski", "ul. Świętokrzyska 14", "Günther Strauß", "Zeil 7"]
    held = await _streams(nats)
    assert all(secret.encode() in held for secret in in_streams)
    before = await service.statistics()
    names = ["Jan de Vries", "Lease Holland", "ING Lease", "Pieter Bakker", "Günther Strauß"]
    dump = _dump(app.database.url)
    assert any(name in dump or name.encode().hex() in dump.lower() for name in names)

    clock.advance(days=364)
    await app.fines.scheduler.tick()
    assert (await service.get(paid.name)).holder is not None  # not yet: retention runs
    clock.advance(days=2)
    assert await app.fines.scheduler.tick() == 3
    held = await _streams(nats)
    for secret in in_streams:
        assert secret.encode() not in held, secret
    erased = await service.get(paid.name)
    assert erased.holder is None
    assert erased.detection.plate == "ERASED"
    assert await service.letters(leased.name) == []
    assert await service.statistics() == before
    dump = _dump(app.database.url)
    for secret in [*names, *in_streams, "Damrak", "AB123C", "LE999S", "WVWZZZ1KZ6W000001"]:
        assert secret not in dump, secret
        assert secret.encode().hex() not in dump.lower(), secret


@pytest.mark.parametrize("fines_database", ["sqlite", "postgres"], indirect=True)
async def test_a_refused_reply_about_an_erased_fine_keeps_no_name_in_its_dead_letter(
    app: Application,
    partners: FinePartners,
    clock: Clock,
    nats: NatsServer,
    pki: DevPki,
) -> None:
    """A register's reply the platform refuses (no lookup of ours, no address) is kept as a dead
    letter, byte for byte, and is about the fine whose lookup it answers: the fine's erasure
    blanks it, and the database keeps no name."""
    service = app.fines.service
    fine = await service.register(offence("AB123C"), "")
    await eventually(lambda: _state(app, fine.name, FineState.NOTICE_SENT), what="notice")
    async with app.database.sessions() as session:
        request_id = (
            await session.exec(
                select(OutboxRow.id).where(
                    OutboxRow.resource == fine.name,
                    OutboxRow.message_type == MESSAGE_TYPE_LOOKUP,
                )
            )
        ).one()
    secret = "Zbigniew Tajemniczy"
    reply = pb.OwnerLookupReply(
        lookup_id="no-such-lookup",
        holder=pb.Person(kind=pb.NATURAL, name=secret),
    )
    register = await partner_side(pki).connect(nats, "vehicle-register-nl")
    try:
        await register.send(MESSAGE_TYPE_LOOKUP_REPLY, reply.SerializeToString(), request_id)
    finally:
        await register.close()
    exchange = app.exchange
    assert exchange is not None

    async def refused() -> bool:
        letters = await exchange.service.list_dead_letters(
            DeadLetterQuery(size=50, direction=Direction.INBOUND)
        )
        return any(x.partner == "vehicle-register-nl" for x in letters)

    await eventually(refused, what="dead letter")
    kept = _dump(app.database.url)
    assert secret in kept or secret.encode().hex() in kept.lower()
    noticed = await service.get(fine.name)
    await service.register_payment(
        "dead-letter-tx", noticed.payment_reference, noticed.outstanding, noticed.create_time
    )
    clock.advance(days=31)
    await app.fines.scheduler.tick()
    assert (await service.get(fine.name)).state is FineState.CLOSED
    clock.advance(days=366)
    await app.fines.scheduler.tick()
    assert (await service.get(fine.name)).holder is None
    dump = _dump(app.database.url)
    assert secret not in dump
    assert secret.encode().hex() not in dump.lower()
    assert secret.encode() not in await _streams(nats)
