"""A read-through cache of the partner registry for the relay and the inbound consumer.

Both look a partner up for every message; the registry changes rarely. Entries live a few
seconds, so a change made through the admin API (perhaps in another process) takes effect
within that bound, and `invalidate` makes it immediate in this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from justice.exchange.model import Partner
from justice.exchange.store import ExchangeTransaction


@dataclass(frozen=True)
class KnownPartner:
    partner: Partner
    public_key: PublicKeyTypes


class PartnerDirectory:
    def __init__(self, uow: Callable[[], ExchangeTransaction], ttl_seconds: float = 2.0) -> None:
        self._uow = uow
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, KnownPartner | None]] = {}

    async def get(self, partner_id: str) -> KnownPartner | None:
        hit = self._cache.get(partner_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        async with self._uow() as tx:
            partner = await tx.partners.get(partner_id)
        known = None
        if partner is not None:
            certificate = x509.load_pem_x509_certificates(partner.certificate_pem.encode())[0]
            known = KnownPartner(partner, certificate.public_key())
        self._cache[partner_id] = (now, known)
        return known

    def invalidate(self, partner_id: str | None = None) -> None:
        if partner_id is None:
            self._cache.clear()
        else:
            self._cache.pop(partner_id, None)
