"""How the CLI reaches the running stack: mTLS with a dev-PKI client certificate."""

from __future__ import annotations

from typing import Any

import grpc

from justice.devstack.pki import DevPki
from justice.platform.config import Settings

_LOCAL_HOSTS = ("127.0.0.1", "0.0.0.0", "[::]", "localhost")  # noqa: S104 - names, not binds


def dev_pki(settings: Settings) -> DevPki:
    return DevPki(settings.pki_dir, settings.key_passphrase.get_secret_value().encode())


class _Purpose(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Sends the legal basis of the session's reads with every call (they are audited)."""

    def __init__(self, purpose: str) -> None:
        self._purpose = purpose

    def _details(self, details: Any) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata["x-justice-purpose"] = self._purpose
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


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
    interceptors: Any = [_Purpose(purpose)] if purpose else None
    return grpc.aio.secure_channel(target, credentials, interceptors=interceptors)
