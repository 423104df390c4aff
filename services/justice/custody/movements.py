"""Where an item is and who holds it: transfers, check-outs, moves and samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from justice.custody import chain
from justice.custody.ledger import (
    Change,
    CustodyAlert,
    Ledger,
    Scope,
    new_id,
)
from justice.custody.model import (
    Item,
    Quantity,
    check_location,
    check_principal,
    check_seal,
)
from justice.platform.errors import (
    AlreadyExists,
    FieldViolation,
    InvalidArgument,
)


class MovementService(Ledger):
    """Custody hand-overs and physical movements."""

    # -- movements -------------------------------------------------------------------------

    async def transfer(
        self, name: str, receiver: str, location: str, note: str, scope: Scope
    ) -> Item:
        v: list[FieldViolation] = []
        check_principal("receiver", receiver, v)
        if location:
            check_location("location", location, v)
        if len(note) > 512:
            v.append(FieldViolation("note", "at most 512 characters"))
        if v:
            raise InvalidArgument.of(v)

        def act(item: Item) -> tuple[str, Mapping[str, str]]:
            item.transfer(receiver)
            return "TRANSFERRED", {
                "from": item.custodian,
                "to": receiver,
                "location": location,
                "note": note,
            }

        return await self._change_one(name, scope, act)

    async def accept(
        self, name: str, seal_intact: bool, found: Quantity, location: str, scope: Scope
    ) -> Item:
        if location:
            v: list[FieldViolation] = []
            check_location("location", location, v)
            if v:
                raise InvalidArgument.of(v)
        problems: list[str] = []

        def act(item: Item) -> tuple[str, Mapping[str, str]]:
            previous = item.custodian
            item.accept(scope.actor, location)
            problems.extend(item.discrepancies(found, self.config.tolerance))
            data = {"from": previous, "to": scope.actor, "seal_intact": str(seal_intact).lower()}
            if found.count is not None:
                data["count"] = str(found.count)
            if found.weight is not None:
                data["weight"] = str(found.weight)
            if found.amount is not None:
                data["amount"] = str(found.amount)
            if problems:
                data["discrepancy"] = "; ".join(problems)
            return "ACCEPTED", data

        item = await self._change_one(name, scope, act, custody=False)
        alerts = []
        if not seal_intact:
            alerts.append(
                CustodyAlert(
                    "SEAL_BROKEN",
                    item.name,
                    scope.actor,
                    f"seal {item.seal} of {item.name} found broken on acceptance",
                    f"seal|{item.name}|{item.chain_length}",
                )
            )
        if problems:
            alerts.append(
                CustodyAlert(
                    "QUANTITY_DISCREPANCY",
                    item.name,
                    scope.actor,
                    f"{item.name} accepted with {'; '.join(problems)}",
                    f"quantity|{item.name}|{item.chain_length}",
                )
            )
        if alerts:
            await self._alerts.raise_alerts(alerts)
        return item

    async def reject(self, name: str, reason: str, scope: Scope) -> Item:
        if not reason.strip() or len(reason) > 512:
            raise InvalidArgument.of([FieldViolation("reason", "required, at most 512")])

        def act(item: Item) -> tuple[str, Mapping[str, str]]:
            item.reject(scope.actor)
            return "REJECTED", {"by": scope.actor, "reason": reason}

        return await self._change_one(name, scope, act, custody=False)

    async def check_out(
        self, name: str, destination: str, due: datetime | None, purpose: str, scope: Scope
    ) -> Item:
        v: list[FieldViolation] = []
        if not destination.strip() or len(destination) > 256:
            v.append(FieldViolation("destination", "required, at most 256"))
        if due is None or due <= self._clock():
            v.append(FieldViolation("due_time", "required, in the future"))
        if len(purpose) > 256:
            v.append(FieldViolation("purpose", "at most 256"))
        if v or due is None:
            raise InvalidArgument.of(v)

        def act(item: Item) -> tuple[str, Mapping[str, str]]:
            item.check_out(destination, due)
            return "CHECKED_OUT", {
                "destination": destination,
                "due": chain.iso(due),
                "purpose": purpose,
            }

        return await self._change_one(name, scope, act)

    async def check_in(self, name: str, seal_intact: bool, location: str, scope: Scope) -> Item:
        if location:
            v: list[FieldViolation] = []
            check_location("location", location, v)
            if v:
                raise InvalidArgument.of(v)

        def act(item: Item) -> tuple[str, Mapping[str, str]]:
            source = item.checked_out_to
            item.check_in(location)
            return "CHECKED_IN", {
                "from": source,
                "seal_intact": str(seal_intact).lower(),
                "location": item.location,
            }

        item = await self._change_one(name, scope, act)
        if not seal_intact:
            await self._alerts.raise_alerts(
                [
                    CustodyAlert(
                        "SEAL_BROKEN",
                        item.name,
                        scope.actor,
                        f"seal {item.seal} of {item.name} found broken at check-in",
                        f"seal|{item.name}|{item.chain_length}",
                    )
                ]
            )
        return item

    async def move(self, names: Sequence[str], location: str, scope: Scope) -> list[Item]:
        v: list[FieldViolation] = []
        check_location("location", location, v)
        if not names or len(names) > 500:
            v.append(FieldViolation("names", "1 to 500 items"))
        if len(set(names)) != len(names):
            v.append(FieldViolation("names", "an item named twice"))
        if v:
            raise InvalidArgument.of(v)
        async with self._uow() as uow:
            changes = []
            for i, name in enumerate(names):
                item = await self._load(uow, name, f"names[{i}]")
                self._require_custody(item, scope)
                source = item.location
                item.store(location)
                changes.append(Change(item, "MOVED", {"from": source, "to": location}))
            await self._apply(uow, changes, scope.actor, self._clock())
            await uow.commit()
        items = [c.item for c in changes]
        self._anchor(items)
        return items

    async def split(
        self,
        name: str,
        sample_seal: str,
        parent_seal: str,
        description: str,
        sample: Quantity,
        scope: Scope,
    ) -> tuple[Item, Item]:
        v: list[FieldViolation] = []
        check_seal("sample_seal", sample_seal, v)
        check_seal("parent_new_seal", parent_seal, v)
        if sample_seal == parent_seal:
            v.append(FieldViolation("sample_seal", "differs from the parent's new seal"))
        if len(description) > 512:
            v.append(FieldViolation("description", "at most 512 characters"))
        if v:
            raise InvalidArgument.of(v)
        async with self._uow() as uow:
            parent = await self._load(uow, name)
            self._require_custody(parent, scope)
            for field, seal in (("sample_seal", sample_seal), ("parent_new_seal", parent_seal)):
                if seal != parent.seal and await uow.items.seal_in_use(seal):
                    raise AlreadyExists(
                        "SEAL_IN_USE",
                        f"seal {seal} is in use",
                        violations=[FieldViolation(field, "already in use")],
                    )
            now = self._clock()
            old_seal = parent.seal
            child = parent.split(new_id(), sample_seal, parent_seal, description, sample, now)
            sampled = Change(child, "SAMPLED_FROM", {"parent": parent.name, "seal": sample_seal})
            await self._record(uow, sampled, scope.actor, now, new=True)
            await self._apply(
                uow,
                [
                    Change(
                        parent,
                        "SAMPLE_TAKEN",
                        {
                            "sample": child.name,
                            "sample_seal": sample_seal,
                            "old_seal": old_seal,
                            "new_seal": parent_seal,
                            "sample_weight": str(sample.weight)
                            if sample.weight is not None
                            else "",
                        },
                    )
                ],
                scope.actor,
                now,
            )
            await uow.commit()
        self._anchor([parent, child])
        return parent, child
