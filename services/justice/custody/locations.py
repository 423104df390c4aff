"""Storage locations as resources: created by a custody supervisor, named by an id that is
printed as a barcode, and referred to by every movement (an unknown one is NOT_FOUND)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from justice.custody.ledger import Ledger
from justice.custody.model import Location, check_new_location
from justice.platform.listing import Page


class LocationService(Ledger):
    """The places items rest in."""

    async def create(self, location: Location, actor: str) -> Location:
        """`location.barcode` defaults to its id."""
        location = replace(
            location,
            barcode=location.barcode or location.id,
            create_time=self._clock(),
            created_by=actor,
        )
        check_new_location(location)
        async with self._uow() as uow:
            await uow.locations.add(location)
            await uow.commit()
        self._annotate(location.name)
        return location

    async def get(self, name: str, barcode: str = "") -> Location:
        async with self._reads() as uow:
            return await self._location(uow, name, "name", barcode=barcode)

    async def list(self, page: Page) -> Sequence[Location]:
        async with self._reads() as uow:
            return await uow.locations.list(page)
