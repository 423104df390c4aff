"""Checkpoints of the audit log's Merkle tree as C2SP signed notes, and witness cosignatures.

Formats, as the Go checksum database and Sigstore use them:
- c2sp.org/tlog-checkpoint: the note body is three lines, origin, tree size, base64 root hash;
- c2sp.org/signed-note: a blank line, then one "— <key name> base64(key id || signature)" line
  per signature; an Ed25519 key's id is SHA-256(name || "\\n" || 0x01 || public key)[:4];
- c2sp.org/tlog-cosignature (v1): a witness signs "cosignature/v1\\ntime <t>\\n" + body with
  its own Ed25519 key (id byte 0x04), saying it saw this tree consistent with all before.
Verifier keys travel as signed-note vkeys: "<name>+<hex key id>+<base64(type || key)>".
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "NoteSigner",
    "NoteVerifier",
    "cosignature_time",
    "open_checkpoint",
]

_ED25519 = 0x01
_COSIGNATURE_V1 = 0x04
_DASH = "\u2014"
_NAME = re.compile(r"^[^\s+]{1,255}$")
_MAX_NOTE_CHARS = 16 * 1024


class CheckpointError(ValueError):
    """Not a well-formed checkpoint, or not signed (or cosigned) as required."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def _key_id(name: str, kind: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public).digest()[:4]


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


class NoteSigner:
    """One Ed25519 key under a name: the log's (kind 0x01) or a witness's (kind 0x04)."""

    def __init__(self, name: str, key: Ed25519PrivateKey, *, witness: bool = False) -> None:
        if not _NAME.match(name):
            raise ValueError(f"unusable key name {name!r}")
        self.name = name
        self._key = key
        self._kind = _COSIGNATURE_V1 if witness else _ED25519
        self._id = _key_id(name, self._kind, _raw(key.public_key()))

    @property
    def vkey(self) -> str:
        public = bytes([self._kind]) + _raw(self._key.public_key())
        return f"{self.name}+{self._id.hex()}+{base64.b64encode(public).decode()}"

    def sign(self, checkpoint: Checkpoint) -> str:
        """The checkpoint as a signed note carrying this (log) key's signature."""
        if self._kind != _ED25519:
            raise ValueError("a witness key cosigns, it does not sign checkpoints")
        signature = self._key.sign(checkpoint.body().encode())
        return f"{checkpoint.body()}\n{self._line(signature)}"

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> str:
        """A tlog-cosignature/v1 signature line over the checkpoint at `timestamp` (seconds)."""
        if self._kind != _COSIGNATURE_V1:
            raise ValueError("only a witness key cosigns")
        message = f"cosignature/v1\ntime {timestamp}\n{checkpoint.body()}".encode()
        return self._line(struct.pack(">Q", timestamp) + self._key.sign(message))

    def _line(self, signature: bytes) -> str:
        return f"{_DASH} {self.name} {base64.b64encode(self._id + signature).decode()}\n"


@dataclass(frozen=True)
class NoteVerifier:
    name: str
    kind: int
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        try:
            name, key_id, encoded = vkey.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
            kind, public = raw[0], raw[1:]
            if kind not in (_ED25519, _COSIGNATURE_V1) or len(public) != 32:
                raise ValueError("not an Ed25519 verifier key")
            if _key_id(name, kind, public) != bytes.fromhex(key_id):
                raise ValueError("key id does not match")
            public_key = Ed25519PublicKey.from_public_bytes(public)
            return cls(name, kind, bytes.fromhex(key_id), public_key)
        except (ValueError, IndexError) as exc:
            raise CheckpointError(f"bad verifier key: {exc}") from None

    def matching(self, lines: Sequence[tuple[str, bytes]]) -> list[bytes]:
        return [sig[4:] for name, sig in lines if name == self.name and sig[:4] == self.key_id]


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    if len(note) > _MAX_NOTE_CHARS or "\n\n" not in note:
        raise CheckpointError("not a signed note")
    body, _, signatures = note.partition("\n\n")
    body += "\n"
    lines = []
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise CheckpointError("malformed signature line")
        try:
            lines.append((parts[1], base64.b64decode(parts[2], validate=True)))
        except ValueError:
            raise CheckpointError("malformed signature line") from None
    return body, lines


def _parse_body(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or not lines[0] or not re.fullmatch(r"0|[1-9][0-9]{0,18}", lines[1]):
        raise CheckpointError("not a tlog-checkpoint body")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise CheckpointError("root hash is not base64") from None
    if len(root) != 32:
        raise CheckpointError("root hash is not 32 bytes")
    return Checkpoint(lines[0], int(lines[1]), root)


def open_checkpoint(note: str, log: NoteVerifier, origin: str | None = None) -> Checkpoint:
    """The checkpoint in `note`, once the log's signature on it verifies."""
    body, lines = _split_note(note)
    checkpoint = _parse_body(body)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint of another log: {checkpoint.origin}")
    for signature in log.matching(lines):
        try:
            log.public_key.verify(signature, body.encode())
        except InvalidSignature:
            continue
        return checkpoint
    raise CheckpointError(f"no valid signature by {log.name}")


def cosignature_time(note: str, witness: NoteVerifier) -> int:
    """When `witness` cosigned the checkpoint in `note`; CheckpointError if it did not."""
    body, lines = _split_note(note)
    for signature in witness.matching(lines):
        if len(signature) != 72:
            continue
        (timestamp,) = struct.unpack(">Q", signature[:8])
        message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
        try:
            witness.public_key.verify(signature[8:], message)
        except InvalidSignature:
            continue
        return int(timestamp)
    raise CheckpointError(f"no valid cosignature by {witness.name}")
