"""Where signing keys live. Services depend on the `KeyStore` protocol; the composition root
picks `FileKeyStore` (dev stack) or `Pkcs11KeyStore` (HSM)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from justice.signing.identity import SigningIdentity

__all__ = ["FileKeyStore", "KeyStore", "KeyStoreError", "UnknownSigner"]

# Signer ids are used as file names: no separators, no dot-dot, nothing exotic.
_SIGNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


class UnknownSigner(LookupError):
    def __init__(self, signer_id: str) -> None:
        super().__init__(signer_id)
        self.signer_id = signer_id


class KeyStoreError(Exception):
    """The key material exists but cannot be used (wrong passphrase, corrupt file, ...)."""


class KeyStore(Protocol):
    def identity(self, signer_id: str) -> SigningIdentity:
        """Return the signer's identity or raise `UnknownSigner`."""
        ...


class FileKeyStore:
    """Reads `<id>.pem` (leaf then chain) and `<id>.key` (encrypted PKCS#8) as DevPki writes them.

    Each key is decrypted once and kept as an object: decrypting the PEM runs the passphrase
    KDF, about 30 ms, which would otherwise dominate every signature. The cache is a plain dict
    without a lock: a get/set is atomic, and two threads racing on a cold entry only decrypt
    twice. A rotated key is picked up by a new store (restart), not by this one.
    """

    def __init__(self, directory: Path, passphrase: bytes) -> None:
        self._directory = Path(directory)
        self._passphrase = passphrase
        self._cache: dict[str, SigningIdentity] = {}

    def identity(self, signer_id: str) -> SigningIdentity:
        cached = self._cache.get(signer_id)
        if cached is not None:
            return cached
        if not _SIGNER_ID.fullmatch(signer_id):
            raise UnknownSigner(signer_id)
        cert_path = self._directory / f"{signer_id}.pem"
        key_path = self._directory / f"{signer_id}.key"
        try:
            chain_pem = cert_path.read_bytes()
            key_pem = key_path.read_bytes()
        except FileNotFoundError:
            raise UnknownSigner(signer_id) from None
        try:
            chain = tuple(x509.load_pem_x509_certificates(chain_pem))
            key = load_pem_private_key(key_pem, password=self._passphrase)
        except (ValueError, TypeError) as exc:
            # Deliberately no detail from the key file in the message.
            raise KeyStoreError(
                f"cannot load signing material for {signer_id}: {type(exc).__name__}"
            ) from None
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise KeyStoreError(f"unsupported key type for {signer_id}")
        try:
            identity = SigningIdentity(key=key, chain=chain)
        except ValueError as exc:
            raise KeyStoreError(f"{signer_id}: {exc}") from None
        self._cache[signer_id] = identity
        return identity
