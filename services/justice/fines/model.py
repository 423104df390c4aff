"""Cross-border traffic fines: the offence, its price, the liable person, the states a fine
moves through and the deadlines that move it.

Imports nothing from grpc, sqlmodel, nats, minio or signxml.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from justice.platform.errors import FailedPrecondition, FieldViolation, InvalidArgument


class FineState(enum.Enum):
    REGISTERED = "REGISTERED"
    OWNER_REQUESTED = "OWNER_REQUESTED"
    OWNER_IDENTIFIED = "OWNER_IDENTIFIED"
    OWNER_UNKNOWN = "OWNER_UNKNOWN"
    DRIVER_DESIGNATED = "DRIVER_DESIGNATED"
    NOTICE_SENT = "NOTICE_SENT"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    PAID = "PAID"
    CONTESTED = "CONTESTED"
    CANCELLED = "CANCELLED"
    REMINDER_SENT = "REMINDER_SENT"
    PAYMENT_ORDER = "PAYMENT_ORDER"
    FINAL = "FINAL"
    TRANSFERRED = "TRANSFERRED"
    EXECUTED_ABROAD = "EXECUTED_ABROAD"
    TRANSFER_REFUSED = "TRANSFER_REFUSED"
    TIME_BARRED = "TIME_BARRED"
    CLOSED = "CLOSED"
    # The executing state collected part and goes on collecting the rest.
    PARTIALLY_EXECUTED = "PARTIALLY_EXECUTED"
    # A plate of our own state: the national procedure's, never a cross-border lookup.
    DOMESTIC_PROCEDURE = "DOMESTIC_PROCEDURE"


S = FineState
# Every legal move. Payments during escalation (reminder, payment order, final) keep the
# escalation state and only move the fine once it is paid in full; PARTIALLY_PAID is the
# state of a fine paid in part before any escalation. A transfer hands collection to the
# executing state: nothing but its outcomes (Framework Decision 2005/214/JHA art. 14)
# moves the fine afterwards. A domestic plate leaves REGISTERED for the national procedure
# and never meets a foreign register.
TRANSITIONS: dict[FineState, frozenset[FineState]] = {
    S.REGISTERED: frozenset(
        {S.OWNER_REQUESTED, S.OWNER_IDENTIFIED, S.DOMESTIC_PROCEDURE, S.CANCELLED, S.TIME_BARRED}
    ),
    # Handed over whole; nothing here moves it but closing.
    S.DOMESTIC_PROCEDURE: frozenset({S.CLOSED}),
    S.OWNER_REQUESTED: frozenset({S.OWNER_IDENTIFIED, S.OWNER_UNKNOWN, S.CANCELLED, S.TIME_BARRED}),
    S.OWNER_IDENTIFIED: frozenset({S.NOTICE_SENT, S.CANCELLED, S.TIME_BARRED}),
    # Closed for good, or asked again once the register can answer.
    S.OWNER_UNKNOWN: frozenset({S.OWNER_REQUESTED, S.CLOSED}),
    S.DRIVER_DESIGNATED: frozenset({S.NOTICE_SENT, S.CANCELLED, S.TIME_BARRED}),
    S.NOTICE_SENT: frozenset(
        {
            S.PARTIALLY_PAID,
            S.PAID,
            S.CONTESTED,
            S.DRIVER_DESIGNATED,
            S.REMINDER_SENT,
            S.CANCELLED,
        }
    ),
    S.PARTIALLY_PAID: frozenset({S.PAID, S.CONTESTED, S.REMINDER_SENT, S.CANCELLED}),
    S.PAID: frozenset({S.CLOSED}),
    # Upheld: collection resumes where it stood; cancelled otherwise.
    S.CONTESTED: frozenset({S.NOTICE_SENT, S.PARTIALLY_PAID, S.CANCELLED}),
    S.CANCELLED: frozenset({S.CLOSED}),
    S.REMINDER_SENT: frozenset({S.PAID, S.PAYMENT_ORDER, S.CANCELLED}),
    S.PAYMENT_ORDER: frozenset({S.PAID, S.FINAL, S.CANCELLED}),
    # Final: paid after all, handed to the residence state, or written off.
    S.FINAL: frozenset({S.PAID, S.TRANSFERRED, S.CLOSED}),
    S.TRANSFERRED: frozenset({S.EXECUTED_ABROAD, S.TRANSFER_REFUSED, S.PARTIALLY_EXECUTED}),
    # Part collected abroad: the rest is executed there too, or handed back (refused),
    # and the part already collected counts towards what is owed here.
    S.PARTIALLY_EXECUTED: frozenset({S.EXECUTED_ABROAD, S.TRANSFER_REFUSED}),
    S.EXECUTED_ABROAD: frozenset({S.CLOSED}),
    # Refused abroad: collection comes back here.
    S.TRANSFER_REFUSED: frozenset({S.PAID, S.CLOSED}),
    S.TIME_BARRED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
}

# States in which the fine is owed and payments count towards it.
COLLECTING = frozenset(
    {
        S.NOTICE_SENT,
        S.PARTIALLY_PAID,
        S.CONTESTED,
        S.REMINDER_SENT,
        S.PAYMENT_ORDER,
        S.FINAL,
        S.TRANSFER_REFUSED,
    }
)


class Offence(enum.Enum):
    """Article 2(1) of Directive (EU) 2015/413 as amended by Directive (EU) 2024/3237.

    (a) to (h) are the 2015 list; (i) to (r) were added in 2024.
    """

    SPEEDING = "SPEEDING"  # art. 2(1)(a)
    NON_USE_OF_SEAT_BELT = "NON_USE_OF_SEAT_BELT"  # art. 2(1)(b), child restraints too
    FAILING_TO_STOP_AT_RED_LIGHT = "FAILING_TO_STOP_AT_RED_LIGHT"  # art. 2(1)(c)
    DRINK_DRIVING = "DRINK_DRIVING"  # art. 2(1)(d)
    DRIVING_UNDER_INFLUENCE_OF_DRUGS = "DRIVING_UNDER_INFLUENCE_OF_DRUGS"  # art. 2(1)(e)
    FAILING_TO_WEAR_SAFETY_HELMET = "FAILING_TO_WEAR_SAFETY_HELMET"  # art. 2(1)(f)
    FORBIDDEN_LANE = "FORBIDDEN_LANE"  # art. 2(1)(g), emergency or bus lane, closed lane
    MOBILE_PHONE_WHILE_DRIVING = "MOBILE_PHONE_WHILE_DRIVING"  # art. 2(1)(h)
    INSUFFICIENT_DISTANCE = "INSUFFICIENT_DISTANCE"  # art. 2(1)(i)
    DANGEROUS_OVERTAKING = "DANGEROUS_OVERTAKING"  # art. 2(1)(j)
    DANGEROUS_PARKING = "DANGEROUS_PARKING"  # art. 2(1)(k), or stopping
    CROSSING_SOLID_WHITE_LINE = "CROSSING_SOLID_WHITE_LINE"  # art. 2(1)(l)
    WRONG_WAY_DRIVING = "WRONG_WAY_DRIVING"  # art. 2(1)(m)
    EMERGENCY_CORRIDOR = "EMERGENCY_CORRIDOR"  # art. 2(1)(n), or giving way to them
    OVERLOADED_VEHICLE = "OVERLOADED_VEHICLE"  # art. 2(1)(o)
    VEHICLE_ACCESS_RESTRICTION = "VEHICLE_ACCESS_RESTRICTION"  # art. 2(1)(p)
    HIT_AND_RUN = "HIT_AND_RUN"  # art. 2(1)(q)
    RAILWAY_LEVEL_CROSSING = "RAILWAY_LEVEL_CROSSING"  # art. 2(1)(r)


class DetectionSource(enum.Enum):
    FIXED_CAMERA = "FIXED_CAMERA"
    SECTION_CONTROL = "SECTION_CONTROL"
    ANPR = "ANPR"
    OFFICER = "OFFICER"


class PersonKind(enum.Enum):
    NATURAL = "NATURAL"
    LEGAL = "LEGAL"


# ISO 3166-1 alpha-2, officially assigned codes.
_ALPHA2 = """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK
    DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR
    GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM
    KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP
    MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL
    PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST
    SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG
    VI VN VU WF WS YE YT ZA ZM ZW"""
COUNTRIES = frozenset(_ALPHA2.split())

# Official languages (ISO 639-1) of the states whose registers answer under the Directive
# (the EU, the EEA and Switzerland), in the order a letter prefers them.
OFFICIAL_LANGUAGES: Mapping[str, tuple[str, ...]] = {
    "AT": ("de",), "BE": ("nl", "fr", "de"), "BG": ("bg",), "CH": ("de", "fr", "it"),
    "CY": ("el", "tr"), "CZ": ("cs",), "DE": ("de",), "DK": ("da",), "EE": ("et",),
    "ES": ("es",), "FI": ("fi", "sv"), "FR": ("fr",), "GR": ("el",), "HR": ("hr",),
    "HU": ("hu",), "IE": ("en", "ga"), "IS": ("is",), "IT": ("it",), "LI": ("de",),
    "LT": ("lt",), "LU": ("lb", "fr", "de"), "LV": ("lv",), "MT": ("mt", "en"),
    "NL": ("nl",), "NO": ("no",), "PL": ("pl",), "PT": ("pt",), "RO": ("ro",),
    "SE": ("sv",), "SI": ("sl",), "SK": ("sk",),
}  # fmt: skip


def notice_language(
    document_language: str, registration_country: str, shipped: Iterable[str]
) -> str:
    """The registration document's language, else an official language of the
    registration state; never a silent fallback to English (Luxembourg gets French or
    German, because no Luxembourgish catalogue ships)."""
    available = frozenset(shipped)
    if document_language and document_language.lower() in available:
        return document_language.lower()
    for language in OFFICIAL_LANGUAGES.get(registration_country, ()):
        if language in available:
            return language
    raise FailedPrecondition(
        "NO_NOTICE_LANGUAGE",
        f"no letter catalogue in the document language or a language of {registration_country}",
        metadata={"country": registration_country, "document_language": document_language},
    )


CENT = Decimal("0.01")


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("money is a Decimal, never a float")
        object.__setattr__(self, "amount", self.amount.quantize(CENT, ROUND_HALF_UP))

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise InvalidArgument.of(
                [FieldViolation("amount.currency_code", f"must be {self.currency}")]
            )

    @staticmethod
    def zero(currency: str = "EUR") -> Money:
        return Money(Decimal(0), currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


_CURRENCY = re.compile(r"^[A-Z]{3}$")
_AMOUNT = re.compile(r"^-?\d{1,9}(\.\d{1,2})?$")


def parse_money(amount: str, currency: str, where: str) -> Money:
    """A decimal string and an ISO 4217 code; a negative or malformed amount is refused."""
    v: list[FieldViolation] = []
    if not _AMOUNT.match(amount.strip()):
        v.append(FieldViolation(f"{where}.amount", "a decimal such as 70.00"))
    elif Decimal(amount) < 0:
        v.append(FieldViolation(f"{where}.amount", "not negative"))
    if not _CURRENCY.match(currency):
        v.append(FieldViolation(f"{where}.currency_code", "an ISO 4217 code such as EUR"))
    if v:
        raise InvalidArgument.of(v)
    return Money(Decimal(amount), currency)


# The Belgian structured communication (+++123/4567/89002+++): ten digits and two check
# digits, the ten digits modulo 97 (97 when that is 0).
_STRUCTURED = re.compile(r"^\+{3}(\d{3})/(\d{4})/(\d{5})\+{3}$")


def payment_reference(sequence: int) -> str:
    if not 0 < sequence < 10**10:
        raise ValueError("a structured communication carries ten digits")
    check = sequence % 97 or 97
    digits = f"{sequence:010d}{check:02d}"
    return f"+++{digits[:3]}/{digits[3:7]}/{digits[7:]}+++"


def check_payment_reference(reference: str, where: str = "payment_reference") -> str:
    """The reference as printed, or InvalidArgument when its check digits are wrong."""
    compact = reference.strip()
    if compact.isdigit() and len(compact) == 12:
        compact = f"+++{compact[:3]}/{compact[3:7]}/{compact[7:]}+++"
    match = _STRUCTURED.match(compact)
    if match is None:
        raise InvalidArgument.of(
            [FieldViolation(where, "a structured communication +++ddd/dddd/ddddd+++")]
        )
    digits = "".join(match.groups())
    if (int(digits[:10]) % 97 or 97) != int(digits[10:]):
        raise InvalidArgument.of([FieldViolation(where, "wrong check digits")])
    return compact


@dataclass(frozen=True)
class Speed:
    measured: int
    corrected: int
    allowed: int

    @property
    def excess(self) -> int:
        return self.corrected - self.allowed


class Tariff:
    """Amounts by offence and speed band. A band is keyed by the highest excess (km/h) it
    covers, "*" covering everything above; an offence without speed has only "*"."""

    def __init__(self, table: Mapping[str, Mapping[str, Decimal]], currency: str) -> None:
        missing = [o.value for o in Offence if o.value not in table]
        unknown = sorted(set(table) - {o.value for o in Offence})
        if missing or unknown:
            raise ValueError(f"tariff: missing {missing}, unknown {unknown}")
        self._currency = currency
        self._bands: dict[Offence, list[tuple[int | None, Money]]] = {}
        for offence in Offence:
            bands = table[offence.value]
            if "*" not in bands:
                raise ValueError(f"tariff for {offence.value} needs a '*' band")
            ordered = sorted(
                ((None if k == "*" else int(k), Money(Decimal(v), currency)))
                for k, v in bands.items()
                if k != "*"
            )
            ordered.append((None, Money(Decimal(bands["*"]), currency)))
            self._bands[offence] = ordered

    @property
    def currency(self) -> str:
        return self._currency

    def amount(self, offence: Offence, speed: Speed | None) -> Money:
        bands = self._bands[offence]
        excess = speed.excess if speed is not None else None
        for upper, money in bands:
            if upper is None or (excess is not None and excess <= upper):
                return money
        raise AssertionError("the '*' band always matches")


@dataclass(frozen=True)
class Address:
    street: str
    postal_code: str
    city: str
    country: str


@dataclass(frozen=True)
class Person:
    kind: PersonKind
    name: str
    address: Address
    document_language: str = ""


@dataclass(frozen=True)
class Vehicle:
    vin: str = ""
    make: str = ""
    model: str = ""
    eu_category: str = ""


@dataclass(frozen=True)
class Detection:
    """What the camera or the officer saw: everything RegisterOffence is given."""

    source: DetectionSource | None
    device_id: str
    offence_time: datetime | None
    place: str
    offence_country: str
    plate: str
    registration_country: str
    vehicle_category: str
    offence: Offence | None
    provision: str
    speed: Speed | None = None
    evidence: tuple[str, ...] = ()


_PLATE = re.compile(r"^[A-Z0-9]{1,12}$")
_EVIDENCE = re.compile(r"^evidence/[A-Za-z0-9_-]{1,64}$")


def normalise_plate(plate: str) -> str:
    """Plates are compared without spaces, dashes or dots, in capitals."""
    return re.sub(r"[\s.\-]", "", plate).upper()


def check_detection(detection: Detection, now: datetime) -> None:
    """Raises InvalidArgument naming every bad field."""
    v: list[FieldViolation] = []
    if detection.source is None:
        v.append(FieldViolation("fine.detection_source", "required"))
    if not detection.device_id.strip():
        v.append(FieldViolation("fine.device_id", "required"))
    if detection.offence_time is None:
        v.append(FieldViolation("fine.offence_time", "required"))
    elif detection.offence_time > now:
        v.append(FieldViolation("fine.offence_time", "in the future"))
    if not detection.place.strip():
        v.append(FieldViolation("fine.place", "required"))
    if detection.offence_country not in COUNTRIES:
        v.append(FieldViolation("fine.offence_country", "an ISO 3166-1 alpha-2 code"))
    if not detection.plate:
        v.append(FieldViolation("fine.plate", "required"))
    elif not _PLATE.match(detection.plate):
        v.append(FieldViolation("fine.plate", "1-12 letters and digits"))
    if detection.registration_country not in COUNTRIES:
        v.append(FieldViolation("fine.registration_country", "an ISO 3166-1 alpha-2 code"))
    if detection.offence is None:
        v.append(FieldViolation("fine.offence", "one of the offences of Directive 2015/413"))
    if not detection.provision.strip():
        v.append(FieldViolation("fine.provision", "the provision infringed"))
    if detection.offence is Offence.SPEEDING:
        speed = detection.speed
        if speed is None:
            v.append(FieldViolation("fine.speed", "required for speeding"))
        elif min(speed.measured, speed.corrected, speed.allowed) <= 0:
            v.append(FieldViolation("fine.speed", "positive km/h"))
        elif speed.corrected > speed.measured:
            v.append(FieldViolation("fine.speed.corrected", "at most the measured speed"))
        elif speed.corrected <= speed.allowed:
            v.append(FieldViolation("fine.speed.corrected", "not above the allowed speed"))
    for i, name in enumerate(detection.evidence):
        if not _EVIDENCE.match(name):
            v.append(FieldViolation(f"fine.evidence[{i}]", "an evidence/{id} name"))
    if v:
        raise InvalidArgument.of(v)


@dataclass(frozen=True)
class Deadlines:
    """How long each step may take; the scheduler compares them with an injected clock."""

    # Article 5 letters must go out within this time of the offence, or never.
    notice_days: int = 60
    payment_days: int = 30
    grace_days: int = 14
    reminder_surcharge: Decimal = Decimal("15.00")
    reminder_days: int = 15
    payment_order_days: int = 30
    transfer_threshold: Decimal = Decimal("70.00")
    # A settled fine (paid, cancelled, ...) shows its outcome this long, then closes.
    close_days: int = 30
    # Personal data of a closed fine is erased this long after it closed.
    retention_days: int = 365


class Escalation(enum.Enum):
    TIME_BAR = "TIME_BAR"
    REMINDER = "REMINDER"
    PAYMENT_ORDER = "PAYMENT_ORDER"
    FINAL = "FINAL"
    TRANSFER = "TRANSFER"
    # A settled fine (paid, cancelled, executed abroad, time-barred, owner unknown) closes.
    CLOSE = "CLOSE"


# Collection is the executing state's: payments that reach us are reported to it.
EXECUTING_ABROAD = frozenset(
    {FineState.TRANSFERRED, FineState.PARTIALLY_EXECUTED, FineState.EXECUTED_ABROAD}
)


class TransferOutcome(enum.Enum):
    """What the executing state reports (Framework Decision 2005/214/JHA art. 14)."""

    EXECUTED = "EXECUTED"
    REFUSED = "REFUSED"
    PARTIALLY_EXECUTED = "PARTIALLY_EXECUTED"


_OUTCOME_STATE = {
    TransferOutcome.EXECUTED: FineState.EXECUTED_ABROAD,
    TransferOutcome.REFUSED: FineState.TRANSFER_REFUSED,
    TransferOutcome.PARTIALLY_EXECUTED: FineState.PARTIALLY_EXECUTED,
}


# Settled: nothing more will happen to these but closing.
SETTLED = frozenset(
    {
        FineState.DOMESTIC_PROCEDURE,
        FineState.PAID,
        FineState.CANCELLED,
        FineState.EXECUTED_ABROAD,
        FineState.TIME_BARRED,
        FineState.OWNER_UNKNOWN,
    }
)


@dataclass
class Fine:
    fine_id: str
    detection: Detection
    amount: Money
    payment_reference: str
    create_time: datetime
    update_time: datetime
    state: FineState = FineState.REGISTERED
    request_id: str = ""
    paid: Money = field(default_factory=Money.zero)
    surcharge: Money = field(default_factory=Money.zero)
    due_time: datetime | None = None
    # When the current escalation step was taken; the next one counts from here.
    step_time: datetime | None = None
    vehicle: Vehicle | None = None
    holder: Person | None = None
    owner: Person | None = None
    end_user: Person | None = None
    driver: Person | None = None
    notice_language: str = ""
    notices_sent: int = 0
    executing_partner: str = ""
    # Whoever a state before the contest was, so an upheld fine resumes there.
    contested_from: FineState | None = None
    close_time: datetime | None = None
    revision: int = 1

    @property
    def name(self) -> str:
        return f"fines/{self.fine_id}"

    @property
    def total(self) -> Money:
        return self.amount + self.surcharge

    @property
    def outstanding(self) -> Money:
        rest = self.total - self.paid
        return rest if rest.amount > 0 else Money.zero(rest.currency)

    @property
    def liable(self) -> Person | None:
        """Who the letter goes to: a designated driver, else the holder, else the owner."""
        return self.driver or self.holder or self.owner

    def move_to(self, target: FineState, now: datetime) -> None:
        if target not in TRANSITIONS[self.state]:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION",
                f"a {self.state.value} fine cannot become {target.value}",
                metadata={"from": self.state.value, "to": target.value},
            )
        self.state = target
        self.update_time = now
        self.step_time = now
        if target is FineState.CLOSED:
            self.close_time = now

    def pay(self, money: Money, now: datetime) -> None:
        """Counts a payment; moves to PARTIALLY_PAID or PAID as the amount owed says."""
        if self.state not in COLLECTING:
            raise FailedPrecondition(
                "NOT_COLLECTING",
                f"a {self.state.value} fine takes no payment",
                metadata={"state": self.state.value},
            )
        self.paid = self.paid + money
        self.update_time = now
        if self.paid.amount >= self.total.amount:
            if self.state is FineState.CONTESTED:
                # Paying settles the dispute: the fine stands and is paid.
                self.state = self.contested_from or FineState.NOTICE_SENT
            self.move_to(FineState.PAID, now)
        elif self.state is FineState.NOTICE_SENT:
            self.move_to(FineState.PARTIALLY_PAID, now)

    def due_escalation(self, now: datetime, deadlines: Deadlines) -> Escalation | None:
        """The step the scheduler owes this fine at `now`, if any."""
        offence_time = self.detection.offence_time
        since = self.step_time or self.update_time
        if self.state in (
            FineState.REGISTERED,
            FineState.OWNER_REQUESTED,
            FineState.OWNER_IDENTIFIED,
            FineState.DRIVER_DESIGNATED,
        ):
            if offence_time and now > offence_time + timedelta(days=deadlines.notice_days):
                return Escalation.TIME_BAR
            return None
        if self.state in (FineState.NOTICE_SENT, FineState.PARTIALLY_PAID):
            due = self.due_time
            if due and now > due + timedelta(days=deadlines.grace_days):
                return Escalation.REMINDER
            return None
        if self.state is FineState.REMINDER_SENT:
            if now > since + timedelta(days=deadlines.reminder_days):
                return Escalation.PAYMENT_ORDER
            return None
        if self.state is FineState.PAYMENT_ORDER:
            if now > since + timedelta(days=deadlines.payment_order_days):
                return Escalation.FINAL
            return None
        if self.state is FineState.FINAL:
            if self.outstanding.amount >= deadlines.transfer_threshold and self.liable:
                return Escalation.TRANSFER
            return None
        if self.state in SETTLED and now >= since + timedelta(days=deadlines.close_days):
            return Escalation.CLOSE
        return None

    def executed_abroad(
        self, outcome: TransferOutcome, collected: Money | None, now: datetime
    ) -> None:
        """The executing state's report. A partial execution must say what it collected;
        a second partial report adds to the first and keeps the state."""
        if outcome is TransferOutcome.PARTIALLY_EXECUTED and (
            collected is None or collected.amount <= 0
        ):
            raise InvalidArgument.of(
                [FieldViolation("collected", "a positive amount for a partial execution")]
            )
        target = _OUTCOME_STATE[outcome]
        if not (target is self.state is FineState.PARTIALLY_EXECUTED):
            self.move_to(target, now)
        if collected is not None:
            self.paid = self.paid + collected
        self.update_time = now

    def erasable(self, now: datetime, deadlines: Deadlines) -> bool:
        """Closed longer than the retention: its personal data goes."""
        return (
            self.state is FineState.CLOSED
            and self.close_time is not None
            and now >= self.close_time + timedelta(days=deadlines.retention_days)
        )


def parse_decimal(text: str, where: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise InvalidArgument.of([FieldViolation(where, "a decimal number")]) from None


class PaymentOutcome(enum.Enum):
    PARTIAL = "PARTIAL"
    FULL = "FULL"
    # More than was owed: the difference is flagged for refund.
    OVERPAID = "OVERPAID"
    # No fine carries the reference: kept for manual review, never dropped.
    UNMATCHED = "UNMATCHED"
    # The fine was transferred: the executing state is told, nothing is counted here.
    REPORTED_TO_EXECUTING_STATE = "REPORTED_TO_EXECUTING_STATE"


@dataclass(frozen=True)
class Payment:
    payment_id: str
    reference: str
    money: Money
    paid_time: datetime
    fine_id: str | None
    outcome: PaymentOutcome
    refund: Money


class LookupPhase(enum.Enum):
    # Sent; waiting for the register until the deadline.
    WAITING = "WAITING"
    # Timed out; asked again at the deadline (exponential backoff).
    BACKOFF = "BACKOFF"
    ANSWERED = "ANSWERED"
    FAILED = "FAILED"


@dataclass
class Lookup:
    """One owner lookup of a fine: its attempts, and when the next step is due."""

    lookup_id: str
    fine_id: str
    attempts: int
    phase: LookupPhase
    deadline: datetime
