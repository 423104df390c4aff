"""Production mode on an HSM: the real server (app.build) in production mode, on PostgreSQL,
with JUSTICE_KEY_STORE=pkcs11 on a SoftHSM token, signs a report through the API, in a thread
of the serving process and in a signing process of its own (JUSTICE_SIGNING_PROCESSES=1,
which opens its own session on the token). xmlsec1 verifies the export, and the signing
certificate is the token's, not the dev file key's."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from justice.app import Application
from justice.devstack.demo import demo_enrolments
from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.platform.config import Settings
from justice.reports.v1 import reports_pb2 as pb
from justice.reports.v1 import reports_pb2_grpc
from justice.signing.pkcs11 import Pkcs11KeyStore
from justice.signing.xades import XadesSigner
from justice.signing.xmlsec import xmlsec1_verify_command
from tests.builders import PURPOSE, create
from tests.softhsm import SoftHsmToken

# Production refuses SQLite, so this module runs on PostgreSQL only.
pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True, scope="module")

SIGNER = "officer-1001"
DS = "{http://www.w3.org/2000/09/xmldsig#}"


@pytest.fixture(scope="module")
def token_certificate(softhsm: SoftHsmToken, pki: DevPki) -> bytes:
    """The officer's key generated inside the token, certified by the dev CA (DER)."""
    with Pkcs11KeyStore(softhsm.module, softhsm.label, softhsm.pin) as hsm:
        public = hsm.generate_key(SIGNER)
        certificate = pki.certify_signing_key(
            public, SIGNER, "Federal Police", "PZ Antwerpen/Team A", name="Jan Peeters"
        )
        hsm.store_certificate(SIGNER, certificate)
    return certificate.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module", params=[0, 1], ids=["in-thread", "signing-process"])
def signing_processes(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture(scope="module")
def settings(
    database_url: str,
    pki: DevPki,
    softhsm: SoftHsmToken,
    token_certificate: bytes,
    signing_processes: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    state = tmp_path_factory.mktemp("hsm-state")
    pin_file = state / "pin"
    pin_file.write_text(softhsm.pin + "\n")
    return Settings(
        state_dir=state,
        pki_root=pki.root,
        database_url=database_url,
        listen="127.0.0.1:0",
        key_passphrase=PKI_PASSPHRASE.decode(),
        shutdown_grace_seconds=1.0,
        production=True,
        access={"dev_tokens": False},
        exchange={"nats_secret": "hsm-test-nats-secret"},
        key_store="pkcs11",
        pkcs11_module=softhsm.module,
        pkcs11_token_label=softhsm.label,
        pkcs11_pin_file=pin_file,
        signing_processes=signing_processes,
    )


def _not_here(*_: object) -> bytes:
    raise AssertionError("signed in the serving process")


@pytest.fixture(scope="module")
async def exported(
    application: Application,
    grpc_stub: reports_pb2_grpc.ReportServiceStub,
    signing_processes: int,
) -> bytes:
    # Production enrols nobody by itself: the registry is the operator's.
    assert application.access is not None
    assert application.directory is not None
    await application.access.enrol(demo_enrolments())
    application.directory.invalidate()
    report = await create(grpc_stub, narrative="De getuige zag een rode bestelwagen.")
    with pytest.MonkeyPatch.context() as patch:
        if signing_processes:
            # The serving process must not sign itself: only the signing process can.
            patch.setattr(XadesSigner, "sign", _not_here)
        await grpc_stub.SignReport(pb.SignReportRequest(name=report.name))
    response = await grpc_stub.ExportReport(
        pb.ExportReportRequest(name=report.name), metadata=PURPOSE
    )
    return bytes(response.signed_xml)


def test_xmlsec1_verifies_the_hsm_signed_export(
    exported: bytes, pki: DevPki, tmp_path: Path
) -> None:
    path = tmp_path / "report.xml"
    path.write_bytes(exported)
    result = subprocess.run(
        xmlsec1_verify_command(path, pki.ca_path), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_signature_is_the_tokens_not_the_file_keys(
    exported: bytes, token_certificate: bytes, pki: DevPki
) -> None:
    signature = etree.fromstring(exported).find(f".//{DS}Signature")
    assert signature is not None
    leaf = signature.find(f".//{DS}X509Certificate")
    assert leaf is not None
    assert leaf.text is not None
    der = base64.b64decode(leaf.text)
    assert der == token_certificate
    file_certificate, _ = pki.signing_paths(SIGNER)
    assert der != _der_of(file_certificate)


def _der_of(pem: Path) -> bytes:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(serialization.Encoding.DER)
