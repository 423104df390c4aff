"""Principals and roles: pure values shared by identity, rules, approvals and access."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Role(enum.StrEnum):
    REPORT_WRITER = "REPORT_WRITER"
    PROSECUTOR = "PROSECUTOR"
    CUSTODIAN = "CUSTODIAN"
    CUSTODY_SUPERVISOR = "CUSTODY_SUPERVISOR"
    FINES_OFFICER = "FINES_OFFICER"
    PARTNER_AGENCY = "PARTNER_AGENCY"
    AUDITOR = "AUDITOR"
    ACCESS_ADMIN = "ACCESS_ADMIN"
    SERVICE = "SERVICE"


@dataclass(frozen=True)
class Principal:
    id: str
    agency: str
    # Unit id (units/{unit}) and its display name, e.g. "PZ Antwerpen/Team A".
    unit: str
    unit_name: str = ""
    roles: frozenset[Role] = frozenset()
    # The exchange partner id the principal's unit acts as (a prosecutor's office), if any.
    partner: str = ""
    service: bool = False


@dataclass(frozen=True)
class Standing:
    """What the registry says about a subject right now."""

    principal: Principal
    active: bool
    # Tokens issued before this instant are dead (set on suspension and departure).
    credentials_valid_after: datetime | None = None
