"""Dev-mode bearer tokens: HMAC-signed, short-lived, for CLI and grpcurl convenience.

A token only names a subject; every call still resolves that subject in the registry, so a
suspension or departure kills its tokens at once. Production never accepts them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from justice.platform.errors import FieldViolation, InvalidArgument, Unauthenticated

_KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DevTokens:
    def __init__(self, key: bytes, max_lifetime: timedelta) -> None:
        if len(key) < _KEY_BYTES:
            raise ValueError("the token key must hold at least 32 bytes")
        self._key = key
        self._max = max_lifetime

    @classmethod
    def from_file(cls, path: Path, max_lifetime: timedelta) -> DevTokens:
        """Load the key, creating it (0600) on first use."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(_KEY_BYTES))
        return cls(path.read_bytes(), max_lifetime)

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()

    def mint(self, subject: str, lifetime: timedelta, now: datetime) -> str:
        if not timedelta(0) < lifetime <= self._max:
            raise InvalidArgument.of(
                [FieldViolation("lifetime", f"between 0 and {int(self._max.total_seconds())} s")]
            )
        claims = {
            "sub": subject,
            "iat": int(now.timestamp() * 1_000_000),
            "exp": int((now + lifetime).timestamp() * 1_000_000),
        }
        body = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def verify(self, token: str, now: datetime) -> tuple[str, datetime]:
        body_part, _, mac_part = token.partition(".")
        try:
            body, mac = _unb64(body_part), _unb64(mac_part)
        except (ValueError, binascii.Error):
            raise Unauthenticated("BAD_TOKEN", "the token is malformed") from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise Unauthenticated("BAD_TOKEN", "the token signature does not verify")
        try:
            claims = json.loads(body)
            subject, issued_us, expires_us = claims["sub"], claims["iat"], claims["exp"]
        except (ValueError, KeyError, TypeError):
            raise Unauthenticated("BAD_TOKEN", "the token is malformed") from None
        if not isinstance(subject, str) or not all(
            isinstance(v, int) for v in (issued_us, expires_us)
        ):
            raise Unauthenticated("BAD_TOKEN", "the token is malformed")
        issued = datetime.fromtimestamp(issued_us / 1_000_000, UTC)
        expires = datetime.fromtimestamp(expires_us / 1_000_000, UTC)
        if expires - issued > self._max or not issued <= now < expires:
            raise Unauthenticated("TOKEN_EXPIRED", "the token is expired or not yet valid")
        return subject, issued
