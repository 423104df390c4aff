"""Access administration domain: units, users, role grants, personnel events. Pure Python."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from justice.platform.errors import FieldViolation, InvalidArgument
from justice.security.principal import Role

USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
UNIT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
GRANT_ID = re.compile(r"^[a-f0-9]{24}$")
_USER_NAME = re.compile(r"^users/([^/]+)$")
_UNIT_NAME = re.compile(r"^units/([^/]+)$")
_GRANT_NAME = re.compile(r"^users/([^/]+)/grants/([^/]+)$")


class UserState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    DEPARTED = "DEPARTED"


class PersonnelEventType(enum.StrEnum):
    HIRED = "HIRED"
    PLACED = "PLACED"
    TRANSFERRED = "TRANSFERRED"
    SUSPENDED = "SUSPENDED"
    DEPARTED = "DEPARTED"


@dataclass(frozen=True)
class Unit:
    id: str
    display_name: str
    agency: str
    # The exchange partner id the unit acts as (a prosecutor's office), or "".
    partner: str
    # Every member holds these, bound to the unit: a transfer swaps them.
    member_roles: frozenset[Role]
    create_time: datetime

    @property
    def name(self) -> str:
        return f"units/{self.id}"


@dataclass
class User:
    id: str
    state: UserState
    agency: str
    unit: str  # unit id, "" before placement
    service_account: bool
    create_time: datetime
    update_time: datetime
    # Tokens issued up to this instant no longer work.
    credentials_valid_after: datetime | None = None
    revision: int = 1

    @property
    def name(self) -> str:
        return f"users/{self.id}"


@dataclass
class Grant:
    id: str
    user: str
    role: Role
    # Unit id when the grant came with a placement; "" for a personal grant.
    unit: str
    granted_by: str
    create_time: datetime
    approval: str = ""
    reason: str = ""
    expire_time: datetime | None = None
    revoke_time: datetime | None = None
    revoked_by: str = ""
    request_id: str = ""

    @property
    def name(self) -> str:
        return f"users/{self.user}/grants/{self.id}"

    def active_at(self, now: datetime) -> bool:
        return self.revoke_time is None and (self.expire_time is None or now < self.expire_time)

    def revoke(self, by: str, now: datetime) -> None:
        if self.revoke_time is None:
            self.revoke_time = now
            self.revoked_by = by


@dataclass(frozen=True)
class PersonnelEvent:
    event_id: str
    type: PersonnelEventType
    user: str  # user id
    unit: str = ""  # unit id
    agency: str = ""
    service_account: bool = False

    def check(self) -> None:
        violations = []
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", self.event_id):
            violations.append(FieldViolation("event.event_id", "1-128 of A-Z a-z 0-9 _ . : -"))
        if not USER_ID.match(self.user):
            violations.append(FieldViolation("event.user", "expected users/{user}"))
        placing = self.type in (
            PersonnelEventType.HIRED,
            PersonnelEventType.PLACED,
            PersonnelEventType.TRANSFERRED,
        )
        if self.type is not PersonnelEventType.HIRED and placing and not self.unit:
            violations.append(FieldViolation("event.unit", f"required for {self.type.value}"))
        if self.unit and not UNIT_ID.match(self.unit):
            violations.append(FieldViolation("event.unit", "expected units/{unit}"))
        if len(self.agency) > 200:
            violations.append(FieldViolation("event.agency", "at most 200 characters"))
        if violations:
            raise InvalidArgument.of(violations)


def roles_in_force(grants: list[Grant], now: datetime) -> frozenset[Role]:
    return frozenset(g.role for g in grants if g.active_at(now))


def _id_of(pattern: re.Pattern[str], name: str, field: str, expected: str) -> str:
    match = pattern.match(name)
    if match is None:
        raise InvalidArgument.of([FieldViolation(field, f"expected {expected}")])
    return match.group(1)


def user_id(name: str, field: str = "name") -> str:
    value = _id_of(_USER_NAME, name, field, "users/{user}")
    if not USER_ID.match(value):
        raise InvalidArgument.of([FieldViolation(field, "not a valid user id")])
    return value


def unit_id(name: str, field: str = "unit") -> str:
    value = _id_of(_UNIT_NAME, name, field, "units/{unit}")
    if not UNIT_ID.match(value):
        raise InvalidArgument.of([FieldViolation(field, "not a valid unit id")])
    return value


def grant_ids(name: str, field: str = "name") -> tuple[str, str]:
    match = _GRANT_NAME.match(name)
    if match is None or not USER_ID.match(match.group(1)) or not GRANT_ID.match(match.group(2)):
        raise InvalidArgument.of([FieldViolation(field, "expected users/{user}/grants/{grant}")])
    return match.group(1), match.group(2)
