"""Hostile input, in one suite: thousands of malformed and extreme requests at every RPC of
every registered service, and the XML attack corpus at every XML entry point.

The real application server (mTLS, identity, audit, authorisation, error mapping) runs on its
own event loop in a thread, so hypothesis drives it through plain blocking stubs. Every call
must end with a status a client can act on: never INTERNAL or UNKNOWN, and the server must
still be serving at the end.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import justice.app
from justice.app import build
from justice.audit.personal_data import PURPOSE_HEADER
from justice.devstack.pki import DevPki
from justice.devstack.seaweed import SeaweedS3
from justice.platform.config import Settings
from justice.platform.rpc import error_details
from justice.platform.server import start
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from tests.api.conftest import with_evidence
from tests.builders import draft
from tests.xml_attacks import STATIC_ATTACKS, XmlAttack, signed_attacks

FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
EXAMPLES_PER_METHOD = 60
PRINCIPALS = (
    "officer-1001",
    "officer-1002",
    "prosecutor-antwerp",
    "auditor-4001",
    "custodian-2001",
    "justice-server",
)
_SKIPPED_SERVICES = {"grpc.reflection.v1alpha.ServerReflection"}


def _registered_methods() -> list[MethodDescriptor]:
    """Every method of every service whose stubs the application imports."""
    assert justice.app  # the composition root imports every service's generated module
    services = {
        service.full_name: service
        for name, module in sorted(sys.modules.items())
        if name.startswith("justice.") and name.endswith("_pb2") and hasattr(module, "DESCRIPTOR")
        for service in module.DESCRIPTOR.services_by_name.values()
    }
    # Of the stock health service, Check (Watch streams forever; List is unimplemented there).
    health = health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"]
    return [m for s in services.values() for m in s.methods] + [health]


METHODS = _registered_methods()


@pytest.fixture(scope="module", name="settings")
def with_s3(settings: Settings, s3_server: SeaweedS3) -> Settings:
    """With S3, so the evidence service is mounted and fuzzed too."""
    return with_evidence(settings, s3_server)


@dataclass
class Served:
    port: int
    service_names: tuple[str, ...]
    loop: asyncio.AbstractEventLoop


@pytest.fixture(scope="module")
def served(settings: Settings) -> Iterator[Served]:
    ready: dict[str, Any] = {}
    started = threading.Event()
    stop: asyncio.Event | None = None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        app = await build(settings, clock=lambda: datetime.now(UTC))
        await start(app.server)
        ready["served"] = Served(
            app.server.port, app.server.service_names, asyncio.get_running_loop()
        )
        started.set()
        await stop.wait()
        await app.server.server.stop(None)
        await app.close()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as error:  # surfaced to the test below
            ready["error"] = error
            started.set()

    thread = threading.Thread(target=run, name="hostile-server", daemon=True)
    thread.start()
    started.wait(60)
    if "error" in ready:
        raise ready["error"]
    server: Served = ready["served"]
    yield server
    assert stop is not None
    server.loop.call_soon_threadsafe(stop.set)
    thread.join(30)


@pytest.fixture(scope="module")
def channels(served: Served, pki: DevPki) -> Iterator[dict[str, grpc.Channel]]:
    ca = pki.ca_path.read_bytes()
    opened = {}
    for principal in PRINCIPALS:
        cert, key = pki.client_paths(principal)
        credentials = grpc.ssl_channel_credentials(ca, key.read_bytes(), cert.read_bytes())
        opened[principal] = grpc.secure_channel(
            f"localhost:{served.port}",
            credentials,
            options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
        )
    yield opened
    for channel in opened.values():
        channel.close()


# -- random messages from descriptors ---------------------------------------------------------

EXTREME_STRINGS = [
    "",
    " ",
    "a" * 70_000,
    "reports/" + "x" * 300,
    "reports/../../etc/passwd",
    "reports/abc@99999999999999",
    "reports/abc@0",
    "reports/",
    "/",
    "*",
    "\x00",
    "\u202e\ufeff\ud7ff",
    "ü" * 5_000,
    "' OR 1=1 --",
    'field = "x" AND',
    'state = "SIGNED" AND author = "officer-1001"',
    "%s%n%x",
    "units/\n",
    "alerts/x",
    "principals/officer-1001",
]
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(EXTREME_STRINGS), st.text(max_size=40))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.one_of(
            st.binary(max_size=64),
            st.sampled_from([b"", b"\x00" * 100_000, b"<r/>", bytes(range(256))]),
        )
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        # Proto3 enums are open: unknown numbers reach the servicer.
        return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))
    low, high = _INT_RANGES[kind]
    return st.one_of(st.sampled_from([low, high, 0, -1 if low < 0 else 1]), st.integers(low, high))


def _fill(draw: st.DrawFn, message: Message, depth: int) -> None:
    descriptor: Descriptor = message.DESCRIPTOR
    if descriptor.full_name == "google.protobuf.Timestamp":
        message.seconds = draw(st.integers(-(2**62), 2**62))  # type: ignore[attr-defined]
        message.nanos = draw(st.integers(-(2**31), 2**31 - 1))  # type: ignore[attr-defined]
        return
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3 or field.message_type.GetOptions().map_entry:
                continue
            target = getattr(message, field.name)
            count = draw(st.sampled_from([1, 2, 0])) if field.is_repeated else 1
            for _ in range(count):
                _fill(draw, target.add() if field.is_repeated else target, depth + 1)
            if not field.is_repeated:
                target.SetInParent()
        elif field.is_repeated:
            values = draw(st.lists(_scalar(field), max_size=3))
            if draw(st.integers(0, 9)) == 0:
                values = values * 5_000  # huge repeated field
            getattr(message, field.name).extend(values)
        else:
            setattr(message, field.name, draw(_scalar(field)))


@st.composite
def requests(draw: st.DrawFn, descriptor: Descriptor) -> bytes:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=200))  # random bytes deserialised as the request
    cls = message_factory.GetMessageClass(
        descriptor_pool.Default().FindMessageTypeByName(descriptor.full_name)
    )
    message = cls()
    _fill(draw, message, 0)
    return message.SerializeToString()


def _call(
    channel: grpc.Channel, method: MethodDescriptor, payloads: list[bytes], metadata: Any
) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    kwargs = {"metadata": metadata, "timeout": 30}
    if method.client_streaming and method.server_streaming:
        for _ in channel.stream_stream(path)(iter(payloads), **kwargs):
            pass
    elif method.client_streaming:
        channel.stream_unary(path)(iter(payloads), **kwargs)
    elif method.server_streaming:
        for i, _ in enumerate(channel.unary_stream(path)(payloads[0], **kwargs)):
            if i > 100:
                break
    else:
        channel.unary_unary(path)(payloads[0], **kwargs)


def _method_id(method: MethodDescriptor) -> str:
    return f"{method.containing_service.name}.{method.name}"


def test_every_registered_service_is_fuzzed(served: Served) -> None:
    fuzzed = {m.containing_service.full_name for m in METHODS}
    assert set(served.service_names) <= fuzzed
    assert "justice.evidence.v1.EvidenceService" in served.service_names
    assert len(METHODS) >= 10


@pytest.mark.parametrize(
    "method",
    [m for m in METHODS if m.containing_service.full_name not in _SKIPPED_SERVICES],
    ids=_method_id,
)
def test_malformed_and_extreme_requests_never_fail_internally(
    method: MethodDescriptor, channels: dict[str, grpc.Channel], served: Served
) -> None:
    # Every service is mounted here (S3 included): a method that is not is a gap, not a skip.
    assert method.containing_service.full_name in (*served.service_names, "grpc.health.v1.Health")

    @settings(
        max_examples=EXAMPLES_PER_METHOD,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        payloads=st.lists(requests(method.input_type), min_size=1, max_size=3),
        principal=st.sampled_from(PRINCIPALS),
        purpose=st.sampled_from([None, "investigation PV/2025/1", "x", "a" * 500]),
    )
    def check(payloads: list[bytes], principal: str, purpose: str | None) -> None:
        metadata = () if purpose is None else ((PURPOSE_HEADER, purpose),)
        try:
            _call(channels[principal], method, payloads, metadata)
        except grpc.RpcError as error:
            code, details = error.code(), error.details()  # type: ignore[attr-defined]
            assert code not in FORBIDDEN, (code, details)

    check()
    # The process still answers and serves. Health follows the database and NATS, whose
    # probes can time out for a moment on a loaded machine: give it a few checks.
    health = health_pb2_grpc.HealthStub(channels["officer-1001"])
    statuses = []
    for _ in range(10):
        statuses.append(health.Check(health_pb2.HealthCheckRequest(), timeout=5).status)
        if statuses[-1] == health_pb2.HealthCheckResponse.SERVING:
            break
        time.sleep(1)
    assert statuses[-1] == health_pb2.HealthCheckResponse.SERVING, statuses


# -- XML attack corpus ------------------------------------------------------------------------


def _xml_entry_points() -> list[tuple[MethodDescriptor, FieldDescriptor]]:
    return [
        (m, f)
        for m in METHODS
        for f in m.input_type.fields
        if f.type == FieldDescriptor.TYPE_BYTES and "xml" in f.name
    ]


@pytest.fixture(scope="module")
def signed_report(channels: dict[str, grpc.Channel]) -> bytes:
    stub = reports_pb2_grpc.ReportServiceStub(channels["officer-1001"])
    created = stub.CreateReport(pb.CreateReportRequest(report=draft()))
    stub.SignReport(pb.SignReportRequest(name=created.name))
    exported = stub.ExportReport(
        pb.ExportReportRequest(name=created.name), metadata=((PURPOSE_HEADER, "hostile-suite"),)
    )
    return bytes(exported.signed_xml)


def test_the_xml_entry_points_are_known() -> None:
    assert {(m.name, f.name) for m, f in _xml_entry_points()} >= {("VerifyReport", "signed_xml")}


@dataclass(frozen=True)
class Answer:
    """What the server answered one document: a status code, and the reason it gave (the
    ErrorInfo reason of a refusal, or the reason of a verification that failed)."""

    code: grpc.StatusCode
    reason: str
    integrity_ok: bool = False


def _answer(call: Any, request: bytes) -> Answer:
    try:
        response = call(request, timeout=30)
    except grpc.RpcError as error:
        details = error_details(error)  # type: ignore[arg-type]
        return Answer(details.code, details.reason)
    return Answer(
        grpc.StatusCode.OK,
        getattr(response, "reason", ""),
        getattr(response, "integrity_ok", True),
    )


def test_xml_attacks_are_rejected_cleanly_at_every_entry_point(
    channels: dict[str, grpc.Channel], signed_report: bytes
) -> None:
    attacks: list[XmlAttack] = [*STATIC_ATTACKS, *signed_attacks(signed_report)]
    channel = channels["officer-1001"]
    answers: dict[tuple[str, str], Answer] = {}
    for method, field in _xml_entry_points():
        cls = message_factory.GetMessageClass(method.input_type)
        path = f"/{method.containing_service.full_name}/{method.name}"
        call = channel.unary_unary(
            path,
            response_deserializer=message_factory.GetMessageClass(method.output_type).FromString,
        )
        # The genuine document is accepted: the entry point really checks what it gets.
        genuine = _answer(call, cls(**{field.name: signed_report}).SerializeToString())
        assert genuine == Answer(grpc.StatusCode.OK, "OK", integrity_ok=True)
        for attack in attacks:
            request = cls(**{field.name: attack.data}).SerializeToString()
            answers[(method.name, attack.name)] = _answer(call, request)
    # Each attack gets a verdict naming what is wrong with it (or a refusal a client can act
    # on, with the same reason), never a pass.
    refusals = {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
    reasons = {attack.name: attack.reasons for attack in attacks}
    wrong = {
        key: answer
        for key, answer in answers.items()
        if answer.code not in refusals
        or answer.integrity_ok
        or answer.reason not in reasons[key[1]]
    }
    assert wrong == {}
    # The corpus reaches every layer: the parser, the size limit, and the signature checks.
    assert {answer.reason for answer in answers.values()} >= {
        "UNSAFE_XML",
        "TOO_LARGE",
        "NO_SIGNATURE",
        "DIGEST_MISMATCH",
        "WRAPPING_SUSPECTED",
        "ALGORITHM_NOT_ALLOWED",
        "SIGNATURE_INVALID",
    }
