"""Who signs: a private key object plus the certificate chain that names its holder."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

__all__ = ["SigningIdentity", "SigningKey", "sign_sha256", "signer_id_of"]

# A PKCS#11-backed key is an RSAPrivateKey subclass (see pkcs11.py), so it fits this union.
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def sign_sha256(key: SigningKey, data: bytes) -> bytes:
    """A raw signature over `data` with SHA-256: PKCS#1 v1.5 for RSA, ECDSA for EC."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def signer_id_of(certificate: x509.Certificate) -> str | None:
    """The platform id of a signer: the subject serialNumber attribute DevPki (and our PKI
    profile) puts there. None when the certificate carries none."""
    values = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    key: SigningKey = field(repr=False)
    chain: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        if not self.chain:
            raise ValueError("a signing identity needs at least its own certificate")
        # A key/cert mix-up would otherwise only show up as invalid signatures downstream.
        mine = self.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        certified = (
            self.chain[0].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        )
        if mine != certified:
            raise ValueError("the private key does not match the leaf certificate")

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def signer_id(self) -> str | None:
        return signer_id_of(self.chain[0])
