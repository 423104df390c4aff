"""Signing on behalf of a named signer whose key the store holds.

This is the port the domain services use: they name the signer, never touch the key.

With signing processes (`signing_processes`), the whole XAdES signature is made in one of
them: a B-LT signature holds the GIL for most of its ~1.3 ms (signxml's XML work, the
timestamp's ASN.1), time the serving process's gRPC, database and audit work would wait for.
Each signing process builds its own key store and signer at its start, from the same
settings, as a `justice serve --workers` process does (the keys are read, or an HSM session
opened, in each). It pays where a core is free for it, not where `--workers` already gives
every core a serving process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from justice.platform.errors import FailedPrecondition, Unavailable
from justice.platform.processes import WorkerProcesses
from justice.signing.keystore import KeyStore, KeyStoreError, UnknownSigner
from justice.signing.safe_xml import UnsafeXml
from justice.signing.xades import (
    CertificateNotValid,
    SigningError,
    TimestampUnavailable,
    XadesSigner,
)

# What a signing process builds at its start: a module-level function (spawn pickles it by
# name), the same key store and signer the serving process builds.
SignerStart = Callable[[], tuple[KeyStore, XadesSigner]]

_in_process: tuple[KeyStore, XadesSigner] | None = None


def _start_signing_process(start: SignerStart) -> None:
    global _in_process
    _in_process = start()


def _sign_in_process(document: bytes, signer_id: str) -> bytes:
    assert _in_process is not None, "a signing process signs after its start"
    keys, signer = _in_process
    return signer.sign(document, keys.identity(signer_id))


def signing_processes(count: int, start: SignerStart) -> WorkerProcesses:
    return WorkerProcesses(count, _start_signing_process, (start,))


class KeyStoreSigner:
    def __init__(
        self,
        keys: KeyStore,
        signer: XadesSigner,
        observe: Callable[[float], None] | None = None,
        processes: WorkerProcesses | None = None,
    ) -> None:
        self._keys = keys
        self._signer = signer
        # Told how long each successful signature took (monitoring).
        self._observe = observe
        # Signing processes (`signing_processes`); None: a thread of this process.
        self._processes = processes

    async def sign(self, document: bytes, signer_id: str) -> bytes:
        started = time.perf_counter()
        try:
            if self._processes is not None:
                signed = await self._processes.run(_sign_in_process, document, signer_id)
            else:
                identity = self._keys.identity(signer_id)
                # Off the event loop: other calls go on meanwhile (the RSA part also releases
                # the GIL).
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
