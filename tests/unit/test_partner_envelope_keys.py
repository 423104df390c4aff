"""The partner SDK verifies the platform's envelopes under its old RSA key and its new P-256
envelope key, so partners can trust both while the platform changes keys."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.exchange.envelope import EnvelopeSigner, Problem
from justice.exchange.message import inbox_subject
from justice.partner.client import PartnerClient, PartnerConfig
from justice.platform.bus import NatsCredentials
from justice.signing.identity import SigningIdentity
from justice.signing.keystore import FileKeyStore

PLATFORM = "justice-server"
PARTNER = "prosecutor-antwerp"


@pytest.fixture(scope="module")
def report_keys(pki: DevPki) -> FileKeyStore:
    return FileKeyStore(pki.signing_dir, PKI_PASSPHRASE)


@pytest.fixture(scope="module")
def envelope_keys(pki: DevPki) -> FileKeyStore:
    return FileKeyStore(pki.envelope_dir, PKI_PASSPHRASE)


def _client(platform: list[SigningIdentity], envelope_keys: FileKeyStore) -> PartnerClient:
    # Never connected: only the verification of pulled messages is exercised.
    signer = EnvelopeSigner(PARTNER, envelope_keys.identity(PARTNER).key)
    return PartnerClient(
        PartnerConfig(PARTNER, NatsCredentials("nats://unused")),
        NatsClient(),
        signer,
        [identity.certificate for identity in platform],
        [],
    )


def _pulled(signer: EnvelopeSigner) -> Msg:
    envelope = signer.seal(
        envelope_id=str(uuid.uuid4()),
        message_type="report_submitted",
        recipient=PARTNER,
        created_at=datetime.now(UTC),
        payload=b"<OfficialReport/>",
    )
    return Msg(
        NatsClient(),
        subject=inbox_subject(PARTNER, "report_submitted"),
        data=envelope.SerializeToString(),
    )


def test_the_platform_envelope_key_is_p256(envelope_keys: FileKeyStore) -> None:
    key = envelope_keys.identity(PLATFORM).key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)


def test_old_rsa_and_new_p256_envelopes_both_verify(
    report_keys: FileKeyStore, envelope_keys: FileKeyStore
) -> None:
    old, new = report_keys.identity(PLATFORM), envelope_keys.identity(PLATFORM)
    client = _client([new, old], envelope_keys)
    for identity in (old, new):
        received = client._check(_pulled(EnvelopeSigner(PLATFORM, identity.key)))
        assert received.problem == ""


def test_a_key_the_partner_was_not_given_is_refused(
    report_keys: FileKeyStore, envelope_keys: FileKeyStore
) -> None:
    client = _client([envelope_keys.identity(PLATFORM)], envelope_keys)
    # The platform's old RSA key, no longer trusted; and another party's P-256 key.
    for key in (report_keys.identity(PLATFORM).key, envelope_keys.identity("court-brussels").key):
        received = client._check(_pulled(EnvelopeSigner(PLATFORM, key)))
        assert received.problem == Problem.BAD_SIGNATURE.value


def test_p256_seals_several_times_faster_than_rsa(
    report_keys: FileKeyStore, envelope_keys: FileKeyStore
) -> None:
    # The reason for the change: the relay seals every message it publishes.
    def seconds_per_seal(signer: EnvelopeSigner) -> float:
        started = time.perf_counter()
        for _ in range(200):
            _pulled(signer)
        return (time.perf_counter() - started) / 200

    rsa = seconds_per_seal(EnvelopeSigner(PLATFORM, report_keys.identity(PLATFORM).key))
    p256 = seconds_per_seal(EnvelopeSigner(PLATFORM, envelope_keys.identity(PLATFORM).key))
    assert p256 < rsa / 2
