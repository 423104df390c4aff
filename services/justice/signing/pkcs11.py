"""Signing keys held in an HSM, through PKCS#11 (python-pkcs11; SoftHSM in dev and tests).

Token layout for a signer `<id>` (all token objects, CKA_LABEL = `<id>`, same CKA_ID):
  * CKO_PRIVATE_KEY, RSA, CKA_SENSITIVE and not CKA_EXTRACTABLE: the key never leaves the token;
  * CKO_CERTIFICATE (X.509) holding the signer's leaf certificate.
Issuer certificates (CA, intermediates) are not per signer, so they are handed to the store
(`issuers=`) and the chain is assembled by issuer name.

signxml calls `key.sign(data, padding=PKCS1v15(), algorithm=SHA256())` on a cryptography
private key. `Pkcs11RsaKey` is an `RSAPrivateKey` whose `sign` runs CKM_SHA256_RSA_PKCS inside
the token; everything that would need the private key material raises.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import pkcs11
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives._asymmetric import AsymmetricPadding
from cryptography.hazmat.primitives.asymmetric import rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import MultipleObjectsReturned, NoSuchKey, UserAlreadyLoggedIn
from pkcs11.util.rsa import decode_rsa_private_key

from justice.signing.identity import SigningIdentity
from justice.signing.keystore import KeyStoreError, UnknownSigner

__all__ = ["Pkcs11KeyStore", "Pkcs11RsaKey"]

_MECHANISMS: dict[type[hashes.HashAlgorithm], Mechanism] = {
    hashes.SHA256: Mechanism.SHA256_RSA_PKCS,
    hashes.SHA384: Mechanism.SHA384_RSA_PKCS,
    hashes.SHA512: Mechanism.SHA512_RSA_PKCS,
}


def _not_exportable() -> NoReturn:
    raise UnsupportedAlgorithm(
        "the private key is held in the HSM and cannot be exported or used for this"
    )


class Pkcs11RsaKey(rsa.RSAPrivateKey):
    """An RSA private key that lives in a PKCS#11 token. Only PKCS#1 v1.5 signing with
    SHA-256/384/512 is offered, which is all the XAdES profile uses."""

    def __init__(self, token_key: Any, public_key: rsa.RSAPublicKey) -> None:
        self._token_key = token_key
        self._public_key = public_key

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding, PKCS1v15):
            raise UnsupportedAlgorithm(f"HSM key supports PKCS1v15 only, not {padding.name}")
        mechanism = (
            _MECHANISMS.get(type(algorithm))
            if isinstance(algorithm, hashes.HashAlgorithm)
            else None
        )
        if mechanism is None:
            raise UnsupportedAlgorithm(f"HSM key does not support {type(algorithm).__name__}")
        # python-pkcs11 serialises operations on a session with its own lock, so concurrent
        # callers queue here instead of corrupting the session's operation state.
        signature: bytes = self._token_key.sign(data, mechanism=mechanism)
        return signature

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        _not_exportable()

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _not_exportable()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _not_exportable()

    def __copy__(self) -> Pkcs11RsaKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11RsaKey:
        return self

    def __repr__(self) -> str:
        return f"<Pkcs11RsaKey {self.key_size} bits>"


def _key_id(signer_id: str) -> bytes:
    # CKA_ID links a signer's key and certificate; derived from the id so it is stable.
    return hashlib.sha256(signer_id.encode()).digest()[:16]


class Pkcs11KeyStore:
    """`KeyStore` over one token. Opens one logged-in session for the store's lifetime."""

    def __init__(
        self,
        module_path: str | Path,
        token_label: str,
        pin: str,
        *,
        issuers: Sequence[x509.Certificate] = (),
    ) -> None:
        self._lib = pkcs11.lib(str(module_path))
        try:
            token = self._lib.get_token(token_label=token_label)
        except (NoSuchKey, pkcs11.exceptions.NoSuchToken, MultipleObjectsReturned) as exc:
            raise KeyStoreError(
                f"PKCS#11 token {token_label!r} not found: {type(exc).__name__}"
            ) from None
        try:
            self._session = token.open(user_pin=pin, rw=True)
        except UserAlreadyLoggedIn:
            # PKCS#11 login is per process and token: another store in this process (another
            # application built here) is logged in, and a new session shares that state.
            self._session = token.open(rw=True)
        self._issuers = tuple(issuers)
        self._cache: dict[str, SigningIdentity] = {}
        self._write_lock = threading.Lock()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Pkcs11KeyStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- KeyStore --------------------------------------------------------------------------------

    def identity(self, signer_id: str) -> SigningIdentity:
        cached = self._cache.get(signer_id)
        if cached is not None:
            return cached
        try:
            token_key = self._session.get_key(
                object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.RSA, label=signer_id
            )
        except NoSuchKey:
            raise UnknownSigner(signer_id) from None
        except MultipleObjectsReturned:
            raise KeyStoreError(f"more than one private key labelled {signer_id!r}") from None
        certs = list(
            self._session.get_objects(
                {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: signer_id}
            )
        )
        if len(certs) != 1:
            raise KeyStoreError(
                f"expected one certificate labelled {signer_id!r} on the token, found {len(certs)}"
            )
        leaf = x509.load_der_x509_certificate(bytes(certs[0][Attribute.VALUE]))
        public_key = leaf.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise KeyStoreError(f"certificate for {signer_id!r} is not an RSA certificate")
        try:
            identity = SigningIdentity(
                key=Pkcs11RsaKey(token_key, public_key), chain=self._chain(leaf)
            )
        except ValueError as exc:
            raise KeyStoreError(f"{signer_id}: {exc}") from None
        self._cache[signer_id] = identity
        return identity

    # -- provisioning ------------------------------------------------------------------------------

    def generate_key(self, signer_id: str, *, bits: int = 2048) -> rsa.RSAPublicKey:
        """Generate a non-extractable RSA key pair inside the token; return the public half
        (to be certified, then stored with `store_certificate`)."""
        with self._write_lock:
            public, _private = self._session.generate_keypair(
                KeyType.RSA,
                bits,
                label=signer_id,
                id=_key_id(signer_id),
                store=True,
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            )
        numbers = rsa.RSAPublicNumbers(
            e=int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
            n=int.from_bytes(public[Attribute.MODULUS], "big"),
        )
        return numbers.public_key()

    def import_key(self, signer_id: str, key: rsa.RSAPrivateKey) -> None:
        """Move an existing RSA key (e.g. a dev file key) into the token as non-extractable."""
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        attributes = decode_rsa_private_key(der)
        attributes.update(
            {
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.LABEL: signer_id,
                Attribute.ID: _key_id(signer_id),
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
            }
        )
        with self._write_lock:
            self._session.create_object(attributes)

    def store_certificate(self, signer_id: str, certificate: x509.Certificate) -> None:
        with self._write_lock:
            self._session.create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.LABEL: signer_id,
                    Attribute.ID: _key_id(signer_id),
                    Attribute.SUBJECT: certificate.subject.public_bytes(),
                    Attribute.ISSUER: certificate.issuer.public_bytes(),
                    Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER),
                }
            )
        self._cache.pop(signer_id, None)

    def _chain(self, leaf: x509.Certificate) -> tuple[x509.Certificate, ...]:
        chain = [leaf]
        by_subject = {cert.subject: cert for cert in self._issuers}
        current = leaf
        while current.issuer != current.subject and len(chain) <= len(self._issuers):
            issuer = by_subject.get(current.issuer)
            if issuer is None:
                break
            chain.append(issuer)
            current = issuer
        return tuple(chain)
