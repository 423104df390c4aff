"""The fines domain: state machine, tariff, payment reference, language, deadlines."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from justice.fines.model import (
    COUNTRIES,
    SETTLED,
    TRANSITIONS,
    Address,
    Deadlines,
    Detection,
    DetectionSource,
    Escalation,
    Fine,
    FineState,
    Money,
    Offence,
    Person,
    PersonKind,
    Speed,
    Tariff,
    TransferOutcome,
    check_detection,
    check_payment_reference,
    normalise_plate,
    notice_language,
    parse_money,
    payment_reference,
)
from justice.platform.config import Settings
from justice.platform.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SPEEDING = Detection(
    source=DetectionSource.FIXED_CAMERA,
    device_id="CAM-E19-042",
    offence_time=NOW - timedelta(days=1),
    place="E19 km 12, Kontich",
    offence_country="BE",
    plate="AB123C",
    registration_country="NL",
    vehicle_category="M1",
    offence=Offence.SPEEDING,
    provision="art. 11.1 Wegverkeersreglement",
    speed=Speed(measured=137, corrected=130, allowed=120),
)
SHIPPED = ("nl", "fr", "de", "en", "pl", "ro", "es")


def _fine(state: FineState = FineState.REGISTERED, amount: str = "100.00") -> Fine:
    return Fine(
        fine_id="f1",
        detection=SPEEDING,
        amount=Money(Decimal(amount)),
        payment_reference=payment_reference(1),
        create_time=NOW,
        update_time=NOW,
        state=state,
    )


def _violations(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(FineState, FineState)))
def test_every_transition_is_allowed_or_refused_as_the_table_says(
    source: FineState, target: FineState
) -> None:
    fine = _fine(source)
    if target in TRANSITIONS[source]:
        fine.move_to(target, NOW + timedelta(hours=1))
        assert fine.state is target
        assert fine.update_time == NOW + timedelta(hours=1)
    else:
        with pytest.raises(FailedPrecondition) as error:
            fine.move_to(target, NOW)
        assert error.value.reason == "ILLEGAL_TRANSITION"
        assert fine.state is source


def test_every_state_is_reachable_and_every_path_can_end_closed() -> None:
    reached = {FineState.REGISTERED}
    frontier = [FineState.REGISTERED]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(FineState)
    for state in FineState:
        seen, todo = {state}, [state]
        while todo:
            for nxt in TRANSITIONS[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        assert FineState.CLOSED in seen
    assert TRANSITIONS[FineState.CLOSED] == frozenset()
    # After a transfer only the executing state's outcomes move the fine.
    assert TRANSITIONS[FineState.TRANSFERRED] == {
        FineState.EXECUTED_ABROAD,
        FineState.TRANSFER_REFUSED,
        FineState.PARTIALLY_EXECUTED,
    }
    assert TRANSITIONS[FineState.PARTIALLY_EXECUTED] == {
        FineState.EXECUTED_ABROAD,
        FineState.TRANSFER_REFUSED,
    }
    # Only a transfer leads to a partial execution; only registration to the domestic one.
    assert {s for s in FineState if FineState.PARTIALLY_EXECUTED in TRANSITIONS[s]} == {
        FineState.TRANSFERRED
    }
    assert {s for s in FineState if FineState.DOMESTIC_PROCEDURE in TRANSITIONS[s]} == {
        FineState.REGISTERED
    }
    assert TRANSITIONS[FineState.DOMESTIC_PROCEDURE] == {FineState.CLOSED}


def test_every_offence_of_the_directive_has_a_tariff_in_the_settings() -> None:
    rules = Settings().fines
    tariff = Tariff(rules.tariff, rules.currency)
    assert len(Offence) == 18  # art. 2(1)(a) to (r)
    for offence in Offence:
        speed = SPEEDING.speed if offence is Offence.SPEEDING else None
        money = tariff.amount(offence, speed)
        assert isinstance(money.amount, Decimal)
        assert money.amount > 0
        assert money.currency == "EUR"
    incomplete = dict(rules.tariff)
    del incomplete["HIT_AND_RUN"]
    with pytest.raises(ValueError, match="HIT_AND_RUN"):
        Tariff(incomplete, "EUR")


def test_speeding_is_priced_by_the_band_of_the_corrected_excess() -> None:
    rules = Settings().fines
    tariff = Tariff(rules.tariff, rules.currency)

    def price(corrected: int) -> Decimal:
        return tariff.amount(Offence.SPEEDING, Speed(corrected + 5, corrected, 120)).amount

    assert price(121) == Decimal("53.00")
    assert price(130) == Decimal("53.00")
    assert price(131) == Decimal("106.00")
    assert price(160) == Decimal("212.00")
    assert price(200) == Decimal("265.00")


def test_money_is_decimal_never_float() -> None:
    with pytest.raises(TypeError):
        Money(70.0)  # type: ignore[arg-type]
    assert Money(Decimal("70")) + Money(Decimal("0.005")) == Money(Decimal("70.01"))
    with pytest.raises(InvalidArgument) as error:
        parse_money("-5.00", "EUR", "amount")
    assert _violations(error) == {"amount.amount"}
    with pytest.raises(InvalidArgument) as error:
        parse_money("1e3", "euro", "amount")
    assert _violations(error) == {"amount.amount", "amount.currency_code"}
    with pytest.raises(InvalidArgument):
        Money(Decimal(1), "EUR") + Money(Decimal(1), "PLN")


def test_payment_reference_carries_mod_97_check_digits() -> None:
    reference = payment_reference(1_234_567_890)
    assert reference == "+++123/4567/89002+++"
    assert check_payment_reference(reference) == reference
    assert check_payment_reference("123456789002") == reference
    # A multiple of 97 takes 97, not 00.
    assert payment_reference(97).endswith("97+++")
    with pytest.raises(InvalidArgument) as error:
        check_payment_reference("+++123/4567/89003+++")
    assert error.value.violations[0].description == "wrong check digits"
    with pytest.raises(InvalidArgument):
        check_payment_reference("RF18539007547034")


def test_letter_language_is_the_documents_else_the_states_never_english() -> None:
    assert notice_language("de", "NL", SHIPPED) == "de"
    assert notice_language("", "NL", SHIPPED) == "nl"
    assert notice_language("", "PL", SHIPPED) == "pl"
    # Luxembourgish has no catalogue: French, never English.
    assert notice_language("", "LU", SHIPPED) == "fr"
    assert notice_language("lb", "LU", ("de", "en")) == "de"
    # A document language without a catalogue falls to the state's, not to English.
    assert notice_language("it", "BE", SHIPPED) == "nl"
    with pytest.raises(FailedPrecondition) as error:
        notice_language("", "IT", SHIPPED)
    assert error.value.reason == "NO_NOTICE_LANGUAGE"


def test_bad_detections_name_every_bad_field() -> None:
    check_detection(SPEEDING, NOW)
    bad = replace(
        SPEEDING,
        plate="",
        registration_country="XX",
        offence_country="Belgium",
        speed=Speed(measured=118, corrected=115, allowed=120),
    )
    with pytest.raises(InvalidArgument) as error:
        check_detection(bad, NOW)
    assert _violations(error) == {
        "fine.plate",
        "fine.registration_country",
        "fine.offence_country",
        "fine.speed.corrected",
    }
    with pytest.raises(InvalidArgument) as error:
        check_detection(replace(SPEEDING, offence=None, offence_time=NOW + timedelta(1)), NOW)
    assert _violations(error) == {"fine.offence", "fine.offence_time"}
    assert normalise_plate(" ab-123.c ") == "AB123C"
    assert {"NL", "LU", "PL", "RO", "DE"} <= COUNTRIES
    assert "XX" not in COUNTRIES


def test_payments_move_the_fine_to_partially_paid_then_paid() -> None:
    fine = _fine(FineState.NOTICE_SENT)
    fine.pay(Money(Decimal("40")), NOW)
    assert fine.state is FineState.PARTIALLY_PAID
    assert fine.outstanding == Money(Decimal("60"))
    fine.pay(Money(Decimal("60")), NOW)
    assert fine.state is FineState.PAID
    with pytest.raises(FailedPrecondition):
        fine.pay(Money(Decimal("1")), NOW)
    escalated = _fine(FineState.REMINDER_SENT)
    escalated.surcharge = Money(Decimal("15"))
    escalated.pay(Money(Decimal("100")), NOW)
    assert escalated.state is FineState.REMINDER_SENT  # the surcharge is still owed
    escalated.pay(Money(Decimal("15")), NOW)
    assert escalated.state is FineState.PAID


def test_deadlines_escalate_under_an_advancing_clock() -> None:
    deadlines = Deadlines()
    waiting = _fine(FineState.OWNER_REQUESTED)
    assert waiting.due_escalation(NOW, deadlines) is None
    assert waiting.due_escalation(NOW + timedelta(days=60), deadlines) is Escalation.TIME_BAR

    fine = _fine(FineState.NOTICE_SENT)
    fine.due_time = NOW + timedelta(days=30)
    assert fine.due_escalation(NOW + timedelta(days=44), deadlines) is None
    later = NOW + timedelta(days=45)
    assert fine.due_escalation(later, deadlines) is Escalation.REMINDER
    fine.move_to(FineState.REMINDER_SENT, later)
    assert fine.due_escalation(later + timedelta(days=15), deadlines) is None
    later += timedelta(days=16)
    assert fine.due_escalation(later, deadlines) is Escalation.PAYMENT_ORDER
    fine.move_to(FineState.PAYMENT_ORDER, later)
    later += timedelta(days=31)
    assert fine.due_escalation(later, deadlines) is Escalation.FINAL
    fine.move_to(FineState.FINAL, later)
    # No liable person known: nothing to transfer to.
    assert fine.due_escalation(later, deadlines) is None


def test_a_fine_under_the_threshold_is_never_due_for_transfer() -> None:
    person = Person(PersonKind.NATURAL, "Jan Jansen", Address("Dam 1", "1012", "Amsterdam", "NL"))
    big, small = _fine(FineState.FINAL, "100.00"), _fine(FineState.FINAL, "40.00")
    big.holder = small.holder = person
    assert big.due_escalation(NOW, Deadlines()) is Escalation.TRANSFER
    assert small.due_escalation(NOW + timedelta(days=999), Deadlines()) is None


@pytest.mark.parametrize("state", sorted(SETTLED, key=lambda s: s.value))
def test_settled_fines_close_and_are_erasable_only_after_retention(state: FineState) -> None:
    fine = _fine(state)
    deadlines = Deadlines(close_days=10, retention_days=30)
    fine.step_time = NOW - timedelta(days=9)
    assert fine.due_escalation(NOW, deadlines) is None
    assert fine.due_escalation(NOW + timedelta(days=1), deadlines) is Escalation.CLOSE
    fine.move_to(FineState.CLOSED, NOW)
    assert not fine.erasable(NOW + timedelta(days=29), deadlines)
    assert fine.erasable(NOW + timedelta(days=30), deadlines)
    assert not _fine(FineState.PAYMENT_ORDER).erasable(NOW + timedelta(days=999), deadlines)


def test_the_executing_state_reports_part_then_the_rest_then_nothing_more() -> None:
    fine = _fine(FineState.TRANSFERRED)
    fine.executed_abroad(TransferOutcome.PARTIALLY_EXECUTED, Money(Decimal("30")), NOW)
    assert fine.state is FineState.PARTIALLY_EXECUTED
    # A second instalment adds to the first; the state stays.
    fine.executed_abroad(TransferOutcome.PARTIALLY_EXECUTED, Money(Decimal("20")), NOW)
    assert (fine.state, fine.paid, fine.outstanding) == (
        FineState.PARTIALLY_EXECUTED,
        Money(Decimal("50")),
        Money(Decimal("50")),
    )
    assert fine.due_escalation(NOW + timedelta(days=999), Deadlines()) is None  # theirs
    fine.executed_abroad(TransferOutcome.EXECUTED, Money(Decimal("50")), NOW)
    assert fine.state is FineState.EXECUTED_ABROAD
    with pytest.raises(FailedPrecondition) as late:
        fine.executed_abroad(TransferOutcome.PARTIALLY_EXECUTED, Money(Decimal("1")), NOW)
    assert late.value.reason == "ILLEGAL_TRANSITION"
    assert late.value.metadata == {"from": "EXECUTED_ABROAD", "to": "PARTIALLY_EXECUTED"}
    assert fine.paid == Money(Decimal("100"))  # the refused report counted nothing


def test_a_partial_execution_handed_back_is_collected_here_for_the_rest() -> None:
    fine = _fine(FineState.TRANSFERRED)
    with pytest.raises(InvalidArgument) as nothing:
        fine.executed_abroad(TransferOutcome.PARTIALLY_EXECUTED, None, NOW)
    assert _violations(nothing) == {"collected"}
    assert fine.state is FineState.TRANSFERRED
    fine.executed_abroad(TransferOutcome.PARTIALLY_EXECUTED, Money(Decimal("70")), NOW)
    with pytest.raises(FailedPrecondition):
        fine.pay(Money(Decimal("30")), NOW)  # collection is abroad: not counted here
    fine.executed_abroad(TransferOutcome.REFUSED, None, NOW)
    assert fine.state is FineState.TRANSFER_REFUSED
    assert fine.outstanding == Money(Decimal("30"))
    fine.pay(Money(Decimal("30")), NOW)
    assert fine.state is FineState.PAID
    for state in (FineState.FINAL, FineState.NOTICE_SENT, FineState.CLOSED):
        with pytest.raises(FailedPrecondition) as error:
            _fine(state).executed_abroad(
                TransferOutcome.PARTIALLY_EXECUTED, Money(Decimal("5")), NOW
            )
        assert error.value.metadata == {"from": state.value, "to": "PARTIALLY_EXECUTED"}


def test_a_domestic_fine_is_never_time_barred_here_and_closes_once_handed_over() -> None:
    fine = _fine()
    fine.move_to(FineState.DOMESTIC_PROCEDURE, NOW)
    deadlines = Deadlines(close_days=10)
    assert fine.due_escalation(NOW + timedelta(days=9), deadlines) is None
    assert fine.due_escalation(NOW + timedelta(days=10), deadlines) is Escalation.CLOSE
    with pytest.raises(FailedPrecondition):
        fine.move_to(FineState.OWNER_REQUESTED, NOW)
