"""An independent implementation (xmlsec1) agrees with XadesSigner / XadesVerifier."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from justice.devstack.pki import DevPki
from justice.signing import (
    FileKeyStore,
    SigningIdentity,
    XadesSigner,
    XadesVerifier,
    xmlsec1_verify_command,
)

PASSPHRASE = b"xmlsec-passphrase"
REPORT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<report xmlns="urn:justice:report:v1" Id="report-7">'
    b"<name>reports/0007</name><officer>officer-1002</officer>"
    b"<narrative>Voertuig met kenteken 1-ABC-123 gecontroleerd op de Wetstraat.</narrative>"
    b"</report>"
)


@pytest.fixture(scope="module")
def xmlsec1() -> str:
    path = shutil.which("xmlsec1")
    if path is None:
        pytest.fail(
            "xmlsec1 is not installed: apt-get install xmlsec1 (the test command installs it)"
        )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    dev = DevPki(tmp_path_factory.mktemp("pki"), PASSPHRASE)
    dev.ensure()
    return dev


@pytest.fixture(scope="module")
def officer(pki: DevPki) -> SigningIdentity:
    return FileKeyStore(pki.signing_dir, PASSPHRASE).identity("officer-1002")


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_xmlsec1_verifies_our_signature(
    xmlsec1: str, pki: DevPki, officer: SigningIdentity, tmp_path: Path
) -> None:
    path = tmp_path / "report.xml"
    path.write_bytes(XadesSigner().sign(REPORT, officer))

    result = run(xmlsec1_verify_command(path, pki.ca_path, executable=xmlsec1))

    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout + result.stderr
    assert "SignedInfo References (ok/all): 3/3" in result.stdout + result.stderr


def test_xmlsec1_verifies_an_ecdsa_p256_signature(
    xmlsec1: str, pki: DevPki, tmp_path: Path
) -> None:
    """P-256 officer keys sign about ten times faster than RSA-2048; xmlsec1 must agree."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = pki.certify_signing_key(key.public_key(), "officer-9256", "Federal Police", "EC")
    identity = SigningIdentity(key=key, chain=(certificate, pki.ca_certificate()))
    path = tmp_path / "report.xml"
    path.write_bytes(XadesSigner().sign(REPORT, identity))

    result = run(xmlsec1_verify_command(path, pki.ca_path, executable=xmlsec1))

    assert b"ecdsa-sha256" in path.read_bytes()
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 3/3" in result.stdout + result.stderr
    assert XadesVerifier([pki.ca_certificate()]).verify(path.read_bytes()).trusted


def test_flipped_narrative_byte_fails_in_both(
    xmlsec1: str, pki: DevPki, officer: SigningIdentity, tmp_path: Path
) -> None:
    signed = XadesSigner().sign(REPORT, officer)
    tampered = signed.replace(b"Wetstraat", b"Wetstraet", 1)
    assert tampered != signed
    assert len(tampered) == len(signed)
    path = tmp_path / "tampered.xml"
    path.write_bytes(tampered)

    result = run(xmlsec1_verify_command(path, pki.ca_path, executable=xmlsec1))
    verdict = XadesVerifier([pki.ca_certificate()]).verify(tampered)

    assert result.returncode != 0
    assert not verdict.integrity_ok
    assert verdict.reason == "DIGEST_MISMATCH"


def test_xmlsec1_rejects_a_signer_from_another_ca(
    xmlsec1: str, pki: DevPki, officer: SigningIdentity, tmp_path: Path
) -> None:
    # Proves the command really checks the certificate against --trusted-pem.
    other = DevPki(tmp_path / "other", b"other-passphrase")
    other.ensure()
    path = tmp_path / "report.xml"
    path.write_bytes(XadesSigner().sign(REPORT, officer))

    assert run(xmlsec1_verify_command(path, pki.ca_path, executable=xmlsec1)).returncode == 0
    assert run(xmlsec1_verify_command(path, other.ca_path, executable=xmlsec1)).returncode != 0
