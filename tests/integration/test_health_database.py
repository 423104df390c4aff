"""Readiness follows the database: NOT_SERVING while PostgreSQL is unreachable, SERVING once
it answers again. The test cuts its own TCP path to PostgreSQL (the shared server stays up)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from justice.devstack.testing import POSTGRES_HOST, POSTGRES_PORT
from justice.monitoring import dependency_probes
from justice.platform.db import Database
from justice.platform.health import DependencyHealth
from justice.platform.server import LIVENESS, create_health_server, serve_health
from tests.eventually import eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Cable:
    """A TCP forwarder to PostgreSQL on a fixed local port, which the test can pull out."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def plug(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def unplug(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(POSTGRES_HOST, POSTGRES_PORT)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.fixture
async def cable(postgres_url: str) -> AsyncIterator[Cable]:
    cable = Cable()
    await cable.plug()
    yield cable
    with contextlib.suppress(Exception):
        await cable.unplug()


async def test_readiness_follows_the_database_away_and_back(
    cable: Cable, postgres_url: str
) -> None:
    url = postgres_url.replace(f":{POSTGRES_PORT}/", f":{cable.port}/")
    database = Database(url)
    health = HealthServicer()
    probes = create_health_server("127.0.0.1:0", health)
    following = DependencyHealth(probes, dependency_probes(database, None), every=0.1, timeout=1)
    tasks = [asyncio.create_task(serve_health(probes)), asyncio.create_task(following.run())]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{probes.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            async def status(service: str = "") -> int:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=service))
                return answer.status

            async def becomes(expected: int) -> bool:
                return await status() == expected

            await eventually(lambda: becomes(SERVING), what="SERVING with PostgreSQL up")
            await cable.unplug()
            await eventually(lambda: becomes(NOT_SERVING), what="NOT_SERVING with it cut off")
            assert following.down == frozenset({"database"})
            assert await status(LIVENESS) == SERVING
            await cable.plug()
            await eventually(lambda: becomes(SERVING), what="SERVING once it answers again")
            assert following.down == frozenset()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await database.close()
