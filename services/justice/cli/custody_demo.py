"""The seized-goods part of `justice demo`: three items seized, one handed to the court
registry, a destruction decided by the prosecutor simulator over NATS and executed with four
eyes; returns the files a court would be given (receipt PDF and XML, custody certificate,
the court registry's signed acceptance)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
from rich.console import Console

from justice.cli.connection import open_channel
from justice.custody.v1 import custody_pb2 as pb
from justice.custody.v1 import custody_pb2_grpc
from justice.platform.config import Settings
from justice.type.money_pb2 import Money

PURPOSE = "demonstration scenario"
CUSTODIAN = "custodian-2001"
SUPERVISOR = "custody-supervisor-2101"
COURT = "court-brussels"
VAULT = "locations/ant.r1.s1"
Prosecutor = Callable[[Callable[[], Awaitable[str | None]]], Awaitable[str]]


def _seizure(stamp: str) -> pb.RegisterSeizureRequest:
    seizure = pb.Seizure(
        case_number="AN.12.L3.004512/26",
        report="PV AN.12.L3.004512/2026",
        place="Meir 1, 2000 Antwerpen",
        legal_ground="Art. 35 Sv.",
        seized_from=pb.Person(given_name="Jan", family_name="Peeters", language="nl"),
    )
    seizure.seize_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    return pb.RegisterSeizureRequest(
        seizure=seizure,
        items=[
            pb.Item(
                category=pb.DRUGS,
                description="Zak cannabis",
                seal=f"ANT-{stamp}-1",
                estimated_value=Money(amount="3100.00", currency="EUR"),
                drugs=pb.Drugs(substance="cannabis", net_weight="103.5", unit="g"),
            ),
            pb.Item(
                category=pb.FIREARM,
                description="Pistool",
                seal=f"ANT-{stamp}-2",
                firearm=pb.Firearm(make="Glock", model="17", calibre="9mm", serial="BXK123"),
            ),
            pb.Item(category=pb.DOCUMENT, description="Vals paspoort", seal=f"ANT-{stamp}-3"),
        ],
    )


async def custody_scenario(
    settings: Settings, officer: str, console: Console, prosecutor: Prosecutor
) -> list[tuple[str, bytes]]:
    async with contextlib.AsyncExitStack() as channels:
        officer_, custodian, supervisor, court = [
            custody_pb2_grpc.CustodyServiceStub(
                await channels.enter_async_context(open_channel(settings, p, PURPOSE))
            )
            for p in (officer, CUSTODIAN, SUPERVISOR, COURT)
        ]
        return await _story(officer_, custodian, supervisor, court, console, prosecutor)


async def _story(
    officer_: custody_pb2_grpc.CustodyServiceAsyncStub,
    custodian: custody_pb2_grpc.CustodyServiceAsyncStub,
    supervisor: custody_pb2_grpc.CustodyServiceAsyncStub,
    court: custody_pb2_grpc.CustodyServiceAsyncStub,
    console: Console,
    prosecutor: Prosecutor,
) -> list[tuple[str, bytes]]:
    await _vault(supervisor)
    seized = await officer_.RegisterSeizure(_seizure(datetime.now(UTC).strftime("%H%M%S%f")))
    names = [i.name for i in seized.items]
    console.print(f"seized {len(names)} items ({seized.seizure.name})")
    for name in names:
        await officer_.TransferCustody(pb.TransferCustodyRequest(name=name, receiver=CUSTODIAN))
        await custodian.AcceptCustody(
            pb.AcceptCustodyRequest(name=name, seal_intact=True, location=VAULT)
        )
    console.print(f"handed to {CUSTODIAN} and stored at {VAULT}")
    drugs, _, passport = names
    await custodian.TransferCustody(pb.TransferCustodyRequest(name=passport, receiver=COURT))
    accepted = await court.AcceptCustody(pb.AcceptCustodyRequest(name=passport, seal_intact=True))
    acceptance = await court.GetAcceptance(
        pb.GetAcceptanceRequest(name=passport, sequence=accepted.chain_length)
    )
    console.print(f"{passport} accepted by the court registry ({COURT}), signed with its key")
    await custodian.RequestDecision(pb.RequestDecisionRequest(name=drugs))

    async def decided() -> str | None:
        item = await custodian.GetItem(pb.GetItemRequest(name=drugs))
        return pb.DecisionKind.Name(item.decision) if item.state == pb.DECIDED else None

    decision = await prosecutor(decided)
    console.print(f"the prosecutor simulator decided {decision} over NATS")
    destruction = pb.Disposal(witness="Koen Wouters", method="verbranding")
    approval = await custodian.RequestDisposal(
        pb.RequestDisposalRequest(name=drugs, disposal=destruction)
    )
    await supervisor.ApproveDisposal(pb.ApproveDisposalRequest(approval=approval.name))
    disposed = await custodian.Dispose(
        pb.DisposeRequest(name=drugs, disposal=destruction, approval=approval.name)
    )
    console.print(f"{drugs} {pb.Outcome.Name(disposed.outcome)} with four eyes ({approval.name})")
    certificate = await custodian.ExportCustodyCertificate(
        pb.ExportCustodyCertificateRequest(name=drugs)
    )
    receipt = await officer_.GetSeizureReceipt(
        pb.GetSeizureReceiptRequest(name=seized.seizure.name)
    )
    stem = passport.removeprefix("items/")
    return [
        (receipt.pdf_filename, receipt.pdf),
        (receipt.xml_filename, receipt.signed_xml),
        (certificate.filename, certificate.signed_xml),
        (f"acceptance-{stem}-{acceptance.sequence}.xml", acceptance.signed_xml),
    ]


async def _vault(supervisor: custody_pb2_grpc.CustodyServiceAsyncStub) -> None:
    """The demo's secure store (drugs and a firearm rest there); made once per database."""
    location = pb.Location(
        display_name="Antwerpen, kluis 1",
        kind=pb.VAULT,
        unit="Seized Goods Antwerpen",
        secure=True,
    )
    request = pb.CreateLocationRequest(
        location_id=VAULT.removeprefix("locations/"), location=location
    )
    try:
        await supervisor.CreateLocation(request)
    except grpc.aio.AioRpcError as error:
        if error.code() is not grpc.StatusCode.ALREADY_EXISTS:
            raise
