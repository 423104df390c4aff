"""A byte stream on its way into S3 parts: a bounded window of reusable part buffers.

Part n covers bytes [(n-1)*size, n*size) of the upload. Incoming chunks are copied once
into a part buffer; a full buffer is hashed (in order, on a worker thread: hashlib releases
the GIL) and uploaded (on the blob store's threads) while the next one fills. There are
`in_flight` buffers: that many parts travel at once at most (the one filling counts), so
memory is in_flight * size whatever the file size.

A part is done when it is both uploaded and hashed. The committed offset only moves over a
contiguous prefix of done parts, and the running hash handed to `commit` is the one at that
offset, so a cut stream resumes exactly there.

The buffers are anonymous mmaps, not heap objects: their pages are faulted in once, reused
for every part, and given back to the OS when the stream ends, so the allocator does not
keep freed parts resident.
"""

from __future__ import annotations

import asyncio
import mmap
from collections.abc import Awaitable, Callable
from typing import Protocol, Self

from justice.evidence.model import Part


class Hasher(Protocol):
    def update(self, data: memoryview, /) -> None: ...
    def copy(self) -> Self: ...
    def hexdigest(self) -> str: ...


# Upload one part: (number, bytes) -> etag.
UploadPart = Callable[[int, memoryview], Awaitable[str]]
# Make parts durable, in order: the new parts and the running hash after the last of them.
CommitParts = Callable[[list[Part], Hasher], Awaitable[None]]


class PartWindow:
    def __init__(
        self,
        *,
        part_bytes: int,
        in_flight: int,
        first_number: int,
        hasher: Hasher,
        upload: UploadPart,
        commit: CommitParts,
    ) -> None:
        self._size = part_bytes
        self._upload = upload
        self._commit = commit
        self._hasher = hasher
        self._next = first_number
        self._committed = first_number - 1
        # Every buffer, the filling one included.
        self._slots = asyncio.Semaphore(in_flight)
        self._spare: list[mmap.mmap] = []
        self._buffer: mmap.mmap | None = None
        self._filled = 0
        self._hash_tail: asyncio.Future[Hasher] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._done: dict[int, tuple[Part, Hasher]] = {}
        self._commit_lock = asyncio.Lock()
        self._failure: BaseException | None = None

    async def write(self, chunk: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        view = memoryview(chunk)
        while view:
            if self._buffer is None:
                self._buffer = await self._take()
            n = min(len(view), self._size - self._filled)
            self._buffer[self._filled : self._filled + n] = view[:n]
            self._filled += n
            view = view[n:]
            if self._filled == self._size:
                self._send()

    async def close(self) -> None:
        """Send the last (short) part and wait until every part is committed."""
        if self._filled:
            self._send()
        elif self._buffer is not None:
            self._give_back(self._buffer)
            self._buffer = None
        await self.settle()
        if self._failure is not None:
            raise self._failure

    async def settle(self) -> None:
        """Wait for the parts in flight to finish (and commit if they can); never raises.

        After a cut the caller's task may be cancelled again; the parts still finish and
        commit in their own tasks, and the cancellation is passed on once they have.
        """
        cancelled = False
        while self._tasks:
            waiter = asyncio.gather(*self._tasks, return_exceptions=True)
            try:
                await asyncio.shield(waiter)
            except asyncio.CancelledError:
                cancelled = True
        if self._buffer is not None:
            self._give_back(self._buffer)
            self._buffer = None
        self._spare.clear()
        if cancelled:
            raise asyncio.CancelledError

    async def _take(self) -> mmap.mmap:
        if self._failure is not None:
            raise self._failure
        await self._slots.acquire()
        if self._failure is not None:
            self._slots.release()
            raise self._failure
        if self._spare:
            return self._spare.pop()
        return mmap.mmap(-1, self._size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)

    def _give_back(self, buffer: mmap.mmap) -> None:
        self._spare.append(buffer)
        self._slots.release()

    def _send(self) -> None:
        assert self._buffer is not None
        buffer, length = self._buffer, self._filled
        self._buffer, self._filled = None, 0
        number = self._next
        self._next += 1
        view = memoryview(buffer)[:length]
        hashed = asyncio.ensure_future(self._hash_after(self._hash_tail, view))
        self._hash_tail = hashed
        task = asyncio.create_task(self._part(number, buffer, view, hashed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hash_after(
        self, previous: asyncio.Future[Hasher] | None, view: memoryview
    ) -> Hasher:
        if previous is not None:
            await previous
        return await asyncio.to_thread(self._step, view)

    def _step(self, view: memoryview) -> Hasher:
        self._hasher.update(view)
        return self._hasher.copy()

    async def _part(
        self, number: int, buffer: mmap.mmap, view: memoryview, hashed: asyncio.Future[Hasher]
    ) -> None:
        uploaded = asyncio.ensure_future(self._upload(number, view))
        # Both read the buffer: it is reused only once neither does any more.
        results = await asyncio.gather(hashed, uploaded, return_exceptions=True)
        length = len(view)
        try:
            view.release()
        except BufferError:
            # Something still points into it: never reuse it, let it go with its last user.
            self._slots.release()
        else:
            self._give_back(buffer)
        snapshot, etag = results
        if isinstance(snapshot, BaseException) or isinstance(etag, BaseException):
            self._failure = self._failure or next(
                r for r in results if isinstance(r, BaseException)
            )
            return
        self._done[number] = (Part(number, etag, length), snapshot)
        await self._commit_ready()

    async def _commit_ready(self) -> None:
        async with self._commit_lock:
            ready: list[Part] = []
            snapshot: Hasher | None = None
            while self._committed + 1 in self._done:
                part, snapshot = self._done.pop(self._committed + 1)
                ready.append(part)
                self._committed += 1
            if snapshot is None:
                return
            try:
                await self._commit(ready, snapshot)
            except Exception as error:
                self._failure = self._failure or error
