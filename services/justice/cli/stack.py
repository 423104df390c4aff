"""`justice run` and `justice serve`: the dev stack and every service, in the foreground."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import Callable, Collection
from multiprocessing.connection import Connection, wait
from types import FrameType

from rich.console import Console
from rich.table import Table

from justice.app import Worker, build
from justice.devstack.demo import register_demo_partners
from justice.devstack.stack import DevStack
from justice.platform.config import Settings
from justice.platform.logs import configure_logging
from justice.platform.metrics import shared_across_workers
from justice.platform.server import limit_malloc_arenas, serve
from justice.platform.tracing import configure_tracing


async def serve_only(
    settings: Settings,
    worker: Worker | None = None,
    started: Callable[[int], None] | None = None,
    services: Collection[str] | None = None,
) -> None:
    """Build every service (or those named) on the configured adapters and serve until
    SIGTERM or Ctrl-C."""
    limit_malloc_arenas()
    application = await build(settings, worker=worker, services=services)
    try:
        await serve(
            application.server,
            settings.shutdown_grace_seconds,
            settle=settings.shutdown_settle_seconds,
            started=started,
        )
    finally:
        await application.close()


def serve_workers(settings: Settings, workers: int, services: Collection[str] | None = None) -> int:
    """`justice serve --workers N`: N processes on one port (SO_REUSEPORT), so every core
    serves; the GIL holds one process to about one core. Returns the exit code.

    The first worker migrates the database, enrols the dev principals and stands for
    leadership of the singleton background work (justice.app.Worker); the others start once
    it serves, on the port it bound (so port 0 works). SIGTERM or SIGINT drains them all;
    when one worker ends, the rest are stopped too, so a supervisor restarts the whole set.

    The workers' metrics meet in a directory of this run (justice.platform.metrics), so the
    first worker's endpoint counts every worker's calls.
    """
    with shared_across_workers():
        return _serve_workers(settings, workers, services)


def _serve_workers(settings: Settings, workers: int, services: Collection[str] | None) -> int:
    spawn = multiprocessing.get_context("spawn")
    processes: list[multiprocessing.process.BaseProcess] = []

    def stop(_signal: int = 0, _frame: FrameType | None = None) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker drains its calls

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    receive, send = spawn.Pipe(duplex=False)
    first = spawn.Process(
        target=_worker, args=(settings, True, send, services), name="justice-worker-0"
    )
    processes.append(first)
    first.start()
    send.close()
    wait([receive, first.sentinel])
    try:
        port = receive.recv() if receive.poll() else None
    except EOFError:  # it ended before serving
        port = None
    if port is None:
        stop()
        first.join()
        return first.exitcode or 1
    host = settings.listen.rpartition(":")[0]
    shared = settings.model_copy(update={"listen": f"{host}:{port}"})
    for index in range(1, workers):
        process = spawn.Process(
            target=_worker, args=(shared, False, None, services), name=f"justice-worker-{index}"
        )
        processes.append(process)
        process.start()
    wait([p.sentinel for p in processes])
    stop()
    for ended in processes:
        ended.join()
    return max(abs(p.exitcode or 0) for p in processes)


def _worker(
    settings: Settings,
    singletons: bool,
    started: Connection | None,
    services: Collection[str] | None,
) -> None:
    configure_logging(settings.log_format)
    configure_tracing(settings.otlp_endpoint, "justice")
    send = started.send if started else None
    asyncio.run(serve_only(settings, Worker(singletons), send, services))


async def run_stack(settings: Settings, console: Console) -> None:
    limit_malloc_arenas()
    stack = DevStack(settings, nats_port=settings.dev_nats_port, s3_port=settings.dev_s3_port)
    with console.status("starting PKI, nats-server and SeaweedFS"):
        effective = await asyncio.to_thread(stack.start)
    try:
        application = await build(effective)
        try:
            exchange = application.exchange.service
            await register_demo_partners(exchange, stack.pki)
            # Every registered partner, demo or not, gets its NATS user.
            partners = [p.id for p in await exchange.list_partners(10_000, "")]
            stack.allow_partners(partners)
            _show(effective, application.server.port, stack, partners, console)
            await serve(application.server, effective.shutdown_grace_seconds)
        finally:
            await application.close()
    finally:
        console.print("stopping nats-server and SeaweedFS")
        await asyncio.to_thread(stack.stop)


def _show(
    settings: Settings, port: int, stack: DevStack, partners: list[str], console: Console
) -> None:
    pki = stack.pki
    table = Table("part", "where", title="Justice Exchange (embedded defaults)")
    table.add_row("gRPC (mTLS, every service)", f"localhost:{port}")
    table.add_row("NATS JetStream", stack.nats.url)
    table.add_row("S3 (SeaweedFS)", f"http://{stack.s3.endpoint}")
    table.add_row("database", settings.resolved_database_url().split("///")[-1])
    table.add_row("PKI (CA, certificates, keys)", str(pki.root))
    table.add_row("exchange partners", ", ".join(partners))
    table.add_row("state", str(settings.state_dir))
    console.print(table)
    cert, key = pki.client_paths("officer-1001")
    console.print(
        "Try it:\n"
        f"  grpcurl -cacert {pki.ca_path} -cert {cert} -key {key} localhost:{port} list\n"
        "  .venv/bin/justice demo --out demo-output\n"
        f"  .venv/bin/justice partner listen --partner {settings.reports.default_prosecutor}"
        " --simulate-prosecutor\n"
        "Ctrl-C stops everything; data stays in the state dir."
    )
