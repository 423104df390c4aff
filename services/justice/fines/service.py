"""Fine use cases: register, owner lookup, letters, payments, contests, escalation.

Owns the transaction and writes the outbox row in it; receives its ports (unit of work,
clock, rules) from fines.compose. A fine's move and the message it causes commit together.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from justice.exchange.message import OutgoingMessage
from justice.fines import messages
from justice.fines.letter import LetterKind
from justice.fines.model import (
    EXECUTING_ABROAD,
    Deadlines,
    Detection,
    Escalation,
    Fine,
    FineState,
    Lookup,
    LookupPhase,
    Money,
    Payment,
    PaymentOutcome,
    Person,
    PersonKind,
    Tariff,
    TransferOutcome,
    Vehicle,
    check_detection,
    check_payment_reference,
    notice_language,
    payment_reference,
)
from justice.fines.notice_queue import NoticeQueue
from justice.fines.ports import (
    FineFigures,
    FineQuery,
    LetterDocuments,
    Letters,
    MessageCopies,
    UnitOfWork,
)
from justice.fines.v1 import fines_pb2 as pb
from justice.platform.errors import (
    Aborted,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from justice.platform.listing import Page
from justice.platform.timestamps import timestamp

MESSAGE_TYPE_LOOKUP = "owner_lookup_request"
MESSAGE_TYPE_LOOKUP_REPLY = "owner_lookup_reply"
MESSAGE_TYPE_NOTICE = "fine_notice"
MESSAGE_TYPE_PAYMENT = "payment_received"
MESSAGE_TYPE_TRANSFER = "fine_transfer"
MESSAGE_TYPE_TRANSFER_RESULT = "fine_transfer_result"
MESSAGE_TYPE_PAYMENT_AFTER_TRANSFER = "payment_after_transfer"
# Annex I purpose code: cross-border enforcement of a road-safety-related traffic offence.
LOOKUP_PURPOSE = "CBE"

_NAME = re.compile(r"^fines/([A-Za-z0-9_-]{1,64})$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_PAYMENT_ID = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
# Escalation and retries look at this many due rows per transaction.
_BATCH = 200


@dataclass(frozen=True)
class Partners:
    """Who the fines talk to: partner ids by role and country."""

    home_country: str = "BE"
    register_prefix: str = "vehicle-register-"
    collection_prefix: str = "fine-authority-"
    notice_partner: str = "fine-post"

    def register(self, country: str) -> str:
        return self.register_prefix + country.lower()

    def collection(self, country: str) -> str:
        return self.collection_prefix + country.lower()


@dataclass(frozen=True)
class LookupPolicy:
    timeout: timedelta = timedelta(seconds=30)
    attempts: int = 3
    backoff: timedelta = timedelta(seconds=60)

    def backoff_after(self, attempt: int) -> timedelta:
        return self.backoff * int(2 ** (attempt - 1))


@dataclass(frozen=True)
class FineRules:
    tariff: Tariff
    deadlines: Deadlines = field(default_factory=Deadlines)
    partners: Partners = field(default_factory=Partners)
    lookup: LookupPolicy = field(default_factory=LookupPolicy)
    languages: tuple[str, ...] = ("nl", "fr", "de", "en", "pl", "ro", "es")
    auto_notice: bool = True


@dataclass(frozen=True)
class PaymentResult:
    outcome: PaymentOutcome
    fine: Fine | None
    refund: Money


@dataclass(frozen=True)
class Statistics:
    by_state: dict[str, tuple[int, Money]]
    by_country: dict[str, tuple[int, Money]]
    by_offence: dict[str, tuple[int, Money]]
    lookups_sent: int
    lookups_failed: int
    letters_sent: int
    collection_rate: Decimal


@dataclass(frozen=True)
class OwnerAnswer:
    """A register's reply to one lookup (Annex I), or its NOT_FOUND or refusal."""

    lookup_id: str
    not_found: bool
    refusal: str = ""
    vehicle: Vehicle | None = None
    holder: Person | None = None
    owner: Person | None = None
    end_user: Person | None = None


def parse_name(name: str, where: str = "name") -> str:
    match = _NAME.match(name)
    if match is None:
        raise InvalidArgument.of([FieldViolation(where, "expected fines/{fine}")])
    return match.group(1)


def _new_id() -> str:
    # Time-ordered, so that ids sort by creation and page tokens are stable.
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


