"""Where an item is and who holds it: transfers, check-outs, moves and samples."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

from justice.custody import chain, document
from justice.custody.ledger import (
    Change,
    CustodyAlert,
    Ledger,
    Scope,
    SignedAcceptance,
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
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
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
        # A destination, when named, is one of our storage locations (NOT_FOUND otherwise)
        # that may hold the item; a receiver elsewhere is described in the note.
        place = None
        if location:
            async with self._reads() as uow:
                place = await self._location(uow, location)

        def act(item: Item) -> tuple[str, Mapping[str, str]]:
            if place is not None:
                place.admit(item)
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
        """The receiver takes the item. The acceptance is signed with the receiver's own key
        (as reports are signed with their author's), checked to name the receiver, and kept;
        the ACCEPTED event records its hash. Signing happens outside the transaction."""
        async with self._reads() as uow:
            item = await self._load(uow, name)
            place = await self._location(uow, location) if location else None
        item.require_receiver(scope.actor)
        if place is not None:
            place.admit(item)
        handed_over_at = item.chain_length
        unsigned = document.acceptance(
            item, scope.actor, seal_intact, found, location, self._clock()
        )
        signed = await self._signer.sign(unsigned, scope.actor)
        await self._require_signed_by(signed, scope.actor, item)
        digest = hashlib.sha256(signed).hexdigest()
        problems: list[str] = []
        async with self._uow() as uow:
            item = await self._load(uow, name)
            if item.chain_length != handed_over_at:
                raise Aborted(
                    "CONCURRENT_CHANGE", f"{item.name} changed while the acceptance was signed"
                )
            if place is not None:
                place.check_room(await uow.items.count_at(place.name), 1)
            previous = item.custodian
            item.accept(scope.actor, location)
            problems.extend(item.discrepancies(found, self.config.tolerance))
            data = {
                "from": previous,
                "to": scope.actor,
                "seal_intact": str(seal_intact).lower(),
                "acceptance_sha256": digest,
            }
            if found.count is not None:
                data["count"] = str(found.count)
            if found.weight is not None:
                data["weight"] = str(found.weight)
            if found.amount is not None:
                data["amount"] = str(found.amount)
            if location:
                data["location"] = location
            if problems:
                data["discrepancy"] = "; ".join(problems)
            await self._apply(uow, [Change(item, "ACCEPTED", data)], scope.actor, self._clock())
            await uow.acceptances.add(
                SignedAcceptance(item.name, item.chain_length, scope.actor, signed, digest)
            )
            await uow.commit()
        self._anchor([item])
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

    async def _require_signed_by(self, signed: bytes, receiver: str, item: Item) -> None:
        """The signature must verify, chain to our trust anchors, and name the receiver (the
        certificate's subject serialNumber): a key enrolled under the receiver's id but
        certified for someone else is refused."""
        verdict = await asyncio.to_thread(self._verifier.verify, signed)
        if not verdict.trusted:
            raise FailedPrecondition(
                "ACCEPTANCE_SIGNATURE_INVALID",
                f"the signed acceptance does not verify: {verdict.reason}",
                metadata={"item": item.name, "reason": verdict.reason},
            )
        if verdict.signer_id != receiver:
            raise PermissionDenied(
                "ACCEPTANCE_SIGNED_BY_OTHER",
                "the acceptance is signed with a certificate that does not name the receiver",
                metadata={
                    "item": item.name,
                    "receiver": receiver,
                    "signer": verdict.signer_id or "",
                },
            )

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
        async with self._uow() as uow:
            item = await self._load(uow, name)
            self._require_custody(item, scope)
            source = item.checked_out_to
            item.check_in(location)
            if location:
                place = await self._location(uow, location)
                place.admit(item)
                place.check_room(await uow.items.count_at(place.name), 1)
            data = {
                "from": source,
                "seal_intact": str(seal_intact).lower(),
                "location": item.location,
            }
            await self._apply(uow, [Change(item, "CHECKED_IN", data)], scope.actor, self._clock())
            await uow.commit()
        self._anchor([item])
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

    async def move(
        self, names: Sequence[str], location: str, scope: Scope, *, barcode: str = ""
    ) -> list[Item]:
        """Store items at a location, named (locations/{id}) or scanned (its barcode)."""
        v: list[FieldViolation] = []
        if bool(location) == bool(barcode):
            v.append(FieldViolation("location", "a location name or a location_barcode"))
        if not names or len(names) > 500:
            v.append(FieldViolation("names", "1 to 500 items"))
        if len(set(names)) != len(names):
            v.append(FieldViolation("names", "an item named twice"))
        if v:
            raise InvalidArgument.of(v)
        async with self._uow() as uow:
            place = await self._location(uow, location, barcode=barcode)
            changes = []
            for i, name in enumerate(names):
                item = await self._load(uow, name, f"names[{i}]")
                self._require_custody(item, scope)
                place.admit(item)
                source = item.location
                item.store(place.name)
                changes.append(Change(item, "MOVED", {"from": source, "to": place.name}))
            arriving = sum(1 for c in changes if c.data["from"] != place.name)
            place.check_room(await uow.items.count_at(place.name), arriving)
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
