"""Registering seizures, and reading items: the entry and the lookups of custody."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from justice.custody import chain, receipt
from justice.custody.ledger import (
    MESSAGE_TYPE_NOTICE,
    REQUEST_ID,
    SEIZURE,
    Change,
    ItemQuery,
    Ledger,
    Scope,
    UnitOfWork,
    id_of,
    new_id,
)
from justice.custody.model import (
    Item,
    RawItem,
    Seizure,
    check_seizure,
)
from justice.custody.receipt import Receipt
from justice.exchange.message import OutgoingMessage
from justice.platform.errors import (
    AlreadyExists,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from justice.platform.listing import visible_page


class CustodyService(Ledger):
    """Seizures and item lookups."""

    # -- seizure ---------------------------------------------------------------------------

    async def register_seizure(
        self, seizure: Seizure, raws: Sequence[RawItem], request_id: str
    ) -> tuple[Seizure, list[Item]]:
        if request_id and not REQUEST_ID.match(request_id):
            raise InvalidArgument.of([FieldViolation("request_id", "1-128 of A-Z a-z 0-9 _ . : -")])
        now = self._clock()
        specs = check_seizure(seizure, raws, now)
        async with self._uow() as uow:
            if request_id:
                earlier = await uow.seizures.by_request(seizure.seizing_officer, request_id)
                if earlier is not None:
                    items = [await self._load(uow, name) for name in earlier.items]
                    return earlier, items
            for i, spec in enumerate(specs):
                if await uow.items.seal_in_use(spec.seal):
                    raise AlreadyExists(
                        "SEAL_IN_USE",
                        f"seal {spec.seal} is on an item not yet disposed",
                        violations=[FieldViolation(f"items[{i}].seal", "already in use")],
                    )
            seizure = replace(seizure, id=new_id(), create_time=now, request_id=request_id)
            items = [
                Item(
                    id=new_id(),
                    seizure_id=seizure.id,
                    case_number=seizure.case_number,
                    spec=spec,
                    custodian=seizure.seizing_officer,
                    create_time=now,
                    update_time=now,
                )
                for spec in specs
            ]
            seizure = replace(seizure, items=tuple(i.name for i in items))
            await uow.seizures.add(seizure)
            for item in items:
                change = Change(item, "SEIZED", _seized_data(seizure, item))
                await self._record(uow, change, seizure.seizing_officer, now, new=True)
            await self._notify_agency(uow, seizure, items)
            await uow.commit()
        self._anchor(items)
        return seizure, items

    async def _notify_agency(
        self, uow: UnitOfWork, seizure: Seizure, items: Sequence[Item]
    ) -> None:
        """Seizures above the threshold go to the central seizure agency (BE: COIV/OCSC).
        Values in other currencies cannot be compared without a rate, so they are reported."""
        valued = [i for i in items if i.spec.value is not None]
        euros = sum(
            (
                i.spec.value.amount
                for i in valued
                if i.spec.value and i.spec.value.currency == "EUR"
            ),
            Decimal(0),
        )
        foreign = any(i.spec.value and i.spec.value.currency != "EUR" for i in valued)
        if euros <= self.config.notice_threshold and not foreign:
            return
        notice = {
            "seizure": seizure.name,
            "case_number": seizure.case_number,
            "seize_time": chain.iso(seizure.seize_time),
            "items": [
                {
                    "item": i.name,
                    "category": i.category.value,
                    "value": str(i.spec.value) if i.spec.value else "",
                    "chain_head": i.chain_head,
                    "sequence": i.chain_length,
                }
                for i in items
            ],
        }
        await uow.outbox.add(
            OutgoingMessage(
                recipient=self.config.central_agency,
                message_type=MESSAGE_TYPE_NOTICE,
                payload=json.dumps(notice, sort_keys=True).encode(),
                subject_ref=seizure.name,
            )
        )

    async def receipt(self, name: str, scope: Scope, author_only: bool) -> Receipt:
        """The receipt for the person seized from: signed PDF and signed XML, same content."""
        seizure = await self.get_seizure(name, scope, author_only)
        async with self._uow() as uow:
            items = [await self._load(uow, item) for item in seizure.items]
        language = receipt.language_of(seizure)
        signer_id = self.config.signer_id
        unsigned = receipt.pdf(seizure, items, language)
        title = receipt.LABELS[language]["title"]
        return Receipt(
            language=language,
            pdf=await self._pdf_signer.sign(unsigned, signer_id, title),
            signed_xml=await self._signer.sign(receipt.xml(seizure, items, language), signer_id),
        )

    async def get_seizure(self, name: str, scope: Scope, author_only: bool) -> Seizure:
        seizure_id = id_of(SEIZURE, name, "name", "seizures/{seizure}")
        async with self._uow() as uow:
            seizure = await uow.seizures.get(seizure_id)
        if seizure is None:
            raise NotFound("SEIZURE_NOT_FOUND", f"no {name}", metadata={"name": name})
        if author_only and seizure.seizing_officer != scope.actor:
            raise PermissionDenied("NOT_THE_SEIZING_OFFICER", "only the seizing officer sees it")
        return seizure

    # -- reading ---------------------------------------------------------------------------

    async def get(self, name: str, scope: Scope) -> Item:
        async with self._reads() as uow:
            item = await self._load(uow, name)
        if not scope.sees(item):
            raise PermissionDenied("ITEM_NOT_VISIBLE", "the item is not in the caller's custody")
        return item

    async def list(self, query: ItemQuery, scope: Scope) -> Sequence[Item]:
        if not scope.in_custody_only:
            return await self._listing.list(query)
        return await visible_page(
            lambda page: self._listing.list(replace(query, page=page)),
            scope.sees,
            lambda item: item.id,
            query.page,
        )


def _seized_data(seizure: Seizure, item: Item) -> dict[str, str]:
    """What the first event records: facts about the goods, never the persons."""
    spec = item.spec
    data = {
        "seizure": seizure.name,
        "case_number": seizure.case_number,
        "report": seizure.report,
        "place": seizure.place,
        "seize_time": chain.iso(seizure.seize_time),
        "legal_ground": seizure.legal_ground,
        "category": spec.category.value,
        "description": spec.description,
        "seal": spec.seal,
        "count": str(spec.count),
    }
    if spec.value is not None:
        data["estimated_value"] = str(spec.value)
    details = spec.details
    if details is not None:
        for key, value in vars(details).items():
            data[key] = str(value)
    return data