class FineService:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        clock: Callable[[], datetime],
        rules: FineRules,
        letters: Letters,
        copies: MessageCopies | None = None,
        notice_concurrency: int = 4,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._rules = rules
        self._letters = letters
        self._copies = copies
        self._notices = NoticeQueue(self._notice_for, notice_concurrency)

    @property
    def rules(self) -> FineRules:
        return self._rules

    # -- registration and the owner lookup ------------------------------------------------

    async def register(self, detection: Detection, request_id: str) -> Fine:
        if request_id and not _REQUEST_ID.match(request_id):
            raise InvalidArgument.of([FieldViolation("request_id", "1-128 of A-Z a-z 0-9 _ . : -")])
        now = self._clock()
        check_detection(detection, now)
        assert detection.offence is not None  # checked above
        amount = self._rules.tariff.amount(detection.offence, detection.speed)
        async with self._uow() as uow:
            if request_id:
                earlier = await uow.fines.by_request(request_id)
                if earlier is not None:
                    return earlier
            fine = Fine(
                fine_id=_new_id(),
                detection=detection,
                amount=amount,
                # Ten random digits; the unique index refuses the rare repeat (ABORTED).
                payment_reference=payment_reference(secrets.randbelow(10**10 - 1) + 1),
                create_time=now,
                update_time=now,
                request_id=request_id,
                paid=Money.zero(amount.currency),
                surcharge=Money.zero(amount.currency),
            )
            # A plate of our own state is the national procedure's (its own register and
            # letters): never a cross-border lookup.
            if detection.registration_country == self._rules.partners.home_country:
                fine.move_to(FineState.DOMESTIC_PROCEDURE, now)
            else:
                # Moved before it is written: one INSERT, not an INSERT and an UPDATE (each
                # statement is a wait on the event loop the inbound work shares).
                fine.move_to(FineState.OWNER_REQUESTED, now)
            await uow.fines.add(fine)
            if fine.state is FineState.OWNER_REQUESTED:
                await self._request_owner(uow, fine, attempt=1, now=now)
            await uow.commit()
            return fine

    async def _request_owner(
        self, uow: UnitOfWork, fine: Fine, attempt: int, now: datetime
    ) -> None:
        d = fine.detection
        lookup_id = f"{fine.fine_id}-{attempt}"
        request = pb.OwnerLookupRequest(
            lookup_id=lookup_id,
            plate=d.plate,
            registration_country=d.registration_country,
            offence_country=d.offence_country,
            reference_time=timestamp(d.offence_time),
            purpose=LOOKUP_PURPOSE,
        )
        await uow.outbox.add(
            OutgoingMessage(
                recipient=self._rules.partners.register(d.registration_country),
                message_type=MESSAGE_TYPE_LOOKUP,
                payload=request.SerializeToString(),
                subject_ref=fine.name,
            )
        )
        await uow.lookups.add(
            Lookup(
                lookup_id,
                fine.fine_id,
                attempt,
                LookupPhase.WAITING,
                now + self._rules.lookup.timeout,
            )
        )
        if fine.state is not FineState.OWNER_REQUESTED:
            fine.move_to(FineState.OWNER_REQUESTED, now)
            await uow.fines.update(fine)
        await uow.fines.count_lookup(fine.fine_id, failed=False)

    async def owner_answered(self, answer: OwnerAnswer, key: str) -> Fine | None:
        """A register's reply; a duplicate (same envelope, or a late reply to an earlier
        attempt) changes nothing. The letter is not written here: rendering and signing it
        (~30 ms of CPU) would hold the inbound consumer, which takes one message at a time,
        so the identified fine is handed to the notice queue once committed."""
        async with self._uow() as uow:
            if not await uow.inbox.claim(key):
                return None
            lookup = await uow.lookups.get(answer.lookup_id)
            if lookup is None:
                raise NotFound("LOOKUP_NOT_FOUND", f"no owner lookup {answer.lookup_id}")
            fine = await self._load(uow, lookup.fine_id)
            lookup.phase = LookupPhase.ANSWERED
            await uow.lookups.save(lookup)
            if fine.state is not FineState.OWNER_REQUESTED:
                await uow.commit()  # the claim, so a redelivery is not looked at again
                return fine
            now = self._clock()
            identified = not (answer.not_found or answer.refusal or answer.holder is None)
            if identified:
                self._identify(fine, answer, now)
                await uow.fines.update(fine)
            else:
                fine.move_to(FineState.OWNER_UNKNOWN, now)
                await uow.fines.update(fine)
                await uow.fines.count_lookup(fine.fine_id, failed=True)
            await uow.commit()
        if identified and self._rules.auto_notice:
            # A copy: the queue's letter changes it, the caller keeps what was committed.
            self._notices.submit(fine.fine_id, copy.deepcopy(fine))
        return fine

    async def notice_identified(self, fine_id: str) -> Fine | None:
        """The article 5 letter of a fine whose owner was just identified, rendered and
        signed before the write transaction opens (it would otherwise hold SQLite's one
        writer) and used only if the fine has not changed meanwhile. None when there is
        nothing to send: already sent, changed, or no catalogue fits (IssueNotice then)."""
        async with self._uow() as uow:
            fine = await uow.fines.get(fine_id)
        return None if fine is None else await self._notice_for(fine)

    async def _notice_for(self, fine: Fine) -> Fine | None:
        """`notice_identified` for a fine as read (or as the owner reply committed it: the
        queue needs no read of its own); the write checks it has not changed since."""
        if fine.state is not FineState.OWNER_IDENTIFIED:
            return None
        now = self._clock()
        if fine.due_escalation(now, self._rules.deadlines) is Escalation.TIME_BAR:
            return None  # too late for an article 5 letter: the scheduler time-bars it
        try:
            self._prepare_notice(fine, now)
        except FailedPrecondition:
            return None
        letter = await self._letters.render(fine, LetterKind.NOTICE)
        try:
            async with self._uow() as uow:
                await uow.fines.update(fine)  # ABORTED when it changed since it was read
                await self._send_letter(uow, fine, letter, LetterKind.NOTICE, now)
                await uow.commit()
        except Aborted:
            return None
        return fine

    async def notice_all_identified(self) -> int:
        """The scheduler's sweep: letters the queue did not write (the process stopped
        first) are written now. Returns how many went out."""
        if not self._rules.auto_notice:
            return 0
        sent = 0
        after = ""
        while True:
            async with self._uow() as uow:
                waiting = await uow.fines.list(
                    FineQuery(Page(_BATCH, after), state=FineState.OWNER_IDENTIFIED)
                )
            for fine in waiting:
                sent += await self.notice_identified(fine.fine_id) is not None
            if len(waiting) < _BATCH:
                return sent
            after = waiting[-1].fine_id

    def warm_letters(self) -> None:
        """This process answers owner replies (it runs the inbound consumer): the letter
        renderers start now, not with the first letter."""
        self._letters.warm()

    async def close(self) -> None:
        """Stops the letters still in the queue; the scheduler's sweep writes them later."""
        await self._notices.close()
        await self._letters.close()

    @staticmethod
    def _identify(fine: Fine, answer: OwnerAnswer, now: datetime) -> None:
        fine.vehicle = answer.vehicle
        fine.holder, fine.owner, fine.end_user = answer.holder, answer.owner, answer.end_user
        fine.move_to(FineState.OWNER_IDENTIFIED, now)

    async def retry_lookups(self) -> int:
        """Lookups past their deadline: ask again after a backoff, or give up (OWNER_UNKNOWN)."""
        now = self._clock()
        moved = 0
        async with self._uow() as uow:
            for lookup in await uow.lookups.due(now, _BATCH):
                fine = await self._load(uow, lookup.fine_id)
                policy = self._rules.lookup
                if fine.state is not FineState.OWNER_REQUESTED:
                    lookup.phase = LookupPhase.ANSWERED
                elif lookup.phase is LookupPhase.BACKOFF:
                    lookup.phase = LookupPhase.FAILED
                    await self._request_owner(uow, fine, lookup.attempts + 1, now)
                elif lookup.attempts < policy.attempts:
                    lookup.phase = LookupPhase.BACKOFF
                    lookup.deadline = now + policy.backoff_after(lookup.attempts)
                else:
                    lookup.phase = LookupPhase.FAILED
                    fine.move_to(FineState.OWNER_UNKNOWN, now)
                    await uow.fines.update(fine)
                    await uow.fines.count_lookup(fine.fine_id, failed=True)
                await uow.lookups.save(lookup)
                moved += 1
            await uow.commit()
        return moved

    # -- letters --------------------------------------------------------------------------

    async def issue_notice(self, name: str) -> Fine:
        fine_id = parse_name(name)
        async with self._uow() as uow:
            fine = await self._load(uow, fine_id)
            await self._notice(uow, fine, self._clock())
            await uow.commit()
            return fine

    async def _notice(self, uow: UnitOfWork, fine: Fine, now: datetime) -> None:
        self._prepare_notice(fine, now)
        await uow.fines.update(fine)
        await self._letter(uow, fine, LetterKind.NOTICE, now)

    def _prepare_notice(self, fine: Fine, now: datetime) -> None:
        """The article 5 letter's effect on the fine: language, due date, NOTICE_SENT."""
        if fine.state not in (FineState.OWNER_IDENTIFIED, FineState.DRIVER_DESIGNATED):
            raise FailedPrecondition(
                "NOT_NOTIFIABLE",
                f"a {fine.state.value} fine gets no letter",
                metadata={"state": fine.state.value},
            )
        person = fine.liable
        if person is None:
            raise FailedPrecondition("NO_LIABLE_PERSON", "nobody to write to")
        # A holder's letter follows the registration state; a driver's, where they live.
        d = fine.detection
        country = person.address.country if fine.driver is not None else d.registration_country
        fine.notice_language = notice_language(
            person.document_language, country, self._rules.languages
        )
        fine.due_time = now + timedelta(days=self._rules.deadlines.payment_days)
        fine.notices_sent += 1
        fine.move_to(FineState.NOTICE_SENT, now)

    async def designate_driver(self, name: str, driver: Person) -> Fine:
        """A legal-person holder names the driver: the fine moves to them, with a new letter."""
        fine_id = parse_name(name)
        async with self._uow() as uow:
            fine = await self._load(uow, fine_id)
            if fine.holder is None or fine.holder.kind is not PersonKind.LEGAL:
                raise FailedPrecondition(
                    "HOLDER_NOT_LEGAL_PERSON", "only a company holding the vehicle names a driver"
                )
            now = self._clock()
            fine.driver = driver
            fine.move_to(FineState.DRIVER_DESIGNATED, now)
            await self._notice(uow, fine, now)
            await uow.commit()
            return fine

    # -- payments and contests -----------------------------------------------------------

    async def register_payment(
        self, payment_id: str, reference: str, money: Money, paid_time: datetime, key: str = ""
    ) -> PaymentResult:
        """Idempotent on payment_id: a repeat returns the first outcome and changes nothing."""
        v: list[FieldViolation] = []
        if not _PAYMENT_ID.match(payment_id):
            v.append(FieldViolation("payment_id", "1-128 of A-Z a-z 0-9 _ . : / -"))
        if money.amount <= 0:
            v.append(FieldViolation("amount.amount", "positive"))
        if v:
            raise InvalidArgument.of(v)
        reference = check_payment_reference(reference)
        async with self._uow() as uow:
            if key and not await uow.inbox.claim(key):
                earlier = await uow.payments.get(payment_id)
                assert earlier is not None
                return await self._result(uow, earlier)
            earlier = await uow.payments.get(payment_id)
            if earlier is not None:
                return await self._result(uow, earlier)
            now = self._clock()
            fine = await uow.fines.by_reference(reference)
            refund = Money.zero(money.currency)
            if fine is None:
                outcome = PaymentOutcome.UNMATCHED
            elif fine.state in EXECUTING_ABROAD:
                # Collection is the executing state's now: it hears of the payment.
                outcome = PaymentOutcome.REPORTED_TO_EXECUTING_STATE
                message = pb.PaymentAfterTransfer(
                    fine=fine.name, payment_id=payment_id, amount=messages.money_to_proto(money)
                )
                await uow.outbox.add(
                    OutgoingMessage(
                        recipient=fine.executing_partner,
                        message_type=MESSAGE_TYPE_PAYMENT_AFTER_TRANSFER,
                        payload=message.SerializeToString(),
                        subject_ref=fine.name,
                    )
                )
            else:
                owed = fine.outstanding
                fine.pay(money, now)
                await uow.fines.update(fine)
                if money.amount < owed.amount:
                    outcome = PaymentOutcome.PARTIAL
                elif money.amount == owed.amount:
                    outcome = PaymentOutcome.FULL
                else:
                    outcome = PaymentOutcome.OVERPAID
                    refund = money - owed
            payment = Payment(
                payment_id=payment_id,
                reference=reference,
                money=money,
                paid_time=paid_time,
                fine_id=fine.fine_id if fine else None,
                outcome=outcome,
                refund=refund,
            )
            await uow.payments.add(payment)
            await uow.commit()
            return PaymentResult(outcome, fine, refund)

    async def _result(self, uow: UnitOfWork, payment: Payment) -> PaymentResult:
        fine = await uow.fines.get(payment.fine_id) if payment.fine_id else None
        return PaymentResult(payment.outcome, fine, payment.refund)

    async def contest(self, name: str, grounds: str) -> Fine:
        if not grounds.strip():
            raise InvalidArgument.of([FieldViolation("grounds", "required")])
        fine_id = parse_name(name)
        async with self._uow() as uow:
            fine = await self._load(uow, fine_id)
            before = fine.state
            fine.move_to(FineState.CONTESTED, self._clock())
            fine.contested_from = before
            await uow.fines.update(fine)
            await uow.commit()
            return fine

    async def decide_contest(self, name: str, upheld: bool) -> Fine:
        fine_id = parse_name(name)
        async with self._uow() as uow:
            fine = await self._load(uow, fine_id)
            if fine.state is not FineState.CONTESTED:
                raise FailedPrecondition(
                    "NOT_CONTESTED", f"a {fine.state.value} fine is not contested"
                )
            now = self._clock()
            if upheld:
                fine.move_to(fine.contested_from or FineState.NOTICE_SENT, now)
            else:
                fine.move_to(FineState.CANCELLED, now)
            fine.contested_from = None
            await uow.fines.update(fine)
            await uow.commit()
            return fine

    # -- escalation and transfer ----------------------------------------------------------

    async def escalate(self) -> int:
        """Every step the deadlines owe at the clock's now; returns how many were taken."""
        now = self._clock()
        deadlines = self._rules.deadlines
        taken = 0
        after = ""
        while True:
            async with self._uow() as uow:
                batch = await uow.fines.escalatable(after, _BATCH)
                for fine in batch:
                    step = fine.due_escalation(now, deadlines)
                    if step is not None:
                        await self._take(uow, fine, step, now)
                        taken += 1
                await uow.commit()
            if len(batch) < _BATCH:
                return taken
            after = batch[-1].fine_id

    async def _take(self, uow: UnitOfWork, fine: Fine, step: Escalation, now: datetime) -> None:
        d = self._rules.deadlines
        if step is Escalation.TIME_BAR:
            fine.move_to(FineState.TIME_BARRED, now)
        elif step is Escalation.REMINDER:
            fine.surcharge = fine.surcharge + Money(d.reminder_surcharge, fine.amount.currency)
            fine.move_to(FineState.REMINDER_SENT, now)
            fine.notices_sent += 1
            await self._letter(uow, fine, LetterKind.REMINDER, now)
        elif step is Escalation.PAYMENT_ORDER:
            fine.move_to(FineState.PAYMENT_ORDER, now)
            fine.notices_sent += 1
            await self._letter(uow, fine, LetterKind.PAYMENT_ORDER, now)
        elif step is Escalation.FINAL:
            fine.move_to(FineState.FINAL, now)
        elif step is Escalation.CLOSE:
            fine.move_to(FineState.CLOSED, now)
        else:
            await self._transfer(uow, fine, now)
        await uow.fines.update(fine)

    async def _letter(self, uow: UnitOfWork, fine: Fine, kind: LetterKind, now: datetime) -> None:
        """A signed letter to the liable person: stored, and sent to the mail house."""
        await self._send_letter(uow, fine, await self._letters.render(fine, kind), kind, now)

    async def _send_letter(
        self, uow: UnitOfWork, fine: Fine, letter: LetterDocuments, kind: LetterKind, now: datetime
    ) -> None:
        await uow.letters.add(fine.fine_id, fine.notices_sent, letter, now)
        notice = pb.FineNotice(
            fine=messages.fine_to_proto(fine),
            kind=pb.LetterKind.Value(f"LETTER_{kind.name}"),
            language=letter.language,
            pdf=letter.pdf,
            signed_xml=letter.signed_xml,
        )
        await uow.outbox.add(
            OutgoingMessage(
                recipient=self._rules.partners.notice_partner,
                message_type=MESSAGE_TYPE_NOTICE,
                payload=notice.SerializeToString(),
                subject_ref=fine.name,
            )
        )

    async def _transfer(self, uow: UnitOfWork, fine: Fine, now: datetime) -> None:
        """Framework Decision 2005/214/JHA: the residence state's authority collects."""
        person = fine.liable
        assert person is not None  # due_escalation only transfers a fine with a liable person
        fine.executing_partner = self._rules.partners.collection(person.address.country)
        fine.move_to(FineState.TRANSFERRED, now)
        d = fine.detection
        certificate = pb.TransferCertificate(
            fine=fine.name,
            offence=messages.offence_to_proto(d.offence),
            offence_time=timestamp(d.offence_time),
            offence_country=d.offence_country,
            liable_person=messages.person_to_proto(person),
            amount=messages.money_to_proto(fine.total),
            outstanding=messages.money_to_proto(fine.outstanding),
            final_time=timestamp(now),
        )
        await uow.outbox.add(
            OutgoingMessage(
                recipient=fine.executing_partner,
                message_type=MESSAGE_TYPE_TRANSFER,
                payload=certificate.SerializeToString(),
                subject_ref=fine.name,
            )
        )

    async def erase_expired(self) -> int:
        """Personal data of fines closed longer than the retention: erased from the fine, its
        letters, the messages sent about it and the bus's copies of those and of the replies
        to them (the register's answer names the holder). Statistics read none of it, so they
        stay. The bus goes first and outside the write transaction: if it fails, nothing is
        marked erased and the next pass does it all again (both steps are idempotent)."""
        now = self._clock()
        closed_before = now - timedelta(days=self._rules.deadlines.retention_days)
        erased = 0
        while True:
            async with self._uow() as uow:
                batch = await uow.fines.erasable(closed_before, _BATCH)
                messages_about = await uow.outbox.about([f"fines/{i}" for i in batch])
            if self._copies is not None:
                await self._copies.erase(messages_about)
            async with self._uow() as uow:
                for fine_id in batch:
                    await uow.fines.erase(fine_id)
                    await uow.letters.erase(fine_id)
                    await uow.outbox.forget(f"fines/{fine_id}")
                await uow.commit()
            erased += len(batch)
            if len(batch) < _BATCH:
                return erased

    async def transfer_result(
        self, sender: str, name: str, outcome: TransferOutcome, collected: Money | None, key: str
    ) -> Fine | None:
        fine_id = parse_name(name, "fine")
        async with self._uow() as uow:
            if not await uow.inbox.claim(key):
                return None
            fine = await self._load(uow, fine_id)
            if fine.executing_partner != sender:
                raise FailedPrecondition(
                    "NOT_EXECUTING_STATE", f"{fine.name} was not transferred to {sender}"
                )
            fine.executed_abroad(outcome, collected, self._clock())
            await uow.fines.update(fine)
            await uow.commit()
            return fine

    # -- reads ----------------------------------------------------------------------------

    async def get(self, name: str) -> Fine:
        fine_id = parse_name(name)
        async with self._uow() as uow:
            return await self._load(uow, fine_id)

    async def letters(self, name: str) -> Sequence[LetterDocuments]:
        """Every letter sent for the fine, oldest first, as stored."""
        fine_id = parse_name(name)
        async with self._uow() as uow:
            await self._load(uow, fine_id)
            return await uow.letters.of(fine_id)

    async def list(self, query: FineQuery) -> Sequence[Fine]:
        async with self._uow() as uow:
            return await uow.fines.list(query)

    async def statistics(self) -> Statistics:
        async with self._uow() as uow:
            rows = await uow.fines.figures()
        currency = self._rules.tariff.currency

        def tally(key: Callable[[FineFigures], str]) -> dict[str, tuple[int, Money]]:
            counts: Counter[str] = Counter()
            sums: dict[str, Money] = {}
            for row in rows:
                k = key(row)
                counts[k] += 1
                sums[k] = sums.get(k, Money.zero(currency)) + row.amount
            return {k: (counts[k], sums[k]) for k in sorted(counts)}

        notified = [r for r in rows if r.notices_sent > 0]
        paid = [r for r in notified if r.paid.amount >= r.amount.amount]
        rate = (
            (Decimal(len(paid)) / Decimal(len(notified))).quantize(Decimal("0.0001"))
            if notified
            else Decimal(0)
        )
        return Statistics(
            by_state=tally(lambda r: r.state.value),
            by_country=tally(lambda r: r.registration_country),
            by_offence=tally(lambda r: r.offence),
            lookups_sent=sum(r.lookups_sent for r in rows),
            lookups_failed=sum(1 for r in rows if r.lookup_failed),
            letters_sent=sum(r.notices_sent for r in rows),
            collection_rate=rate,
        )

    async def _load(self, uow: UnitOfWork, fine_id: str) -> Fine:
        fine = await uow.fines.get(fine_id)
        if fine is None:
            raise NotFound("FINE_NOT_FOUND", f"no fine fines/{fine_id}")
        return fine
