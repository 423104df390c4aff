"""RFC 9162 Merkle trees: stored perfect subtrees give the same roots and proofs as the
RFC's recursive definitions, and the RFC's verification algorithms accept them and nothing
else."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from justice.audit import merkle
from justice.audit.merkle import Node, ProofError


def leaves(size: int) -> list[bytes]:
    return [merkle.leaf_hash(f"record {i}".encode()) for i in range(size)]


def mth(hashes: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, literally."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return merkle.node_hash(mth(hashes[:k]), mth(hashes[k:]))


def stored(size: int, batches: int = 3) -> dict[Node, bytes]:
    """Nodes as the store writes them: appended in a few batches from the frontier only."""
    nodes: dict[Node, bytes] = {}
    all_leaves = leaves(size)
    step = max(1, size // batches)
    done = 0
    while done < size:
        batch = all_leaves[done : done + step]
        frontier = {n: nodes[n] for n in merkle.root_nodes(done)}
        nodes.update(merkle.append(done, batch, frontier))
        done += len(batch)
    return nodes


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=80), st.data())
def test_roots_and_inclusion_proofs_match_the_rfc(size: int, data: st.DataObject) -> None:
    nodes = stored(size)
    hashes = leaves(size)
    root = merkle.root(size, {n: nodes[n] for n in merkle.root_nodes(size)})
    assert root == mth(hashes)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    needed = {n: nodes[n] for n in merkle.inclusion_nodes(index, size)}
    proof = merkle.inclusion_proof(index, size, needed)
    merkle.verify_inclusion(index, size, hashes[index], proof, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, size, merkle.leaf_hash(b"forged"), proof, root)
    if size > 1:
        with pytest.raises(ProofError):
            merkle.verify_inclusion((index + 1) % size, size, hashes[index], proof, root)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=80), st.data())
def test_consistency_proofs_match_the_rfc(second: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(min_value=1, max_value=second))
    nodes = stored(second)
    hashes = leaves(second)
    needed = {n: nodes[n] for n in merkle.consistency_nodes(first, second)}
    proof = merkle.consistency_proof(first, second, needed)
    merkle.verify_consistency(first, second, mth(hashes[:first]), mth(hashes), proof)
    if first < second:
        rewritten = [*hashes[: first - 1], merkle.leaf_hash(b"rewritten")]
        with pytest.raises(ProofError):
            merkle.verify_consistency(first, second, mth(rewritten), mth(hashes), proof)


def test_a_shorter_tree_or_another_root_of_the_same_size_is_refused() -> None:
    hashes = leaves(8)
    with pytest.raises(ProofError):
        merkle.verify_consistency(8, 5, mth(hashes), mth(hashes[:5]), [])
    with pytest.raises(ProofError, match="forked"):
        merkle.verify_consistency(8, 8, mth(hashes), mth([*hashes[:7], hashes[0]]), [])


def test_proofs_read_logarithmically_many_nodes() -> None:
    size = 1_000_000
    assert len(merkle.inclusion_nodes(123_457, size)) <= 2 * size.bit_length()
    assert len(merkle.consistency_nodes(654_321, size)) <= 2 * size.bit_length()
