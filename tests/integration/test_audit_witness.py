"""The audit log witnessed by partners, against PostgreSQL: two simulated partners cosign its
checkpoints; a record's inclusion is verified offline; and deleting the newest records,
rewriting a record or forking the log (each done with SQL, as an operator with database
rights could) is detected by a witness."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from justice.app import Application, build, checkpoint_settings
from justice.audit.checkpoints import NoteSigner, NoteVerifier, cosignature_time, open_checkpoint
from justice.audit.merkle import ProofError, verify_consistency
from justice.audit.messages import record_to_proto
from justice.audit.model import AuditEntry
from justice.audit.v1 import audit_pb2
from justice.audit.witness import TREE_TAIL, WitnessedLog, verify_record
from justice.audit.witness_store import WitnessTransaction
from justice.cli.main import app as cli
from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.partner.witness import ForkDetected, Witness
from justice.platform.config import Settings
from tests.eventually import eventually

pytestmark = pytest.mark.postgres

PARTNERS = ("prosecutor-antwerp", "court-brussels")


def witness_key(partner: str) -> NoteSigner:
    return NoteSigner(partner, Ed25519PrivateKey.generate(), witness=True)


@pytest.fixture(scope="module")
def witness_keys() -> dict[str, NoteSigner]:
    return {partner: witness_key(partner) for partner in PARTNERS}


@pytest.fixture
def own_settings(
    postgres_url: str, pki: DevPki, witness_keys: dict[str, NoteSigner], tmp_path: Path
) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        pki_root=pki.root,
        database_url=postgres_url,
        listen="127.0.0.1:0",
        key_passphrase=PKI_PASSPHRASE.decode(),
        shutdown_grace_seconds=1.0,
        audit={"witnesses": [key.vkey for key in witness_keys.values()]},
    )


@pytest.fixture
async def platform(
    postgres_url: str, own_settings: Settings
) -> AsyncIterator[tuple[Application, str]]:
    """A fresh platform on its own PostgreSQL schema; yields it and the schema's DSN."""
    schema = f"w_{secrets.token_hex(6)}"
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    own = own_settings.model_copy(
        update={"database_url": f"{postgres_url}?options=-csearch_path%3D{schema}"}
    )
    application = await build(own)
    try:
        yield application, f"{dsn}?options=-csearch_path%3D{schema}"
    finally:
        await application.close()
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def witnessed(application: Application) -> WitnessedLog:
    assert application.audit.witnessed is not None
    return application.audit.witnessed


def log_key(application: Application) -> NoteVerifier:
    return NoteVerifier.parse(witnessed(application).vkey)


async def append(application: Application, count: int) -> int:
    """`count` records through the real writer; returns the head once the tree holds it."""
    head = 0
    for n in range(count):
        record = await application.audit.writer.append(
            AuditEntry(
                time=datetime.now(UTC),
                principal="officer-1001",
                agency="Federal Police",
                unit="PZ Antwerpen",
                service="justice.reports.v1.ReportService",
                method="GetReport",
                resources=(f"reports/{n:04d}",),
                purpose="case AN.12.345/26",
                outcome="OK",
                reason="",
                peer="ipv4:127.0.0.1:5000",
            )
        )
        head = record.sequence

    async def grown() -> bool:
        async with WitnessTransaction(application.database.sessions) as tx:
            return await tx.records.cursor(TREE_TAIL) == head

    await eventually(grown, within=20, what="the tree catching up")
    return head


async def witness_round(application: Application, witness: Witness) -> str:
    """What the partner SDK does: fetch a checkpoint and the proof from what it saw last,
    check, cosign, hand the cosignature back."""
    log = witnessed(application)
    note = await log.checkpoint()
    head = witness.check(note)
    _, proof = await log.consistency(witness.last_size, head.size)
    cosigned = witness.observe(note, proof)
    return await log.add_cosignature(witness.signer.name, cosigned)


def sql(dsn: str, *statements: str) -> None:
    """As an operator with database rights: triggers off (they forbid exactly this)."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")
        for statement in statements:
            connection.execute(statement)


# Rebuilding the tree over the doctored records, as an attacker covering their tracks would.
REBUILD_TREE = (
    "DELETE FROM audit_tree_node",
    "DELETE FROM audit_checkpoint",
    "DELETE FROM audit_cosignature",
    "UPDATE audit_cursor SET sequence = 0 WHERE name = 'merkle'",
)


async def rebuilt(application: Application, size: int) -> None:
    """Restart the tree's tail (as a platform restart would) and wait for it to reach `size`."""
    tail = next(t for t in application.audit.tails if t.name == TREE_TAIL)
    await tail.close()
    tail.start()

    async def regrown() -> bool:
        async with WitnessTransaction(application.database.sessions) as tx:
            return await tx.records.cursor(TREE_TAIL) == size

    await eventually(regrown, within=20, what="the doctored tree")


