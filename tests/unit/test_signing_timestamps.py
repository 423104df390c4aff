"""XAdES B-T / B-LT: the RFC 3161 timestamp decides when a signature was made, not SigningTime."""

from __future__ import annotations

import hashlib
from base64 import b64decode, b64encode
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from justice.devstack.pki import DevPki
from justice.devstack.tsa import DevTimestampAuthority
from justice.platform.errors import Unavailable
from justice.signing import (
    CertificateNotValid,
    FileKeyStore,
    TimestampUnavailable,
    XadesSigner,
    XadesVerifier,
)
from justice.signing.keyed import KeyStoreSigner
from justice.signing.revocation import FileRevocationSource
from justice.signing.rfc3161 import TimestampError, parse_token, request_for, token_from_response
from tests.signing_env import (
    PASSPHRASE,
    XADES,
    dev_tsa,
    encapsulated_timestamp,
    report,
    signature_value_c14n,
)


@pytest.fixture(scope="module")
def keys(module_pki: DevPki) -> FileKeyStore:
    return FileKeyStore(module_pki.signing_dir, PASSPHRASE)


@pytest.fixture(scope="module")
def long_term(module_pki: DevPki, tsa: DevTimestampAuthority) -> XadesSigner:
    return XadesSigner(timestamper=tsa, revocation=FileRevocationSource(module_pki.crl_path))


def _without_timestamp(signed: bytes) -> bytes:
    root = etree.fromstring(signed)
    unsigned = root.find(f".//{XADES}UnsignedProperties")
    assert unsigned is not None
    unsigned.getparent().remove(unsigned)
    return bytes(etree.tostring(root))


def test_long_term_signature_is_judged_at_the_timestamp(
    module_pki: DevPki, keys: FileKeyStore, long_term: XadesSigner
) -> None:
    signed = long_term.sign(report(), keys.identity("officer-1001"))

    verdict = XadesVerifier([module_pki.ca_certificate()]).verify(signed)

    assert verdict.trusted, verdict
    assert verdict.level == "B-LT"
    assert verdict.timestamp_time is not None
    assert abs(verdict.timestamp_time - datetime.now(UTC)) < timedelta(minutes=1)
    assert verdict.chain_valid_at == verdict.timestamp_time
    assert verdict.detail == "chain valid at timestamp time"
    root = etree.fromstring(signed)
    values = root.findall(f".//{XADES}CertificateValues/{XADES}EncapsulatedX509Certificate")
    assert len(values) == 3  # officer, CA, TSA
    assert len(root.findall(f".//{XADES}CRLValues/{XADES}EncapsulatedCRLValue")) == 1


def test_token_imprint_is_the_hash_of_the_canonical_signature_value(
    module_pki: DevPki, keys: FileKeyStore, tsa: DevTimestampAuthority
) -> None:
    signed = XadesSigner(timestamper=tsa).sign(report(), keys.identity("officer-1001"))

    token = parse_token(encapsulated_timestamp(signed))

    assert token.hash_algorithm == "sha256"
    assert token.hashed_message == hashlib.sha256(signature_value_c14n(signed)).digest()
    assert token.signer == tsa.certificate
    assert XadesVerifier([module_pki.ca_certificate()]).verify(signed).level == "B-T"


def test_backdated_signing_time_is_ignored(
    module_pki: DevPki, tsa: DevTimestampAuthority, keys: FileKeyStore
) -> None:
    # Valid from -4 to -1 minutes (the dev CA only exists since -5). The signer claims -3
    # minutes, when the certificate was valid; the TSA says now, when it had expired.
    now = datetime.now(UTC)
    module_pki.issue_signing(
        "officer-9301",
        "Federal Police",
        "Past",
        not_before=now - timedelta(minutes=4),
        not_after=now - timedelta(minutes=1),
    )
    identity = FileKeyStore(module_pki.signing_dir, PASSPHRASE).identity("officer-9301")
    claimed = now - timedelta(minutes=3)
    signed = XadesSigner(clock=lambda: claimed, timestamper=tsa).sign(report(), identity)
    verifier = XadesVerifier([module_pki.ca_certificate()])

    verdict = verifier.verify(signed)

    assert verdict.integrity_ok
    assert not verdict.trusted
    assert verdict.reason == "UNTRUSTED_SIGNER"
    assert verdict.signing_time == claimed.replace(microsecond=0)
    assert verdict.timestamp_time is not None
    assert verdict.timestamp_time > now
    # The same signature stripped of its timestamp falls back on the claim and passes: the
    # gap B-T closes.
    assert verifier.verify(_without_timestamp(signed)).trusted


