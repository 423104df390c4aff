"""DevPki: idempotent generation of the dev CA, TLS and signing material."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from justice.devstack.pki import (
    DEMO_PRINCIPALS,
    PARTNER_KINDS,
    DemoPrincipal,
    DevPki,
    PrincipalKind,
)

PASSPHRASE = b"devpki-passphrase"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    dev = DevPki(tmp_path_factory.mktemp("pki"), PASSPHRASE)
    dev.ensure()
    return dev


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _chains_to(cert: x509.Certificate, ca: x509.Certificate) -> None:
    cert.verify_directly_issued_by(ca)


def test_second_ensure_keeps_every_file_byte_identical(pki: DevPki) -> None:
    before = _snapshot(pki.root)
    DevPki(pki.root, PASSPHRASE).ensure()
    assert _snapshot(pki.root) == before


def test_ensure_recreates_only_what_is_missing(pki: DevPki) -> None:
    cert_path, key_path = pki.client_paths("fines-agency")
    before = _snapshot(pki.root)
    cert_path.unlink()
    DevPki(pki.root, PASSPHRASE).ensure()
    after = _snapshot(pki.root)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"clients/fines-agency.pem", "clients/fines-agency.key"}
    assert key_path.exists()


def test_demo_principals() -> None:
    ids = {p.id for p in DEMO_PRINCIPALS}
    assert {
        "officer-1001",
        "officer-1002",
        "prosecutor-antwerp",
        "court-brussels",
        "fines-agency",
        "vehicle-register-nl",
        "justice-server",
    } <= ids
    assert len(ids) == len(DEMO_PRINCIPALS)  # ids are unique
    officer = next(p for p in DEMO_PRINCIPALS if p.id == "officer-1001")
    assert (officer.kind, officer.name, officer.agency, officer.unit) == (
        PrincipalKind.OFFICER,
        "Jan Peeters",
        "Federal Police",
        "PZ Antwerpen/Team A",
    )


def test_ca_is_a_ca(pki: DevPki) -> None:
    ca = _cert(pki.ca_path)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    with pytest.raises(TypeError):
        load_pem_private_key(pki.ca_key_path.read_bytes(), password=None)
    assert load_pem_private_key(pki.ca_key_path.read_bytes(), password=PASSPHRASE)


def test_server_certificate(pki: DevPki) -> None:
    cert = _cert(pki.server_cert_path)
    _chains_to(cert, _cert(pki.ca_path))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert (
        ExtendedKeyUsageOID.SERVER_AUTH
        in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    assert stat.S_IMODE(pki.server_key_path.stat().st_mode) == 0o600
    assert load_pem_private_key(pki.server_key_path.read_bytes(), password=None)


@pytest.mark.parametrize("principal", DEMO_PRINCIPALS, ids=lambda p: p.id)
def test_client_certificates(pki: DevPki, principal: object) -> None:
    p = principal  # DemoPrincipal
    cert_path, key_path = pki.client_paths(p.id)  # type: ignore[attr-defined]
    cert = _cert(cert_path)
    _chains_to(cert, _cert(pki.ca_path))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == p.id  # type: ignore[attr-defined]
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == p.agency  # type: ignore[attr-defined]
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == p.unit  # type: ignore[attr-defined]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


@pytest.mark.parametrize("principal", DEMO_PRINCIPALS, ids=lambda p: p.id)
def test_signing_identities(pki: DevPki, principal: object) -> None:
    p = principal
    cert_path, key_path = pki.signing_paths(p.id)  # type: ignore[attr-defined]
    chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    assert chain[1] == _cert(pki.ca_path)
    _chains_to(chain[0], chain[1])
    leaf = chain[0]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.content_commitment
    assert leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == p.id  # type: ignore[attr-defined]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == p.name  # type: ignore[attr-defined]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    with pytest.raises(TypeError):  # encrypted: no password, no key
        load_pem_private_key(key_path.read_bytes(), password=None)
    with pytest.raises(ValueError, match=r"(?i)decrypt|password|incorrect"):
        load_pem_private_key(key_path.read_bytes(), password=b"wrong")
    key = load_pem_private_key(key_path.read_bytes(), password=PASSPHRASE)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]


@pytest.mark.parametrize("principal", DEMO_PRINCIPALS, ids=lambda p: p.id)
def test_envelope_identities_are_p256_for_the_platform_and_partners(
    pki: DevPki, principal: DemoPrincipal
) -> None:
    cert_path, key_path = pki.envelope_paths(principal.id)
    if principal.kind not in PARTNER_KINDS | {PrincipalKind.SERVICE}:
        assert not cert_path.exists()  # officers sign reports, not envelopes
        return
    chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    _chains_to(chain[0], _cert(pki.ca_path))
    key = load_pem_private_key(key_path.read_bytes(), password=PASSPHRASE)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert key.public_key().public_numbers() == chain[0].public_key().public_numbers()  # type: ignore[union-attr]
    assert chain[0].subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == principal.id


def test_independent_pki_is_a_different_ca(pki: DevPki, tmp_path: Path) -> None:
    other = DevPki(tmp_path / "other", b"other")
    cert_path, _ = pki.issue_client("partner-x", "Elsewhere", "Unit", ca=other)
    cert = _cert(cert_path)
    _chains_to(cert, other.ca_certificate())
    with pytest.raises(InvalidSignature):
        _chains_to(cert, pki.ca_certificate())


@pytest.mark.parametrize("bad_id", ["../escape", "UPPER", "a/b", "", "x" * 100])
def test_ids_are_validated(pki: DevPki, bad_id: str) -> None:
    with pytest.raises(ValueError, match="principal id must match"):
        pki.issue_signing(bad_id, "A", "B")
