"""A report signed through the API is accepted by xmlsec1, an independent verifier."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from justice.devstack.pki import DevPki
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.signing.xmlsec import xmlsec1_verify_command
from tests.api.test_reports import PURPOSE, create

XMLSEC1 = shutil.which("xmlsec1")


def xmlsec1_accepts(xml: Path, pki: DevPki) -> bool:
    assert XMLSEC1, "xmlsec1 is missing: `make test` installs it (apt-get install xmlsec1)"
    result = subprocess.run(
        xmlsec1_verify_command(xml, pki.ca_path), capture_output=True, text=True, check=False
    )
    return result.returncode == 0


@pytest.fixture(scope="module")
async def exported(grpc_stub: reports_pb2_grpc.ReportServiceStub) -> bytes:
    report = await create(grpc_stub, narrative="De getuige zag een grijze bestelwagen.")
    await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    response = await grpc_stub.ExportReport(
        pb.ExportReportRequest(name=report.name), metadata=PURPOSE
    )
    return bytes(response.signed_xml)


def test_xmlsec1_accepts_the_export(exported: bytes, pki: DevPki, tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_bytes(exported)
    assert xmlsec1_accepts(path, pki)


async def test_one_flipped_narrative_byte_fails_xmlsec1_and_verify_report(
    exported: bytes,
    pki: DevPki,
    tmp_path: Path,
    grpc_stub: reports_pb2_grpc.ReportServiceStub,
) -> None:
    offset = exported.index(b"grijze")
    tampered = exported[:offset] + b"G" + exported[offset + 1 :]
    path = tmp_path / "tampered.xml"
    path.write_bytes(tampered)
    assert not xmlsec1_accepts(path, pki)
    verdict = await grpc_stub.VerifyReport(pb.VerifyReportRequest(signed_xml=tampered))
    assert not verdict.integrity_ok


def test_xmlsec1_refuses_a_foreign_ca(exported: bytes, tmp_path: Path) -> None:
    foreign = DevPki(tmp_path / "foreign", b"another-passphrase")
    foreign.ensure()
    path = tmp_path / "report.xml"
    path.write_bytes(exported)
    assert not xmlsec1_accepts(path, foreign)
