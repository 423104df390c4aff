"""Fines in and out of protobuf: the gRPC messages and the partner payloads share these
conversions (api.py for the servicer, service.py for what goes through the outbox)."""

from __future__ import annotations

from justice.fines.model import (
    Address,
    DetectionSource,
    Fine,
    Money,
    Offence,
    Person,
    PersonKind,
    Vehicle,
    parse_money,
)
from justice.fines.v1 import fines_pb2 as pb
from justice.platform.errors import FieldViolation, InvalidArgument
from justice.platform.timestamps import timestamp


def money_to_proto(money: Money) -> pb.Money:
    return pb.Money(amount=str(money.amount), currency_code=money.currency)


def money_from_proto(money: pb.Money, where: str) -> Money:
    return parse_money(money.amount, money.currency_code, where)


def offence_from_proto(value: int) -> Offence | None:
    if value == pb.OFFENCE_UNSPECIFIED:
        return None
    try:
        return Offence[pb.Offence.Name(pb.Offence.ValueType(value))]
    except (ValueError, KeyError):
        return None


def offence_to_proto(offence: Offence | None) -> pb.Offence.ValueType:
    return pb.Offence.Value(offence.value) if offence else pb.OFFENCE_UNSPECIFIED


def source_from_proto(value: int) -> DetectionSource | None:
    if value == pb.DETECTION_SOURCE_UNSPECIFIED:
        return None
    try:
        return DetectionSource[pb.DetectionSource.Name(pb.DetectionSource.ValueType(value))]
    except (ValueError, KeyError):
        return None


def person_to_proto(person: Person | None) -> pb.Person | None:
    if person is None:
        return None
    a = person.address
    return pb.Person(
        kind=pb.PersonKind.Value(person.kind.value),
        name=person.name,
        address=pb.Address(
            street=a.street, postal_code=a.postal_code, city=a.city, country_code=a.country
        ),
        document_language=person.document_language,
    )


def person_from_proto(person: pb.Person, where: str, present: bool = True) -> Person | None:
    if not present:
        return None
    v: list[FieldViolation] = []
    if person.kind == pb.PERSON_KIND_UNSPECIFIED:
        v.append(FieldViolation(f"{where}.kind", "NATURAL or LEGAL"))
    if not person.name.strip():
        v.append(FieldViolation(f"{where}.name", "required"))
    if len(person.address.country_code) != 2:
        v.append(FieldViolation(f"{where}.address.country_code", "an ISO 3166-1 alpha-2 code"))
    if v:
        raise InvalidArgument.of(v)
    a = person.address
    return Person(
        kind=PersonKind(pb.PersonKind.Name(person.kind)),
        name=person.name.strip(),
        address=Address(a.street, a.postal_code, a.city, a.country_code.upper()),
        document_language=person.document_language.lower(),
    )


def vehicle_to_proto(vehicle: Vehicle | None) -> pb.Vehicle | None:
    if vehicle is None:
        return None
    return pb.Vehicle(
        vin=vehicle.vin, make=vehicle.make, model=vehicle.model, eu_category=vehicle.eu_category
    )


def vehicle_from_proto(vehicle: pb.Vehicle) -> Vehicle:
    return Vehicle(vehicle.vin, vehicle.make, vehicle.model, vehicle.eu_category)


def fine_to_proto(fine: Fine) -> pb.Fine:
    d = fine.detection
    return pb.Fine(
        name=fine.name,
        state=pb.FineState.Value(fine.state.value),
        detection_source=pb.DetectionSource.Value(d.source.value)
        if d.source
        else pb.DETECTION_SOURCE_UNSPECIFIED,
        device_id=d.device_id,
        offence_time=timestamp(d.offence_time),
        place=d.place,
        offence_country=d.offence_country,
        plate=d.plate,
        registration_country=d.registration_country,
        vehicle_category=d.vehicle_category,
        offence=offence_to_proto(d.offence),
        provision=d.provision,
        speed=pb.Speed(
            measured=d.speed.measured, corrected=d.speed.corrected, allowed=d.speed.allowed
        )
        if d.speed
        else None,
        evidence=list(d.evidence),
        amount=money_to_proto(fine.total),
        paid=money_to_proto(fine.paid),
        surcharge=money_to_proto(fine.surcharge),
        payment_reference=fine.payment_reference,
        due_time=timestamp(fine.due_time),
        vehicle=vehicle_to_proto(fine.vehicle),
        holder=person_to_proto(fine.holder),
        owner=person_to_proto(fine.owner),
        end_user=person_to_proto(fine.end_user),
        driver=person_to_proto(fine.driver),
        notice_language=fine.notice_language,
        notices_sent=fine.notices_sent,
        create_time=timestamp(fine.create_time),
        update_time=timestamp(fine.update_time),
        executing_partner=fine.executing_partner,
    )
