"""FileKeyStore and SigningIdentity."""

from __future__ import annotations

import time

import pytest

from justice.devstack.pki import DevPki
from justice.signing import FileKeyStore, KeyStore, KeyStoreError, SigningIdentity, UnknownSigner

PASSPHRASE = b"keystore-passphrase"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    dev = DevPki(tmp_path_factory.mktemp("pki"), PASSPHRASE)
    dev.ensure()
    return dev


def test_loads_devpki_identity_with_chain(pki: DevPki) -> None:
    store: KeyStore = FileKeyStore(pki.signing_dir, PASSPHRASE)
    identity = store.identity("officer-1002")
    assert identity.signer_id == "officer-1002"
    assert len(identity.chain) == 2
    assert identity.chain[1] == pki.ca_certificate()
    assert "key=" not in repr(identity)


def test_key_is_decrypted_once_and_cached(pki: DevPki) -> None:
    store = FileKeyStore(pki.signing_dir, PASSPHRASE)
    started = time.perf_counter()
    first = store.identity("prosecutor-antwerp")
    cold = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(100):
        again = store.identity("prosecutor-antwerp")
    warm = (time.perf_counter() - started) / 100
    assert again is first
    assert warm < cold / 10


@pytest.mark.parametrize("signer_id", ["nobody", "../ca", "officer-1001/../ca", "", "a" * 200])
def test_unknown_or_malformed_ids_raise_unknown_signer(pki: DevPki, signer_id: str) -> None:
    with pytest.raises(UnknownSigner):
        FileKeyStore(pki.signing_dir, PASSPHRASE).identity(signer_id)


def test_wrong_passphrase_is_a_keystore_error(pki: DevPki) -> None:
    with pytest.raises(KeyStoreError):
        FileKeyStore(pki.signing_dir, b"wrong").identity("court-brussels")


def test_identity_rejects_key_certificate_mismatch(pki: DevPki) -> None:
    store = FileKeyStore(pki.signing_dir, PASSPHRASE)
    a, b = store.identity("officer-1001"), store.identity("officer-1002")
    with pytest.raises(ValueError, match="does not match the leaf certificate"):
        SigningIdentity(key=a.key, chain=b.chain)
