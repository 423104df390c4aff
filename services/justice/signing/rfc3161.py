"""RFC 3161 timestamps: asking a timestamp authority (TSA) for a token, and checking one.

A token is a CMS SignedData over a TSTInfo (the hashed message, the TSA's time, a serial); it
proves the hashed data existed at `genTime`, vouched for by a certificate with the critical
extended key usage timeStamping that chains to a trust anchor. XAdES B-T puts one over each
signature's SignatureValue (see xades.py); the verifier then judges the signer's certificate at
that time instead of at the signer's own SigningTime.

The ASN.1 and CMS structures come from `asn1crypto`, the signatures from `cryptography`.
`HttpTimestamper` talks to a production TSA over HTTP (RFC 3161 section 3.4); the dev stack's
in-process authority lives in justice.devstack.tsa and serves the same `Timestamper` port.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = [
    "HttpTimestamper",
    "TimestampError",
    "TimestampToken",
    "Timestamper",
    "openssl_ts_verify_command",
    "parse_token",
    "request_for",
    "token_from_response",
    "verify_token",
]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_MAX_TOKEN_BYTES = 64 * 1024


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 TimeStampResp. asn1crypto's own class makes the token mandatory, so it cannot
    read a rejection, which by definition carries none."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class TimestampError(Exception):
    """No usable token: the TSA refused or is unreachable, or a token does not verify."""


class Timestamper(Protocol):
    def stamp(self, digest: bytes) -> bytes:
        """Return a DER TimeStampToken (CMS ContentInfo) over a SHA-256 `digest`, carrying the
        TSA certificate. Raises `TimestampError`."""
        ...


@dataclass(frozen=True, slots=True)
class TimestampToken:
    der: bytes
    gen_time: datetime
    hash_algorithm: str  # "sha256", ...
    hashed_message: bytes
    serial_number: int
    signer: x509.Certificate  # the TSA certificate that signed the token
    certificates: tuple[x509.Certificate, ...]  # everything the token carries


def request_for(digest: bytes, nonce: int) -> bytes:
    """A DER TimeStampReq for a SHA-256 digest, with certReq set: the token must carry the TSA
    certificate so it can be checked offline."""
    return bytes(
        tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": digest,
                },
                "nonce": nonce,
                "cert_req": True,
            }
        ).dump()
    )


def token_from_response(response: bytes, digest: bytes, nonce: int) -> bytes:
    """The token inside a DER TimeStampResp, after checking it answers this request."""
    try:
        parsed = _TimeStampResp.load(response, strict=True)
        status = parsed["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            text = parsed["status"]["status_string"].native
            raise TimestampError(f"TSA refused: {status} {text or ''}".strip())
        token = bytes(parsed["time_stamp_token"].dump())
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"unreadable TimeStampResp: {type(exc).__name__}") from None
    parsed_token = parse_token(token)
    info = tsp.TSTInfo.load(_tst_info_bytes(cms.ContentInfo.load(token)))
    if info["nonce"].native != nonce:
        raise TimestampError("TimeStampResp nonce does not match the request")
    if parsed_token.hash_algorithm != "sha256" or not hmac.compare_digest(
        parsed_token.hashed_message, digest
    ):
        raise TimestampError("TimeStampResp is for another message")
    return token


def parse_token(der: bytes) -> TimestampToken:
    """Parse a TimeStampToken and check its CMS signature against the TSA certificate it
    carries (and the ESS signing-certificate attribute that binds that certificate). Trust in
    the TSA certificate is `verify_token`'s question."""
    if len(der) > _MAX_TOKEN_BYTES:
        raise TimestampError(f"timestamp token is {len(der)} bytes")
    try:
        return _parse_token(der)
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise TimestampError(f"malformed timestamp token: {type(exc).__name__}") from None


