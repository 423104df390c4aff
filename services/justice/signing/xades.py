"""XAdES enveloped signatures over whole documents (baseline B-B, B-T, B-LT), and their
verification.

Signing and verification both go through signxml (XAdESSigner / XAdESVerifier); this module
pins the profile (RSA/ECDSA with SHA-256, C14N 1.1, Reference URI="" over the whole document,
X509Data with the chain, SigningTime and SigningCertificateV2) and wraps verification in the
structural checks that signxml leaves to the application (one signature, where it is, what
it references), so callers get a `Verdict` instead of exceptions.

With a `Timestamper` the signer adds an RFC 3161 timestamp over the ds:SignatureValue
(UnsignedSignatureProperties/SignatureTimeStamp, ETSI EN 319 132-1 5.3: the imprint is the hash
of the element canonicalised by the method named inside the SignatureTimeStamp): XAdES B-T.
With a `RevocationSource` as well it adds CertificateValues and RevocationValues (the chain,
the TSA's chain and the CA's CRL): B-LT, verifiable offline after the certificate expires. The
verifier then judges the signer's certificate at the timestamp's genTime, never at the signer's
own SigningTime.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from base64 import b64decode, b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature
from signxml.signer import SignatureReference
from signxml.xades.xades import (
    XAdESDataObjectFormat,
    XAdESSignatureConfiguration,
    XAdESSigner,
    XAdESVerifier,
    XAdESVerifyResult,
)

from justice.signing.identity import SigningIdentity, signer_id_of
from justice.signing.revocation import RevocationSource, crl_der, revoked_since
from justice.signing.rfc3161 import Timestamper, TimestampError, verify_token
from justice.signing.safe_xml import UnsafeXml, XmlTooLarge, parse_untrusted

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CertificateNotValid",
    "Reason",
    "SigningError",
    "TimestampUnavailable",
    "Verdict",
    "XadesSigner",
    "XadesVerifier",
    "signing_certificate_policy",
]

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
_MAX_CACHED_CHAINS = 1024

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
_SIGNATURE = f"{{{DS_NS}}}Signature"
_DS_KEY_INFO = f"{{{DS_NS}}}KeyInfo"
_DS_SIGNED_INFO = f"{{{DS_NS}}}SignedInfo"
_DS_SIGNATURE_VALUE = f"{{{DS_NS}}}SignatureValue"
_DS_OBJECT = f"{{{DS_NS}}}Object"
_XADES_QUALIFYING_PROPERTIES = f"{{{XADES_NS}}}QualifyingProperties"
# After SignedInfo and SignatureValue: KeyInfo (required: X509Data), then the one XAdES Object.
_ALLOWED_TAILS = ([_DS_KEY_INFO, _DS_OBJECT],)
_DS_X509_DATA = f"{{{DS_NS}}}X509Data"
_DS_X509_CERTIFICATE = f"{{{DS_NS}}}X509Certificate"
_DS_DIGEST_METHOD = f"{{{DS_NS}}}DigestMethod"
_DS_DIGEST_VALUE = f"{{{DS_NS}}}DigestValue"
_XADES_SIGNING_TIME = f"{{{XADES_NS}}}SigningTime"
_XADES_SIGNING_CERTIFICATE_V2 = f"{{{XADES_NS}}}SigningCertificateV2"
_XADES_CERT = f"{{{XADES_NS}}}Cert"
_XADES_CERT_DIGEST = f"{{{XADES_NS}}}CertDigest"
_SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
_XADES_UNSIGNED_PROPERTIES = f"{{{XADES_NS}}}UnsignedProperties"
_XADES_UNSIGNED_SIGNATURE_PROPERTIES = f"{{{XADES_NS}}}UnsignedSignatureProperties"
_XADES_SIGNATURE_TIME_STAMP = f"{{{XADES_NS}}}SignatureTimeStamp"
_XADES_ENCAPSULATED_TIME_STAMP = f"{{{XADES_NS}}}EncapsulatedTimeStamp"
_XADES_CERTIFICATE_VALUES = f"{{{XADES_NS}}}CertificateValues"
_XADES_ENCAPSULATED_X509 = f"{{{XADES_NS}}}EncapsulatedX509Certificate"
_XADES_REVOCATION_VALUES = f"{{{XADES_NS}}}RevocationValues"
_XADES_CRL_VALUES = f"{{{XADES_NS}}}CRLValues"
_XADES_ENCAPSULATED_CRL = f"{{{XADES_NS}}}EncapsulatedCRLValue"
_DS_CANONICALIZATION_METHOD = f"{{{DS_NS}}}CanonicalizationMethod"
# Exclusive C14N for the timestamped SignatureValue: its bytes then depend on that element
# alone, not on namespaces declared further up the document.
_TIMESTAMP_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
_C14N_ARGS: dict[str, dict[str, bool]] = {
    CanonicalizationMethod.CANONICAL_XML_1_0.value: {"exclusive": False},
    CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value: {"exclusive": True},
}
_MAX_UNSIGNED_VALUES = 16
_NS = {"ds": DS_NS, "xades": XADES_NS}
_RFC4514_NAMES = {NameOID.SERIAL_NUMBER: "serialNumber"}
# The same Id attributes signxml resolves references against (Id, ID, id, xml:id, any namespace).
_ID_LOOKUP = etree.XPath(
    "//*[@*[local-name() = 'Id' or local-name() = 'ID' or local-name() = 'id'] = $id]"
)

# What we accept from a verifier's point of view. SHA-1 and HMAC are out; so is any transform
# other than enveloped-signature and canonicalization (XPath, XSLT and base64 transforms can make
# a "whole document" reference cover something else entirely).
_SIGNATURE_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    }
)
_DIGEST_METHODS = frozenset(
    {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)
_ALLOWED_TRANSFORMS = frozenset(
    {SignatureConstructionMethod.enveloped.value}
    | {method.value for method in CanonicalizationMethod}
)


class SigningError(Exception):
    """The document cannot be signed as asked (already signed, unusable input)."""


class CertificateNotValid(SigningError):
    """The signer's certificate is not valid at signing time; we refuse rather than produce a
    signature every verifier will flag."""


class TimestampUnavailable(SigningError):
    """The timestamp authority did not return a usable token; nothing was signed."""


class Reason(StrEnum):
    OK = "OK"
    UNTRUSTED_SIGNER = (
        "UNTRUSTED_SIGNER"  # intact, but the certificate does not chain to a trust anchor
    )
    TOO_LARGE = "TOO_LARGE"
    UNSAFE_XML = "UNSAFE_XML"
    NO_SIGNATURE = "NO_SIGNATURE"
    MULTIPLE_SIGNATURES = "MULTIPLE_SIGNATURES"
    WRAPPING_SUSPECTED = "WRAPPING_SUSPECTED"
    NO_CERTIFICATE = "NO_CERTIFICATE"
    MALFORMED_SIGNATURE = "MALFORMED_SIGNATURE"
    ALGORITHM_NOT_ALLOWED = "ALGORITHM_NOT_ALLOWED"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    SIGNING_CERTIFICATE_MISMATCH = "SIGNING_CERTIFICATE_MISMATCH"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    TIMESTAMP_INVALID = "TIMESTAMP_INVALID"
    SIGNER_REVOKED = "SIGNER_REVOKED"  # intact, but the certificate was revoked by then


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of verifying one document.

    `integrity_ok` means the signature is mathematically valid for the embedded certificate and
    covers the whole document; `chains_to_ca` says whether that certificate is one we trust.
    Read document fields only from `signed_root` (what the signature covers, re-parsed from the
    canonical bytes), never from the original input: that is the defence against wrapping.
    """

    integrity_ok: bool
    reason: str
    detail: str = ""
    signer_subject: str | None = None
    signer_id: str | None = None  # subject serialNumber (the platform principal id)
    signing_time: datetime | None = None  # XAdES SigningTime: signed, but claimed by the signer
    chains_to_ca: bool = False
    chain_valid_at: datetime | None = None  # the instant at which the chain was found valid
    # genTime of the verified RFC 3161 signature timestamp (B-T and up): vouched for by a TSA.
    timestamp_time: datetime | None = None
    level: str = "B-B"  # XAdES baseline level found: B-B, B-T or B-LT
    signed_root: etree._Element | None = field(default=None, repr=False, compare=False)

    @property
    def trusted(self) -> bool:
        return self.integrity_ok and self.chains_to_ca


