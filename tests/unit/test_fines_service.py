"""Fine registration and the owner lookup on an in-memory unit of work
(tests/fakes/fines.py): no database, no NATS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from justice.fines.letter import LetterKind
from justice.fines.model import Fine, FineState, LookupPhase, Tariff
from justice.fines.ports import LetterDocuments
from justice.fines.service import (
    MESSAGE_TYPE_LOOKUP,
    FineRules,
    FineService,
)
from justice.platform.config import Settings
from justice.platform.errors import InvalidArgument
from tests.fakes.fines import FineTables, FineUnit
from tests.fakes.unit_of_work import Tables
from tests.fines_env import offence

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class NoLetters:
    async def render(self, fine: Fine, kind: LetterKind) -> LetterDocuments:
        raise AssertionError("registration renders no letter")


def _service(tables: Tables[FineTables]) -> FineService:
    settings = Settings().fines
    return FineService(
        uow=lambda: FineUnit(tables),
        clock=lambda: NOW,
        rules=FineRules(tariff=Tariff(settings.tariff, settings.currency)),
        letters=NoLetters(),
    )


async def test_a_foreign_plate_asks_its_register_once_per_request() -> None:
    tables: Tables[FineTables] = Tables(FineTables())
    service = _service(tables)
    detection = offence("AB123C", "NL", when=NOW - timedelta(hours=2))
    fine = await service.register(detection, "cam-1")
    assert fine.state is FineState.OWNER_REQUESTED
    [message] = tables.state.outbox
    assert (message.recipient, message.message_type) == ("vehicle-register-nl", MESSAGE_TYPE_LOOKUP)
    assert message.subject_ref == fine.name
    [lookup] = tables.state.lookups.values()
    assert (lookup.fine_id, lookup.attempts, lookup.phase) == (fine.fine_id, 1, LookupPhase.WAITING)
    assert lookup.deadline == NOW + service.rules.lookup.timeout
    # The camera sends the same detection again: the same fine, no second lookup.
    again = await service.register(detection, "cam-1")
    assert again.fine_id == fine.fine_id
    assert len(tables.state.outbox) == 1
    assert len(tables.state.fines) == 1


async def test_a_domestic_plate_goes_to_the_national_procedure_not_abroad() -> None:
    tables: Tables[FineTables] = Tables(FineTables())
    fine = await _service(tables).register(offence("1ABC123", "BE", when=NOW), "cam-2")
    assert fine.state is FineState.DOMESTIC_PROCEDURE
    assert tables.state.outbox == []
    assert tables.state.lookups == {}


async def test_a_detection_from_the_future_is_refused_and_nothing_is_stored() -> None:
    tables: Tables[FineTables] = Tables(FineTables())
    with pytest.raises(InvalidArgument):
        await _service(tables).register(offence(when=NOW + timedelta(hours=1)), "cam-3")
    assert tables.commits == 0
    assert tables.state.fines == {}
