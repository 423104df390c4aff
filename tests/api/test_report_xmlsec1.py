"""A report signed through the API is accepted by xmlsec1, an independent verifier, and its
RFC 3161 timestamp (XAdES B-LT) by `openssl ts -verify`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from justice.devstack.pki import DevPki
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.signing.rfc3161 import openssl_ts_verify_command
from justice.signing.xades import XadesVerifier
from justice.signing.xmlsec import xmlsec1_verify_command
from tests.builders import PURPOSE, create
from tests.signing_env import encapsulated_timestamp, signature_value_c14n

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


def test_the_export_is_long_term_and_openssl_accepts_its_timestamp(
    exported: bytes, pki: DevPki, tmp_path: Path
) -> None:
    verdict = XadesVerifier([pki.ca_certificate()]).verify(exported)
    assert verdict.trusted, verdict
    assert verdict.level == "B-LT"
    token = tmp_path / "token.tsr"
    token.write_bytes(encapsulated_timestamp(exported))
    data = tmp_path / "signature-value.c14n"
    data.write_bytes(signature_value_c14n(exported))

    result = subprocess.run(
        openssl_ts_verify_command(token, pki.ca_path, data_path=data),
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr


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
