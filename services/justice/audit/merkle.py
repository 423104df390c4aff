"""RFC 9162 (Certificate Transparency 2.0) Merkle trees over the audit log.

Leaf i is audit record i + 1: its hash is SHA-256(0x00 || the record's canonical bytes, the
same ones its hash-chain link covers), so rewriting any field of any record changes the tree.
Only complete (perfect) subtrees are stored, as nodes (level, index) covering the leaves
[index * 2^level, (index + 1) * 2^level): about two per leaf, written once, never changed. Any
root, inclusion proof or consistency proof RFC 9162 defines needs only O(log n) of them, read
in one query: `*_nodes` say which, `*_proof` / `root` compute from what was read.

Pure functions: no database, no I/O. The store (audit/witness_store.py) and the offline
verifiers (CLI, partner SDK) share them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "ProofError",
    "append",
    "consistency_nodes",
    "consistency_proof",
    "inclusion_nodes",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_nodes",
    "verify_consistency",
    "verify_inclusion",
]

Node = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # leaves [start, end)


class ProofError(ValueError):
    """A proof does not prove what it claims (or asks the impossible)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _perfect(leaves: Range) -> list[Node]:
    """The complete subtrees that make up an RFC 9162 range, left to right, largest first."""
    start, end = leaves
    nodes = []
    while start < end:
        size = 1 << ((end - start).bit_length() - 1)
        while start % size:  # never taken for ranges RFC 9162's recursion produces
            size >>= 1
        nodes.append((size.bit_length() - 1, start // size))
        start += size
    return nodes


def _range_hash(leaves: Range, nodes: Mapping[Node, bytes]) -> bytes:
    parts = [nodes[node] for node in _perfect(leaves)]
    digest = parts[-1]
    for left in reversed(parts[:-1]):
        digest = node_hash(left, digest)
    return digest


def _inclusion_ranges(index: int, leaves: Range) -> list[Range]:
    """PATH(m, D[start:end]) of RFC 9162 2.1.3.1, as the ranges whose hashes it lists."""
    start, end = leaves
    if end - start == 1:
        return []
    k = _split(end - start)
    if index - start < k:
        return [*_inclusion_ranges(index, (start, start + k)), (start + k, end)]
    return [*_inclusion_ranges(index, (start + k, end)), (start, start + k)]


def _consistency_ranges(first: int, leaves: Range, whole: bool = True) -> list[Range]:
    """SUBPROOF(m, D[start:end], b) of RFC 9162 2.1.4.1, as ranges."""
    start, end = leaves
    if first == end - start:
        return [] if whole else [(start, end)]
    k = _split(end - start)
    if first <= k:
        return [*_consistency_ranges(first, (start, start + k), whole), (start + k, end)]
    return [*_consistency_ranges(first - k, (start + k, end), False), (start, start + k)]


def _nodes_of(ranges: Iterable[Range]) -> set[Node]:
    return {node for leaves in ranges for node in _perfect(leaves)}


def root_nodes(size: int) -> set[Node]:
    return _nodes_of([(0, size)]) if size else set()


def root(size: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH of the first `size` leaves (the hash of the empty string for none)."""
    return _range_hash((0, size), nodes) if size else hashlib.sha256(b"").digest()


def inclusion_nodes(index: int, size: int) -> set[Node]:
    return _nodes_of(_inclusion_ranges(index, (0, size)))


def inclusion_proof(index: int, size: int, nodes: Mapping[Node, bytes]) -> list[bytes]:
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    return [_range_hash(leaves, nodes) for leaves in _inclusion_ranges(index, (0, size))]


def consistency_nodes(first: int, second: int) -> set[Node]:
    if not 0 < first <= second:
        return set()
    return _nodes_of(_consistency_ranges(first, (0, second)))


def consistency_proof(first: int, second: int, nodes: Mapping[Node, bytes]) -> list[bytes]:
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from {first} to {second}")
    if first in (0, second):
        return []
    return [_range_hash(leaves, nodes) for leaves in _consistency_ranges(first, (0, second))]


def append(size: int, leaves: Sequence[bytes], frontier: Mapping[Node, bytes]) -> dict[Node, bytes]:
    """The nodes that appending leaf hashes to a tree of `size` completes. `frontier` holds the
    tree's `root_nodes(size)`: the only stored nodes a new node can depend on."""
    known = dict(frontier)
    created: dict[Node, bytes] = {}
    for offset, digest in enumerate(leaves):
        level, index = 0, size + offset
        created[(0, index)] = known[(0, index)] = digest
        while index % 2 == 1:
            digest = node_hash(known[(level, index - 1)], digest)
            level, index = level + 1, index // 2
            created[(level, index)] = known[(level, index)] = digest
    return created


def _shift_while(condition: Callable[[int], bool], fn: int, sn: int) -> tuple[int, int]:
    while condition(fn):
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """RFC 9162 2.1.3.2; raises ProofError unless `leaf` is leaf `index` of the tree."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    fn, sn, digest = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            fn, sn = _shift_while(lambda f: not f & 1 and f != 0, fn, sn)
        else:
            digest = node_hash(digest, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or digest != root_hash:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2; raises ProofError unless the tree of `second` leaves extends the tree
    of `first` leaves: nothing of it removed or rewritten."""
    if not 0 <= first <= second:
        raise ProofError(f"a tree of {second} cannot extend one of {first}")
    if first == second:
        if proof or first_root != second_root:
            raise ProofError("two different roots for one tree size: the log forked")
        return
    if first == 0:
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = _shift_while(lambda f: bool(f & 1), first - 1, second - 1)
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            fn, sn = _shift_while(lambda f: not f & 1 and f != 0, fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise ProofError("the new tree does not extend the old one")