def test_certificate_revoked_before_the_timestamp_is_refused(
    module_pki: DevPki, tsa: DevTimestampAuthority
) -> None:
    module_pki.issue_signing("officer-9302", "Federal Police", "Revoked")
    identity = FileKeyStore(module_pki.signing_dir, PASSPHRASE).identity("officer-9302")
    module_pki.revoke(identity.certificate, at=datetime.now(UTC) - timedelta(seconds=30))
    # A B-T signer that does not look at CRLs stands in for a careless foreign signer.
    signed = XadesSigner(timestamper=tsa).sign(report(), identity)

    verdict = XadesVerifier([module_pki.ca_certificate()], crls=[module_pki.crl()]).verify(signed)

    assert verdict.integrity_ok
    assert not verdict.trusted
    assert verdict.reason == "SIGNER_REVOKED"
    assert "revoked" in verdict.detail


def test_long_term_signer_refuses_a_revoked_key(module_pki: DevPki, long_term: XadesSigner) -> None:
    module_pki.issue_signing("officer-9303", "Federal Police", "Revoked")
    identity = FileKeyStore(module_pki.signing_dir, PASSPHRASE).identity("officer-9303")
    module_pki.revoke(identity.certificate)

    with pytest.raises(CertificateNotValid, match="revoked"):
        long_term.sign(report(), identity)


def test_a_key_revoked_after_it_signed_signs_no_more(
    module_pki: DevPki, long_term: XadesSigner
) -> None:
    """The signer keeps what the CRLs said of a key only while they are the same CRLs."""
    module_pki.issue_signing("officer-9305", "Federal Police", "Revoked later")
    identity = FileKeyStore(module_pki.signing_dir, PASSPHRASE).identity("officer-9305")
    long_term.sign(report(), identity)
    module_pki.revoke(identity.certificate)

    with pytest.raises(CertificateNotValid, match="revoked"):
        long_term.sign(report(), identity)


def test_revocation_after_the_timestamp_does_not_void_the_signature(
    module_pki: DevPki, long_term: XadesSigner
) -> None:
    module_pki.issue_signing("officer-9304", "Federal Police", "Later revoked")
    identity = FileKeyStore(module_pki.signing_dir, PASSPHRASE).identity("officer-9304")
    signed = long_term.sign(report(), identity)
    module_pki.revoke(identity.certificate, at=datetime.now(UTC) + timedelta(minutes=1))

    verdict = XadesVerifier([module_pki.ca_certificate()], crls=[module_pki.crl()]).verify(signed)

    assert verdict.trusted, verdict


def test_a_timestamp_over_other_data_is_refused(
    module_pki: DevPki, keys: FileKeyStore, tsa: DevTimestampAuthority
) -> None:
    signed = XadesSigner(timestamper=tsa).sign(report(), keys.identity("officer-1001"))
    genuine = encapsulated_timestamp(signed)
    other = tsa.stamp(hashlib.sha256(b"another signature").digest())
    swapped = signed.replace(b64encode(genuine), b64encode(other))

    verdict = XadesVerifier([module_pki.ca_certificate()]).verify(swapped)

    assert not verdict.integrity_ok
    assert verdict.reason == "TIMESTAMP_INVALID"


