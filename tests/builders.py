"""The reports tests build again and again, in one place: a complete draft (as the API's
message and as the domain's Content), one created through a stub, and one submitted to a
partner through the application. Tests override only the fields they are about."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2

from justice.app import Application
from justice.reports.model import Content, Offence
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc

# Reads of personal data must say why (audited); these tests read as a test.
PURPOSE = (("x-justice-purpose", "report API tests"),)
AUTHOR = "officer-1001"
PROSECUTOR = "prosecutor-antwerp"


M = TypeVar("M", bound=Message)


def overridden(message: M, overrides: dict[str, object]) -> M:
    """`message` with fields set from `overrides`; a list replaces a repeated field whole."""
    for key, value in overrides.items():
        if isinstance(value, list):
            message.ClearField(key)
            getattr(message, key).extend(value)
        else:
            setattr(message, key, value)
    return message


def draft(**overrides: object) -> pb.Report:
    """A report every rule accepts and that can be signed; list fields are replaced whole."""
    facts = Timestamp()
    facts.FromDatetime(datetime.now(UTC) - timedelta(hours=3))
    report = pb.Report(
        case_number="AN.12.L3.004512/26",
        reporting_unit="PZ Antwerpen/Team A",
        offences=[pb.Offence(code="43A", article="Art. 461 Sw.", description="Diefstal")],
        place="Meir 1, 2000 Antwerpen",
        facts_time=facts,
        persons=[
            pb.Person(
                role=pb.SUSPECT,
                given_name="Piet",
                family_name="Janssens",
                birth_date=date_pb2.Date(year=1990, month=4, day=2),
                national_id="90.04.02-123.45",
            )
        ],
        language="nl",
        narrative="Op heden werd vastgesteld dat een fiets werd ontvreemd.",
    )
    return overridden(report, overrides)


async def create(stub: reports_pb2_grpc.ReportServiceStub, **overrides: object) -> pb.Report:
    """CreateReport of draft(**overrides), with a fresh request id."""
    return await stub.CreateReport(
        pb.CreateReportRequest(report=draft(**overrides), request_id=str(uuid.uuid4()))
    )


def content(**overrides: object) -> Content:
    """The domain's Content of a report that can be signed, for calls on the service."""
    base = Content(
        case_number="AN.12.345/26",
        reporting_unit="PZ Antwerpen",
        offences=(Offence("43A", "Art. 461 Sw."),),
        place="Antwerpen",
        facts_time=datetime.now(UTC) - timedelta(hours=1),
        language="nl",
        narrative="Vaststelling.",
    )
    return dataclasses.replace(base, **overrides)


async def signed_report(app: Application) -> str:
    """A report created and signed by its author, ready to submit: its name."""
    created = await app.reports.create(AUTHOR, content(), "")
    await app.reports.sign(AUTHOR, created.name)
    return created.name


async def submitted_report(app: Application, recipient: str = PROSECUTOR) -> str:
    """A report created, signed and submitted to `recipient`: its versioned name."""
    name = await signed_report(app)
    submitted = await app.reports.submit(AUTHOR, name, recipient)
    return f"{submitted.name}@{submitted.version}"
