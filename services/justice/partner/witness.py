"""A partner as a witness of the platform's audit log (c2sp.org/tlog-witness semantics).

For each checkpoint the platform shows it, the witness checks the log's signature, that the
tree did not shrink, and a consistency proof from the last checkpoint it accepted: the new tree
must contain the old one unchanged. Only then does it cosign (c2sp.org/tlog-cosignature) and
remember the new head. A log that deleted its newest records, rewrote one, or shows this
partner a different history than it showed before, fails here and gets no cosignature.

Transport-free: `PlatformAudit` (gRPC) fetches checkpoints and proofs and hands cosignatures
back; the last accepted head is kept in a small file so a restart does not forget it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from justice.audit import merkle
from justice.audit.checkpoints import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint
from justice.audit.v1 import audit_pb2

if TYPE_CHECKING:
    from justice.audit.v1.audit_pb2_grpc import AuditServiceAsyncStub

__all__ = ["ForkDetected", "Witness", "witness_once"]


class ForkDetected(Exception):
    """The log's new checkpoint does not extend the one this witness accepted before."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Witness:
    signer: NoteSigner  # the partner's own witness key (kind 0x04)
    log: NoteVerifier  # the platform's checkpoint key
    state: Path | None = None
    clock: Callable[[], datetime] = _utc_now
    last: Checkpoint | None = None

    def __post_init__(self) -> None:
        if self.last is None and self.state is not None and self.state.exists():
            saved = json.loads(self.state.read_text())
            self.last = Checkpoint(saved["origin"], saved["size"], base64.b64decode(saved["root"]))

    @property
    def last_size(self) -> int:
        return self.last.size if self.last is not None else 0

    def check(self, note: str) -> Checkpoint:
        """The checkpoint in `note` if the log signed it and it is not smaller than the last
        accepted one; then ask the log for a consistency proof from `last_size` to its size."""
        head = open_checkpoint(note, self.log, self.log.name)
        if self.last is not None and head.size < self.last.size:
            raise ForkDetected(f"the log shrank from {self.last.size} to {head.size} records")
        return head

    def observe(self, note: str, proof: Sequence[bytes]) -> str:
        """Check `note` against the last accepted head with `proof` (consistency from
        `last_size`); returns the note with this witness's cosignature line appended."""
        head = self.check(note)
        if self.last is not None:
            try:
                merkle.verify_consistency(
                    self.last.size, head.size, self.last.root, head.root, proof
                )
            except merkle.ProofError as error:
                raise ForkDetected(
                    f"checkpoint {head.size} does not extend {self.last.size}: {error}"
                ) from None
        self.last = head
        self._save(head)
        return note + self.signer.cosign(head, int(self.clock().timestamp()))

    def _save(self, head: Checkpoint) -> None:
        if self.state is None:
            return
        root = base64.b64encode(head.root).decode()
        data = {"origin": head.origin, "size": head.size, "root": root}
        temporary = self.state.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, self.state)


async def witness_once(stub: AuditServiceAsyncStub, witness: Witness) -> str:
    """One round against the platform's AuditService: fetch its checkpoint, check it extends
    what this partner saw, cosign, hand the cosignature back; returns the cosigned note."""
    checkpoint = await stub.GetAuditCheckpoint(audit_pb2.GetAuditCheckpointRequest())
    head = witness.check(checkpoint.note)
    proof = await stub.GetAuditConsistencyProof(
        audit_pb2.GetAuditConsistencyProofRequest(
            first_tree_size=witness.last_size, second_tree_size=head.size
        )
    )
    cosigned = witness.observe(checkpoint.note, list(proof.consistency_path))
    answer = await stub.AddAuditCosignature(audit_pb2.AddAuditCosignatureRequest(note=cosigned))
    note: str = answer.note
    return note
