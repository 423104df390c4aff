"""The baseline for bench_security: a bare grpc.aio server over mTLS that answers every
unary call on /bench.Echo/Echo with a fixed reply of a given size. Run as its own process:

    python -m tests.benchmarks.echo_server PKI_DIR PORT REPLY_BYTES
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc

METHOD = "/bench.Echo/Echo"


def _raw(data: bytes) -> bytes:
    return data


async def serve(pki_dir: Path, port: int, reply_bytes: int) -> None:
    reply = b"r" * reply_bytes

    async def echo(request: bytes, context: Any) -> bytes:
        return reply

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo, _raw, _raw)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials(
        [((pki_dir / "server.key").read_bytes(), (pki_dir / "server.pem").read_bytes())],
        root_certificates=(pki_dir / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    server.add_secure_port(f"127.0.0.1:{port}", credentials)
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
