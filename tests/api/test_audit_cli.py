"""`justice audit ...` against the real server, and `verify-bundle` offline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner, Result

from justice.app import Application
from justice.audit import bundle
from justice.cli.main import app as cli
from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.signing.keyed import KeyStoreSigner
from justice.signing.keystore import FileKeyStore
from justice.signing.xades import XadesSigner, XadesVerifier
from tests.builders import create
from tests.cli_runner import justice

AUDITOR = "auditor-4001"
PURPOSE = "audit CLI test"


@pytest.fixture(scope="module", params=["sqlite"])
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # The CLI does not care which database the server uses.
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'justice.db'}"


async def test_verify_reports_an_intact_chain(application: Application, pki: DevPki) -> None:
    result = await justice(application, pki, "--as", AUDITOR, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert "INTACT" in result.output


async def test_only_auditors_may_use_it(application: Application, pki: DevPki) -> None:
    result = await justice(application, pki, "--as", "officer-1001", "audit", "verify")
    assert result.exit_code == 1
    assert "PERMISSION_DENIED" in result.output


async def test_query_shows_who_read_a_report(
    application: Application, pki: DevPki, grpc_stub: reports_pb2_grpc.ReportServiceStub
) -> None:
    report = await create(grpc_stub)
    await grpc_stub.GetReport(
        pb.GetReportRequest(name=report.name), metadata=(("x-justice-purpose", PURPOSE),)
    )
    args = ["--as", AUDITOR, "audit", "query", "--resource", report.name]
    refused = await justice(application, pki, *args)
    assert refused.exit_code == 1
    assert "PURPOSE_REQUIRED" in refused.output
    result = await justice(application, pki, "--purpose", PURPOSE, *args)
    assert result.exit_code == 0, result.output
    assert "GetReport" in result.output
    assert "officer-1001" in result.output


async def test_alerts_lists_and_refuses_unknown_rules(
    application: Application, pki: DevPki
) -> None:
    result = await justice(application, pki, "--as", AUDITOR, "audit", "alerts")
    assert result.exit_code == 0, result.output
    assert "rule" in result.output
    bad = await justice(application, pki, "--as", AUDITOR, "audit", "alerts", "--rule", "NOPE")
    assert bad.exit_code == 1
    assert "INVALID_ARGUMENT" in bad.output


async def test_an_exported_bundle_verifies_offline_and_forgeries_do_not(
    application: Application, pki: DevPki, tmp_path: Path
) -> None:
    out = tmp_path / "audit.xml"
    result = await justice(
        application,
        pki,
        "--as",
        AUDITOR,
        "--purpose",
        PURPOSE,
        "audit",
        "export",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    ca = str(pki.ca_path)

    async def offline(path: Path, *extra: str) -> Result:
        # No server needed: nothing listens on the port the settings name.
        env = {"JUSTICE_PKI_ROOT": str(pki.root), "JUSTICE_LISTEN": "127.0.0.1:1"}
        args = ["audit", "verify-bundle", str(path), "--ca", ca, *extra]
        return await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)

    good = await offline(out)
    assert good.exit_code == 0, good.output
    assert "VALID" in good.output
    assert "chain intact" in good.output

    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(out.read_bytes().replace(b"<Outcome>OK<", b"<Outcome>NOT_FOUND<", 1))
    assert (await offline(tampered)).exit_code == 1

    # Re-signed by an officer: a certificate from the same CA, but not the platform's.
    verdict = XadesVerifier([x509.load_pem_x509_certificate(pki.ca_path.read_bytes())]).verify(
        out.read_bytes()
    )
    records = bundle.records_of(verdict.signed_root)
    keys = FileKeyStore(pki.signing_dir, PKI_PASSPHRASE)
    forged = tmp_path / "forged.xml"
    forged.write_bytes(
        await KeyStoreSigner(keys, XadesSigner()).sign(
            bundle.render(records, datetime.now(UTC), "officer-1001"), "officer-1001"
        )
    )
    wrong = await offline(forged)
    assert wrong.exit_code == 1
    assert "WRONG_SIGNER" in wrong.output

    not_next = await offline(out, "--after-hash", "f" * 64)
    assert not_next.exit_code == 1
    assert "NOT_CONTINUOUS" in not_next.output
