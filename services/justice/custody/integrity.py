"""The chain as evidence: reading it, verifying it, and the signed certificate."""

from __future__ import annotations

from justice.custody import chain, document
from justice.custody.ledger import (
    Ledger,
    Scope,
    SignedAcceptance,
)
from justice.custody.model import (
    Item,
)
from justice.platform.errors import (
    DataLoss,
    NotFound,
    PermissionDenied,
)


class IntegrityService(Ledger):
    """What a court is shown."""

    # -- the chain -------------------------------------------------------------------------

    async def custody_chain(self, name: str, scope: Scope) -> tuple[Item, list[chain.Link]]:
        async with self._uow() as uow:
            item = await self._load(uow, name)
            if not scope.sees(item):
                raise PermissionDenied(
                    "ITEM_NOT_VISIBLE", "the item is not in the caller's custody"
                )
            return item, await uow.events.links(item.name)

    async def verify(self, name: str, scope: Scope) -> chain.ChainCheck:
        item, links = await self.custody_chain(name, scope)
        anchored = await self._anchors.newest(item.name)
        return chain.verify(
            item.name, links, chain.Head(item.chain_length, item.chain_head), anchored
        )

    async def certificate(self, name: str, scope: Scope) -> tuple[Item, bytes]:
        """The signed custody certificate; refused (DATA_LOSS) for a chain that fails."""
        item, links = await self.custody_chain(name, scope)
        check = chain.verify(
            item.name,
            links,
            chain.Head(item.chain_length, item.chain_head),
            await self._anchors.newest(item.name),
        )
        if not check.intact:
            raise DataLoss(
                "CHAIN_BROKEN",
                f"the chain of {item.name} does not verify: {check.problem}",
                metadata={"problem": str(check.problem), "sequence": str(check.first_bad_sequence)},
            )
        unsigned = document.certificate(item, links, self._clock())
        signed = await self._signer.sign(unsigned, self.config.signer_id)
        return item, signed

    async def acceptance(self, name: str, sequence: int, scope: Scope) -> SignedAcceptance:
        """The receiver's signed acceptance recorded by ACCEPTED event `sequence`."""
        async with self._reads() as uow:
            item = await self._load(uow, name)
            if not scope.sees(item):
                raise PermissionDenied(
                    "ITEM_NOT_VISIBLE", "the item is not in the caller's custody"
                )
            found = await uow.acceptances.get(item.name, sequence)
        if found is None:
            raise NotFound(
                "ACCEPTANCE_NOT_FOUND",
                f"event {sequence} of {item.name} is no signed acceptance",
                metadata={"name": item.name, "sequence": str(sequence)},
            )
        return found
