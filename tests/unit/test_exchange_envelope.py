"""Envelopes: a signature covers every header field, the payload hash and the links."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.exchange import envelope as envelopes
from justice.exchange.envelope import EnvelopeRefused, EnvelopeSigner, Problem
from justice.exchange.message import Link
from justice.exchange.store import time_ordered_uuid
from justice.exchange.v1 import exchange_pb2 as pb
from justice.signing.keystore import FileKeyStore


@pytest.fixture(scope="module")
def keys(pki: DevPki) -> FileKeyStore:
    return FileKeyStore(pki.signing_dir, PKI_PASSPHRASE)


def _sealed(signer: EnvelopeSigner) -> pb.Envelope:
    return signer.seal(
        envelope_id=str(uuid.uuid4()),
        message_type="report_submitted",
        recipient="prosecutor-antwerp",
        created_at=datetime(2026, 4, 26, 10, 0, tzinfo=UTC),
        payload=b"<OfficialReport/>",
        links=[Link("evidence/e1", "https://s3/x?sig=1", "ab" * 32, 10)],
    )


def test_round_trip_verifies(keys: FileKeyStore) -> None:
    identity = keys.identity("justice-server")
    sealed = _sealed(EnvelopeSigner("justice-server", identity.key))
    parsed = envelopes.parse(sealed.SerializeToString())
    envelopes.verify(parsed, identity.certificate.public_key())


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("payload", b"<OfficialReport>changed</OfficialReport>", Problem.HASH_MISMATCH),
        ("recipient", "court-brussels", Problem.BAD_SIGNATURE),
        ("type", "report_rejected", Problem.BAD_SIGNATURE),
        ("in_reply_to", "something", Problem.BAD_SIGNATURE),
    ],
)
def test_any_change_breaks_it(
    keys: FileKeyStore, field: str, value: object, problem: Problem
) -> None:
    identity = keys.identity("justice-server")
    sealed = _sealed(EnvelopeSigner("justice-server", identity.key))
    setattr(sealed, field, value)
    with pytest.raises(EnvelopeRefused) as refused:
        envelopes.verify(sealed, identity.certificate.public_key())
    assert refused.value.problem is problem


def test_a_changed_link_breaks_it(keys: FileKeyStore) -> None:
    identity = keys.identity("justice-server")
    sealed = _sealed(EnvelopeSigner("justice-server", identity.key))
    sealed.links[0].url = "https://elsewhere/x"
    with pytest.raises(EnvelopeRefused):
        envelopes.verify(sealed, identity.certificate.public_key())


def test_another_key_is_refused(keys: FileKeyStore) -> None:
    forged = _sealed(EnvelopeSigner("justice-server", keys.identity("court-brussels").key))
    with pytest.raises(EnvelopeRefused) as refused:
        envelopes.verify(forged, keys.identity("justice-server").certificate.public_key())
    assert refused.value.problem is Problem.BAD_SIGNATURE


def test_ecdsa_keys_work_too() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sealed = _sealed(EnvelopeSigner("justice-server", key))
    envelopes.verify(sealed, key.public_key())


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe garbage", pb.Envelope(id="not-a-uuid", type="x").SerializeToString(), b""],
)
def test_malformed_input_is_refused_not_crashing(data: bytes) -> None:
    with pytest.raises(EnvelopeRefused) as refused:
        envelopes.parse(data)
    assert refused.value.problem is Problem.MALFORMED


def test_oversized_input_is_refused() -> None:
    with pytest.raises(EnvelopeRefused) as refused:
        envelopes.parse(b"x" * (envelopes.MAX_ENVELOPE_BYTES + 1))
    assert refused.value.problem is Problem.TOO_LARGE


def test_message_ids_are_uuids_in_time_order() -> None:
    ids = []
    for _ in range(20):
        ids.append(time_ordered_uuid())
        time.sleep(0.002)  # distinct milliseconds; within one, order is random
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert ids == sorted(ids)