def _fail(reason: Reason, detail: str) -> Verdict:
    return Verdict(integrity_ok=False, reason=reason.value, detail=detail)


def _pem_body(cert: x509.Certificate) -> str:
    # The base64 body of the PEM, line breaks included: what signxml puts in X509Certificate.
    return cert.public_bytes(Encoding.PEM).decode("ascii").split("-----")[2].strip()


@dataclass(frozen=True, slots=True)
class _ChainMaterial:
    """Per-certificate-chain values that signxml would otherwise recompute on every signature
    (PEM encoding + header stripping with a regex, DER encoding + SHA-256 per certificate)."""

    x509_texts: tuple[str, ...]  # base64 bodies for KeyInfo/X509Data/X509Certificate
    sha256_digests: tuple[str, ...]  # base64 SHA-256 of each DER cert for SigningCertificateV2

    @classmethod
    def of(cls, chain: Sequence[x509.Certificate]) -> _ChainMaterial:
        return cls(
            x509_texts=tuple(_pem_body(cert) for cert in chain),
            sha256_digests=tuple(
                b64encode(cert.fingerprint(hashes.SHA256())).decode() for cert in chain
            ),
        )


class _WholeDocumentXadesSigner(XAdESSigner):
    """signxml's XAdESSigner, adjusted at its documented extension points:

    * the content reference is always URI="" (whole document), even when the root carries an
      Id: signxml would otherwise sign "#<id>" instead of the document; and the input tree is
      used as the output without signxml's extra defensive copy (we own it);
    * SigningTime comes from an injectable clock;
    * KeyInfo/X509Data and SigningCertificateV2 use per-chain cached encodings and digests
      (same output as upstream, without re-encoding certificates on every call);
    * Id tokens are not memoised in an ever-growing per-instance dict as upstream does.
      Instances are per call anyway, see XadesSigner.sign.
    """

    def __init__(self, *, signing_time: datetime, material: _ChainMaterial, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._signing_time = signing_time
        self._material = material

    def _unpack(self, data: Any, references: Any) -> Any:
        # Enveloped only, and `data` is a tree XadesSigner.sign parsed for this call, so it can
        # become the output directly (upstream copies it twice); the one copy that stays is the
        # signature-free view that gets digested.
        sig_root = etree.Element(_SIGNATURE, nsmap=self.namespaces)
        c14n_input = self.get_root(data)  # type: ignore[no-untyped-call]
        data.append(sig_root)
        return sig_root, data, [c14n_input], [SignatureReference(URI="")]

    def _get_token(self, length: int = 4) -> str:
        return secrets.token_hex(length).upper()

    def _add_key_info(self, sig_root: Any, signing_settings: Any) -> None:
        key_info = etree.SubElement(sig_root, _DS_KEY_INFO)
        x509_data = etree.SubElement(key_info, _DS_X509_DATA)
        for text in self._material.x509_texts:
            etree.SubElement(x509_data, _DS_X509_CERTIFICATE).text = text

    def add_signing_time(
        self, signed_signature_properties: Any, sig_root: Any, signing_settings: Any
    ) -> None:
        signing_time = etree.SubElement(
            signed_signature_properties, _XADES_SIGNING_TIME, nsmap=self.namespaces
        )
        signing_time.text = self._signing_time.astimezone(UTC).isoformat(timespec="seconds")

    def add_signing_certificate(
        self, signed_signature_properties: Any, sig_root: Any, signing_settings: Any
    ) -> None:
        signing_cert_v2 = etree.SubElement(
            signed_signature_properties, _XADES_SIGNING_CERTIFICATE_V2
        )
        for digest in self._material.sha256_digests:
            cert_digest = etree.SubElement(
                etree.SubElement(signing_cert_v2, _XADES_CERT), _XADES_CERT_DIGEST
            )
            etree.SubElement(cert_digest, _DS_DIGEST_METHOD, Algorithm=DigestAlgorithm.SHA256.value)
            etree.SubElement(cert_digest, _DS_DIGEST_VALUE).text = digest


def _utc_now() -> datetime:
    return datetime.now(UTC)


class XadesSigner:
    """Produces enveloped XAdES signatures (XAdES 1.3.2 namespace) over whole documents: B-B
    alone, B-T with a `timestamper`, B-LT with a `revocation` source as well.

    Thread-safe: nothing mutable is shared between calls.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = _utc_now,
        max_bytes: int = DEFAULT_MAX_BYTES,
        description: str = "Justice Exchange document",
        timestamper: Timestamper | None = None,
        revocation: RevocationSource | None = None,
    ) -> None:
        if revocation is not None and timestamper is None:
            raise ValueError("B-LT validation data needs a timestamp (B-T) to anchor it in time")
        self._timestamper = timestamper
        self._revocation = revocation
        self._clock = clock
        self._max_bytes = max_bytes
        self._data_object_format = XAdESDataObjectFormat(
            Description=description, MimeType="text/xml"
        )
        # Keyed by the chain tuple; a plain dict is safe to share (atomic get/set, a race only
        # recomputes an identical value).
        self._materials: dict[tuple[x509.Certificate, ...], _ChainMaterial] = {}
        # Kept while the source gives the same CRL objects (it loads them again when their
        # file changes): when the CRLs say each chain's leaf was revoked (checking their
        # signatures at every call cost 7 % of a B-LT signature), and the B-LT values per
        # chain and TSA certificates (parsing each token for its certificates and encoding
        # them and the CRL again cost ~15 % of a B-LT signature in a loop).
        self._kept_for = _KeptForCrls(())

    def _revoked(
        self,
        chain: tuple[x509.Certificate, ...],
        crls: tuple[x509.CertificateRevocationList, ...],
    ) -> datetime | None:
        """When the CRLs say the chain's leaf (its first certificate) was revoked."""
        said = self._kept(crls).revoked
        if chain not in said:
            said[chain] = revoked_since(chain[0], crls, chain)
        return said[chain]

    def _kept(self, crls: tuple[x509.CertificateRevocationList, ...]) -> _KeptForCrls:
        """What is kept for these CRL objects; emptied when the source gives others."""
        kept = self._kept_for
        if not kept.holds(crls):
            kept = self._kept_for = _KeptForCrls(crls)
        return kept

    def _long_term_values(
        self,
        chain: tuple[x509.Certificate, ...],
        crls: tuple[x509.CertificateRevocationList, ...],
        token: bytes,
    ) -> _LongTermValues:
        values = self._kept(crls).values
        key = (chain, _token_certificates(token))
        found = values.get(key)
        if found is None:
            if len(values) >= _MAX_CACHED_CHAINS:
                values.clear()
            found = values[key] = _LongTermValues.of(chain, token, crls)
        return found

    def sign(self, document: bytes, identity: SigningIdentity) -> bytes:
        """Return `document` with a ds:Signature appended as the last child of its root.

        Raises `UnsafeXml` for input we will not parse, `SigningError` for a document that
        already carries a signature, `CertificateNotValid` for an expired / not-yet-valid signer.
        """
        now = self._clock()
        leaf = identity.certificate
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise CertificateNotValid(
                f"signing certificate is valid {leaf.not_valid_before_utc.isoformat()} .. "
                f"{leaf.not_valid_after_utc.isoformat()}, not at {now.isoformat()}"
            )
        crls = tuple(self._revocation.crls()) if self._revocation is not None else ()
        revoked = self._revoked(identity.chain, crls)
        if revoked is not None and revoked <= now:
            raise CertificateNotValid(f"signing certificate was revoked on {revoked.isoformat()}")
        root = parse_untrusted(document, max_bytes=self._max_bytes)
        if root.tag == _SIGNATURE or next(root.iter(_SIGNATURE), None) is not None:
            raise SigningError("document already contains a ds:Signature")
        algorithm = (
            SignatureMethod.ECDSA_SHA256
            if isinstance(identity.key, ec.EllipticCurvePrivateKey)
            else SignatureMethod.RSA_SHA256
        )
        material = self._materials.get(identity.chain)
        if material is None:
            if len(self._materials) >= _MAX_CACHED_CHAINS:
                self._materials.clear()
            material = self._materials[identity.chain] = _ChainMaterial.of(identity.chain)
        # A fresh signxml signer per call: signxml keeps per-call state on the instance, and
        # constructing one costs microseconds next to the RSA operation.
        signer = _WholeDocumentXadesSigner(
            signing_time=now,
            material=material,
            data_object_format=self._data_object_format,
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=algorithm,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
        )
        signed = signer.sign(
            root,
            key=identity.key,
            cert=list(identity.chain),
            # X509Data only: a KeyValue next to the certificate is an ambiguity verifiers have
            # to resolve (xmlsec1 would use KeyValue and skip the certificate check).
            always_add_key_value=False,
        )
        if self._timestamper is not None:
            _add_long_term_properties(
                signed[-1],
                self._timestamper,
                functools.partial(self._long_term_values, identity.chain, crls) if crls else None,
            )
        result: bytes = etree.tostring(signed, encoding="UTF-8", xml_declaration=True)
        return result


def _timestamped_bytes(signature: etree._Element, method: str) -> bytes:
    """The SignatureValue element canonicalised by `method`: what a SignatureTimeStamp covers."""
    value = signature.find("ds:SignatureValue", _NS)
    if value is None:
        raise InvalidInput("no ds:SignatureValue")
    canonical: bytes = etree.tostring(value, method="c14n", **_C14N_ARGS[method])
    return canonical


@dataclass(frozen=True)
class StampedSignature:
    """A signature's RFC 3161 token and the exact bytes it stamps, for a check by another
    tool (`openssl ts -verify -in TOKEN -token_in -data DATA -CAfile ca.pem`)."""

    token: bytes
    data: bytes


def stamped_signature(signed: bytes, *, max_bytes: int = 64 * 1024 * 1024) -> StampedSignature:
    """The SignatureTimeStamp of a signed document (parsed as untrusted XML); ValueError when
    it has none or one that cannot be read."""
    root = parse_untrusted(signed, max_bytes=max_bytes)
    signature = root.find("ds:Signature", _NS)
    stamp = root.find(".//xades:SignatureTimeStamp", _NS)
    if signature is None or stamp is None:
        raise ValueError("no timestamped signature")
    method = stamp.find("ds:CanonicalizationMethod", _NS)
    encapsulated = stamp.find("xades:EncapsulatedTimeStamp", _NS)
    algorithm = method.get("Algorithm", "") if method is not None else ""
    if algorithm not in _C14N_ARGS or encapsulated is None:
        raise ValueError("SignatureTimeStamp lacks a usable canonicalisation or token")
    return StampedSignature(
        _b64decode(encapsulated.text or ""), _timestamped_bytes(signature, algorithm)
    )


@dataclass(frozen=True, slots=True)
class _KeptForCrls:
    """What a signer keeps while its revocation source gives the same CRL objects: when
    they say each chain's leaf was revoked, and the B-LT values per chain and TSA
    certificates."""

    crls: tuple[x509.CertificateRevocationList, ...]
    revoked: dict[tuple[x509.Certificate, ...], datetime | None] = field(default_factory=dict)
    values: dict[tuple[tuple[x509.Certificate, ...], bytes], _LongTermValues] = field(
        default_factory=dict
    )

    def holds(self, crls: tuple[x509.CertificateRevocationList, ...]) -> bool:
        # By identity: CRL objects are not hashable, and the source loads new ones when
        # their file changes.
        return len(self.crls) == len(crls) and all(
            a is b for a, b in zip(self.crls, crls, strict=True)
        )


@dataclass(frozen=True, slots=True)
class _LongTermValues:
    """The base64 texts of B-LT's CertificateValues (the signer's chain, then the TSA's
    certificates from the token, each once) and CRLValues."""

    certificates: tuple[str, ...]
    crls: tuple[str, ...]

    @classmethod
    def of(
        cls,
        chain: Sequence[x509.Certificate],
        token: bytes,
        crls: Sequence[x509.CertificateRevocationList],
    ) -> _LongTermValues:
        seen: dict[bytes, str] = {}
        for cert in (*chain, *pkcs7.load_der_pkcs7_certificates(token)):
            der = cert.public_bytes(Encoding.DER)
            seen.setdefault(der, b64encode(der).decode())
        return cls(tuple(seen.values()), tuple(b64encode(crl_der(crl)).decode() for crl in crls))


def _token_certificates(token: bytes) -> bytes:
    """The encoded certificates a TimeStampToken carries: the same for every token of one
    TSA (asn1crypto reads only the headers on the way: a third of a full parse)."""
    try:
        return bytes(cms.ContentInfo.load(token)["content"]["certificates"].contents or b"")
    except (ValueError, TypeError, KeyError):
        return token  # kept for this token alone


def _add_long_term_properties(
    signature: etree._Element,
    timestamper: Timestamper,
    values_of: Callable[[bytes], _LongTermValues] | None,
) -> None:
    """UnsignedSignatureProperties: the SignatureTimeStamp (B-T) and, with `values_of` (the
    values for a token), the certificate and revocation values (B-LT)."""
    digest = hashlib.sha256(_timestamped_bytes(signature, _TIMESTAMP_C14N)).digest()
    try:
        token = timestamper.stamp(digest)
    except TimestampError as exc:
        raise TimestampUnavailable(str(exc)) from None
    qualifying = signature.find("ds:Object/xades:QualifyingProperties", _NS)
    if qualifying is None:
        raise SigningError("signxml produced no QualifyingProperties")
    unsigned = etree.SubElement(
        etree.SubElement(qualifying, _XADES_UNSIGNED_PROPERTIES),
        _XADES_UNSIGNED_SIGNATURE_PROPERTIES,
    )
    stamp = etree.SubElement(
        unsigned, _XADES_SIGNATURE_TIME_STAMP, Id=f"TS-{secrets.token_hex(4).upper()}"
    )
    etree.SubElement(stamp, _DS_CANONICALIZATION_METHOD, Algorithm=_TIMESTAMP_C14N)
    etree.SubElement(stamp, _XADES_ENCAPSULATED_TIME_STAMP).text = b64encode(token).decode()
    if values_of is None:
        return
    values = values_of(token)
    certificates = etree.SubElement(unsigned, _XADES_CERTIFICATE_VALUES)
    for text in values.certificates:
        etree.SubElement(certificates, _XADES_ENCAPSULATED_X509).text = text
    crl_values = etree.SubElement(
        etree.SubElement(unsigned, _XADES_REVOCATION_VALUES), _XADES_CRL_VALUES
    )
    for text in values.crls:
        etree.SubElement(crl_values, _XADES_ENCAPSULATED_CRL).text = text


_SIGNED_CONTENT_ERRORS = (
    InvalidInput,
    etree.DocumentInvalid,
    etree.XMLSyntaxError,
    ValueError,
    TypeError,
    KeyError,
)


class XadesVerifier:
    """Verifies documents produced by `XadesSigner` (or any XAdES-BES signer using the same
    whole-document profile). `verify` never raises on bad input; it returns a `Verdict`.

    Thread-safe: per-call signxml objects, immutable trust store.
    """

    def __init__(
        self,
        trust_anchors: Sequence[x509.Certificate],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], datetime] = _utc_now,
        require_non_repudiation: bool = True,
        crls: Sequence[x509.CertificateRevocationList] = (),
    ) -> None:
        """`crls`: revocation lists known to the verifier (e.g. the CA's current one), consulted
        together with those a B-LT signature carries."""
        self._crls = tuple(crls)
        self._anchors = tuple(trust_anchors)
        self._store = x509.verification.Store(list(self._anchors)) if self._anchors else None
        self._max_bytes = max_bytes
        self._clock = clock
        self._ee_policy = signing_certificate_policy(require_non_repudiation)
        self._ca_policy = x509.verification.ExtensionPolicy.webpki_defaults_ca()

    def verify(self, data: bytes) -> Verdict:
        try:
            return self._verify(data)
        except Exception as exc:
            return _fail(Reason.MALFORMED_SIGNATURE, f"unexpected {type(exc).__name__}")

    # -- steps ----------------------------------------------------------------------------------

    def _verify(self, data: bytes) -> Verdict:
        if not isinstance(data, bytes):
            return _fail(Reason.UNSAFE_XML, "input must be bytes")
        if len(data) > self._max_bytes:
            return _fail(
                Reason.TOO_LARGE, f"document is {len(data)} bytes, limit is {self._max_bytes}"
            )
        try:
            root = parse_untrusted(data, max_bytes=self._max_bytes)
        except XmlTooLarge as exc:
            return _fail(Reason.TOO_LARGE, exc.reason)
        except UnsafeXml as exc:
            return _fail(Reason.UNSAFE_XML, exc.reason)

        structure = _check_structure(root)
        if isinstance(structure, Verdict):
            return structure
        signature, content_index, reference_count = structure

        certs = _embedded_certificates(signature)
        if isinstance(certs, Verdict):
            return certs
        leaf = _leaf_of(certs)

        try:
            results = _ProfileXadesVerifier(certs).verify(
                root,
                # Integrity is checked against the embedded certificate; trust is a separate
                # question answered by _chain_time below, so "intact but untrusted" is visible.
                x509_cert=leaf,
                expect_config=XAdESSignatureConfiguration(
                    location="./",
                    expect_references=reference_count,
                    signature_methods=_SIGNATURE_METHODS,
                    digest_algorithms=_DIGEST_METHODS,
                    # signxml rejects a certificate outside its validity at verification_time.
                    # Validity belongs to the trust decision (at signing time or now), so the
                    # integrity check runs at an instant the certificate is valid.
                    verification_time=leaf.not_valid_before_utc,
                ),
            )
        except InvalidDigest as exc:
            if str(exc).startswith("Digest mismatch for reference"):
                return _fail(
                    Reason.DIGEST_MISMATCH, "signed content or signed properties were modified"
                )
            return _fail(
                Reason.SIGNING_CERTIFICATE_MISMATCH,
                "SigningCertificateV2 does not match the certificate",
            )
        except InvalidCertificate as exc:
            return _fail(Reason.SIGNATURE_INVALID, f"certificate rejected: {type(exc).__name__}")
        except InvalidSignature:
            return _fail(
                Reason.SIGNATURE_INVALID,
                "signature value does not verify with the embedded certificate",
            )
        except InvalidInput as exc:
            text = str(exc)
            if "forbidden by configuration" in text:
                return _fail(Reason.ALGORITHM_NOT_ALLOWED, text)
            return _fail(Reason.MALFORMED_SIGNATURE, text[:200])
        except _SIGNED_CONTENT_ERRORS as exc:
            return _fail(Reason.MALFORMED_SIGNATURE, f"{type(exc).__name__}: {str(exc)[:200]}")

        if not isinstance(results, list) or len(results) != reference_count:
            return _fail(Reason.MALFORMED_SIGNATURE, "unexpected verification result shape")
        signed_root = results[content_index].signed_xml
        # The content reference is URI="", so what was signed must be this document's root.
        # Anything else means the signed view and the delivered document diverge.
        if signed_root is None or signed_root.tag != root.tag:
            return _fail(Reason.WRAPPING_SUSPECTED, "signed content is not the document root")
        properties = next((r for r in results if isinstance(r, XAdESVerifyResult)), None)
        if properties is None:
            return _fail(Reason.MALFORMED_SIGNATURE, "no verified SignedProperties")

        signing_time = _signing_time(properties.signed_properties)
        evidence = self._long_term_evidence(signature, certs)
        if isinstance(evidence, Verdict):
            return evidence
        chain_valid_at, reason, chain_detail = self._chain_time(
            leaf, [*certs, *evidence.certificates], signing_time, evidence
        )
        trusted = chain_valid_at is not None
        return Verdict(
            integrity_ok=True,
            reason=reason.value,
            detail=chain_detail,
            signer_subject=leaf.subject.rfc4514_string(_RFC4514_NAMES),
            signer_id=signer_id_of(leaf),
            signing_time=signing_time,
            chains_to_ca=trusted,
            chain_valid_at=chain_valid_at,
            signed_root=signed_root,
            timestamp_time=evidence.timestamp_time,
            level=evidence.level,
        )

    def _long_term_evidence(
        self, signature: etree._Element, certs: Sequence[x509.Certificate]
    ) -> Verdict | _LongTerm:
        """The verified SignatureTimeStamp and the certificate / revocation values, if any.

        A timestamp that is present must verify (imprint, TSA signature, TSA chain at genTime):
        a broken one fails the whole signature instead of silently downgrading it to B-B.
        """
        unsigned = signature.findall(
            "ds:Object/xades:QualifyingProperties/xades:UnsignedProperties/"
            "xades:UnsignedSignatureProperties",
            _NS,
        )
        if not unsigned:
            return _LongTerm()
        if len(unsigned) != 1:
            return _fail(Reason.MALFORMED_SIGNATURE, "more than one UnsignedSignatureProperties")
        stamps = unsigned[0].findall("xades:SignatureTimeStamp", _NS)
        try:
            extra_certs = tuple(
                x509.load_der_x509_certificate(_b64decode(node.text or ""))
                for node in unsigned[0].findall(
                    "xades:CertificateValues/xades:EncapsulatedX509Certificate", _NS
                )[:_MAX_UNSIGNED_VALUES]
            )
            crls = tuple(
                x509.load_der_x509_crl(_b64decode(node.text or ""))
                for node in unsigned[0].findall(
                    "xades:RevocationValues/xades:CRLValues/xades:EncapsulatedCRLValue", _NS
                )[:_MAX_UNSIGNED_VALUES]
            )
        except ValueError:
            return _fail(Reason.MALFORMED_SIGNATURE, "unreadable certificate or CRL value")
        if not stamps:
            return _LongTerm(certificates=extra_certs, crls=crls)
        if len(stamps) != 1:
            return _fail(Reason.MALFORMED_SIGNATURE, "expected one SignatureTimeStamp")
        method = stamps[0].find("ds:CanonicalizationMethod", _NS)
        encapsulated = stamps[0].find("xades:EncapsulatedTimeStamp", _NS)
        algorithm = method.get("Algorithm", "") if method is not None else ""
        if algorithm not in _C14N_ARGS or encapsulated is None:
            return _fail(
                Reason.TIMESTAMP_INVALID, "SignatureTimeStamp lacks a usable canonicalisation"
            )
        try:
            token = verify_token(
                _b64decode(encapsulated.text or ""),
                data=_timestamped_bytes(signature, algorithm),
                anchors=self._anchors,
                intermediates=[*certs, *extra_certs],
            )
        except (TimestampError, ValueError) as exc:
            return _fail(Reason.TIMESTAMP_INVALID, str(exc)[:200])
        return _LongTerm(
            timestamp_time=token.gen_time,
            certificates=(*extra_certs, *token.certificates),
            crls=crls,
            level="B-LT" if crls and extra_certs else "B-T",
        )

    def _chain_time(
        self,
        leaf: x509.Certificate,
        certs: Sequence[x509.Certificate],
        signing_time: datetime | None,
        evidence: _LongTerm,
    ) -> tuple[datetime | None, Reason, str]:
        """Return the instant at which leaf chains to an anchor unrevoked, or None with a
        reason. With a verified timestamp that instant is its genTime and nothing else. Without
        one it is now, then the claimed SigningTime: signed, but asserted by the signer itself."""
        if self._store is None:
            return None, Reason.UNTRUSTED_SIGNER, "no trust anchors configured"
        intermediates = [cert for cert in certs if cert is not leaf]
        if evidence.timestamp_time is not None:
            candidates = [evidence.timestamp_time]
            label = "chain valid at timestamp time"
        else:
            candidates = [self._clock()]
            if signing_time is not None:
                candidates.append(signing_time)
            label = ""
        revoked = revoked_since(leaf, (*evidence.crls, *self._crls), (*certs, *self._anchors))
        last_error = ""
        for instant in candidates:
            builder = (
                x509.verification.PolicyBuilder()
                .store(self._store)
                .time(instant)
                .extension_policies(ee_policy=self._ee_policy, ca_policy=self._ca_policy)
            )
            try:
                builder.build_client_verifier().verify(leaf, intermediates)
            except x509.verification.VerificationError as exc:
                last_error = str(exc)
                continue
            if revoked is not None and revoked <= instant:
                return (
                    None,
                    Reason.SIGNER_REVOKED,
                    f"signing certificate revoked on {revoked.isoformat()}, "
                    f"before {instant.isoformat()}",
                )
            detail = label or (
                "chain valid now" if instant is candidates[0] else "chain valid at signing time"
            )
            return instant, Reason.OK, detail
        return (
            None,
            Reason.UNTRUSTED_SIGNER,
            f"certificate does not chain to a trust anchor: {last_error[:200]}",
        )


