"""The witnessed audit log over gRPC: two partners run the SDK's witness round (checkpoint,
consistency proof, cosignature), an auditor takes an inclusion proof away and verifies it
offline against the cosigned checkpoint; who may do what, and bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from justice.app import checkpoint_settings
from justice.audit.checkpoints import NoteSigner, NoteVerifier, cosignature_time
from justice.audit.messages import record_from_proto
from justice.audit.v1 import audit_pb2 as pb
from justice.audit.v1 import audit_pb2_grpc
from justice.audit.witness import verify_record
from justice.partner.witness import Witness, witness_once
from justice.platform.config import Settings
from tests.api.conftest import ChannelFactory
from tests.api.rich_status import rich_error

PARTNERS = ("prosecutor-antwerp", "court-brussels")
Stub = audit_pb2_grpc.AuditServiceStub


@pytest.fixture(scope="module")
def witness_keys() -> dict[str, NoteSigner]:
    return {p: NoteSigner(p, Ed25519PrivateKey.generate(), witness=True) for p in PARTNERS}


@pytest.fixture(scope="module")
def settings(settings: Settings, witness_keys: dict[str, NoteSigner]) -> Settings:
    return settings.updated(audit={"witnesses": [k.vkey for k in witness_keys.values()]})


@pytest.fixture(scope="module")
async def stubs(grpc_create_channel: ChannelFactory) -> AsyncIterator[dict[str, Stub]]:
    channels = {p: grpc_create_channel(principal=p) for p in (*PARTNERS, "auditor-4001")}
    yield {p: audit_pb2_grpc.AuditServiceStub(c) for p, c in channels.items()}
    for channel in channels.values():
        await channel.close()


async def test_partners_cosign_and_an_auditor_verifies_a_record_offline(
    stubs: dict[str, Stub], witness_keys: dict[str, NoteSigner], settings: Settings
) -> None:
    auditor = stubs["auditor-4001"]
    log_key = NoteVerifier.parse(checkpoint_settings(settings).signer.vkey)
    witnesses = {p: Witness(witness_keys[p], log_key) for p in PARTNERS}
    for _ in range(2):
        await auditor.VerifyAuditChain(pb.VerifyAuditChainRequest())  # the log grows
        await auditor.GetAuditCheckpoint(pb.GetAuditCheckpointRequest(fresh=True))
        for partner in PARTNERS:
            await witness_once(stubs[partner], witnesses[partner])

    cosigned = await auditor.GetCosignedAuditCheckpoint(pb.GetCosignedAuditCheckpointRequest())
    verifiers = [NoteVerifier.parse(k.vkey) for k in witness_keys.values()]
    for verifier in verifiers:
        assert cosignature_time(cosigned.note, verifier) > 0
    proof = await auditor.GetAuditInclusionProof(pb.GetAuditInclusionProofRequest(sequence=1))
    assert proof.checkpoint == cosigned.note
    verify_record(
        record_from_proto(proof.record),
        proof.tree_size,
        list(proof.inclusion_path),
        proof.checkpoint,
        log_key,
        verifiers,
    )


async def test_who_may_witness_and_bad_input(
    stubs: dict[str, Stub], grpc_create_channel: ChannelFactory
) -> None:
    officer = audit_pb2_grpc.AuditServiceStub(grpc_create_channel(principal="officer-1001"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await officer.GetAuditCheckpoint(pb.GetAuditCheckpointRequest())
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs["auditor-4001"].AddAuditCosignature(pb.AddAuditCosignatureRequest(note="x"))
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs[PARTNERS[0]].AddAuditCosignature(
            pb.AddAuditCosignatureRequest(note="not a note")
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "checkpoint" in rich_error(error.value).fields
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs[PARTNERS[0]].GetAuditConsistencyProof(
            pb.GetAuditConsistencyProofRequest(first_tree_size=10**12)
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
