"""XAdES signatures made in signing processes (signing/keyed.py, platform/processes.py): the
signature is the process's, its refusals reach the caller as the thread's do, and a killed
signing process costs the call it was making, and none after it."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from justice.devstack.pki import DevPki
from justice.platform.errors import FailedPrecondition, Unavailable
from justice.platform.processes import WorkerProcesses
from justice.signing import FileKeyStore, XadesSigner, XadesVerifier
from justice.signing.keyed import KeyStoreSigner, signing_processes
from justice.signing.keystore import KeyStore
from justice.signing.revocation import FileRevocationSource
from tests.signing_env import PASSPHRASE, dev_tsa, report


def _start(pki_dir: Path) -> tuple[KeyStore, XadesSigner]:
    """A signing process's start: the dev PKI's keys and a B-LT signer (module level, so the
    spawn start method can pickle it)."""
    pki = DevPki(pki_dir, PASSPHRASE)
    signer = XadesSigner(timestamper=dev_tsa(pki), revocation=FileRevocationSource(pki.crl_path))
    return FileKeyStore(pki.signing_dir, PASSPHRASE), signer


def _pid() -> int:
    return os.getpid()


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


class _Unrebuildable(Exception):
    """Pickles in the worker, but cannot be unpickled (its __init__ wants two arguments)."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(first)


def _raise_unrebuildable() -> None:
    raise _Unrebuildable("a", "b")


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value


def _wait_gone(pid: int) -> None:
    """Until the killed process is no longer running (a zombie until its parent reaps it)."""
    while Path(f"/proc/{pid}/stat").exists():
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return
        time.sleep(0.01)


@pytest.fixture(scope="module")
async def processes(module_pki: DevPki) -> AsyncIterator[WorkerProcesses]:
    started = signing_processes(1, functools.partial(_start, module_pki.root))
    yield started
    await started.close()


def _signer(processes: WorkerProcesses, tmp_path: Path) -> KeyStoreSigner:
    # This process's own store is empty: a signature can only come from a signing process.
    empty = FileKeyStore(tmp_path / "no-keys", PASSPHRASE)
    return KeyStoreSigner(empty, XadesSigner(), processes=processes)


async def test_the_signing_process_signs_with_its_own_keys(
    processes: WorkerProcesses, module_pki: DevPki, tmp_path: Path
) -> None:
    signed = await _signer(processes, tmp_path).sign(report(), "officer-1001")
    verdict = XadesVerifier([module_pki.ca_certificate()]).verify(signed)
    assert verdict.trusted, verdict
    assert verdict.signer_id == "officer-1001"
    assert verdict.level == "B-LT"
    assert await processes.run(_pid) != os.getpid()


async def test_its_refusals_are_the_callers_status(
    processes: WorkerProcesses, tmp_path: Path
) -> None:
    signer = _signer(processes, tmp_path)
    with pytest.raises(FailedPrecondition) as unknown:
        await signer.sign(report(), "officer-9999")
    assert unknown.value.reason == "NO_SIGNING_KEY"
    with pytest.raises(FailedPrecondition) as hostile:
        await signer.sign(b'<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>', "officer-1001")
    assert hostile.value.reason == "NOT_SIGNABLE"


async def test_a_killed_signing_process_fails_its_call_and_is_replaced(
    module_pki: DevPki, tmp_path: Path
) -> None:
    own = signing_processes(1, functools.partial(_start, module_pki.root))
    try:
        signer = _signer(own, tmp_path)
        await signer.sign(report(), "officer-1001")
        victim = await own.run(_pid)
        running = asyncio.create_task(own.run(_pid_after, 30.0))
        await asyncio.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(Unavailable) as lost:
            await asyncio.wait_for(running, 10)
        assert lost.value.reason == "WORKER_PROCESS_LOST"
        assert await own.run(_pid) != victim
        assert await signer.sign(report(), "officer-1001")
    finally:
        await own.close()


async def test_a_process_that_died_idle_costs_no_call(module_pki: DevPki, tmp_path: Path) -> None:
    own = signing_processes(1, functools.partial(_start, module_pki.root))
    try:
        victim = await own.run(_pid)
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(_wait_gone, victim)
        assert await _signer(own, tmp_path).sign(report(), "officer-1001")
        assert await own.run(_pid) != victim
    finally:
        await own.close()


async def test_calls_from_the_start_each_get_their_own_answer() -> None:
    """Fifty calls at once on processes not yet connected to the event loop, spread over two."""
    own = WorkerProcesses(2)
    try:
        calls = asyncio.gather(*(own.run(_pid_and, n) for n in range(50)))
        answers = await asyncio.wait_for(calls, 60)  # a split stream would leave some waiting
        assert [n for _, n in answers] == list(range(50))
        assert len({pid for pid, _ in answers}) == 2
    finally:
        await own.close()


async def test_an_answer_that_cannot_be_read_fails_its_call_only(
    processes: WorkerProcesses,
) -> None:
    before = await processes.run(_pid)
    with pytest.raises(TypeError):  # bounded: a reader that died would leave it waiting
        await asyncio.wait_for(processes.run(_raise_unrebuildable), 30)
    assert await processes.run(_pid) == before  # same process, still in step
