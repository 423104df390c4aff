"""An in-process grpc.aio server without TLS, for client-side tests that script the server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import grpc


@asynccontextmanager
async def plain_server(mount: Callable[[grpc.aio.Server], None]) -> AsyncIterator[str]:
    """Serve what `mount` adds on a free loopback port; yields the address."""
    server = grpc.aio.server()
    mount(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
