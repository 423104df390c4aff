"""Who is calling: the verified mTLS client certificate (or, in dev mode, a signed token),
resolved against the access registry into a principal with agency, unit and roles.

Lookups are cached for at most `ttl` seconds (≤ 1 s) and dropped at once when the registry
changes in this process, so a departure or revocation stops open channels and tokens within
that bound. Calls already running (a long download, an upload) are checked again on every
such change and ended with UNAUTHENTICATED when their caller is no longer admitted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from cryptography import x509
from cryptography.x509.oid import NameOID

from justice.platform.errors import Unauthenticated
from justice.platform.rpc import Around, Call
from justice.security.principal import Principal, Role, Standing

__all__ = ["Principal", "Role", "Standing", "current_principal", "identity"]

_T = TypeVar("_T")


class Directory(Protocol):
    """The registry port: the access service implements it over its tables."""

    async def standing(self, subject: str) -> Standing | None: ...
    async def revoked_serials(self) -> frozenset[str]: ...


class CachedDirectory:
    """A Directory whose answers live at most `ttl` seconds and die on `invalidate()`.

    Callers that miss together share one lookup: when an entry expires under load, every
    call in flight misses at once, and each used to query the registry (three statements)
    for the same answer."""

    def __init__(
        self,
        source: Directory,
        ttl: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= ttl <= 1.0:
            raise ValueError("identity cache TTL must be between 0 and 1 s")
        self._source = source
        self._ttl = ttl
        self._monotonic = monotonic
        self._standings: dict[str, tuple[float, int, Standing | None]] = {}
        self._serials: tuple[float, int, frozenset[str]] | None = None
        self._generation = 0
        # Lookups under way, by key; only callers of the same generation join one.
        self._pending: dict[str, tuple[int, asyncio.Future[Any]]] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_invalidate(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def invalidate(self) -> None:
        # A lookup in flight during the change must not store its stale answer, nor answer
        # a call that starts after it.
        self._generation += 1
        self._standings.clear()
        self._serials = None
        self._pending.clear()
        for listener in self._listeners:
            listener()

    async def _shared(self, key: str, lookup: Callable[[], Awaitable[_T]]) -> tuple[int, _T]:
        """The answer of one lookup per key and generation, and the generation it is of."""
        generation = self._generation
        pending = self._pending.get(key)
        if pending is None or pending[0] != generation:
            pending = (generation, asyncio.ensure_future(lookup()))
            self._pending[key] = pending
            pending[1].add_done_callback(lambda _: self._forget(key, pending))
        # Shielded: a caller cancelled mid-lookup does not cancel it for the others.
        return generation, await asyncio.shield(pending[1])

    def _forget(self, key: str, pending: tuple[int, asyncio.Future[Any]]) -> None:
        if self._pending.get(key) is pending:
            del self._pending[key]

    async def standing(self, subject: str) -> Standing | None:
        now = self._monotonic()
        hit = self._standings.get(subject)
        if hit is not None and now - hit[0] < self._ttl and hit[1] == self._generation:
            return hit[2]
        generation, answer = await self._shared(
            "standing:" + subject, lambda: self._source.standing(subject)
        )
        if generation == self._generation:
            if len(self._standings) > 10_000:
                self._standings.clear()
            self._standings[subject] = (now, generation, answer)
        return answer

    async def revoked_serials(self) -> frozenset[str]:
        now = self._monotonic()
        hit = self._serials
        if hit is not None and now - hit[0] < self._ttl and hit[1] == self._generation:
            return hit[2]
        generation, answer = await self._shared("revoked", self._source.revoked_serials)
        if generation == self._generation:
            self._serials = (now, generation, answer)
        return answer


_current: ContextVar[Principal | None] = ContextVar("justice_principal", default=None)


def current_principal() -> Principal:
    """The caller of the RPC being served; set by the identity interceptor."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("NO_IDENTITY", "no authenticated caller")
    return principal


@dataclass(frozen=True)
class Certificate:
    subject: str
    serial: str  # lower-case hex
    not_before: datetime
    not_after: datetime


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


