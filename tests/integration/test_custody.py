"""Custody against PostgreSQL and a real nats-server: tampering found by the chain check,
concurrent transfers, and the whole story from seizure to a disposal a court can verify."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import text

from justice.app import Application, build
from justice.custody import verify_certificate
from justice.custody.api import Custody
from justice.custody.chain import Problem
from justice.custody.document import NAMESPACE
from justice.custody.ledger import (
    MESSAGE_TYPE_DECISION,
    MESSAGE_TYPE_DECISION_REQUESTED,
    MESSAGE_TYPE_EVENT,
    Scope,
)
from justice.custody.model import (
    Category,
    DecisionKind,
    Disposal,
    Firearm,
    ItemState,
    Location,
    LocationKind,
    Outcome,
    Person,
    Quantity,
    RawItem,
    Seizure,
)
from justice.devstack.nats import NatsServer
from justice.devstack.pki import DevPki
from justice.partner.client import ProcessedLog, listen
from justice.partner.simulator import ProsecutorSimulator
from justice.platform.errors import Aborted, AlreadyExists, FailedPrecondition
from justice.platform.listing import Page
from justice.security.principal import Principal, Role
from tests.eventually import eventually
from tests.exchange_env import exchange_settings, nats_with_partners, partner_record, partner_side
from tests.signed_documents import xmlsec1_verify

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

PROSECUTOR = "prosecutor-antwerp"
SCRIPT = Path(verify_certificate.__file__)
OFFICER = Scope("officer-1001")
CUSTODIAN = Scope("custodian-2001")
CLERK = Scope("court-brussels")
SUPERVISOR = Principal(
    "custody-supervisor-2101", "FP", "u", roles=frozenset({Role.CUSTODIAN, Role.CUSTODY_SUPERVISOR})
)
CUSTODIAN_PRINCIPAL = Principal("custodian-2001", "FP", "u", roles=frozenset({Role.CUSTODIAN}))


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_with_partners(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="module")
async def app(
    pki: DevPki, nats: NatsServer, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Application]:
    settings = exchange_settings(pki, nats, tmp_path_factory.mktemp("state"), database_url)
    application = await build(settings)
    assert application.exchange is not None
    await application.exchange.service.create_partner(
        partner_record(
            pki,
            PROSECUTOR,
            send=frozenset({MESSAGE_TYPE_DECISION}),
            receive=frozenset({MESSAGE_TYPE_EVENT, MESSAGE_TYPE_DECISION_REQUESTED}),
        )
    )
    for shelf in ("antwerpen.r1.a", "antwerpen.r1.b", "antwerpen.r2.b"):
        await place(application, shelf)
    yield application
    await application.close()


async def place(app: Application, location_id: str) -> str:
    """A secure location (any category may rest there); existing ones are kept."""
    location = Location(
        location_id, "", "vault", LocationKind.VAULT, "Seized Goods", True, 0, datetime.now(UTC), ""
    )
    with contextlib.suppress(AlreadyExists):
        await parts(app).locations.create(location, "custody-supervisor-2101")
    return f"locations/{location_id}"


def parts(app: Application) -> Custody:
    assert app.custody is not None
    return app.custody.custody


_seals = iter(range(10**6))


def seal() -> str:
    return f"INT-{datetime.now(UTC):%H%M%S%f}-{next(_seals)}"


def seizure() -> Seizure:
    now = datetime.now(UTC)
    return Seizure(
        "",
        "AN.12.L1.000999/26",
        "PV AN.12/2026",
        "Antwerpen",
        now - timedelta(hours=1),
        "officer-1001",
        Person("Jan", "Peeters", language="nl"),
        None,
        "Art. 35 Sv.",
        False,
        now,
    )


async def seize(app: Application, *raws: RawItem) -> list[str]:
    _, items = await parts(app).seizures.register_seizure(seizure(), raws, "")
    return [i.name for i in items]


def other(description: str = "phone") -> RawItem:
    return RawItem(Category.OTHER, description, seal=seal())


async def stored_item(app: Application) -> str:
    (name,) = await seize(app, other())
    movements = parts(app).movements
    for where in ("a", "b"):
        await movements.move([name], f"locations/antwerpen.r1.{where}", OFFICER)
    return name


async def sql(app: Application, statement: str, **values: object) -> None:
    async with app.database.engine.begin() as connection:
        await connection.execute(text(statement), values)


async def verify(app: Application, name: str) -> tuple[Problem | None, int]:
    check = await parts(app).integrity.verify(name, OFFICER)
    return check.problem, check.first_bad_sequence


async def test_an_untouched_chain_verifies(app: Application) -> None:
    name = await stored_item(app)
    check = await parts(app).integrity.verify(name, OFFICER)
    assert check.intact
    assert check.anchored is not None
    assert (check.anchored.sequence, check.anchored.hash) == (3, check.head)


async def test_an_edited_event_is_found(app: Application) -> None:
    name = await stored_item(app)
    await sql(
        app,
        "UPDATE custody_event SET data = :d WHERE item_id = :i AND sequence = 2",
        d='{"from": "", "to": "locations/elsewhere.r9.z"}',
        i=name.removeprefix("items/"),
    )
    assert await verify(app, name) == (Problem.HASH_MISMATCH, 2)


async def test_a_deleted_event_is_found(app: Application) -> None:
    name = await stored_item(app)
    await sql(
        app,
        "DELETE FROM custody_event WHERE item_id = :i AND sequence = 2",
        i=name.removeprefix("items/"),
    )
    assert await verify(app, name) == (Problem.SEQUENCE_GAP, 2)


async def test_reordered_events_are_found(app: Application) -> None:
    name = await stored_item(app)
    item_id = name.removeprefix("items/")
    for old, new in ((2, 99), (3, 2), (99, 3)):
        await sql(
            app,
            "UPDATE custody_event SET sequence = :n WHERE item_id = :i AND sequence = :o",
            n=new,
            o=old,
            i=item_id,
        )
    assert await verify(app, name) == (Problem.HASH_MISMATCH, 2)


async def test_a_truncated_chain_is_found_even_with_the_item_head_rewound(app: Application) -> None:
    name = await stored_item(app)
    item_id = name.removeprefix("items/")
    await sql(app, "DELETE FROM custody_event WHERE item_id = :i AND sequence = 3", i=item_id)
    # The careful forger also rewinds the head the item row keeps.
    await sql(
        app,
        "UPDATE custody_item SET chain_length = 2, chain_head = "
        "(SELECT hash FROM custody_event WHERE item_id = :i AND sequence = 2) WHERE id = :i",
        i=item_id,
    )
    assert await verify(app, name) == (Problem.TRUNCATED, 3)


async def test_two_concurrent_transfers_exactly_one_wins(app: Application) -> None:
    for _ in range(5):
        name = await stored_item(app)
        movements = parts(app).movements
        results = await asyncio.gather(
            movements.transfer(name, "custodian-2001", "", "", OFFICER),
            movements.transfer(name, "court-brussels", "", "", OFFICER),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1, results
        assert isinstance(lost[0], Aborted | FailedPrecondition), lost
        item = await parts(app).seizures.get(name, OFFICER)
        assert (item.state, item.pending_receiver) == (
            ItemState.IN_TRANSIT,
            won[0].pending_receiver,
        )
        assert (await parts(app).integrity.verify(name, OFFICER)).intact


def run_script(certificate: bytes, directory: Path) -> str:
    """What the standalone stdlib script prints about a certificate."""
    path = directory / "checked.xml"
    path.write_bytes(certificate)
    done = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == (0 if len(done.stdout.strip()) == 64 else 1), done
    return done.stdout.strip()


def forged_certificate(certificate: bytes, sequence: int) -> bytes:
    """The certificate with one event's canonical bytes rewritten (actor changed)."""
    root = etree.fromstring(certificate)
    ns = {"c": NAMESPACE}
    canonical = root.find(f"c:Events/c:Event[@sequence='{sequence}']/c:Canonical", ns)
    assert canonical is not None
    assert canonical.text
    fields = json.loads(base64.b64decode(canonical.text))
    fields["actor"] = "mallory"
    canonical.text = base64.b64encode(json.dumps(fields).encode()).decode()
    return bytes(etree.tostring(root))


