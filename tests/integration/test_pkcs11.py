"""Pkcs11KeyStore against a real SoftHSM token: keys generated (and imported) inside the token,
signatures verified by XadesVerifier and by xmlsec1."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from justice.devstack.pki import DevPki
from justice.signing import (
    FileKeyStore,
    UnknownSigner,
    XadesSigner,
    XadesVerifier,
    xmlsec1_verify_command,
)
from justice.signing.pkcs11 import Pkcs11KeyStore
from justice.signing.revocation import FileRevocationSource
from tests.signing_env import dev_tsa
from tests.softhsm import SoftHsmToken

PASSPHRASE = b"pkcs11-passphrase"
REPORT = (
    b'<report xmlns="urn:justice:report:v1"><name>reports/0011</name>'
    b"<narrative>In beslag genomen: 2 gsm's.</narrative></report>"
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    dev = DevPki(tmp_path_factory.mktemp("pki"), PASSPHRASE)
    dev.ensure()
    return dev


@pytest.fixture(scope="module")
def store(softhsm: SoftHsmToken, pki: DevPki) -> Iterator[Pkcs11KeyStore]:
    with Pkcs11KeyStore(
        softhsm.module, softhsm.label, softhsm.pin, issuers=[pki.ca_certificate()]
    ) as hsm:
        yield hsm


def test_key_generated_in_token_signs_verifiable_xades(
    store: Pkcs11KeyStore, pki: DevPki, tmp_path: Path
) -> None:
    public = store.generate_key("officer-3001")
    store.store_certificate(
        "officer-3001",
        pki.certify_signing_key(
            public, "officer-3001", "Federal Police", "HSM", name="HSM Officer"
        ),
    )
    identity = store.identity("officer-3001")
    assert len(identity.chain) == 2

    signed = XadesSigner().sign(REPORT, identity)
    verdict = XadesVerifier([pki.ca_certificate()]).verify(signed)
    assert verdict.trusted, verdict
    assert verdict.signer_id == "officer-3001"

    path = tmp_path / "hsm.xml"
    path.write_bytes(signed)
    result = subprocess.run(
        xmlsec1_verify_command(path, pki.ca_path), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr

    tampered = signed.replace(b"2 gsm", b"3 gsm", 1)
    assert not XadesVerifier([pki.ca_certificate()]).verify(tampered).integrity_ok


def test_hsm_key_makes_long_term_signatures(store: Pkcs11KeyStore, pki: DevPki) -> None:
    identity = store.identity("officer-3001")
    signer = XadesSigner(
        timestamper=dev_tsa(pki, PASSPHRASE), revocation=FileRevocationSource(pki.crl_path)
    )

    verdict = XadesVerifier([pki.ca_certificate()]).verify(signer.sign(REPORT, identity))

    assert verdict.trusted, verdict
    assert verdict.level == "B-LT"
    assert verdict.chain_valid_at == verdict.timestamp_time


def test_private_key_never_leaves_the_token(store: Pkcs11KeyStore) -> None:
    key = store.identity("officer-3001").key
    with pytest.raises(UnsupportedAlgorithm):
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    with pytest.raises(UnsupportedAlgorithm):
        key.private_numbers()


def test_imported_dev_key_signs_like_the_file_key(store: Pkcs11KeyStore, pki: DevPki) -> None:
    file_identity = FileKeyStore(pki.signing_dir, PASSPHRASE).identity("court-brussels")
    assert isinstance(file_identity.key, rsa.RSAPrivateKey)
    store.import_key("court-brussels", file_identity.key)
    store.store_certificate("court-brussels", file_identity.certificate)

    hsm_identity = store.identity("court-brussels")
    verdict = XadesVerifier([pki.ca_certificate()]).verify(XadesSigner().sign(REPORT, hsm_identity))

    assert verdict.trusted, verdict
    assert verdict.signer_id == "court-brussels"


def test_unknown_label_is_unknown_signer(store: Pkcs11KeyStore) -> None:
    with pytest.raises(UnknownSigner):
        store.identity("nobody")