@dataclass(frozen=True, slots=True)
class _LongTerm:
    """What the unsigned signature properties add once checked (nothing for B-B)."""

    timestamp_time: datetime | None = None
    certificates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    level: str = "B-B"


def signing_certificate_policy(
    require_non_repudiation: bool,
) -> x509.verification.ExtensionPolicy:
    """End-entity policy for a signing certificate: digitalSignature (and nonRepudiation)."""

    def check_key_usage(policy: Any, cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
        # A TLS client certificate (digitalSignature only) is not a signing certificate.
        if usage is None or not usage.digital_signature:
            raise ValueError("signing certificate lacks digitalSignature")
        if require_non_repudiation and not usage.content_commitment:
            raise ValueError("signing certificate lacks nonRepudiation (contentCommitment)")

    return x509.verification.ExtensionPolicy.permit_all().require_present(
        x509.KeyUsage, x509.verification.Criticality.AGNOSTIC, check_key_usage
    )


def _check_structure(root: etree._Element) -> Verdict | tuple[etree._Element, int, int]:
    """Shape rules signxml leaves to the application. Returns (signature, index of the
    whole-document reference, reference count) or a failing Verdict."""
    if root.tag == _SIGNATURE:
        return _fail(Reason.WRAPPING_SUSPECTED, "enveloping signatures are not accepted")
    signatures = list(root.iter(_SIGNATURE))
    if not signatures:
        return _fail(Reason.NO_SIGNATURE, "no ds:Signature element")
    if len(signatures) > 1:
        return _fail(
            Reason.MULTIPLE_SIGNATURES,
            f"{len(signatures)} ds:Signature elements, expected exactly one",
        )
    signature = signatures[0]
    if signature.getparent() is not root:
        return _fail(
            Reason.WRAPPING_SUSPECTED, "ds:Signature is not a direct child of the document root"
        )

    # Only what the profile produces may sit inside the signature: an extra ds:Object is a
    # classic place to park unsigned look-alike content for a careless consumer.
    layout = [child.tag for child in signature if isinstance(child.tag, str)]
    if layout[:2] != [_DS_SIGNED_INFO, _DS_SIGNATURE_VALUE] or layout[2:] not in _ALLOWED_TAILS:
        return _fail(Reason.WRAPPING_SUSPECTED, "unexpected elements inside ds:Signature")
    objects = signature.findall("ds:Object", _NS)
    if len(objects[0]) != 1 or objects[0][0].tag != _XADES_QUALIFYING_PROPERTIES:
        return _fail(
            Reason.WRAPPING_SUSPECTED, "ds:Object must hold exactly the XAdES QualifyingProperties"
        )
    if objects[0][0].get("Target") != f"#{signature.get('Id', '')}":
        return _fail(
            Reason.MALFORMED_SIGNATURE, "QualifyingProperties does not target this signature"
        )
    references = signature.findall("ds:SignedInfo/ds:Reference", _NS)
    content = [i for i, ref in enumerate(references) if ref.get("URI") == ""]
    if len(content) != 1:
        return _fail(
            Reason.WRAPPING_SUSPECTED,
            'signature must carry exactly one whole-document reference (URI="")',
        )
    for transform in references[content[0]].findall("ds:Transforms/ds:Transform", _NS):
        if transform.get("Algorithm") not in _ALLOWED_TRANSFORMS:
            return _fail(
                Reason.WRAPPING_SUSPECTED,
                "whole-document reference uses a content-selecting transform",
            )

    # Every other reference must point inside this signature, at its SignedProperties or its
    # KeyInfo, and the Id it names must be unique in the document.
    own_targets: dict[str, str] = {}
    key_info = signature.find("ds:KeyInfo", _NS)
    if key_info is not None and key_info.get("Id"):
        own_targets[key_info.get("Id", "")] = "KeyInfo"
    for props in signature.findall(
        "ds:Object/xades:QualifyingProperties/xades:SignedProperties", _NS
    ):
        if props.get("Id"):
            own_targets[props.get("Id", "")] = "SignedProperties"
    seen: set[str] = set()
    for index, ref in enumerate(references):
        if index == content[0]:
            continue
        uri = ref.get("URI") or ""
        target = own_targets.get(uri[1:]) if uri.startswith("#") else None
        if target is None or target in seen:
            return _fail(Reason.WRAPPING_SUSPECTED, f"unexpected reference {uri[:80]!r}")
        if target == "SignedProperties" and ref.get("Type") != _SIGNED_PROPERTIES_TYPE:
            return _fail(Reason.MALFORMED_SIGNATURE, "SignedProperties reference lacks its Type")
        if len(_ID_LOOKUP(root, id=uri[1:])) != 1:
            return _fail(
                Reason.WRAPPING_SUSPECTED, f"Id {uri[1:80]!r} is not unique in the document"
            )
        seen.add(target)
    if "SignedProperties" not in seen:
        return _fail(Reason.MALFORMED_SIGNATURE, "no reference to XAdES SignedProperties")
    return signature, content[0], len(references)


def _embedded_certificates(signature: etree._Element) -> Verdict | list[x509.Certificate]:
    texts = [
        node.text or ""
        for node in signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS)
    ]
    if not texts:
        return _fail(Reason.NO_CERTIFICATE, "no X509Certificate in KeyInfo")
    try:
        return [x509.load_der_x509_certificate(_b64decode(text)) for text in texts]
    except ValueError:
        return _fail(Reason.MALFORMED_SIGNATURE, "unparseable X509Certificate")