def test_a_timestamp_from_an_untrusted_tsa_is_refused(
    module_pki: DevPki, keys: FileKeyStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rogue = DevPki(tmp_path_factory.mktemp("rogue"), b"rogue-passphrase")
    rogue.issue_tsa()
    rogue_tsa = DevTimestampAuthority.from_files(
        rogue.tsa_cert_path, rogue.tsa_key_path, b"rogue-passphrase"
    )
    signed = XadesSigner(timestamper=rogue_tsa).sign(report(), keys.identity("officer-1001"))

    verdict = XadesVerifier([module_pki.ca_certificate()]).verify(signed)

    assert verdict.reason == "TIMESTAMP_INVALID"
    assert "TSA certificate not trusted" in verdict.detail


def test_tsa_answers_requests_and_refuses_what_it_cannot_stamp(
    tsa: DevTimestampAuthority, module_pki: DevPki
) -> None:
    digest = hashlib.sha256(b"data").digest()
    token = token_from_response(tsa.respond(request_for(digest, 42)), digest, 42)
    assert parse_token(token).hashed_message == digest
    with pytest.raises(TimestampError, match="nonce"):
        token_from_response(tsa.respond(request_for(digest, 42)), digest, 43)
    with pytest.raises(TimestampError, match="refused"):
        token_from_response(tsa.respond(request_for(b"short", 1)), b"short", 1)
    with pytest.raises(TimestampError, match="refused"):
        token_from_response(tsa.respond(b"\x30\x03garbage"), digest, 1)


def test_tsa_tokens_are_canonical_der_with_every_field(
    tsa: DevTimestampAuthority, module_pki: DevPki
) -> None:
    """The token is encoded by hand: asn1crypto, reading it strictly and encoding it again
    from scratch, must give the same bytes, and each field what RFC 3161 asks."""
    digest = hashlib.sha256(b"data").digest()
    for token in (
        tsa.stamp(digest),
        token_from_response(tsa.respond(request_for(digest, 2**70 + 5)), digest, 2**70 + 5),
    ):
        info = cms.ContentInfo.load(token, strict=True)
        assert info.dump(force=True) == token
        signed = info["content"]
        tst = signed["encap_content_info"]["content"].parsed.native
        assert tst["message_imprint"]["hashed_message"] == digest
        assert tst["policy"] == "1.3.6.1.4.1.55555.3161.1"
        assert abs(tst["gen_time"] - datetime.now(UTC)) < timedelta(minutes=1)
        assert tst["accuracy"]["seconds"] == 1
        signer = signed["signer_infos"][0]
        assert signer["sid"].native["serial_number"] == tsa.certificate.serial_number
        assert len(signed["certificates"]) == 2  # the TSA's certificate and the dev CA
    assert tst["nonce"] == 2**70 + 5


def test_tsa_certificate_is_fit_for_timestamping(module_pki: DevPki) -> None:
    leaf = x509.load_pem_x509_certificates(module_pki.tsa_cert_path.read_bytes())[0]
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert usage.critical
    assert list(usage.value) == [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]


class _DownTsa:
    def stamp(self, digest: bytes) -> bytes:
        raise TimestampError("TSA unreachable: ConnectionRefusedError")


async def test_a_tsa_outage_signs_nothing_and_is_unavailable(keys: FileKeyStore) -> None:
    signer = XadesSigner(timestamper=_DownTsa())
    with pytest.raises(TimestampUnavailable):
        signer.sign(report(), keys.identity("officer-1001"))
    with pytest.raises(Unavailable) as error:
        await KeyStoreSigner(keys, signer).sign(report(), "officer-1001")
    assert error.value.reason == "TIMESTAMP_UNAVAILABLE"


def _embedded(signed: bytes, element: str) -> list[bytes]:
    """The DER values of a signature's CertificateValues or CRLValues."""
    root = etree.fromstring(signed)
    return [b64decode(node.text or "") for node in root.iter(f"{XADES}{element}")]


def test_the_embedded_values_follow_a_new_crl_and_another_tsa(
    module_pki: DevPki, keys: FileKeyStore, tsa: DevTimestampAuthority
) -> None:
    """The B-LT values are kept between signatures, but only for the same CRLs and the same
    TSA certificates: a revocation and a new TSA certificate show in the next signature."""
    signer = XadesSigner(timestamper=tsa, revocation=FileRevocationSource(module_pki.crl_path))
    identity = keys.identity("officer-1001")
    der = Encoding.DER
    first = signer.sign(report(), identity)
    assert _embedded(first, "EncapsulatedCRLValue") == [module_pki.crl().public_bytes(der)]
    assert tsa.certificate.public_bytes(der) in _embedded(first, "EncapsulatedX509Certificate")

    module_pki.issue_signing("officer-9306", "Federal Police", "Revoked meanwhile")
    module_pki.revoke(keys.identity("officer-9306").certificate)
    module_pki.issue_tsa()
    other_tsa = dev_tsa(module_pki)
    assert other_tsa.certificate != tsa.certificate
    second = XadesSigner(
        timestamper=other_tsa, revocation=FileRevocationSource(module_pki.crl_path)
    ).sign(report(), identity)
    again = signer.sign(report(), identity)

    new_crl = module_pki.crl().public_bytes(der)
    assert _embedded(again, "EncapsulatedCRLValue") == [new_crl]
    assert _embedded(second, "EncapsulatedCRLValue") == [new_crl]
    certificates = _embedded(second, "EncapsulatedX509Certificate")
    assert other_tsa.certificate.public_bytes(der) in certificates
    assert tsa.certificate.public_bytes(der) not in certificates
    # Each certificate once: the chain and the TSA's chain share the CA.
    assert len(certificates) == len(set(certificates))
