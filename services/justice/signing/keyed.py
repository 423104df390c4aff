"""Signing on behalf of a named signer whose key the store holds.

This is the port the domain services use: they name the signer, never touch the key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

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
    def __init__(
        self,
        keys: KeyStore,
        signer: XadesSigner,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self._keys = keys
        self._signer = signer
        # Told how long each successful signature took (monitoring).
        self._observe = observe

    async def sign(self, document: bytes, signer_id: str) -> bytes:
        started = time.perf_counter()
        try:
            identity = self._keys.identity(signer_id)
            # Off the event loop: other calls go on meanwhile (the RSA part also releases the GIL).
            signed = await asyncio.to_thread(self._signer.sign, document, identity)
            if self._observe is not None:
                self._observe(time.perf_counter() - started)
            return signed
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