def _b64decode(text: str) -> bytes:
    return b64decode("".join(text.split()), validate=True)


def _leaf_of(certs: Sequence[x509.Certificate]) -> x509.Certificate:
    # Profile rule (and what XadesSigner writes): the signer's certificate comes first, and
    # signxml checks it against the first SigningCertificateV2 entry.
    return certs[0]


class _ProfileXadesVerifier(XAdESVerifier):
    """signxml's XAdESVerifier with the embedded certificates handed in already parsed.

    Upstream re-reads every X509Certificate for the SigningCertificate check through
    `add_pem_header`, which re-wraps base64 with textwrap: about half a millisecond per
    verification for two certificates. The check itself (digest of each xades:Cert against the
    embedded certificates, the first one against the signing certificate) is unchanged.
    """

    def __init__(self, certs: Sequence[x509.Certificate]) -> None:
        super().__init__()
        self._embedded = list(certs)

    def _verify_cert_digests(self, verify_result: Any) -> None:
        find = self._find  # untyped upstream helper: namespace-aware find that raises if required
        props = find(verify_result.signed_xml, "xades:SignedSignatureProperties")  # type: ignore[no-untyped-call]
        legacy = find(props, "xades:SigningCertificate", require=False)  # type: ignore[no-untyped-call]
        current = find(props, "xades:SigningCertificateV2", require=False)  # type: ignore[no-untyped-call]
        if (legacy is None) == (current is None):
            raise InvalidInput(
                "Expected exactly one of xades:SigningCertificate or xades:SigningCertificateV2"
            )
        signing_cert = self._find_signing_cert(verify_result, self._embedded)
        self._verify_cert_digest(
            legacy if legacy is not None else current,
            certs=self._embedded,
            signing_cert=signing_cert,
        )


def _signing_time(signed_properties: etree._Element) -> datetime | None:
    node = signed_properties.find("xades:SigningTime", _NS)
    if node is None or not node.text:
        return None
    try:
        value = datetime.fromisoformat(node.text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None
