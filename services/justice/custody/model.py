"""Seized items: categories and their fields, the state machine, and its invariants.

Imports nothing from grpc, sqlmodel, nats, minio or signxml.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from justice.platform.cases import case_number_violations
from justice.platform.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
)


class Category(enum.StrEnum):
    VEHICLE = "VEHICLE"
    CASH = "CASH"
    DRUGS = "DRUGS"
    FIREARM = "FIREARM"
    ELECTRONICS = "ELECTRONICS"
    DOCUMENT = "DOCUMENT"
    OTHER = "OTHER"


# Property-room practice: currency, firearms and narcotics get the stricter controls.
STRICT_CATEGORIES = frozenset({Category.CASH, Category.DRUGS, Category.FIREARM})


class ItemState(enum.StrEnum):
    SEIZED = "SEIZED"
    IN_STORAGE = "IN_STORAGE"
    IN_TRANSIT = "IN_TRANSIT"
    CHECKED_OUT = "CHECKED_OUT"
    AWAITING_DECISION = "AWAITING_DECISION"
    DECIDED = "DECIDED"
    DISPOSED = "DISPOSED"
    MISSING = "MISSING"


S = ItemState
# Every legal move. IN_TRANSIT and CHECKED_OUT return to the resting state the item left
# (storage, awaiting or decided); a decision is taken on an item at rest; DISPOSED is final.
TRANSITIONS: dict[ItemState, frozenset[ItemState]] = {
    S.SEIZED: frozenset(
        {S.IN_STORAGE, S.IN_TRANSIT, S.CHECKED_OUT, S.AWAITING_DECISION, S.DECIDED, S.MISSING}
    ),
    S.IN_STORAGE: frozenset(
        {S.IN_TRANSIT, S.CHECKED_OUT, S.AWAITING_DECISION, S.DECIDED, S.MISSING}
    ),
    S.AWAITING_DECISION: frozenset({S.IN_TRANSIT, S.CHECKED_OUT, S.DECIDED, S.MISSING}),
    S.DECIDED: frozenset({S.IN_TRANSIT, S.CHECKED_OUT, S.DISPOSED, S.MISSING}),
    # Back to SEIZED only when the receiver refuses a hand-over made before storage.
    S.IN_TRANSIT: frozenset({S.SEIZED, S.IN_STORAGE, S.AWAITING_DECISION, S.DECIDED, S.MISSING}),
    S.CHECKED_OUT: frozenset({S.IN_STORAGE, S.AWAITING_DECISION, S.DECIDED, S.MISSING}),
    S.MISSING: frozenset({S.IN_STORAGE}),
    S.DISPOSED: frozenset(),
}
# Where an item rests between movements; transfers and checkouts come back to one of these.
RESTING = frozenset({S.IN_STORAGE, S.AWAITING_DECISION, S.DECIDED})
# A decision is taken once, on an item at rest (not while it travels or is out).
DECIDABLE = frozenset({S.SEIZED, S.IN_STORAGE, S.AWAITING_DECISION})


class DecisionKind(enum.StrEnum):
    RETURN_TO_OWNER = "RETURN_TO_OWNER"
    DESTROY = "DESTROY"
    FORFEIT = "FORFEIT"
    SELL = "SELL"
    KEEP_AS_EVIDENCE = "KEEP_AS_EVIDENCE"


class Outcome(enum.StrEnum):
    RETURNED = "RETURNED"
    DESTROYED = "DESTROYED"
    FORFEITED = "FORFEITED"
    SOLD = "SOLD"


OUTCOME_OF: dict[DecisionKind, Outcome] = {
    DecisionKind.RETURN_TO_OWNER: Outcome.RETURNED,
    DecisionKind.DESTROY: Outcome.DESTROYED,
    DecisionKind.FORFEIT: Outcome.FORFEITED,
    DecisionKind.SELL: Outcome.SOLD,
}

# ISO 4217 active alphabetic codes (2024), funds codes and precious metals left out.
CURRENCIES = frozenset(
    re.findall(
        r"[A-Z]{3}",
        """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS
    KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR
    MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
    SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD
    TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG""",
    )
)
WEIGHT_UNITS = {"mg": Decimal("0.001"), "g": Decimal(1), "kg": Decimal(1000), "ml": Decimal(1)}

# Plain decimals only: "12", "12.50"; no exponent, NaN, infinity or sign games.
_DECIMAL = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")
_FLOATLIKE = re.compile(r"^[+-]?([0-9.]+[eE][+-]?[0-9]+|nan|NaN|inf|Infinity|-?inf)$")
_SEAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
_IMEI = re.compile(r"^[0-9]{15}$")
_EVIDENCE = re.compile(r"^evidence/[A-Za-z0-9_-]{1,64}$")
_LOCATION = re.compile(r"^locations/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")
_FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
MAX_TEXT = 512


def decimal_of(
    field_name: str, text: str, v: list[FieldViolation], *, required: bool = True
) -> Decimal | None:
    """A non-negative decimal from its string form; a violation for anything else."""
    text = text.strip()
    if not text:
        if required:
            v.append(FieldViolation(field_name, "required, a decimal such as 12.50"))
        return None
    if _FLOATLIKE.match(text) or not _DECIMAL.match(text):
        v.append(FieldViolation(field_name, "a decimal such as 12.50 (no exponent, no float)"))
        return None
    value = Decimal(text)
    if value < 0:
        v.append(FieldViolation(field_name, "not negative"))
        return None
    return value


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def money_of(
    field_name: str, amount: str, currency: str, v: list[FieldViolation], *, required: bool = True
) -> Money | None:
    if not amount and not currency and not required:
        return None
    value = decimal_of(f"{field_name}.amount", amount, v)
    if currency not in CURRENCIES:
        v.append(FieldViolation(f"{field_name}.currency", "an ISO 4217 code such as EUR"))
        return None
    return Money(value, currency) if value is not None else None


def _text(field_name: str, value: str, v: list[FieldViolation], max_len: int = MAX_TEXT) -> None:
    if len(value) > max_len:
        v.append(FieldViolation(field_name, f"at most {max_len} characters"))
    if _FORBIDDEN_CHARS.search(value):
        v.append(FieldViolation(field_name, "contains control characters"))


def check_seal(field_name: str, seal: str, v: list[FieldViolation]) -> None:
    if not _SEAL.match(seal):
        v.append(FieldViolation(field_name, "1-128 of letters, digits and . _ / -"))


def check_location(field_name: str, location: str, v: list[FieldViolation]) -> None:
    if not _LOCATION.match(location):
        v.append(FieldViolation(field_name, "a locations/{site.room.shelf} name"))


class LocationKind(enum.StrEnum):
    VAULT = "VAULT"
    SAFE = "SAFE"
    ROOM = "ROOM"
    SHELF = "SHELF"
    FREEZER = "FREEZER"
    VEHICLE_YARD = "VEHICLE_YARD"
    OTHER = "OTHER"


_LOCATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_BARCODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")


@dataclass(frozen=True)
class Location:
    """A storage place (site, room, shelf, vault, yard) whose id is printed as a barcode.

    `secure` marks a place fit for the stricter categories (currency, firearms, narcotics);
    `capacity` is how many items it may hold at rest, 0 for no limit."""

    id: str
    barcode: str
    display_name: str
    kind: LocationKind
    unit: str
    secure: bool
    capacity: int
    create_time: datetime
    created_by: str

    @property
    def name(self) -> str:
        return f"locations/{self.id}"

    def admit(self, item: Item) -> None:
        """Raises unless `item` may rest here: strict categories need a secure location."""
        if item.category in STRICT_CATEGORIES and not self.secure:
            raise FailedPrecondition(
                "LOCATION_NOT_SECURE",
                f"{item.category.value} items are kept in a secure location only",
                metadata={
                    "item": item.name,
                    "location": self.name,
                    "category": item.category.value,
                },
            )

    def check_room(self, held: int, arriving: int) -> None:
        if self.capacity and held + arriving > self.capacity:
            raise FailedPrecondition(
                "LOCATION_FULL",
                f"{self.name} holds {held} of {self.capacity} items; {arriving} more do not fit",
                metadata={"location": self.name, "capacity": str(self.capacity)},
            )


def check_new_location(location: Location) -> None:
    """Every format rule of a location to create; raises InvalidArgument listing all."""
    v: list[FieldViolation] = []
    if not _LOCATION_ID.match(location.id):
        v.append(FieldViolation("location_id", "1-128 of letters, digits and . _ -"))
    if not _BARCODE.match(location.barcode):
        v.append(FieldViolation("location.barcode", "1-128 of letters, digits and . _ / -"))
    if not location.display_name.strip():
        v.append(FieldViolation("location.display_name", "required"))
    _text("location.display_name", location.display_name, v, 256)
    if not location.unit.strip():
        v.append(FieldViolation("location.unit", "required: the unit that holds it"))
    _text("location.unit", location.unit, v, 128)
    if location.capacity < 0:
        v.append(FieldViolation("location.capacity", "not negative (0: no limit)"))
    if v:
        raise InvalidArgument.of(v)


def check_principal(field_name: str, principal: str, v: list[FieldViolation]) -> None:
    if not _PRINCIPAL.match(principal):
        v.append(FieldViolation(field_name, "a principal id"))


@dataclass(frozen=True)
class Vehicle:
    plate: str
    vin: str


@dataclass(frozen=True)
class Cash:
    amount: Money
    denominations: tuple[tuple[Decimal, int], ...]
    counted_by: tuple[str, str]


@dataclass(frozen=True)
class Drugs:
    substance: str
    net_weight: Decimal
    unit: str


@dataclass(frozen=True)
class Firearm:
    make: str
    model: str
    calibre: str
    serial: str


@dataclass(frozen=True)
class Electronics:
    imei: str
    serial: str
    forensic_images: tuple[str, ...]


Details = Vehicle | Cash | Drugs | Firearm | Electronics | None
_DETAILS_OF: dict[Category, type] = {
    Category.VEHICLE: Vehicle,
    Category.CASH: Cash,
    Category.DRUGS: Drugs,
    Category.FIREARM: Firearm,
    Category.ELECTRONICS: Electronics,
}


@dataclass(frozen=True)
class RawDenomination:
    value: str
    count: int


@dataclass(frozen=True)
class RawItem:
    """An item as the caller describes it: strings still to be checked."""

    category: Category | None
    description: str = ""
    value_amount: str = ""
    value_currency: str = ""
    photos: tuple[str, ...] = ()
    seal: str = ""
    count: int = 1
    # The category's own fields, by name (plate, vin, amount, currency, denominations, ...).
    vehicle: Vehicle | None = None
    cash_amount: str = ""
    cash_currency: str = ""
    denominations: tuple[RawDenomination, ...] = ()
    counted_by: tuple[str, ...] = ()
    drugs: tuple[str, str, str] | None = None  # substance, net weight, unit
    firearm: Firearm | None = None
    electronics: Electronics | None = None


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """A checked item description."""

    category: Category
    description: str
    value: Money | None
    photos: tuple[str, ...]
    seal: str
    count: int
    details: Details


def _details(raw: RawItem, where: str, v: list[FieldViolation]) -> Details:
    category = raw.category
    if category is Category.VEHICLE:
        vehicle = raw.vehicle or Vehicle("", "")
        if not vehicle.plate and not vehicle.vin:
            v.append(FieldViolation(f"{where}.vehicle", "a plate or a VIN"))
        if vehicle.vin and not _VIN.match(vehicle.vin):
            v.append(FieldViolation(f"{where}.vehicle.vin", "17 of A-Z (no I, O, Q) and 0-9"))
        _text(f"{where}.vehicle.plate", vehicle.plate, v, 16)
        return vehicle
    if category is Category.CASH:
        amount = money_of(f"{where}.cash.amount", raw.cash_amount, raw.cash_currency, v)
        denominations = []
        for i, d in enumerate(raw.denominations):
            value = decimal_of(f"{where}.cash.denominations[{i}].value", d.value, v)
            if d.count <= 0:
                v.append(FieldViolation(f"{where}.cash.denominations[{i}].count", "positive"))
            if value is not None:
                denominations.append((value, d.count))
        counted = tuple(c.strip() for c in raw.counted_by)
        if len(counted) != 2 or counted[0] == counted[1] or not all(counted):
            v.append(FieldViolation(f"{where}.cash.counted_by", "two different officers"))
        if amount is None or len(counted) != 2:
            return None
        if denominations and sum(value * n for value, n in denominations) != amount.amount:
            v.append(FieldViolation(f"{where}.cash.denominations", "do not add up to the amount"))
        return Cash(amount, tuple(denominations), (counted[0], counted[1]))
    if category is Category.DRUGS:
        substance, weight, unit = raw.drugs or ("", "", "")
        if not substance.strip():
            v.append(FieldViolation(f"{where}.drugs.substance", "required"))
        _text(f"{where}.drugs.substance", substance, v, 128)
        net = decimal_of(f"{where}.drugs.net_weight", weight, v)
        if unit not in WEIGHT_UNITS:
            v.append(FieldViolation(f"{where}.drugs.unit", "one of " + ", ".join(WEIGHT_UNITS)))
        return Drugs(substance, net, unit) if net is not None else None
    if category is Category.FIREARM:
        firearm = raw.firearm or Firearm("", "", "", "")
        for name in ("make", "calibre", "serial"):
            if not getattr(firearm, name).strip():
                v.append(FieldViolation(f"{where}.firearm.{name}", "required"))
        for name in ("make", "model", "calibre", "serial"):
            _text(f"{where}.firearm.{name}", getattr(firearm, name), v, 128)
        return firearm
    if category is Category.ELECTRONICS:
        device = raw.electronics or Electronics("", "", ())
        if not device.imei and not device.serial:
            v.append(FieldViolation(f"{where}.electronics", "an IMEI or a serial number"))
        if device.imei and not _IMEI.match(device.imei):
            v.append(FieldViolation(f"{where}.electronics.imei", "15 digits"))
        _text(f"{where}.electronics.serial", device.serial, v, 128)
        for i, image in enumerate(device.forensic_images):
            if not _EVIDENCE.match(image):
                v.append(
                    FieldViolation(f"{where}.electronics.forensic_images[{i}]", "evidence/{id}")
                )
        return device
    return None


def check_item(raw: RawItem, where: str, v: list[FieldViolation]) -> ItemSpec | None:
    if raw.category is None:
        v.append(FieldViolation(f"{where}.category", "required: one of the known categories"))
        return None
    given: dict[Category, object] = {
        Category.VEHICLE: raw.vehicle,
        Category.CASH: raw.cash_amount or raw.cash_currency or raw.counted_by or None,
        Category.DRUGS: raw.drugs,
        Category.FIREARM: raw.firearm,
        Category.ELECTRONICS: raw.electronics,
    }
    for other, present in given.items():
        if other is not raw.category and present:
            v.append(FieldViolation(f"{where}.{other.value.lower()}", f"not for {raw.category}"))
    if not raw.description.strip():
        v.append(FieldViolation(f"{where}.description", "required"))
    _text(f"{where}.description", raw.description, v)
    value = money_of(
        f"{where}.estimated_value", raw.value_amount, raw.value_currency, v, required=False
    )
    for i, photo in enumerate(raw.photos):
        if not _EVIDENCE.match(photo):
            v.append(FieldViolation(f"{where}.photos[{i}]", "an evidence/{id} name"))
    check_seal(f"{where}.seal", raw.seal, v)
    if raw.count <= 0:
        v.append(FieldViolation(f"{where}.count", "positive"))
    details = _details(raw, where, v)
    if v:
        return None
    return ItemSpec(raw.category, raw.description, value, raw.photos, raw.seal, raw.count, details)


@dataclass(frozen=True)
class Person:
    given_name: str
    family_name: str
    national_id: str = ""
    language: str = ""


@dataclass(frozen=True)
class Seizure:
    id: str
    case_number: str
    report: str
    place: str
    seize_time: datetime
    seizing_officer: str
    seized_from: Person | None
    owner: Person | None
    legal_ground: str
    goods_waived: bool
    create_time: datetime
    request_id: str = ""
    items: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"seizures/{self.id}"


LANGUAGES = frozenset({"nl", "fr", "de", "en"})


def check_seizure(seizure: Seizure, raws: Sequence[RawItem], now: datetime) -> list[ItemSpec]:
    """Every format rule of a seizure and its items; raises InvalidArgument listing all."""
    v: list[FieldViolation] = []
    v += case_number_violations("seizure.case_number", seizure.case_number)
    for name in ("report", "place", "legal_ground"):
        value = getattr(seizure, name)
        if not value.strip():
            v.append(FieldViolation(f"seizure.{name}", "required"))
        _text(f"seizure.{name}", value, v)
    if seizure.seize_time > now:
        v.append(FieldViolation("seizure.seize_time", "in the future"))
    for role in ("seized_from", "owner"):
        person: Person | None = getattr(seizure, role)
        if person is None:
            continue
        if not person.family_name.strip():
            v.append(FieldViolation(f"seizure.{role}.family_name", "required"))
        for part in ("given_name", "family_name", "national_id"):
            _text(f"seizure.{role}.{part}", getattr(person, part), v, 128)
        if person.language and person.language not in LANGUAGES:
            v.append(FieldViolation(f"seizure.{role}.language", "nl, fr, de or en"))
    if not raws:
        v.append(FieldViolation("items", "at least one"))
    if len(raws) > 500:
        v.append(FieldViolation("items", "at most 500 per seizure"))
    specs = [check_item(raw, f"items[{i}]", v) for i, raw in enumerate(raws)]
    seals = [raw.seal for raw in raws]
    for i, seal in enumerate(seals):
        if seal and seals.index(seal) != i:
            v.append(FieldViolation(f"items[{i}].seal", "used twice in this seizure"))
    if v:
        raise InvalidArgument.of(v)
    return [s for s in specs if s is not None]


@dataclass(frozen=True)
class Quantity:
    count: int | None = None
    weight: Decimal | None = None  # in the item's unit (drugs)
    amount: Money | None = None


@dataclass(frozen=True)
class Tolerance:
    """How far a quantity found on acceptance may differ before it raises an alert."""

    weight_grams: Decimal = Decimal("1")
    amount: Decimal = Decimal("0")


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    reference: str
    date: str  # ISO date
    authority: str


@dataclass(frozen=True)
class Disposal:
    witness: str = ""
    method: str = ""
    licence_reference: str = ""
    proceeds: Money | None = None


@dataclass(slots=True)
class Item:
    id: str
    seizure_id: str
    case_number: str
    spec: ItemSpec
    custodian: str
    create_time: datetime
    update_time: datetime
    state: ItemState = ItemState.SEIZED
    location: str = ""
    on_hold: bool = False
    holds: tuple[str, ...] = ()
    pending_receiver: str = ""
    # The resting state a transfer or checkout returns to.
    resume_state: ItemState = ItemState.IN_STORAGE
    parent_id: str = ""
    decision: Decision | None = None
    outcome: Outcome | None = None
    due_time: datetime | None = None
    checked_out_to: str = ""
    chain_length: int = 0
    chain_head: str = ""
    revision: int = 1

    @property
    def name(self) -> str:
        return f"items/{self.id}"

    @property
    def category(self) -> Category:
        return self.spec.category

    @property
    def seal(self) -> str:
        return self.spec.seal

    def move_to(self, target: ItemState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION",
                f"a {self.state.value} item cannot become {target.value}",
                metadata={"from": self.state.value, "to": target.value, "item": self.name},
            )
        if target is ItemState.DISPOSED:
            self._ensure_not_held()
        self.state = target

    def _ensure_not_held(self) -> None:
        if self.on_hold:
            raise FailedPrecondition(
                "ITEM_ON_HOLD",
                "a hold (objection or court order) blocks disposal until it is released",
                metadata={"item": self.name, "holds": ",".join(self.holds)},
            )

    def _leave_rest(self, target: ItemState) -> None:
        left = self.state if self.state in RESTING or self.state is S.SEIZED else S.IN_STORAGE
        self.move_to(target)
        self.resume_state = left

    def _return_to_rest(self, *, refused: bool = False) -> None:
        """Where the item rests again: a refused hand-over goes back to what it was; anything
        received or checked in is stored, even if it had not been before."""
        target = self.resume_state
        if target is S.SEIZED and not refused:
            target = S.IN_STORAGE
        self.move_to(target)

    def store(self, location: str) -> None:
        """Move to a storage location; an item at rest keeps its state."""
        if self.state is ItemState.SEIZED or self.state is ItemState.MISSING:
            self.move_to(ItemState.IN_STORAGE)
        elif self.state not in RESTING:
            raise FailedPrecondition(
                "ITEM_NOT_AT_REST",
                f"a {self.state.value} item cannot be moved to a shelf",
                metadata={"state": self.state.value, "item": self.name},
            )
        self.location = location

    def transfer(self, receiver: str) -> None:
        if receiver == self.custodian:
            raise FailedPrecondition(
                "SAME_CUSTODIAN", "the item is already in the receiver's custody"
            )
        self._leave_rest(ItemState.IN_TRANSIT)
        self.pending_receiver = receiver

    def require_receiver(self, actor: str) -> None:
        if self.state is not ItemState.IN_TRANSIT:
            raise FailedPrecondition(
                "NOT_IN_TRANSIT",
                f"the item is {self.state.value}, not in transit",
                metadata={"state": self.state.value, "item": self.name},
            )
        if actor != self.pending_receiver:
            raise PermissionDenied(
                "NOT_THE_RECEIVER",
                "the transfer is addressed to someone else",
                metadata={"item": self.name},
            )

    def accept(self, actor: str, location: str) -> None:
        self.require_receiver(actor)
        self._return_to_rest()
        self.custodian = actor
        self.pending_receiver = ""
        if location:
            self.location = location

    def reject(self, actor: str) -> None:
        self.require_receiver(actor)
        self._return_to_rest(refused=True)
        self.pending_receiver = ""

    def check_out(self, destination: str, due: datetime) -> None:
        self._leave_rest(ItemState.CHECKED_OUT)
        self.checked_out_to = destination
        self.due_time = due

    def check_in(self, location: str) -> None:
        if self.state is not ItemState.CHECKED_OUT:
            raise FailedPrecondition(
                "NOT_CHECKED_OUT",
                f"the item is {self.state.value}, not checked out",
                metadata={"state": self.state.value, "item": self.name},
            )
        self._return_to_rest()
        self.checked_out_to = ""
        self.due_time = None
        if location:
            self.location = location

    def await_decision(self) -> None:
        self.move_to(ItemState.AWAITING_DECISION)

    def decide(self, decision: Decision) -> None:
        if self.state not in DECIDABLE:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION",
                f"a {self.state.value} item cannot become DECIDED",
                metadata={"from": self.state.value, "to": "DECIDED", "item": self.name},
            )
        self.move_to(ItemState.DECIDED)
        self.decision = decision

    def place_hold(self, reference: str) -> None:
        if self.state is ItemState.DISPOSED:
            raise FailedPrecondition("ITEM_DISPOSED", "a disposed item cannot be held")
        if reference in self.holds:
            return
        self.holds = (*self.holds, reference)
        self.on_hold = True

    def release_hold(self, reference: str) -> None:
        if reference not in self.holds:
            raise FailedPrecondition(
                "NO_SUCH_HOLD",
                "the item has no hold with that reference",
                metadata={"item": self.name},
            )
        self.holds = tuple(h for h in self.holds if h != reference)
        self.on_hold = bool(self.holds)

    def needs_four_eyes(self) -> bool:
        return self.category in STRICT_CATEGORIES or (
            self.decision is not None and self.decision.kind is DecisionKind.DESTROY
        )

    def check_disposal(self, disposal: Disposal) -> Outcome:
        """What executing the decision yields; raises when it cannot be executed as given."""
        if self.state is not ItemState.DECIDED or self.decision is None:
            raise FailedPrecondition(
                "NO_DECISION",
                f"a {self.state.value} item has no decision to execute",
                metadata={"state": self.state.value, "item": self.name},
            )
        self._ensure_not_held()
        kind = self.decision.kind
        if kind not in OUTCOME_OF:
            raise FailedPrecondition(
                "NOTHING_TO_EXECUTE", "a decision to keep the item as evidence is not disposal"
            )
        v: list[FieldViolation] = []
        if kind is DecisionKind.DESTROY:
            if not disposal.witness.strip():
                v.append(FieldViolation("disposal.witness", "required for destruction"))
            if not disposal.method.strip():
                v.append(FieldViolation("disposal.method", "required for destruction"))
        if (
            kind is DecisionKind.RETURN_TO_OWNER
            and self.category is Category.FIREARM
            and not disposal.licence_reference.strip()
        ):
            v.append(FieldViolation("disposal.licence_reference", "required to return a firearm"))
        if kind is DecisionKind.SELL and disposal.proceeds is None:
            v.append(FieldViolation("disposal.proceeds", "required for a sale"))
        for name in ("witness", "method", "licence_reference"):
            _text(f"disposal.{name}", getattr(disposal, name), v, 256)
        if v:
            raise InvalidArgument.of(v)
        return OUTCOME_OF[kind]

    def dispose(self, disposal: Disposal) -> Outcome:
        outcome = self.check_disposal(disposal)
        self.move_to(ItemState.DISPOSED)
        self.outcome = outcome
        return outcome

    def go_missing(self) -> None:
        self.move_to(ItemState.MISSING)

    def discrepancies(self, found: Quantity, tolerance: Tolerance) -> list[str]:
        """How a quantity found differs from the recorded one beyond tolerance."""
        problems = []
        if found.count is not None and found.count != self.spec.count:
            problems.append(f"count {found.count} of {self.spec.count}")
        details = self.spec.details
        if found.weight is not None and isinstance(details, Drugs):
            scale = WEIGHT_UNITS[details.unit]
            loss = abs(details.net_weight - found.weight) * scale
            if loss > tolerance.weight_grams:
                problems.append(f"weight {found.weight} {details.unit} of {details.net_weight}")
        if (
            found.amount is not None
            and isinstance(details, Cash)
            and (
                found.amount.currency != details.amount.currency
                or abs(found.amount.amount - details.amount.amount) > tolerance.amount
            )
        ):
            problems.append(f"amount {found.amount} of {details.amount}")
        return problems

    def split(
        self,
        sample_id: str,
        sample_seal: str,
        parent_seal: str,
        description: str,
        sample: Quantity,
        now: datetime,
    ) -> Item:
        if self.state not in (ItemState.SEIZED, *RESTING):
            raise FailedPrecondition(
                "ITEM_NOT_AT_REST",
                f"a sample cannot be taken from a {self.state.value} item",
                metadata={"state": self.state.value, "item": self.name},
            )
        details = self.spec.details
        if isinstance(details, Drugs) and sample.weight is not None:
            if sample.weight >= details.net_weight:
                raise FailedPrecondition("SAMPLE_TOO_LARGE", "the sample weighs the whole item")
            self.spec = replace(
                self.spec, details=replace(details, net_weight=details.net_weight - sample.weight)
            )
            details = Drugs(details.substance, sample.weight, details.unit)
        self.spec = replace(self.spec, seal=parent_seal)
        child = ItemSpec(
            self.spec.category,
            description or f"sample of {self.name}",
            None,
            (),
            sample_seal,
            sample.count or 1,
            details,
        )
        return Item(
            id=sample_id,
            seizure_id=self.seizure_id,
            case_number=self.case_number,
            spec=child,
            custodian=self.custodian,
            create_time=now,
            update_time=now,
            state=self.state,
            location=self.location,
            parent_id=self.id,
            decision=self.decision,
            resume_state=self.resume_state,
        )


@dataclass
class Inventory:
    id: str
    location: str
    started_by: str
    start_time: datetime
    expected: tuple[tuple[str, str], ...]  # (item id, seal) at the start
    state: str = "OPEN"
    submitted_by: str = ""
    found: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    signed_report: bytes = b""
    report_sha256: str = ""

    @property
    def name(self) -> str:
        return f"inventories/{self.id}"