async def test_the_whole_story(
    app: Application, pki: DevPki, nats: NatsServer, tmp_path: Path
) -> None:
    c = parts(app)
    names = await seize(
        app,
        RawItem(Category.DRUGS, "cannabis", seal=seal(), drugs=("cannabis", "103.5", "g")),
        RawItem(
            Category.FIREARM, "pistol", seal=seal(), firearm=Firearm("Glock", "17", "9mm", "AB123")
        ),
        other("passport"),
    )
    drugs, pistol, passport = names
    for name in names:
        await c.movements.transfer(name, "custodian-2001", "", "to the property room", OFFICER)
        await c.movements.accept(name, True, Quantity(), "locations/antwerpen.r1.a", CUSTODIAN)
    await c.movements.move(names, "locations/antwerpen.r2.b", CUSTODIAN)
    await c.movements.check_out(
        pistol, "ballistics lab", datetime.now(UTC) + timedelta(days=2), "comparison", CUSTODIAN
    )
    await c.movements.check_in(pistol, True, "locations/antwerpen.r2.b", CUSTODIAN)
    await c.movements.transfer(passport, "court-brussels", "", "to the court registry", CUSTODIAN)
    registry = await c.movements.accept(passport, True, Quantity(count=1), "", CLERK)
    assert (registry.custodian, registry.state) == ("court-brussels", ItemState.IN_STORAGE)
    # The registry's acceptance is signed with its own key; xmlsec1 checks it on its own.
    signed = await c.integrity.acceptance(passport, registry.chain_length, CLERK)
    assert signed.receiver == "court-brussels"
    assert xmlsec1_verify(signed.signed_xml, pki, tmp_path) == ""

    client = await partner_side(pki).connect(nats, PROSECUTOR)
    stop = asyncio.Event()

    simulator = ProsecutorSimulator(client)
    task = asyncio.create_task(listen(client, simulator.handle, ProcessedLog(), stop))
    try:
        await c.dispositions.request_decision(drugs, CUSTODIAN)

        async def decided() -> bool:
            item = await c.seizures.get(drugs, CUSTODIAN)
            return item.state is ItemState.DECIDED

        await eventually(decided, within=30, what="the prosecutor's decision over NATS")
    finally:
        stop.set()
        await task
        await client.close()
    item = await c.seizures.get(drugs, CUSTODIAN)
    assert item.decision is not None
    assert item.decision.kind is DecisionKind.DESTROY
    assert simulator.decided == [drugs]
    # The same decision by the API changes nothing more.
    again = await c.dispositions.record_decision("prosecutor-antwerp", drugs, item.decision)
    assert again.chain_length == item.chain_length

    destruction = Disposal(witness="Koen Wouters", method="incineration")
    approval = await c.dispositions.request_disposal(
        drugs, destruction, CUSTODIAN_PRINCIPAL, "", CUSTODIAN
    )
    await c.dispositions.approve_disposal(approval.name, SUPERVISOR)
    disposed = await c.dispositions.dispose(drugs, destruction, approval.name, CUSTODIAN)
    assert (disposed.state, disposed.outcome) == (ItemState.DISPOSED, Outcome.DESTROYED)

    check = await c.integrity.verify(drugs, CUSTODIAN)
    assert check.intact, check
    item, certificate = await c.integrity.certificate(drugs, CUSTODIAN)
    assert xmlsec1_verify(certificate, pki, tmp_path) == ""
    assert run_script(certificate, tmp_path) == item.chain_head == check.head
    # An event edited in the certificate itself: the script's own recomputation says so.
    assert run_script(forged_certificate(certificate, 2), tmp_path) == "BROKEN at event 2"


