"""The audit log as a witnessed transparency log: its Merkle tree, signed checkpoints, proofs,
and the cosignatures partners send back.

The hash chain alone cannot show that its newest records were deleted: its head lives in the
same database. Here the records are leaves of an RFC 9162 tree (merkle.py) grown by a log tail
("merkle", cursor = tree size) in the transaction that stores the new nodes, so RPCs never
wait for it. The platform signs checkpoints (origin, size, root) at an interval and on demand
and publishes them; partners check each one extends the last they saw (consistency proof) and
cosign it. Once a checkpoint is cosigned elsewhere, deleting, rewriting or forking the log
contradicts a signature the platform does not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from justice.audit import merkle
from justice.audit.chain import canonical
from justice.audit.checkpoints import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    cosignature_time,
    open_checkpoint,
)
from justice.audit.model import AuditRecord
from justice.audit.tail import Batch, checkpoint
from justice.audit.witness_store import TreeReader, WitnessTransaction
from justice.platform.errors import (
    DataLoss,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
)

log = logging.getLogger(__name__)

TREE_TAIL = "merkle"


def leaf_of(record: AuditRecord) -> bytes:
    """The Merkle leaf hash of a record: its canonical bytes, as the chain link covers them."""
    return merkle.leaf_hash(canonical(record.sequence, record.entry, record.previous_hash))


@dataclass(frozen=True)
class Inclusion:
    record: AuditRecord
    tree_size: int
    proof: list[bytes]


class WitnessedLog:
    def __init__(
        self,
        uow: Callable[[], WitnessTransaction],
        signer: NoteSigner,
        witnesses: Mapping[str, NoteVerifier],
        clock: Callable[[], datetime],
        publish: Callable[[str], Awaitable[None]] | None = None,
        reader: TreeReader | None = None,
    ) -> None:
        self._uow = uow
        self._reader = reader
        self._signer = signer
        self._verifier = NoteVerifier.parse(signer.vkey)
        self._witnesses = dict(witnesses)
        self._clock = clock
        self._publish = publish

    @property
    def origin(self) -> str:
        return self._signer.name

    @property
    def vkey(self) -> str:
        return self._signer.vkey

    # -- growing the tree (LogTail handler) ----------------------------------------------------

    async def grow(self, batch: Batch) -> None:
        size = batch.cursor
        for offset, record in enumerate(batch.records):
            if record.sequence != size + 1 + offset:
                # A hole in the log: the tree stops here, and the checkpoints with it.
                raise DataLoss(
                    "AUDIT_LOG_GAP", f"record {size + 1 + offset} is missing from the log"
                )
        async with self._uow() as tx:
            frontier = await tx.witness.nodes(merkle.root_nodes(size))
            created = merkle.append(size, [leaf_of(r) for r in batch.records], frontier)
            await tx.witness.add_nodes(created)
            await checkpoint(tx.records, batch)
            await tx.commit()

    # -- checkpoints ---------------------------------------------------------------------------

    async def checkpoint(self, fresh: bool = True) -> str:
        """A signed checkpoint of the tree as it is now (the stored one if nothing grew), or,
        not `fresh`, the latest one signed: what every witness is shown until the next."""
        for _ in range(3):
            async with self._uow() as tx:
                size = await tx.records.cursor(TREE_TAIL)
                latest = await tx.witness.latest_checkpoint()
                if latest is not None and (latest.size == size or not fresh):
                    return latest.note
                if latest is not None and latest.size > size:
                    raise DataLoss(
                        "AUDIT_LOG_SHRANK",
                        f"the tree has {size} leaves, checkpoint {latest.size} was signed",
                    )
                nodes = await tx.witness.nodes(merkle.root_nodes(size))
                head = Checkpoint(self.origin, size, merkle.root(size, nodes))
                note = self._signer.sign(head)
                await tx.witness.add_checkpoint(size, head.root, note, self._clock())
                try:
                    await tx.commit()
                except IntegrityError:
                    continue  # another replica signed this size first: read theirs
            if self._publish is not None:
                try:
                    await self._publish(note)
                except Exception as error:  # the checkpoint stands; the next one goes out
                    log.warning("checkpoint %d not published: %s", size, type(error).__name__)
            return note
        raise FailedPrecondition("CHECKPOINT_CONTENDED", "checkpoints are being signed elsewhere")

    async def run(self, interval_seconds: float, stop: asyncio.Event) -> None:
        """Sign and publish a checkpoint every interval, while the tree grows."""
        while not stop.is_set():
            try:
                await self.checkpoint()
            except Exception as error:
                log.warning("audit checkpoint failed: %s", type(error).__name__)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_seconds):
                    await stop.wait()

    # -- proofs --------------------------------------------------------------------------------

    async def _size(self, tx: WitnessTransaction, requested: int) -> int:
        size = await tx.records.cursor(TREE_TAIL)
        if requested < 0 or requested > size:
            raise InvalidArgument.of([FieldViolation("tree_size", f"the tree has {size} leaves")])
        return requested or size

    async def inclusion(self, sequence: int, tree_size: int = 0) -> Inclusion:
        # With a size (what a cosigned checkpoint names) the tree's cursor is only read when
        # nodes are missing: the proof path is then one connection, two indexed reads.
        size = tree_size
        if size <= 0:
            async with self._uow() as tx:
                size = await self._size(tx, tree_size)
        if not 1 <= sequence <= size:
            raise InvalidArgument.of(
                [FieldViolation("sequence", f"not in a tree of {size} records")]
            )
        wanted = merkle.inclusion_nodes(sequence - 1, size)
        if self._reader is not None:
            record, nodes = await self._reader.record_and_nodes(sequence, wanted)
        else:
            async with self._uow() as tx:
                record = await tx.records.at(sequence)
                nodes = await tx.witness.nodes(wanted)
        if len(nodes) != len(wanted):
            async with self._uow() as tx:
                await self._size(tx, size)  # a size beyond the tree is the caller's mistake
            raise DataLoss("AUDIT_TREE_INCOMPLETE", "tree nodes are missing")
        if record is None:
            raise DataLoss("AUDIT_RECORD_MISSING", f"record {sequence} is in the tree, not the log")
        return Inclusion(record, size, merkle.inclusion_proof(sequence - 1, size, nodes))

    async def consistency(self, first: int, second: int) -> tuple[int, list[bytes]]:
        """(the second size, 0 meaning the current tree; the RFC 9162 proof)."""
        async with self._uow() as tx:
            size = await self._size(tx, second)
            if not 0 <= first <= size:
                raise InvalidArgument.of(
                    [FieldViolation("first_tree_size", f"must be 0 .. {size}")]
                )
        nodes = await self._nodes(merkle.consistency_nodes(first, size))
        try:
            return size, merkle.consistency_proof(first, size, nodes)
        except KeyError:
            raise DataLoss("AUDIT_TREE_INCOMPLETE", "tree nodes are missing") from None

    async def _nodes(self, wanted: set[merkle.Node]) -> dict[merkle.Node, bytes]:
        if self._reader is not None:
            return await self._reader.nodes(wanted)
        async with self._uow() as tx:
            return await tx.witness.nodes(wanted)

    # -- cosignatures --------------------------------------------------------------------------

    async def add_cosignature(self, witness_id: str, cosigned_note: str) -> str:
        """Keep a witness's cosignature of one of our checkpoints; returns the note with every
        cosignature kept for that size."""
        witness = self._witnesses.get(witness_id)
        if witness is None:
            raise PermissionDenied("NOT_A_WITNESS", f"{witness_id} has no registered witness key")
        try:
            head = open_checkpoint(cosigned_note, self._verifier, self.origin)
            timestamp = cosignature_time(cosigned_note, witness)
        except CheckpointError as error:
            raise InvalidArgument.of([FieldViolation("checkpoint", str(error))]) from None
        line = next(
            line + "\n"
            for line in cosigned_note.splitlines()
            if line.startswith(f"\u2014 {witness.name} ")
        )
        async with self._uow() as tx:
            ours = await tx.witness.checkpoint(head.size)
            if ours is None or ours.root != head.root:
                raise FailedPrecondition(
                    "UNKNOWN_CHECKPOINT", f"the platform signed no such checkpoint of {head.size}"
                )
            await tx.witness.add_cosignature(head.size, witness.name, line, timestamp)
            await tx.commit()
        return await self.cosigned()

    async def cosigned(self) -> str:
        """The latest checkpoint a witness cosigned, with all its cosignatures."""
        async with self._uow() as tx:
            found = await tx.witness.latest_cosigned()
        if found is None:
            raise FailedPrecondition("NOT_COSIGNED", "no witness has cosigned a checkpoint yet")
        row, lines = found
        return row.note + "".join(lines)


def verify_record(
    record: AuditRecord,
    tree_size: int,
    proof: Sequence[bytes],
    cosigned_note: str,
    log_key: NoteVerifier,
    witnesses: Sequence[NoteVerifier],
) -> Checkpoint:
    """Offline: `record` is leaf `sequence - 1` of the tree in a checkpoint the log signed and
    every one of `witnesses` cosigned. Raises CheckpointError or merkle.ProofError."""
    head = open_checkpoint(cosigned_note, log_key)
    for witness in witnesses:
        cosignature_time(cosigned_note, witness)
    if head.size != tree_size:
        raise CheckpointError(f"the proof is for {tree_size} records, the checkpoint {head.size}")
    merkle.verify_inclusion(record.sequence - 1, tree_size, leaf_of(record), proof, head.root)
    return head
