"""Where signing keys live. Services depend on the `KeyStore` protocol; the composition root
picks `FileKeyStore` (dev stack) or `Pkcs11KeyStore` (HSM)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from justice.signing.identity import SigningIdentity

if TYPE_CHECKING:
    from justice.platform.config import Settings

__all__ = ["FileKeyStore", "KeyStore", "KeyStoreError", "UnknownSigner", "configured_key_store"]

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


def configured_key_store(settings: Settings, issuers: Sequence[x509.Certificate]) -> KeyStore:
    """The key store the settings choose: files in the state dir, or an HSM over PKCS#11.

    `issuers` complete an HSM signer's chain (the token holds only its leaf certificate).
    """
    if settings.key_store == "file":
        return FileKeyStore(
            settings.pki_dir / "signing", settings.key_passphrase.get_secret_value().encode()
        )
    missing = [
        name
        for name, value in (
            ("JUSTICE_PKCS11_MODULE", settings.pkcs11_module),
            ("JUSTICE_PKCS11_TOKEN_LABEL", settings.pkcs11_token_label),
            ("JUSTICE_PKCS11_PIN_FILE", settings.pkcs11_pin_file),
        )
        if not value
    ]
    if missing or settings.pkcs11_module is None or settings.pkcs11_pin_file is None:
        raise KeyStoreError(f"JUSTICE_KEY_STORE=pkcs11 needs {', '.join(missing)}")
    try:
        pin = settings.pkcs11_pin_file.read_text().strip()
    except OSError as exc:
        raise KeyStoreError(f"cannot read JUSTICE_PKCS11_PIN_FILE ({type(exc).__name__})") from None
    # Imported here so python-pkcs11 is only loaded where an HSM is configured.
    from justice.signing.pkcs11 import Pkcs11KeyStore

    return Pkcs11KeyStore(settings.pkcs11_module, settings.pkcs11_token_label, pin, issuers=issuers)
