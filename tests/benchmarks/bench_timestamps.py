"""What XAdES B-LT costs per signature: XadesSigner with the in-process TSA and the CRL, against
plain B-B signing of the same document with the same key in the same run."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from justice.devstack.pki import DevPki
from justice.signing import FileKeyStore, SigningIdentity, XadesSigner, XadesVerifier
from justice.signing.revocation import FileRevocationSource
from tests.benchmarks.figures import Figure
from tests.signing_env import PASSPHRASE, dev_tsa, report

SIGNATURES = 300


def _rate(signer: XadesSigner, identity: SigningIdentity) -> float:
    document = report()
    for _ in range(20):  # warm-up: chain material cache, CRL file read
        signer.sign(document, identity)
    started = time.perf_counter()
    for _ in range(SIGNATURES):
        signer.sign(document, identity)
    return SIGNATURES / (time.perf_counter() - started)


def main() -> list[Figure]:
    with tempfile.TemporaryDirectory() as state:
        pki = DevPki(Path(state), PASSPHRASE)
        pki.ensure()
        identity = FileKeyStore(pki.signing_dir, PASSPHRASE).identity("officer-1001")
        long_term = XadesSigner(
            timestamper=dev_tsa(pki), revocation=FileRevocationSource(pki.crl_path)
        )
        basic = _rate(XadesSigner(), identity)
        timestamped = _rate(long_term, identity)
        verifier = XadesVerifier([pki.ca_certificate()])
        signed = long_term.sign(report(), identity)
        basic_signed = XadesSigner().sign(report(), identity)
        verify_basic = _verify_rate(verifier, basic_signed)
        verify_long_term = _verify_rate(verifier, signed)
    return [
        Figure("XAdES B-LT sign (in-process TSA, CRL)", timestamped, "signs/s", "B-B", basic),
        Figure("XAdES B-LT verify", verify_long_term, "verifies/s", "B-B", verify_basic),
    ]


def _verify_rate(verifier: XadesVerifier, signed: bytes) -> float:
    started = time.perf_counter()
    for _ in range(SIGNATURES):
        assert verifier.verify(signed).trusted
    return SIGNATURES / (time.perf_counter() - started)
