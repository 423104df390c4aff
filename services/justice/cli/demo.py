"""`justice demo`: the scripted scenario, run against the live stack through the API."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from justice.cli.connection import dev_pki, open_channel
from justice.cli.fines import write_letters
from justice.cli.partner import connect as connect_partner
from justice.fines.v1 import fines_pb2 as fpb
from justice.fines.v1 import fines_pb2_grpc
from justice.partner.client import ProcessedLog, listen
from justice.partner.register import VehicleRegisterSimulator
from justice.partner.simulator import ProsecutorSimulator
from justice.platform.config import Settings
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.signing.xmlsec import xmlsec1_verify_command

if TYPE_CHECKING:
    from justice.reports.v1.reports_pb2_grpc import ReportServiceAsyncStub


def _draft() -> pb.Report:
    report = pb.Report(
        case_number="AN.12.L3.004512/26",
        place="Meir 1, 2000 Antwerpen",
        language="nl",
        narrative="Op heden, rond 14u10, werd een blauwe fiets ontvreemd aan het station.",
        offences=[pb.Offence(code="43A", article="Art. 461 Sw.", description="Diefstal")],
        persons=[pb.Person(role=pb.COMPLAINANT, given_name="An", family_name="Peeters")],
    )
    report.facts_time.FromDatetime(datetime.now(UTC) - timedelta(hours=2))
    return report


def run_demo(settings: Settings, principal: str, out: Path, console: Console) -> None:
    exports = asyncio.run(_scenario(settings, principal, console))
    out.mkdir(parents=True, exist_ok=True)
    letters = asyncio.run(_fine_scenario(settings, console))
    for path in write_letters(letters[0], letters[1], out):
        console.print(f"wrote {path.name} (the fine's letter, signed)")
    ca = out / "ca.pem"
    shutil.copyfile(dev_pki(settings).ca_path, ca)
    files = []
    for exported in exports:
        path = out / exported.filename
        path.write_bytes(exported.signed_xml)
        files.append(path)
    commands = [shlex.join(xmlsec1_verify_command(Path(f.name), Path(ca.name))) for f in files]
    (out / "VERIFY.txt").write_text(
        "# Verify each signed version against the platform CA with xmlsec1 (run in this folder):\n"
        + "\n".join(commands)
        + "\n"
    )
    console.print(f"wrote {', '.join(f.name for f in files)}, ca.pem and VERIFY.txt to {out}")


async def _scenario(
    settings: Settings, principal: str, console: Console
) -> list[pb.ExportReportResponse]:
    async with open_channel(settings, principal, "demonstration scenario") as channel:
        stub = reports_pb2_grpc.ReportServiceStub(channel)
        created = await stub.CreateReport(
            pb.CreateReportRequest(report=_draft(), request_id=str(uuid.uuid4()))
        )
        console.print(f"created {created.name} (draft)")
        await stub.SignReport(pb.SignReportRequest(name=created.name))
        console.print("signed version 1")
        amendment = await stub.AmendReport(
            pb.AmendReportRequest(name=created.name, request_id=str(uuid.uuid4()))
        )
        amendment.narrative += " Aanvulling: de fiets had een rood zadel."
        await stub.UpdateReport(pb.UpdateReportRequest(report=amendment))
        await stub.SignReport(pb.SignReportRequest(name=created.name))
        console.print("amended and signed version 2; version 1 is superseded")
        submitted = await stub.SubmitReport(pb.SubmitReportRequest(name=created.name))
        console.print(f"submitted version {submitted.version} to {submitted.recipient}")
        state = await _prosecutor_answers(settings, stub, submitted.name)
        console.print(f"the prosecutor simulator verified it over NATS; the report is {state}")
        return [
            await stub.ExportReport(pb.ExportReportRequest(name=f"{created.name}@{version}"))
            for version in (1, 2)
        ]


# How long the demo waits for the prosecutor's acknowledgement to come back over NATS.
_ANSWER_SECONDS = 60


async def _prosecutor_answers(settings: Settings, stub: ReportServiceAsyncStub, name: str) -> str:
    """Run the prosecutor simulator (the partner SDK) until it has answered the report."""
    client = await connect_partner(settings, settings.default_prosecutor)
    stop = asyncio.Event()
    listener = asyncio.create_task(
        listen(client, ProsecutorSimulator(client).handle, ProcessedLog(), stop)
    )
    try:
        async with asyncio.timeout(_ANSWER_SECONDS):
            while True:
                report = await stub.GetReport(pb.GetReportRequest(name=name))
                if report.state in (pb.ACKNOWLEDGED, pb.REJECTED):
                    return pb.ReportState.Name(report.state)
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await listener
        await client.close()


# The demo's fines officer, and the Dutch register the simulator answers for.
_FINES_OFFICER = "fines-officer-3001"
_DUTCH_REGISTER = "vehicle-register-nl"


def _dutch_speeding() -> fpb.Fine:
    fine = fpb.Fine(
        detection_source=fpb.FIXED_CAMERA,
        device_id="CAM-E19-042",
        place="E19 km 12, Kontich",
        offence_country="BE",
        plate="AB-123-C",
        registration_country="NL",
        vehicle_category="M1",
        offence=fpb.SPEEDING,
        provision="art. 11.1 Wegverkeersreglement",
        speed=fpb.Speed(measured=137, corrected=130, allowed=120),
    )
    fine.offence_time.FromDatetime(datetime.now(UTC) - timedelta(hours=3))
    return fine


async def _fine_scenario(
    settings: Settings, console: Console
) -> tuple[str, fpb.ListLettersResponse]:
    """A Dutch-plated speeding offence: the register simulator (partner SDK) names the
    holder over NATS, the letter goes out in Dutch, signed PDF and signed XML."""
    client = await connect_partner(settings, _DUTCH_REGISTER)
    stop = asyncio.Event()
    listener = asyncio.create_task(
        listen(client, VehicleRegisterSimulator().handle, ProcessedLog(), stop)
    )
    try:
        async with open_channel(settings, _FINES_OFFICER, "demonstration scenario") as channel:
            stub = fines_pb2_grpc.FineServiceStub(channel)
            fine = await stub.RegisterOffence(
                fpb.RegisterOffenceRequest(fine=_dutch_speeding(), request_id=str(uuid.uuid4()))
            )
            console.print(
                f"registered {fine.name}: {fine.amount.amount} {fine.amount.currency_code}"
            )
            async with asyncio.timeout(_ANSWER_SECONDS):
                while fine.state not in (fpb.NOTICE_SENT, fpb.OWNER_UNKNOWN):
                    await asyncio.sleep(0.2)
                    fine = await stub.GetFine(fpb.GetFineRequest(name=fine.name))
            console.print(
                f"the register simulator answered over NATS: {fine.holder.name}; the fine is "
                f"{fpb.FineState.Name(fine.state)}, letter in {fine.notice_language}"
            )
            letters = await stub.ListLetters(fpb.ListLettersRequest(name=fine.name))
            return fine.name, letters
    finally:
        stop.set()
        await listener
        await client.close()
