"""Exchange administration use cases: the partner registry, deliveries, dead letters.

Owns its transactions; the relay and the inbound consumer are separate (relay.py, inbound.py).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from justice.exchange.model import (
    DeadLetter,
    Delivery,
    DeliveryState,
    KeptReceipt,
    Partner,
    check_partner,
)
from justice.exchange.registry import PartnerDirectory
from justice.exchange.store import (
    DeadLetterQuery,
    DeliveryQuery,
    ExchangeTransaction,
    newest_subject_ref,
)
from justice.platform.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound

_PARTNER_NAME = re.compile(r"^partners/([a-z0-9][a-z0-9_-]{0,63})$")
_DELIVERY_NAME = re.compile(r"^deliveries/([0-9a-f-]{36})$")
_RECEIPT_NAME = re.compile(r"^(deliveries/[0-9a-f-]{36})/receipt$")
# Receipts bundled with one exported document: far more than any real fan-out.
MAX_RECEIPTS_ABOUT = 100


@dataclass(frozen=True)
class RelayStatus:
    backlog: int
    awaiting_receipt: int
    dead_letters: int
    oldest_pending: datetime | None


def partner_id_of(name: str, field: str = "name") -> str:
    match = _PARTNER_NAME.match(name)
    if match is None:
        raise InvalidArgument.of([FieldViolation(field, "expected partners/{partner}")])
    return match.group(1)


def delivery_id_of(name: str) -> str:
    match = _DELIVERY_NAME.match(name)
    if match is None:
        raise InvalidArgument.of([FieldViolation("name", "expected deliveries/{delivery}")])
    return match.group(1)


class ExchangeService:
    def __init__(
        self,
        uow: Callable[[], ExchangeTransaction],
        directory: PartnerDirectory,
        clock: Callable[[], datetime],
        partner_added: Callable[[str], Awaitable[None]] | None = None,
        wake_relay: Callable[[], None] | None = None,
    ) -> None:
        self._uow = uow
        self._directory = directory
        self._clock = clock
        self._partner_added = partner_added
        self._wake_relay = wake_relay

    async def create_partner(self, partner: Partner) -> Partner:
        check_partner(partner)
        async with self._uow() as tx:
            if await tx.partners.get(partner.id) is not None:
                raise AlreadyExists(
                    "PARTNER_EXISTS",
                    f"{partner.name} exists already",
                    metadata={"name": partner.name},
                )
            partner.create_time = partner.update_time = self._clock()
            await tx.partners.add(partner)
            await tx.commit()
        self._directory.invalidate(partner.id)
        if self._partner_added is not None:
            await self._partner_added(partner.id)
        return partner

    async def get_partner(self, name: str) -> Partner:
        partner_id = partner_id_of(name)
        async with self._uow() as tx:
            return await self._load_partner(tx, partner_id)

    async def list_partners(self, size: int, after: str) -> Sequence[Partner]:
        async with self._uow() as tx:
            return await tx.partners.list(size, after)

    async def update_partner(self, changed: Partner) -> Partner:
        check_partner(changed)
        async with self._uow() as tx:
            current = await self._load_partner(tx, changed.id)
            changed.create_time = current.create_time
            changed.update_time = self._clock()
            await tx.partners.update(changed)
            await tx.commit()
        self._directory.invalidate(changed.id)
        return changed

    async def delete_partner(self, name: str) -> None:
        partner_id = partner_id_of(name)
        async with self._uow() as tx:
            await self._load_partner(tx, partner_id)
            await tx.partners.delete(partner_id)
            await tx.commit()
        self._directory.invalidate(partner_id)

    async def list_deliveries(self, query: DeliveryQuery) -> Sequence[Delivery]:
        async with self._uow() as tx:
            return await tx.deliveries.list(query)

    async def get_delivery(self, name: str, scope: str | None) -> Delivery:
        """`scope`: the partner the caller is limited to, None for no limit."""
        delivery_id = delivery_id_of(name)
        async with self._uow() as tx:
            delivery = await tx.deliveries.get(delivery_id)
        # Another partner's delivery is reported as absent, not as forbidden: ids leak nothing.
        if delivery is None or (scope is not None and delivery.recipient != scope):
            raise NotFound("DELIVERY_NOT_FOUND", f"no {name}", metadata={"name": name})
        return delivery

    async def delivery_receipt(self, name: str, scope: str | None) -> KeptReceipt:
        """The partner's signed receipt for `deliveries/{id}/receipt`, as it arrived."""
        match = _RECEIPT_NAME.match(name)
        if match is None:
            raise InvalidArgument.of(
                [FieldViolation("name", "expected deliveries/{delivery}/receipt")]
            )
        delivery = await self.get_delivery(match.group(1), scope)
        async with self._uow() as tx:
            kept = await tx.receipts.of(delivery)
        if kept is None:
            raise NotFound(
                "RECEIPT_NOT_FOUND",
                f"no receipt kept for {delivery.name} (state {delivery.state.value})",
                metadata={"name": name},
            )
        return kept

    async def receipts_about(self, subject_ref: str) -> Sequence[KeptReceipt]:
        """Kept receipts of every delivery about a domain object (all its versions)."""
        async with self._uow() as tx:
            return await tx.receipts.about(subject_ref, MAX_RECEIPTS_ABOUT)

    async def redeliver(self, name: str) -> Delivery:
        delivery = await self.get_delivery(name, None)
        previous = delivery.state
        delivery.redeliver()
        async with self._uow() as tx:
            await tx.deliveries.reset(delivery, previous)
            await tx.relay.requeue(delivery.id, delivery.attempts)
            await tx.dead_letters.resolve(delivery.id, self._clock())
            await tx.commit()
        if self._wake_relay is not None:
            self._wake_relay()
        return delivery

    async def list_dead_letters(self, query: DeadLetterQuery) -> Sequence[DeadLetter]:
        async with self._uow() as tx:
            return await tx.dead_letters.list(query)

    async def newest_subject_ref(self, resource: str) -> str | None:
        """The newest outgoing message's subject_ref about `resource` (any domain)."""
        async with self._uow() as tx:
            return await newest_subject_ref(tx.session, resource)

    async def relay_status(self) -> RelayStatus:
        async with self._uow() as tx:
            backlog, oldest = await tx.relay.backlog()
            awaiting = await tx.deliveries.count(DeliveryState.PUBLISHED)
            dead = await tx.dead_letters.count()
        return RelayStatus(backlog, awaiting, dead, oldest)

    async def delivery_counts(self) -> dict[DeliveryState, int]:
        async with self._uow() as tx:
            return await tx.deliveries.count_by_state()

    @staticmethod
    async def _load_partner(tx: ExchangeTransaction, partner_id: str) -> Partner:
        partner = await tx.partners.get(partner_id)
        if partner is None:
            name = f"partners/{partner_id}"
            raise NotFound("PARTNER_NOT_FOUND", f"no {name}", metadata={"name": name})
        return partner
