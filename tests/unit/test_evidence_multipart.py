"""The part window: whole parts in order, a bounded number in flight, a prefix committed."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from justice.evidence.model import Part
from justice.evidence.multipart import Hasher, PartWindow

PART = 64 * 1024


class _S3:
    def __init__(self, fail_at: int = 0) -> None:
        self.parts: dict[int, bytes] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_at = fail_at

    async def upload(self, number: int, data: memoryview) -> str:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            # Later parts finish first: commits must still go in order.
            await asyncio.sleep(0.01 * (4 - number % 4))
            if number == self.fail_at:
                raise ConnectionError("S3 went away")
            self.parts[number] = bytes(data)
            return f"etag-{number}"
        finally:
            self.in_flight -= 1


class _Log:
    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.hashes: list[str] = []

    async def commit(self, parts: list[Part], hasher: Hasher) -> None:
        self.parts += parts
        self.hashes.append(hasher.hexdigest())


async def _write(window: PartWindow, data: bytes, chunk: int = 10_000) -> None:
    for start in range(0, len(data), chunk):
        await window.write(data[start : start + chunk])
    await window.close()


async def test_parts_are_whole_ordered_bounded_and_hashed() -> None:
    data = bytes(range(256)) * (PART * 9 // 256) + b"tail"
    s3, log = _S3(), _Log()
    window = PartWindow(
        part_bytes=PART,
        in_flight=3,
        first_number=1,
        hasher=hashlib.sha256(),
        upload=s3.upload,
        commit=log.commit,
    )
    await _write(window, data)
    assert s3.most_in_flight <= 3
    assert [p.number for p in log.parts] == list(range(1, 11))
    assert [p.size for p in log.parts] == [PART] * 9 + [4]
    assert b"".join(s3.parts[n] for n in sorted(s3.parts)) == data
    assert log.hashes[-1] == hashlib.sha256(data).hexdigest()


async def test_a_failed_part_stops_the_stream_and_commits_only_the_prefix() -> None:
    s3, log = _S3(fail_at=3), _Log()
    window = PartWindow(
        part_bytes=PART,
        in_flight=2,
        first_number=1,
        hasher=hashlib.sha256(),
        upload=s3.upload,
        commit=log.commit,
    )
    with pytest.raises(ConnectionError):
        await _write(window, b"x" * PART * 8)
    await window.settle()
    assert [p.number for p in log.parts] == [1, 2]
    assert log.hashes[-1] == hashlib.sha256(b"x" * PART * 2).hexdigest()
