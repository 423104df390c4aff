"""Signing on behalf of a named signer whose key the store holds.

This is the port the domain services use: they name the signer, never touch the key.
"""

from __future__ import annotations

import asyncio

from justice.platform.errors import FailedPrecondition, Unavailable
from justice.signing.keystore import KeyStore, KeyStoreError, UnknownSigner
from justice.signing.safe_xml import UnsafeXml
from justice.signing.xades import (
    CertificateNotValid,
    SigningError,
    TimestampUnavailable,
    XadesSigner,
)


class KeyStoreSigner:
    def __init__(self, keys: KeyStore, signer: XadesSigner) -> None:
        self._keys = keys
        self._signer = signer

    async def sign(self, document: bytes, signer_id: str) -> bytes:
        try:
            identity = self._keys.identity(signer_id)
            # Off the event loop: other calls go on meanwhile (the RSA part also releases the GIL).
            return await asyncio.to_thread(self._signer.sign, document, identity)
        except UnknownSigner:
            raise FailedPrecondition(
                "NO_SIGNING_KEY", f"no signing key is enrolled for {signer_id}"
            ) from None
        except CertificateNotValid as error:
            raise FailedPrecondition("SIGNING_CERTIFICATE_NOT_VALID", str(error)) from None
        except TimestampUnavailable as error:
            raise Unavailable("TIMESTAMP_UNAVAILABLE", str(error)) from None
        except KeyStoreError as error:
            raise FailedPrecondition("SIGNING_KEY_UNUSABLE", str(error)) from None
        except SigningError as error:
            raise FailedPrecondition("NOT_SIGNABLE", str(error)) from None
        except UnsafeXml as error:
            raise FailedPrecondition("NOT_SIGNABLE", error.reason) from None
