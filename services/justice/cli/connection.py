"""How the CLI reaches the running stack: mTLS with a dev-PKI client certificate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from justice.audit.interceptor import PURPOSE_HEADER
from justice.devstack.pki import DevPki
from justice.platform.config import Settings

_LOCAL_HOSTS = ("127.0.0.1", "0.0.0.0", "[::]", "localhost")  # noqa: S104 - names, not binds


def dev_pki(settings: Settings) -> DevPki:
    return DevPki(settings.pki_dir, settings.key_passphrase.get_secret_value().encode())


class _Metadata:
    """Adds fixed metadata to a call's details (the subclasses below name the call kind)."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = tuple(pairs)

    def _details(self, details: Any) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        for key, value in self._pairs:
            metadata[key] = value
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files an interceptor under the first call kind it implements and ignores the
# others, so each kind gets its own class and its own object.
class _UnaryUnary(_Metadata, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_Metadata, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_Metadata, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStream(_Metadata, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def metadata_interceptors(pairs: Sequence[tuple[str, str]]) -> list[Any]:
    """One interceptor per call kind, each adding `pairs` to every call of its kind.

    (grpc-stubs types ClientInterceptor as a placeholder to cast, hence Any.)
    """
    return [kind(pairs) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


def call_metadata(purpose: str) -> list[tuple[str, str]]:
    """What the CLI adds to every call: the legal basis of the session's reads (audited)."""
    return [(PURPOSE_HEADER, purpose)] if purpose else []


def open_channel(settings: Settings, principal: str, purpose: str = "") -> grpc.aio.Channel:
    pki = dev_pki(settings)
    cert, key = pki.client_paths(principal)
    if not cert.exists():
        raise FileNotFoundError(f"no client certificate for {principal} under {pki.root}")
    credentials = grpc.ssl_channel_credentials(
        pki.ca_path.read_bytes(), key.read_bytes(), cert.read_bytes()
    )
    host, _, port = settings.listen.rpartition(":")
    # The dev server certificate names localhost; connect by that name.
    target = f"localhost:{port}" if host in _LOCAL_HOSTS else settings.listen
    pairs = call_metadata(purpose)
    interceptors = metadata_interceptors(pairs) if pairs else None
    return grpc.aio.secure_channel(target, credentials, interceptors=interceptors)
