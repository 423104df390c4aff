"""Inventories by someone outside the holding unit, and overdue check-outs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from justice.custody import chain, document
from justice.custody.ledger import (
    INVENTORY,
    Change,
    CustodyAlert,
    Ledger,
    id_of,
    new_id,
)
from justice.custody.model import (
    Inventory,
    ItemState,
    check_seal,
)
from justice.platform.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)


class InventoryService(Ledger):
    """Counting what a location holds; chasing what is late."""

    # -- inventory ---------------------------------------------------------------------------

    async def start_inventory(self, location: str, actor: str) -> Inventory:
        async with self._uow() as uow:
            await self._location(uow, location)
            held = await uow.items.at_location(location)
            inventory = Inventory(
                id=new_id(),
                location=location,
                started_by=actor,
                start_time=self._clock(),
                expected=tuple((i.id, i.seal) for i in held),
            )
            await uow.inventories.add(inventory)
            await uow.commit()
        return inventory

    async def submit_inventory(self, name: str, found: Sequence[str], actor: str) -> Inventory:
        inventory_id = id_of(INVENTORY, name, "name", "inventories/{inventory}")
        v: list[FieldViolation] = []
        for i, seal in enumerate(found):
            check_seal(f"found_seals[{i}]", seal, v)
        if v:
            raise InvalidArgument.of(v)
        async with self._uow() as uow:
            inventory = await uow.inventories.get(inventory_id)
            if inventory is None:
                raise NotFound("INVENTORY_NOT_FOUND", f"no {name}", metadata={"name": name})
            if inventory.state != "OPEN":
                raise FailedPrecondition("INVENTORY_SUBMITTED", "the inventory was submitted")
            held = await uow.items.at_location(inventory.location)
            # Someone outside the unit that holds the goods counts them.
            if any(i.custodian == actor for i in held):
                raise PermissionDenied(
                    "CUSTODIAN_OF_LOCATION",
                    "a custodian of the location cannot take its inventory",
                    metadata={"location": inventory.location},
                )
            seen = set(found)
            now = self._clock()
            missing = [i for i in held if i.seal not in seen and i.state is not ItemState.MISSING]
            expected_seals = {i.seal for i in held}
            inventory.found = tuple(sorted(seen))
            inventory.unexpected = tuple(sorted(seen - expected_seals))
            inventory.missing = tuple(i.name for i in missing)
            inventory.submitted_by = actor
            inventory.state = "SUBMITTED"
            changes = []
            for item in missing:
                item.go_missing()
                changes.append(Change(item, "MISSING", {"inventory": inventory.name}))
            await self._apply(uow, changes, actor, now)
            report = document.inventory_report(inventory, now)
            inventory.signed_report = await self._signer.sign(report, self.config.signer_id)
            inventory.report_sha256 = hashlib.sha256(inventory.signed_report).hexdigest()
            await uow.inventories.update(inventory)
            await uow.commit()
        self._anchor(missing)
        if missing:
            await self._alerts.raise_alerts(
                [
                    CustodyAlert(
                        "ITEM_MISSING",
                        i.name,
                        actor,
                        f"{i.name} (seal {i.seal}) not found at {inventory.location}",
                        f"missing|{i.name}|{inventory.id}",
                    )
                    for i in missing
                ]
            )
        return inventory

    async def sweep_overdue(self, limit: int = 500) -> list[CustodyAlert]:
        """Alerts for checked-out items past their due date (raised once per due date)."""
        now = self._clock()
        async with self._uow() as uow:
            late = await uow.items.overdue(now, limit)
        alerts = [
            CustodyAlert(
                "CHECKOUT_OVERDUE",
                i.name,
                i.custodian,
                f"{i.name} checked out to {i.checked_out_to} was due {chain.iso(i.due_time)}",
                f"overdue|{i.name}|{chain.iso(i.due_time)}",
            )
            for i in late
            if i.due_time is not None
        ]
        if alerts:
            await self._alerts.raise_alerts(alerts)
        return alerts
