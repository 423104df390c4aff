"""Envelopes: build, sign and verify the signed wrapper every partner message travels in.

The signature is detached: it covers the header fields and the payload's SHA-256 (and the
links), not the payload bytes themselves, so a receiver checks the hash, then the signature.
Both the platform and the partner SDK use this module.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from google.protobuf.message import DecodeError

from justice.exchange.message import Link, is_subject_token
from justice.exchange.v1 import exchange_pb2 as pb
from justice.signing.identity import SigningKey, sign_sha256

# Domain separation: a signature over an envelope can never pass for one over anything else.
_CONTEXT = b"justice.exchange.v1.Envelope\n"
# Stays well under the stream's 1 MiB max message size once wrapped.
MAX_ENVELOPE_BYTES = 1024 * 1024 - 4096


class Problem(enum.StrEnum):
    """Why an envelope is refused; becomes the REJECTED receipt's reason."""

    MALFORMED = "MALFORMED_ENVELOPE"
    TOO_LARGE = "ENVELOPE_TOO_LARGE"
    SENDER_MISMATCH = "SENDER_MISMATCH"
    WRONG_RECIPIENT = "WRONG_RECIPIENT"
    UNKNOWN_SENDER = "UNKNOWN_SENDER"
    TYPE_NOT_ALLOWED = "MESSAGE_TYPE_NOT_ALLOWED"
    HASH_MISMATCH = "PAYLOAD_HASH_MISMATCH"
    BAD_SIGNATURE = "SIGNATURE_INVALID"


class EnvelopeRefused(Exception):
    def __init__(self, problem: Problem, detail: str) -> None:
        super().__init__(f"{problem.value}: {detail}")
        self.problem = problem
        self.detail = detail


def new_envelope_id() -> str:
    return str(uuid.uuid4())


def _links_digest(links: Sequence[pb.Link]) -> bytes:
    digest = hashlib.sha256()
    for link in links:
        for part in (link.name, link.url, link.sha256, str(link.size_bytes), link.media_type):
            encoded = part.encode()
            digest.update(len(encoded).to_bytes(4, "big") + encoded)
    return digest.digest()


def signing_input(envelope: pb.Envelope) -> bytes:
    """The bytes the signature covers: every header field, length-prefixed, and the hashes."""
    parts = [
        envelope.id,
        envelope.type,
        envelope.sender,
        envelope.recipient,
        str(envelope.created_at.seconds),
        str(envelope.created_at.nanos),
        envelope.in_reply_to,
    ]
    out = bytearray(_CONTEXT)
    for part in parts:
        encoded = part.encode()
        out += len(encoded).to_bytes(4, "big") + encoded
    out += bytes(envelope.payload_sha256) + _links_digest(envelope.links)
    return bytes(out)


def _check(public_key: PublicKeyTypes, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


class EnvelopeSigner:
    """Signs as one sender with a key loaded once (parsing a PEM per message costs 30 ms)."""

    def __init__(self, sender: str, key: SigningKey) -> None:
        self.sender = sender
        self._key = key

    def seal(
        self,
        *,
        envelope_id: str,
        message_type: str,
        recipient: str,
        created_at: datetime,
        payload: bytes,
        in_reply_to: str = "",
        links: Sequence[Link] = (),
    ) -> pb.Envelope:
        envelope = pb.Envelope(
            id=envelope_id,
            type=message_type,
            sender=self.sender,
            recipient=recipient,
            payload=payload,
            payload_sha256=hashlib.sha256(payload).digest(),
            in_reply_to=in_reply_to,
            links=[
                pb.Link(
                    name=link.name,
                    url=link.url,
                    sha256=link.sha256,
                    size_bytes=link.size_bytes,
                    media_type=link.media_type,
                )
                for link in links
            ],
        )
        envelope.created_at.FromDatetime(created_at)
        envelope.signature = sign_sha256(self._key, signing_input(envelope))
        return envelope


def parse(data: bytes) -> pb.Envelope:
    """Decode and check the shape of an envelope; raises EnvelopeRefused."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeRefused(Problem.TOO_LARGE, f"{len(data)} bytes")
    envelope = pb.Envelope()
    try:
        envelope.ParseFromString(data)
    except DecodeError:
        raise EnvelopeRefused(Problem.MALFORMED, "not a justice.exchange.v1.Envelope") from None
    missing = [
        name
        for name, ok in (
            ("id", _is_uuid(envelope.id)),
            ("type", is_subject_token(envelope.type)),
            ("sender", is_subject_token(envelope.sender)),
            ("recipient", is_subject_token(envelope.recipient)),
            ("created_at", envelope.HasField("created_at")),
            ("payload_sha256", len(envelope.payload_sha256) == 32),
            ("signature", bool(envelope.signature)),
        )
        if not ok
    ]
    if missing:
        raise EnvelopeRefused(Problem.MALFORMED, "missing or invalid: " + ", ".join(missing))
    return envelope


def verify(envelope: pb.Envelope, public_key: PublicKeyTypes) -> None:
    """Check the payload hash, then the sender's signature; raises EnvelopeRefused."""
    if hashlib.sha256(envelope.payload).digest() != envelope.payload_sha256:
        raise EnvelopeRefused(Problem.HASH_MISMATCH, "the payload does not match its hash")
    if not _check(public_key, envelope.signature, signing_input(envelope)):
        raise EnvelopeRefused(Problem.BAD_SIGNATURE, f"not signed by {envelope.sender}")


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
