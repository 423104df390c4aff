"""`justice demo`: the scripted scenario, run against the live stack through the API."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from justice.cli.connection import dev_pki, open_channel
from justice.cli.custody_demo import custody_scenario
from justice.cli.fines import write_letters
from justice.cli.partner_connection import connect as connect_partner
from justice.custody import verify_certificate
from justice.fines.v1 import fines_pb2 as fpb
from justice.fines.v1 import fines_pb2_grpc
from justice.partner.client import ProcessedLog, listen
from justice.partner.register import VehicleRegisterSimulator
from justice.partner.simulator import ProsecutorSimulator
from justice.platform.config import Settings
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.signing.rfc3161 import openssl_ts_verify_command
from justice.signing.xades import stamped_signature
from justice.signing.xmlsec import xmlsec1_verify_command

if TYPE_CHECKING:
    pass


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
    exports, custody_files = asyncio.run(_scenario(settings, principal, console))
    out.mkdir(parents=True, exist_ok=True)
    letters = asyncio.run(_fine_scenario(settings, console))
    for path in write_letters(letters[0], letters[1], out):
        console.print(f"wrote {path.name} (the fine's letter, signed)")
    ca = out / "ca.pem"
    shutil.copyfile(dev_pki(settings).ca_path, ca)
    files = [(exported.filename, exported.signed_xml) for exported in exports] + custody_files
    stamps = []
    for filename, content in files:
        path = out / filename
        path.write_bytes(content)
        if path.suffix == ".xml":
            # The signature's timestamp apart, so OpenSSL can check it on its own.
            stamped = stamped_signature(content)
            token, data = path.with_suffix(".tsr"), path.with_suffix(".tsdata")
            token.write_bytes(stamped.token)
            data.write_bytes(stamped.data)
            stamps.append(
                openssl_ts_verify_command(
                    Path(token.name), Path(ca.name), data_path=Path(data.name)
                )
            )
    script = Path(verify_certificate.__file__).name
    shutil.copyfile(verify_certificate.__file__, out / script)
    commands = [
        shlex.join(xmlsec1_verify_command(Path(name), Path(ca.name)))
        for name, _ in files
        if name.endswith(".xml")
    ]
    certificates = [name for name, _ in custody_files if name.startswith("custody-")]
    pdfs = [name for name, _ in files if name.endswith(".pdf")]
    (out / "VERIFY.txt").write_text(
        "# Verify each signed document against the platform CA with xmlsec1 (run in this folder):\n"
        + "\n".join(commands)
        + "\n# Each signature's RFC 3161 timestamp (.tsr) over its canonical SignatureValue"
        " (.tsdata), with OpenSSL:\n"
        + "\n".join(shlex.join(command) for command in stamps)
        + "\n# Recompute a custody certificate's chain head (Python standard library only):\n"
        + "\n".join(f"python3 {script} {name}" for name in certificates)
        + "\n# The receipt PDF's signature: pdfsig (poppler-utils)\n"
        + "\n".join(f"pdfsig {name}" for name in pdfs)
        + "\n"
    )
    names = ", ".join(name for name, _ in files)
    console.print(f"wrote {names}, {script}, ca.pem and VERIFY.txt to {out}")


async def _scenario(
    settings: Settings, principal: str, console: Console
) -> tuple[list[pb.ExportReportResponse], list[tuple[str, bytes]]]:
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

        async def answered() -> str | None:
            report = await stub.GetReport(pb.GetReportRequest(name=submitted.name))
            if report.state in (pb.ACKNOWLEDGED, pb.REJECTED):
                return pb.ReportState.Name(report.state)
            return None

        state = await _with_prosecutor(settings, answered)
        console.print(f"the prosecutor simulator verified it over NATS; the report is {state}")
        exports = [
            await stub.ExportReport(pb.ExportReportRequest(name=f"{created.name}@{version}"))
            for version in (1, 2)
        ]
    custody_files = await custody_scenario(
        settings, principal, console, lambda done: _with_prosecutor(settings, done)
    )
    return exports, custody_files


# How long the demo waits for the prosecutor's acknowledgement to come back over NATS.
_ANSWER_SECONDS = 60


async def _with_prosecutor(settings: Settings, done: Callable[[], Awaitable[str | None]]) -> str:
    """Run the prosecutor simulator (the partner SDK) until `done` says what it did."""
    client = await connect_partner(settings, settings.reports.default_prosecutor)
    stop = asyncio.Event()
    listener = asyncio.create_task(
        listen(client, ProsecutorSimulator(client).handle, ProcessedLog(), stop)
    )
    try:
        async with asyncio.timeout(_ANSWER_SECONDS):
            while True:
                outcome = await done()
                if outcome:
                    return outcome
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
