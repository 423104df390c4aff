"""C2SP checkpoints, signed notes and cosignatures: the exact text format, and refusals."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from justice.audit.checkpoints import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    cosignature_time,
    open_checkpoint,
)

ROOT = hashlib.sha256(b"root").digest()
HEAD = Checkpoint("justice.test/audit", 20852163, ROOT)


@pytest.fixture(scope="module")
def log() -> NoteSigner:
    return NoteSigner("justice.test/audit", Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def witness() -> NoteSigner:
    return NoteSigner("prosecutor-antwerp", Ed25519PrivateKey.generate(), witness=True)


def test_signed_checkpoint_is_a_c2sp_note(log: NoteSigner) -> None:
    note = log.sign(HEAD)
    body, signatures = note.split("\n\n")
    assert body == f"justice.test/audit\n20852163\n{base64.b64encode(ROOT).decode()}"
    name, key_id, public = log.vkey.split("+", 2)
    line = signatures.rstrip("\n")
    assert line.startswith(f"\u2014 {name} ")
    signature = base64.b64decode(line.split(" ")[2])
    assert signature[:4].hex() == key_id
    assert len(signature) == 4 + 64
    assert base64.b64decode(public)[0] == 0x01
    assert open_checkpoint(note, NoteVerifier.parse(log.vkey), "justice.test/audit") == HEAD


def test_cosignature_is_timestamped_and_bound_to_the_witness(
    log: NoteSigner, witness: NoteSigner
) -> None:
    cosigned = log.sign(HEAD) + witness.cosign(HEAD, 1_679_315_147)
    assert cosignature_time(cosigned, NoteVerifier.parse(witness.vkey)) == 1_679_315_147
    other = NoteSigner("prosecutor-antwerp", Ed25519PrivateKey.generate(), witness=True)
    with pytest.raises(CheckpointError):
        cosignature_time(cosigned, NoteVerifier.parse(other.vkey))
    # A witness key cannot pass for the log's, nor the log's for a witness's.
    with pytest.raises(CheckpointError):
        open_checkpoint(cosigned, NoteVerifier.parse(witness.vkey))


def _signature_changed(note: str) -> str:
    """One base64 character of the signature line changed (to another: a random signature
    holds an "A" there one time in 64)."""
    at = note.rindex(" ") + 5
    return note[:at] + ("B" if note[at] == "A" else "A") + note[at + 1 :]


@pytest.mark.parametrize(
    "change",
    [
        lambda n: n.replace("20852163", "20852164", 1),
        lambda n: n.replace("justice.test/audit\n", "justice.evil/audit\n", 1),
        lambda n: n.replace("\n\n", "\n", 1),
        _signature_changed,
    ],
)
def test_any_change_is_refused(log: NoteSigner, change: object) -> None:
    note = log.sign(HEAD)
    with pytest.raises(CheckpointError):
        open_checkpoint(change(note), NoteVerifier.parse(log.vkey), "justice.test/audit")  # type: ignore[operator]


def test_verifier_keys_are_checked() -> None:
    with pytest.raises(CheckpointError):
        NoteVerifier.parse("name+00000000+AQ==")
    signer = NoteSigner("justice.test/audit", Ed25519PrivateKey.generate())
    name, _, public = signer.vkey.split("+", 2)
    with pytest.raises(CheckpointError, match="key id"):
        NoteVerifier.parse(f"{name}+deadbeef+{public}")