async def test_a_planted_discrepancy_is_found_by_the_inventory(app: Application) -> None:
    c = parts(app)
    shelf = await place(app, f"antwerpen.inv.{datetime.now(UTC):%H%M%S%f}")
    names = await seize(app, other("one"), other("two"))
    await c.movements.move(names, shelf, OFFICER)
    present = (await c.seizures.get(names[0], OFFICER)).seal
    inventory = await c.inventories.start_inventory(shelf, "auditor-4001")
    result = await c.inventories.submit_inventory(
        inventory.name, [present, "PLANTED-1"], "auditor-4001"
    )
    assert result.missing == (names[1],)
    assert result.unexpected == ("PLANTED-1",)
    assert result.signed_report.startswith(b"<?xml")
    assert (await c.seizures.get(names[1], OFFICER)).state is ItemState.MISSING
    alerts = await app.audit.service.list_alerts(None, "ITEM_MISSING", Page(500, ""))
    assert any(names[1] in a.summary for a in alerts)


async def test_an_overdue_checkout_raises_an_alert(app: Application) -> None:
    c = parts(app)
    (name,) = await seize(app, other("laptop"))
    await c.movements.move([name], "locations/antwerpen.r1.a", OFFICER)
    await c.movements.check_out(name, "lab", datetime.now(UTC) + timedelta(seconds=1), "", OFFICER)
    await asyncio.sleep(1.2)
    raised = await c.inventories.sweep_overdue()
    assert name in [a.item for a in raised]
