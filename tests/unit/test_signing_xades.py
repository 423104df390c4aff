"""XadesSigner / XadesVerifier: round trip, tampering, trust, time, hostile input."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lxml import etree
from signxml import SignatureConstructionMethod
from signxml.xades import XAdESSigner

from justice.devstack.pki import DevPki
from justice.signing import (
    CertificateNotValid,
    FileKeyStore,
    SigningError,
    SigningIdentity,
    UnsafeXml,
    XadesSigner,
    XadesVerifier,
)
from tests.signing_env import PASSPHRASE, REPORT_NS, report
from tests.xml_attacks import STATIC_ATTACKS, XmlAttack, signed_attacks


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    dev = DevPki(tmp_path_factory.mktemp("pki"), PASSPHRASE)
    dev.ensure()
    return dev


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    dev = DevPki(tmp_path_factory.mktemp("other-pki"), b"other-passphrase")
    dev.ensure()
    return dev


@pytest.fixture(scope="module")
def keys(pki: DevPki) -> FileKeyStore:
    return FileKeyStore(pki.signing_dir, PASSPHRASE)


@pytest.fixture(scope="module")
def officer(keys: FileKeyStore) -> SigningIdentity:
    return keys.identity("officer-1001")


@pytest.fixture(scope="module")
def verifier(pki: DevPki) -> XadesVerifier:
    return XadesVerifier([pki.ca_certificate()])


@pytest.fixture(scope="module")
def signed(officer: SigningIdentity) -> bytes:
    return XadesSigner().sign(report(), officer)


def ns(tag: str) -> str:
    return f"{{{REPORT_NS}}}{tag}"


# -- round trip ---------------------------------------------------------------------------------


def test_round_trip_is_intact_trusted_and_exposes_signed_content(
    signed: bytes, verifier: XadesVerifier
) -> None:
    verdict = verifier.verify(signed)

    assert verdict.integrity_ok, verdict
    assert verdict.reason == "OK"
    assert verdict.chains_to_ca
    assert verdict.trusted
    assert verdict.signer_id == "officer-1001"
    assert verdict.signer_subject is not None
    assert "CN=Jan Peeters" in verdict.signer_subject
    assert verdict.signing_time is not None
    assert abs(verdict.signing_time - datetime.now(UTC)) < timedelta(minutes=5)
    assert verdict.signed_root is not None
    assert verdict.signed_root.tag == ns("report")
    assert verdict.signed_root.findtext(ns("officer")) == "officer-1001"
    # The signed view never contains the signature itself.
    assert verdict.signed_root.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None


def test_signature_covers_whole_document_even_when_root_has_id(signed: bytes) -> None:
    root = etree.fromstring(signed)
    uris = [
        ref.get("URI") for ref in root.iterfind(".//{http://www.w3.org/2000/09/xmldsig#}Reference")
    ]
    assert "" in uris
    assert "#report-1" not in uris
    assert len(uris) == 3  # document, SignedProperties, KeyInfo


def test_signature_carries_xades_bes_properties_and_chain(
    signed: bytes, officer: SigningIdentity
) -> None:
    root = etree.fromstring(signed)
    xades = "{http://uri.etsi.org/01903/v1.3.2#}"
    ds = "{http://www.w3.org/2000/09/xmldsig#}"
    assert root.find(f".//{xades}SigningTime") is not None
    assert len(root.findall(f".//{xades}SigningCertificateV2/{xades}Cert")) == len(officer.chain)
    assert root.find(f".//{ds}SignatureMethod").get("Algorithm").endswith("rsa-sha256")
    assert {m.get("Algorithm") for m in root.iterfind(f".//{ds}DigestMethod")} == {
        "http://www.w3.org/2001/04/xmlenc#sha256"
    }
    assert len(root.findall(f".//{ds}X509Certificate")) == 2
    assert root.find(f".//{ds}KeyValue") is None


def test_document_without_id_also_signs_whole_document(
    officer: SigningIdentity, verifier: XadesVerifier
) -> None:
    verdict = verifier.verify(XadesSigner().sign(report(with_id=False), officer))
    assert verdict.trusted, verdict


def test_flipping_one_narrative_byte_breaks_integrity(
    signed: bytes, verifier: XadesVerifier
) -> None:
    tampered = signed.replace(b"Meir", b"Meer", 1)
    assert tampered != signed

    verdict = verifier.verify(tampered)

    assert not verdict.integrity_ok
    assert verdict.reason == "DIGEST_MISMATCH"
    assert verdict.signed_root is None
    assert verdict.signer_id is None


def test_tampered_signing_time_breaks_integrity(signed: bytes, verifier: XadesVerifier) -> None:
    root = etree.fromstring(signed)
    node = root.find(".//{http://uri.etsi.org/01903/v1.3.2#}SigningTime")
    node.text = "2001-01-01T00:00:00+00:00"
    verdict = verifier.verify(etree.tostring(root))
    assert not verdict.integrity_ok
    assert verdict.reason == "DIGEST_MISMATCH"


def test_comment_injection_does_not_leak_into_signed_view(
    signed: bytes, verifier: XadesVerifier
) -> None:
    # Comments are not covered by C14N-without-comments: still intact, and the signed view
    # has the original text, not the comment-split version.
    injected = signed.replace(b"Meir", b"Me<!-- Kouter -->ir", 1)
    verdict = verifier.verify(injected)
    assert verdict.integrity_ok, verdict
    assert verdict.signed_root is not None
    assert "Meir" in (verdict.signed_root.findtext(ns("narrative")) or "")


# -- trust --------------------------------------------------------------------------------------


def test_signer_under_other_ca_is_intact_but_untrusted(
    pki: DevPki, other_ca: DevPki, tmp_path: Path
) -> None:
    pki.issue_signing("officer-9001", "Federal Police", "Rogue unit", name="Rogue", ca=other_ca)
    identity = FileKeyStore(pki.signing_dir, PASSPHRASE).identity("officer-9001")

    verdict = XadesVerifier([pki.ca_certificate()]).verify(XadesSigner().sign(report(), identity))

    assert verdict.integrity_ok
    assert not verdict.chains_to_ca
    assert verdict.reason == "UNTRUSTED_SIGNER"
    assert verdict.signer_id == "officer-9001"
    assert verdict.signed_root is not None  # intact content stays readable for forensics


def test_same_document_is_trusted_by_a_verifier_holding_the_other_ca(
    pki: DevPki, other_ca: DevPki
) -> None:
    pki.issue_signing("officer-9002", "Federal Police", "Other", ca=other_ca)
    identity = FileKeyStore(pki.signing_dir, PASSPHRASE).identity("officer-9002")
    signed = XadesSigner().sign(report(), identity)
    assert XadesVerifier([other_ca.ca_certificate()]).verify(signed).trusted
    assert not XadesVerifier([]).verify(signed).chains_to_ca


def test_tls_client_certificate_is_not_a_signing_certificate(
    pki: DevPki, verifier: XadesVerifier
) -> None:
    cert_path, key_path = pki.client_paths("officer-1001")
    key = load_pem_private_key(key_path.read_bytes(), password=None)
    identity = SigningIdentity(
        key=key, chain=(x509.load_pem_x509_certificate(cert_path.read_bytes()),)
    )  # type: ignore[arg-type]

    verdict = verifier.verify(XadesSigner().sign(report(), identity))

    assert verdict.integrity_ok
    assert not verdict.chains_to_ca
    assert (
        "nonRepudiation" in verdict.detail
        or "contentCommitment" in verdict.detail
        or verdict.detail
    )


# -- time ---------------------------------------------------------------------------------------


def test_signer_refuses_an_expired_certificate(pki: DevPki) -> None:
    expired = datetime.now(UTC) - timedelta(days=1)
    pki.issue_signing("officer-9003", "Federal Police", "Expired", not_after=expired)
    identity = FileKeyStore(pki.signing_dir, PASSPHRASE).identity("officer-9003")
    with pytest.raises(CertificateNotValid):
        XadesSigner().sign(report(), identity)


def test_signature_made_while_valid_still_chains_after_expiry(
    pki: DevPki, verifier: XadesVerifier
) -> None:
    # The dev CA itself starts 5 minutes before it was created, so the whole life of this
    # certificate fits in that window: valid from -4 min to -1 min, used at -3 min.
    now = datetime.now(UTC)
    start, end = now - timedelta(minutes=4), now - timedelta(minutes=1)
    pki.issue_signing("officer-9004", "Federal Police", "Past", not_before=start, not_after=end)
    identity = FileKeyStore(pki.signing_dir, PASSPHRASE).identity("officer-9004")
    signed_at = now - timedelta(minutes=3)

    verdict = verifier.verify(XadesSigner(clock=lambda: signed_at).sign(report(), identity))

    assert verdict.integrity_ok
    assert verdict.chains_to_ca
    assert verdict.signing_time == signed_at.replace(microsecond=0)
    assert verdict.chain_valid_at == verdict.signing_time
    assert verdict.detail == "chain valid at signing time"


def test_signature_made_after_expiry_is_intact_but_untrusted(
    pki: DevPki, verifier: XadesVerifier
) -> None:
    end = datetime.now(UTC) - timedelta(days=2)
    pki.issue_signing("officer-9005", "Federal Police", "Late", not_after=end)
    identity = FileKeyStore(pki.signing_dir, PASSPHRASE).identity("officer-9005")
    # signxml itself does not refuse, so it stands in for a careless foreign signer.
    raw = XAdESSigner(method=SignatureConstructionMethod.enveloped).sign(
        etree.fromstring(report(with_id=False)), key=identity.key, cert=list(identity.chain)
    )

    verdict = verifier.verify(etree.tostring(raw))

    assert verdict.integrity_ok, verdict
    assert not verdict.chains_to_ca
    assert verdict.reason == "UNTRUSTED_SIGNER"


# -- signer input checks --------------------------------------------------------------------------


def test_signer_refuses_already_signed_documents(signed: bytes, officer: SigningIdentity) -> None:
    with pytest.raises(SigningError):
        XadesSigner().sign(signed, officer)


@pytest.mark.parametrize(
    "attack", [a for a in STATIC_ATTACKS if a.reasons == frozenset({"UNSAFE_XML"})], ids=repr
)
def test_signer_refuses_hostile_input(attack: XmlAttack, officer: SigningIdentity) -> None:
    with pytest.raises(UnsafeXml):
        XadesSigner().sign(attack.data, officer)


# -- hostile corpus -------------------------------------------------------------------------------


def _assert_rejected(verifier: XadesVerifier, attack: XmlAttack) -> None:
    started = time.perf_counter()
    verdict = verifier.verify(attack.data)
    elapsed = time.perf_counter() - started

    assert not verdict.integrity_ok, attack.name
    assert verdict.reason in attack.reasons, (attack.name, verdict.reason, verdict.detail)
    assert verdict.signed_root is None
    assert elapsed < 1.0, (attack.name, elapsed)


@pytest.mark.parametrize("attack", STATIC_ATTACKS, ids=repr)
def test_static_attacks_are_rejected_quickly(attack: XmlAttack, verifier: XadesVerifier) -> None:
    _assert_rejected(verifier, attack)


def test_signed_attack_corpus_is_rejected_quickly(signed: bytes, verifier: XadesVerifier) -> None:
    attacks = signed_attacks(signed)
    assert len(attacks) >= 10
    for attack in attacks:
        _assert_rejected(verifier, attack)


def test_valid_signature_over_inner_element_is_wrapping(
    officer: SigningIdentity, verifier: XadesVerifier
) -> None:
    # Cryptographically valid, but covers only <narrative Id="n1">: the rest of the document is
    # unsigned and an attacker can change it at will.
    doc = etree.fromstring(
        f'<report xmlns="{REPORT_NS}"><name>reports/0001</name>'
        f'<narrative Id="n1">ok</narrative></report>'.encode()
    )
    raw = XAdESSigner(method=SignatureConstructionMethod.enveloped).sign(
        doc, key=officer.key, cert=list(officer.chain), reference_uri="#n1"
    )
    raw.find(ns("name")).text = "reports/9999"

    verdict = verifier.verify(etree.tostring(raw))

    assert not verdict.integrity_ok
    assert verdict.reason == "WRAPPING_SUSPECTED"


def test_verifier_never_raises_on_non_bytes(verifier: XadesVerifier) -> None:
    verdict = verifier.verify("<r/>")  # type: ignore[arg-type]
    assert not verdict.integrity_ok


def test_verifier_respects_its_own_size_limit(signed: bytes, pki: DevPki) -> None:
    verdict = XadesVerifier([pki.ca_certificate()], max_bytes=len(signed) - 1).verify(signed)
    assert verdict.reason == "TOO_LARGE"


def test_ecdsa_identity_signs_and_verifies(pki: DevPki, verifier: XadesVerifier) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = pki.certify_signing_key(key.public_key(), "officer-9006", "Federal Police", "EC")
    identity = SigningIdentity(key=key, chain=(cert, pki.ca_certificate()))

    signed = XadesSigner().sign(report(), identity)
    verdict = verifier.verify(signed)

    assert b"ecdsa-sha256" in signed
    assert verdict.trusted, verdict
    assert verdict.signer_id == "officer-9006"