async def test_two_partners_cosign_and_a_record_verifies_offline(
    platform: tuple[Application, str], witness_keys: dict[str, NoteSigner], tmp_path: Path
) -> None:
    application, _ = platform
    witnesses = [Witness(witness_keys[p], log_key(application)) for p in PARTNERS]
    await append(application, 40)
    for witness in witnesses:
        await witness_round(application, witness)
    await append(application, 25)
    for witness in witnesses:
        cosigned = await witness_round(application, witness)

    head = open_checkpoint(cosigned, log_key(application))
    assert head.size >= 65
    for key in witness_keys.values():
        assert cosignature_time(cosigned, NoteVerifier.parse(key.vkey)) > 0
    assert await witnessed(application).cosigned() == cosigned

    inclusion = await witnessed(application).inclusion(17, head.size)
    verifiers = [NoteVerifier.parse(k.vkey) for k in witness_keys.values()]
    verify_record(
        inclusion.record, head.size, inclusion.proof, cosigned, log_key(application), verifiers
    )
    proof_file = tmp_path / "record-17.bin"
    proof_file.write_bytes(
        audit_pb2.AuditInclusionProof(
            record=record_to_proto(inclusion.record),
            tree_size=head.size,
            inclusion_path=inclusion.proof,
            checkpoint=cosigned,
        ).SerializeToString()
    )
    args = ["verify", "--audit-record", str(proof_file), "--log-key", witnessed(application).vkey]
    for key in witness_keys.values():
        args += ["--witness", key.vkey]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "VALID audit record 17" in result.output

    forged = inclusion.record.entry.__class__(
        **{**inclusion.record.entry.__dict__, "purpose": "another purpose"}
    )
    with pytest.raises(ProofError):
        verify_record(
            inclusion.record.__class__(17, forged, inclusion.record.previous_hash, ""),
            head.size,
            inclusion.proof,
            cosigned,
            log_key(application),
            verifiers,
        )


async def test_deleting_the_newest_records_is_detected(
    platform: tuple[Application, str], witness_keys: dict[str, NoteSigner]
) -> None:
    application, dsn = platform
    witness = Witness(witness_keys[PARTNERS[0]], log_key(application))
    head = await append(application, 30)
    await witness_round(application, witness)

    sql(dsn, f"DELETE FROM audit_record WHERE sequence > {head - 5:d}", *REBUILD_TREE)  # noqa: S608
    await rebuilt(application, head - 5)
    with pytest.raises(ForkDetected, match="shrank"):
        await witness_round(application, witness)


async def test_rewriting_a_record_is_detected(
    platform: tuple[Application, str], witness_keys: dict[str, NoteSigner]
) -> None:
    application, dsn = platform
    witness = Witness(witness_keys[PARTNERS[0]], log_key(application))
    head = await append(application, 30)
    cosigned = await witness_round(application, witness)
    kept = await witnessed(application).inclusion(7, head)

    # Only the record: its proof from the untouched tree no longer leads to the root.
    sql(dsn, "UPDATE audit_record SET purpose = 'nothing to see' WHERE sequence = 7")
    rewritten = await witnessed(application).inclusion(7, head)
    assert rewritten.record.entry.purpose == "nothing to see"
    with pytest.raises(ProofError):
        verify_record(rewritten.record, head, kept.proof, cosigned, log_key(application), [])

    # And the tree rebuilt over it: same size, another root, which the witness refuses.
    sql(dsn, *REBUILD_TREE)
    await rebuilt(application, head)
    with pytest.raises(ForkDetected, match="forked"):
        await witness_round(application, witness)


async def test_forking_the_log_for_two_partners_is_detected(
    platform: tuple[Application, str], witness_keys: dict[str, NoteSigner]
) -> None:
    application, dsn = platform
    first, second = (Witness(witness_keys[p], log_key(application)) for p in PARTNERS)
    head = await append(application, 30)
    seen_by_first = await witness_round(application, first)

    # History rewritten under the first partner's feet, then grown; the second partner,
    # who never saw the old head, is shown only the new one.
    sql(dsn, "UPDATE audit_record SET principal = 'someone-else' WHERE sequence = 3", *REBUILD_TREE)
    await rebuilt(application, head)
    await append(application, 10)
    seen_by_second = await witness_round(application, second)

    with pytest.raises(ForkDetected, match="does not extend"):
        await witness_round(application, first)
    # Their two cosigned checkpoints cannot both be true: no proof joins them.
    old = open_checkpoint(seen_by_first, log_key(application))
    new = open_checkpoint(seen_by_second, log_key(application))
    assert (old.size, new.size) == (head, head + 10)
    _, proof = await witnessed(application).consistency(old.size, new.size)
    with pytest.raises(ProofError):
        verify_consistency(old.size, new.size, old.root, new.root, proof)


def test_checkpoint_key_comes_from_the_dev_pki(own_settings: Settings) -> None:
    vkey = checkpoint_settings(own_settings).signer.vkey
    assert vkey.startswith(f"{own_settings.audit.origin}+")
    assert NoteVerifier.parse(vkey).name == own_settings.audit.origin
