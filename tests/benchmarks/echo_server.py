"""The baseline for bench_security: a bare grpc.aio server over mTLS that answers every
unary call on /bench.Echo/Echo with a fixed reply of a given size. Run as its own process:

    python -m tests.benchmarks.echo_server PKI_DIR PORT REPLY_BYTES [PROCESSES]

With PROCESSES > 1 that many processes share the port (SO_REUSEPORT), the baseline of
`justice serve --workers N`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from pathlib import Path
from typing import Any

import grpc

METHOD = "/bench.Echo/Echo"


def _raw(data: bytes) -> bytes:
    return data


async def serve(pki_dir: Path, port: int, reply_bytes: int, reuse_port: bool = False) -> None:
    reply = b"r" * reply_bytes

    async def echo(request: bytes, context: Any) -> bytes:
        return reply

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo, _raw, _raw)}
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if reuse_port else 0)])
    server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials(
        [((pki_dir / "server.key").read_bytes(), (pki_dir / "server.pem").read_bytes())],
        root_certificates=(pki_dir / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    server.add_secure_port(f"127.0.0.1:{port}", credentials)
    await server.start()
    await server.wait_for_termination()


def _serve_one(pki_dir: Path, port: int, reply_bytes: int, reuse_port: bool) -> None:
    asyncio.run(serve(pki_dir, port, reply_bytes, reuse_port))


if __name__ == "__main__":
    arguments = (Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    processes = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    if processes == 1:
        _serve_one(*arguments, False)
    else:
        spawn = multiprocessing.get_context("spawn")
        children = [
            spawn.Process(target=_serve_one, args=(*arguments, True)) for _ in range(processes)
        ]
        for child in children:
            child.start()
        for child in children:
            child.join()