@lru_cache(maxsize=4096)
def certificate_from_pem(pem: bytes) -> Certificate:
    # The TLS layer has already verified the chain; parsing is cached per certificate.
    cert = x509.load_pem_x509_certificate(pem)
    common_name = _attribute(cert.subject, NameOID.COMMON_NAME)
    if not common_name:
        raise Unauthenticated("NO_COMMON_NAME", "the client certificate names no subject CN")
    return Certificate(
        subject=common_name,
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


class TokenVerifier(Protocol):
    def verify(self, token: str, now: datetime) -> tuple[str, datetime]:
        """The token's subject and issue time; raises Unauthenticated when invalid."""


@dataclass(frozen=True)
class Credential:
    subject: str
    # Exactly one of the two: a token's issue time, or the certificate's serial.
    token_issued: datetime | None = None
    serial: str = ""


def _credential(call: Call, tokens: TokenVerifier | None, now: datetime) -> Credential:
    if tokens is not None:
        for key, value in call.context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthenticated("BAD_AUTHORIZATION", "expected 'Bearer <token>'")
                subject, issued = tokens.verify(token.strip(), now)
                return Credential(subject, token_issued=issued)
    certificates = list(call.context.auth_context().get("x509_pem_cert", ()))
    if not certificates:
        raise Unauthenticated("NO_CLIENT_CERTIFICATE", "a client certificate is required")
    cert = certificate_from_pem(certificates[0])
    # TLS checks validity too; this also covers a clock moved by tests or an HSM-held CA.
    if not cert.not_before <= now < cert.not_after:
        raise Unauthenticated("CERTIFICATE_EXPIRED", "the client certificate is not valid now")
    return Credential(cert.subject, serial=cert.serial)


async def admit(credential: Credential, directory: CachedDirectory) -> Principal:
    """The principal a verified credential stands for now, or Unauthenticated."""
    if credential.serial and credential.serial in await directory.revoked_serials():
        raise Unauthenticated("CERTIFICATE_REVOKED", "the client certificate is revoked")
    standing = await directory.standing(credential.subject)
    if standing is None:
        raise Unauthenticated("UNKNOWN_PRINCIPAL", "the certificate's subject is not registered")
    if not standing.active:
        raise Unauthenticated("PRINCIPAL_INACTIVE", "the principal is suspended or has left")
    cutoff = standing.credentials_valid_after
    issued = credential.token_issued
    if issued is not None and cutoff is not None and issued <= cutoff:
        raise Unauthenticated("TOKEN_REVOKED", "the token was issued before a revocation")
    return standing.principal


class OpenCalls:
    """The calls being served, by credential, so that a registry change reaches them too.

    Without this a download begun before a departure would run to its end: identity is
    checked when a call starts. After each change every open call's credential is admitted
    again, and a call whose caller no longer is gets cancelled; the cancellation surfaces
    as UNAUTHENTICATED (CREDENTIALS_REVOKED).
    """

    def __init__(self, directory: CachedDirectory) -> None:
        self._directory = directory
        self._calls: dict[asyncio.Task[Any], Credential] = {}
        self._ended: set[asyncio.Task[Any]] = set()
        self._checks: set[asyncio.Task[None]] = set()
        directory.on_invalidate(self.recheck)

    @asynccontextmanager
    async def open(self, credential: Credential) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self._calls[task] = credential
        try:
            yield
        except asyncio.CancelledError:
            if task not in self._ended:
                raise
            task.uncancel()  # the cancel was ours: end the call with a status instead
            raise Unauthenticated(
                "CREDENTIALS_REVOKED", "the caller's access was revoked during the call"
            ) from None
        finally:
            del self._calls[task]
            self._ended.discard(task)

    def recheck(self) -> None:
        if not self._calls:
            return
        try:
            check = asyncio.get_running_loop().create_task(self._recheck())
        except RuntimeError:  # no loop: nothing is being served here
            return
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)

    async def _recheck(self) -> None:
        for task, credential in list(self._calls.items()):
            try:
                await admit(credential, self._directory)
            except Unauthenticated:
                if task in self._calls and not task.done():
                    self._ended.add(task)
                    task.cancel()


def identity(
    directory: CachedDirectory,
    clock: Callable[[], datetime],
    tokens: TokenVerifier | None = None,
) -> Around:
    """Sets the principal for the call from the verified client certificate or dev token."""
    calls = OpenCalls(directory)

    @asynccontextmanager
    async def around(call: Call) -> AsyncIterator[None]:
        credential = _credential(call, tokens, clock())
        principal = await admit(credential, directory)
        token = _current.set(principal)
        try:
            async with calls.open(credential):
                yield
        finally:
            _current.reset(token)

    return around
