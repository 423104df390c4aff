"""Dev demo seeding: the dev PKI's demo principals in the access registry, and its partner
principals on the exchange. Never in production (the composition root checks)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from justice.access.service import Enrolment
from justice.custody.ledger import MESSAGE_TYPE_DECISION as CUSTODY_DECISION
from justice.custody.ledger import MESSAGE_TYPE_DECISION_REQUESTED as CUSTODY_DECISION_REQUESTED
from justice.custody.ledger import MESSAGE_TYPE_EVENT as CUSTODY_EVENT
from justice.devstack.pki import DEMO_PRINCIPALS, PARTNER_KINDS, DevPki, PrincipalKind
from justice.exchange.model import Partner, PartnerKind
from justice.exchange.service import ExchangeService
from justice.fines.service import (
    MESSAGE_TYPE_LOOKUP,
    MESSAGE_TYPE_LOOKUP_REPLY,
    MESSAGE_TYPE_NOTICE,
    MESSAGE_TYPE_PAYMENT,
)
from justice.platform.errors import AlreadyExists
from justice.reports.service import (
    MESSAGE_TYPE_ACKNOWLEDGED,
    MESSAGE_TYPE_REJECTED,
    MESSAGE_TYPE_SUBMITTED,
)
from justice.security.principal import Role

# The role each kind holds through its unit, and personal high roles.
_MEMBER_ROLE = {
    PrincipalKind.OFFICER: Role.REPORT_WRITER,
    PrincipalKind.PROSECUTOR: Role.PROSECUTOR,
    PrincipalKind.COURT: Role.PARTNER_AGENCY,
    PrincipalKind.FINE_AGENCY: Role.PARTNER_AGENCY,
    PrincipalKind.VEHICLE_REGISTER: Role.PARTNER_AGENCY,
    PrincipalKind.SERVICE: Role.SERVICE,
    PrincipalKind.CUSTODIAN: Role.CUSTODIAN,
    PrincipalKind.CUSTODY_SUPERVISOR: Role.CUSTODIAN,
    PrincipalKind.FINES_OFFICER: Role.FINES_OFFICER,
}
_PERSONAL_ROLE = {
    PrincipalKind.CUSTODY_SUPERVISOR: Role.CUSTODY_SUPERVISOR,
    PrincipalKind.AUDITOR: Role.AUDITOR,
    PrincipalKind.ACCESS_ADMIN: Role.ACCESS_ADMIN,
}


def demo_enrolments() -> list[Enrolment]:
    """The dev PKI's demo principals as registry entries (bootstrap grants, no four eyes)."""
    enrolments = []
    for p in DEMO_PRINCIPALS:
        partner = p.id if p.kind in PARTNER_KINDS else ""
        member = _MEMBER_ROLE.get(p.kind)
        personal = _PERSONAL_ROLE.get(p.kind)
        enrolments.append(
            Enrolment(
                user=p.id,
                agency=p.agency,
                unit=partner or re.sub(r"[^a-z0-9]+", "-", p.unit.lower()).strip("-"),
                unit_name=p.unit,
                unit_partner=partner,
                member_roles=frozenset({member} if member else ()),
                personal_roles=frozenset({personal} if personal else ()),
                service_account=p.kind is PrincipalKind.SERVICE,
            )
        )
    return enrolments


# Their kind, country, and what they send and receive. The court has no message types
# yet; it is registered so its inbox exists when its domain starts sending.
_DEMO_PARTNERS = {
    PrincipalKind.PROSECUTOR: (
        PartnerKind.PROSECUTOR,
        "BE",
        frozenset({MESSAGE_TYPE_ACKNOWLEDGED, MESSAGE_TYPE_REJECTED, CUSTODY_DECISION}),
        frozenset({MESSAGE_TYPE_SUBMITTED, CUSTODY_EVENT, CUSTODY_DECISION_REQUESTED}),
    ),
    PrincipalKind.COURT: (PartnerKind.COURT, "BE", frozenset(), frozenset()),
    # The fines agency prints and posts the letters, and reports the payments it receives.
    PrincipalKind.FINE_AGENCY: (
        PartnerKind.FINE_AGENCY,
        "BE",
        frozenset({MESSAGE_TYPE_PAYMENT}),
        frozenset({MESSAGE_TYPE_NOTICE}),
    ),
    # The demo register is the Dutch RDW.
    PrincipalKind.VEHICLE_REGISTER: (
        PartnerKind.VEHICLE_REGISTER,
        "NL",
        frozenset({MESSAGE_TYPE_LOOKUP_REPLY}),
        frozenset({MESSAGE_TYPE_LOOKUP}),
    ),
}


async def register_demo_partners(exchange: ExchangeService, pki: DevPki) -> None:
    """Register the dev PKI's partner principals on the exchange, once."""
    now = datetime.now(UTC)
    for principal in DEMO_PRINCIPALS:
        if principal.kind not in _DEMO_PARTNERS:
            continue
        kind, country, sends, receives = _DEMO_PARTNERS[principal.kind]
        certificate, _ = pki.envelope_paths(principal.id)
        partner = Partner(
            id=principal.id,
            kind=kind,
            country=country,
            certificate_pem=certificate.read_text(),
            send_types=sends,
            receive_types=receives,
            create_time=now,
            update_time=now,
        )
        try:
            await exchange.create_partner(partner)
        except AlreadyExists:
            # A second run keeps the first's registry, moved to the P-256 envelope key.
            known = await exchange.get_partner(partner.name)
            if known.certificate_pem != partner.certificate_pem:
                known.certificate_pem = partner.certificate_pem
                await exchange.update_partner(known)
