"""How the CLI reaches the running stack: mTLS with a dev-PKI client certificate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from justice.audit.personal_data import PURPOSE_HEADER
from justice.devstack.pki import DevPki
from justice.platform import rpc, tracing
from justice.platform.config import Settings

_LOCAL_HOSTS = ("127.0.0.1", "0.0.0.0", "[::]", "localhost")  # noqa: S104 - names, not binds


def dev_pki(settings: Settings) -> DevPki:
    return DevPki(settings.pki_dir, settings.key_passphrase.get_secret_value().encode())


def metadata_interceptors(pairs: Sequence[tuple[str, str]]) -> list[Any]:
    """Interceptors adding `pairs`, and the current trace context, to every call."""
    return rpc.metadata_interceptors(tracing.with_trace(pairs))


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
    interceptors = metadata_interceptors(call_metadata(purpose))
    return grpc.aio.secure_channel(target, credentials, interceptors=interceptors)