def _tst_info_bytes(info: Any) -> bytes:
    if info["content_type"].native != "signed_data":
        raise TimestampError("timestamp token is not CMS SignedData")
    encap = info["content"]["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise TimestampError("timestamp token does not hold a TSTInfo")
    return bytes(encap["content"].contents)


def _parse_token(der: bytes) -> TimestampToken:
    info = cms.ContentInfo.load(der, strict=True)
    tst_bytes = _tst_info_bytes(info)
    signed_data = info["content"]
    tst = tsp.TSTInfo.load(tst_bytes)
    # cryptography reads the certificates straight from the DER; through asn1crypto each one
    # would be re-encoded field by field (about 30 ms a token).
    certificates = tuple(pkcs7.load_der_pkcs7_certificates(der))
    signer_infos = list(signed_data["signer_infos"])
    if len(signer_infos) != 1:
        raise TimestampError("timestamp token must have exactly one signer")
    signer_info = signer_infos[0]
    signer = _signer_certificate(signer_info, certificates)
    # The signature covers the DER SET OF the signed attributes (RFC 5652 5.4): the received
    # [0] IMPLICIT encoding with its tag turned back into SET. Taken before the attributes are
    # read, since asn1crypto re-encodes (and re-sorts) a SET OF whose children were parsed.
    signed_attrs = bytes(signer_info["signed_attrs"].dump())
    to_verify = b"\x31" + signed_attrs[1:]

    attributes = {attr["type"].native: attr["values"] for attr in signer_info["signed_attrs"]}
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise TimestampError(f"timestamp digest {digest_name} not allowed")
    if attributes.get("content_type") is None or attributes["content_type"][0].native != (
        "tst_info"
    ):
        raise TimestampError("timestamp token content-type attribute is not TSTInfo")
    message_digest = attributes.get("message_digest")
    if message_digest is None or not hmac.compare_digest(
        bytes(message_digest[0].native), hashlib.new(digest_name, tst_bytes).digest()
    ):
        raise TimestampError("timestamp token message digest does not match its TSTInfo")
    _check_ess_binding(attributes, signer)

    _verify_signature(
        signer,
        bytes(signer_info["signature"].native),
        to_verify,
        signer_info["signature_algorithm"],
        _HASHES[digest_name](),
    )
    imprint = tst["message_imprint"]
    gen_time = tst["gen_time"].native
    if not isinstance(gen_time, datetime) or gen_time.tzinfo is None:
        raise TimestampError("timestamp token genTime is unusable")
    return TimestampToken(
        der=der,
        gen_time=gen_time,
        hash_algorithm=str(imprint["hash_algorithm"]["algorithm"].native),
        hashed_message=bytes(imprint["hashed_message"].native),
        serial_number=int(tst["serial_number"].native),
        signer=signer,
        certificates=certificates,
    )


def _signer_certificate(signer_info: Any, certificates: Sequence[x509.Certificate]) -> Any:
    sid = signer_info["sid"]
    if sid.name != "issuer_and_serial_number":
        raise TimestampError("timestamp signer must be named by issuer and serial")
    issuer = bytes(sid.chosen["issuer"].dump())
    serial = int(sid.chosen["serial_number"].native)
    for cert in certificates:
        if cert.serial_number == serial and cert.issuer.public_bytes() == issuer:
            return cert
    raise TimestampError("timestamp token does not carry its TSA certificate (certReq)")


def _check_ess_binding(attributes: dict[str, Any], signer: x509.Certificate) -> None:
    # RFC 5816 / RFC 2634: the signed attributes name the TSA certificate by hash, so a token
    # cannot be re-attributed to another certificate with the same key.
    cert_der = signer.public_bytes(Encoding.DER)
    if "signing_certificate_v2" in attributes:
        ids = attributes["signing_certificate_v2"][0]["certs"]
        first = ids[0]
        algorithm = first["hash_algorithm"]["algorithm"].native
        if algorithm not in _HASHES:
            raise TimestampError("ESS signing certificate hash not allowed")
        expected = hashlib.new(algorithm, cert_der).digest()
    elif "signing_certificate" in attributes:
        first = attributes["signing_certificate"][0]["certs"][0]
        expected = hashlib.sha1(cert_der, usedforsecurity=False).digest()
    else:
        raise TimestampError("timestamp token lacks the ESS signing-certificate attribute")
    if not hmac.compare_digest(bytes(first["cert_hash"].native), expected):
        raise TimestampError("ESS signing-certificate attribute names another certificate")


def _verify_signature(
    signer: x509.Certificate,
    signature: bytes,
    data: bytes,
    algorithm: Any,
    digest: hashes.HashAlgorithm,
) -> None:
    key = signer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if algorithm["algorithm"].native == "rsassa_pss":
                raise TimestampError("RSASSA-PSS timestamp tokens are not supported")
            key.verify(signature, data, padding.PKCS1v15(), digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(digest))
        else:
            raise TimestampError("unsupported TSA key type")
    except InvalidSignature:
        raise TimestampError("timestamp token signature does not verify") from None


def _tsa_policy() -> x509.verification.ExtensionPolicy:
    def check_eku(policy: Any, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
        if eku is None or list(eku) != [ExtendedKeyUsageOID.TIME_STAMPING]:
            raise ValueError("TSA certificate must have exactly the timeStamping usage")

    return x509.verification.ExtensionPolicy.permit_all().require_present(
        x509.ExtendedKeyUsage, x509.verification.Criticality.CRITICAL, check_eku
    )


def verify_token(
    der: bytes,
    *,
    data: bytes,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
) -> TimestampToken:
    """Parse and fully check a token: its signature, that its message imprint is the hash of
    `data`, and that its TSA certificate (critical EKU timeStamping) chains to `anchors` at
    genTime."""
    token = parse_token(der)
    if token.hash_algorithm not in _HASHES or not hmac.compare_digest(
        token.hashed_message, hashlib.new(token.hash_algorithm, data).digest()
    ):
        raise TimestampError("timestamp covers other data")
    if not anchors:
        raise TimestampError("no trust anchors for the TSA")
    builder = (
        x509.verification.PolicyBuilder()
        .store(x509.verification.Store(list(anchors)))
        .time(token.gen_time)
        .extension_policies(
            ee_policy=_tsa_policy(),
            ca_policy=x509.verification.ExtensionPolicy.webpki_defaults_ca(),
        )
    )
    others = [c for c in (*token.certificates, *intermediates) if c != token.signer]
    try:
        builder.build_client_verifier().verify(token.signer, others)
    except x509.verification.VerificationError as exc:
        raise TimestampError(f"TSA certificate not trusted: {str(exc)[:200]}") from None
    return token


class HttpTimestamper:
    """A remote RFC 3161 TSA over HTTP POST (application/timestamp-query), for production.

    Synchronous on purpose: signing already runs in a worker thread (KeyStoreSigner).
    """

    def __init__(self, url: str, *, timeout_seconds: float = 10.0) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError("the TSA URL must be http(s)")
        self._url = url
        self._timeout = timeout_seconds

    def stamp(self, digest: bytes) -> bytes:
        nonce = secrets.randbits(63)
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self._url,
            data=request_for(digest, nonce),
            headers={"Content-Type": "application/timestamp-query"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                body = response.read(_MAX_TOKEN_BYTES + 1)
        except OSError as exc:
            raise TimestampError(f"TSA unreachable: {type(exc).__name__}") from None
        return token_from_response(body, digest, nonce)


def openssl_ts_verify_command(
    token_path: Path, ca_path: Path, *, data_path: Path | None = None, digest: bytes | None = None
) -> list[str]:
    """argv for the independent check of a token with OpenSSL: its signature, its TSA
    certificate (critical EKU timeStamping) chaining to `ca_path`, and its imprint against the
    data (or its SHA-256 digest)."""
    command = ["openssl", "ts", "-verify", "-in", str(token_path), "-token_in"]
    if data_path is not None:
        command += ["-data", str(data_path)]
    elif digest is not None:
        command += ["-digest", digest.hex()]
    else:
        raise ValueError("give the data or its digest")
    return [*command, "-CAfile", str(ca_path)]
