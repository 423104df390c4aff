"""A vehicle register of a member state (the EUCARIS side of Directive 2015/413), built
only on the partner SDK, for tests and `justice demo`.

It answers owner lookups from a small fixture register: the vehicle data, and holder,
owner and end user as separate persons (a leasing company holds one car). It refuses a
request that carries no reference time, since Annex I requires it, and answers NOT_FOUND
for a plate it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from justice.fines.service import MESSAGE_TYPE_LOOKUP, MESSAGE_TYPE_LOOKUP_REPLY
from justice.fines.v1 import fines_pb2 as pb
from justice.partner.client import Answer, Received


@dataclass(frozen=True)
class Registration:
    vehicle: pb.Vehicle
    holder: pb.Person
    owner: pb.Person | None = None
    end_user: pb.Person | None = None


def _person(
    kind: pb.PersonKind.ValueType,
    name: str,
    street: str,
    code: str,
    city: str,
    country: str,
    lang: str,
) -> pb.Person:
    return pb.Person(
        kind=kind,
        name=name,
        address=pb.Address(street=street, postal_code=code, city=city, country_code=country),
        document_language=lang,
    )


LEASING_COMPANY = _person(
    pb.LEGAL, "Lease Holland B.V.", "Stationsplein 10", "3511 ED", "Utrecht", "NL", "nl"
)

# (registration country, plate) -> what the register holds.
FIXTURE: Mapping[tuple[str, str], Registration] = {
    ("NL", "AB123C"): Registration(
        pb.Vehicle(vin="WVWZZZ1KZ6W000001", make="Volkswagen", model="Golf", eu_category="M1"),
        _person(pb.NATURAL, "Jan de Vries", "Damrak 1", "1012 LG", "Amsterdam", "NL", "nl"),
    ),
    # A leased car: the company holds it, the bank owns it, an employee uses it.
    ("NL", "LE999S"): Registration(
        pb.Vehicle(vin="WBA8E9C50GK000002", make="BMW", model="320d", eu_category="M1"),
        LEASING_COMPANY,
        owner=_person(
            pb.LEGAL, "ING Lease B.V.", "Bijlmerdreef 24", "1102 CT", "Amsterdam", "NL", "nl"
        ),
        end_user=_person(
            pb.NATURAL, "Pieter Bakker", "Lange Voorhout 5", "2514 ED", "Den Haag", "NL", "nl"
        ),
    ),
    # No document language on file: the letter takes a language of Luxembourg.
    ("LU", "LX4242"): Registration(
        pb.Vehicle(vin="VF1RFB00X00000003", make="Renault", model="Clio", eu_category="M1"),
        _person(pb.NATURAL, "Marie Schmit", "Grand-Rue 12", "1660", "Luxembourg", "LU", ""),
    ),
    ("PL", "WX12345"): Registration(
        pb.Vehicle(vin="TMBJJ7NE0J0000004", make="Škoda", model="Octavia", eu_category="M1"),
        _person(
            pb.NATURAL,
            "Łukasz Żółkiewski",
            "ul. Świętokrzyska 14",
            "00-050",
            "Warszawa",
            "PL",
            "pl",
        ),
    ),
    ("RO", "B123ABC"): Registration(
        pb.Vehicle(vin="UU1HSDACN00000005", make="Dacia", model="Duster", eu_category="M1"),
        _person(pb.NATURAL, "Ștefan Țăranu", "Strada Șelari 9", "030068", "București", "RO", "ro"),
    ),
}


class VehicleRegisterSimulator:
    """One register answering for the partner ids it is connected as."""

    def __init__(
        self,
        register: Mapping[tuple[str, str], Registration] = FIXTURE,
        *,
        answer_twice: bool = False,
    ) -> None:
        self._register = register
        # Sends every reply twice (a register that retries): the platform applies it once.
        self._answer_twice = answer_twice
        self.answered: list[str] = []
        self.refused: list[str] = []

    async def handle(self, received: Received) -> Answer:
        if received.type != MESSAGE_TYPE_LOOKUP:
            return Answer.accept()
        request = pb.OwnerLookupRequest()
        request.ParseFromString(received.payload)
        if not request.HasField("reference_time"):
            self.refused.append(request.lookup_id)
            return Answer.reject("REFERENCE_TIME_MISSING", "Annex I requires the offence time")
        reply = self.lookup(request)
        self.answered.append(request.lookup_id)
        payload = (MESSAGE_TYPE_LOOKUP_REPLY, reply.SerializeToString())
        return Answer.accept(payload, payload) if self._answer_twice else Answer.accept(payload)

    def lookup(self, request: pb.OwnerLookupRequest) -> pb.OwnerLookupReply:
        found = self._register.get((request.registration_country, request.plate))
        if found is None:
            return pb.OwnerLookupReply(lookup_id=request.lookup_id, not_found=True)
        return pb.OwnerLookupReply(
            lookup_id=request.lookup_id,
            vehicle=found.vehicle,
            holder=found.holder,
            owner=found.owner,
            end_user=found.end_user,
        )
