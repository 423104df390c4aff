"""XAdES B-LT checked by independent tools: xmlsec1 for the XML signature, `openssl ts -verify`
for the RFC 3161 token extracted from it; and the production path, a TSA reached over HTTP."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from justice.devstack.pki import DevPki
from justice.devstack.tsa import DevTimestampAuthority, TsaHttpServer
from justice.signing import FileKeyStore, XadesSigner, XadesVerifier, xmlsec1_verify_command
from justice.signing.revocation import FileRevocationSource
from justice.signing.rfc3161 import (
    HttpTimestamper,
    TimestampError,
    openssl_ts_verify_command,
    parse_token,
)
from tests.signing_env import (
    PASSPHRASE,
    encapsulated_timestamp,
    report,
    signature_value_c14n,
)


@pytest.fixture(scope="module")
def signed(module_pki: DevPki, tsa: DevTimestampAuthority) -> bytes:
    signer = XadesSigner(timestamper=tsa, revocation=FileRevocationSource(module_pki.crl_path))
    return signer.sign(
        report(), FileKeyStore(module_pki.signing_dir, PASSPHRASE).identity("officer-1002")
    )


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_xmlsec1_still_verifies_a_long_term_signature(
    signed: bytes, module_pki: DevPki, tmp_path: Path
) -> None:
    assert XadesVerifier([module_pki.ca_certificate()]).verify(signed).level == "B-LT"
    path = tmp_path / "report.xml"
    path.write_bytes(signed)

    result = run(xmlsec1_verify_command(path, module_pki.ca_path))

    assert result.returncode == 0, result.stderr
    assert "OK" in result.stderr


def test_openssl_verifies_the_extracted_timestamp_over_the_signature_value(
    signed: bytes, module_pki: DevPki, tmp_path: Path
) -> None:
    token_path = tmp_path / "token.tsr"
    token_path.write_bytes(encapsulated_timestamp(signed))
    data_path = tmp_path / "signature-value.c14n"
    data_path.write_bytes(signature_value_c14n(signed))
    digest = hashlib.sha256(data_path.read_bytes()).digest()

    by_data = run(openssl_ts_verify_command(token_path, module_pki.ca_path, data_path=data_path))
    by_digest = run(openssl_ts_verify_command(token_path, module_pki.ca_path, digest=digest))

    assert by_data.returncode == 0, by_data.stderr
    assert "Verification: OK" in by_data.stdout
    assert by_digest.returncode == 0, by_digest.stderr
    assert parse_token(token_path.read_bytes()).hashed_message == digest


def test_openssl_refuses_the_token_for_other_data_or_another_ca(
    signed: bytes, module_pki: DevPki, tmp_path: Path
) -> None:
    token_path = tmp_path / "token.tsr"
    token_path.write_bytes(encapsulated_timestamp(signed))
    other_data = tmp_path / "other"
    other_data.write_bytes(signature_value_c14n(signed) + b" ")
    other_ca = DevPki(tmp_path / "other-ca", b"other-passphrase")
    other_ca.ca_certificate()

    assert run(
        openssl_ts_verify_command(token_path, module_pki.ca_path, data_path=other_data)
    ).returncode
    digest = hashlib.sha256(signature_value_c14n(signed)).digest()
    assert run(openssl_ts_verify_command(token_path, other_ca.ca_path, digest=digest)).returncode


def test_a_tsa_reached_over_http_timestamps_signatures(
    module_pki: DevPki, tsa: DevTimestampAuthority
) -> None:
    identity = FileKeyStore(module_pki.signing_dir, PASSPHRASE).identity("officer-1001")
    with TsaHttpServer(tsa) as server:
        signer = XadesSigner(timestamper=HttpTimestamper(server.url))
        verdict = XadesVerifier([module_pki.ca_certificate()]).verify(
            signer.sign(report(), identity)
        )

    assert verdict.trusted, verdict
    assert verdict.level == "B-T"
    with pytest.raises(TimestampError, match="unreachable"):
        HttpTimestamper(server.url, timeout_seconds=2).stamp(hashlib.sha256(b"x").digest())


@pytest.mark.parametrize("kind", ["p256", "rsa"])
def test_the_dev_tsa_signs_with_its_key_type_and_both_verifiers_agree(
    kind: str, tmp_path: Path
) -> None:
    """A new dev PKI's TSA key is P-256; a state dir made before keeps its RSA key."""
    pki = DevPki(tmp_path / "pki", b"tsa-passphrase")
    pki.ensure()
    if kind == "rsa":
        pki.issue_tsa(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    tsa = DevTimestampAuthority.from_files(pki.tsa_cert_path, pki.tsa_key_path, b"tsa-passphrase")
    public = tsa.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey if kind == "p256" else rsa.RSAPublicKey)
    digest = hashlib.sha256(b"stamped").digest()
    token_path = tmp_path / "token.tsr"
    token_path.write_bytes(tsa.stamp(digest))

    assert parse_token(token_path.read_bytes()).hashed_message == digest
    checked = run(openssl_ts_verify_command(token_path, pki.ca_path, digest=digest))
    assert checked.returncode == 0, checked.stderr
    assert "Verification: OK" in checked.stdout
