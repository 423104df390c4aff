"""Building a grpc.aio server (create_server) apart from blocking on it (serve)."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from justice.platform.rpc import Around, AroundInterceptor

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Mount:
    """One servicer to register: its full service name and how to add it."""

    service_name: str
    add: Callable[[grpc.aio.Server], None]

    @classmethod
    def of(
        cls,
        service: ServiceDescriptor,
        add: Callable[[T, grpc.aio.Server], None],
        servicer: T,
    ) -> Mount:
        """A generated `add_<Service>Servicer_to_server` with its servicer."""
        return cls(service.full_name, lambda server: add(servicer, server))


@dataclass(frozen=True)
class ServerTls:
    cert: Path
    key: Path
    client_ca: Path
    require_client_cert: bool = True

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=self.client_ca.read_bytes(),
            require_client_auth=self.require_client_cert,
        )


@dataclass(frozen=True)
class ServerSettings:
    listen: str
    tls: ServerTls
    max_message_bytes: int = 8 * 1024 * 1024
    shutdown_grace_seconds: float = 10.0
    # Several processes serve one port (`justice serve --workers N`); the kernel spreads
    # the connections over them. Off otherwise, so a port already taken is an error.
    reuse_port: bool = False


@dataclass
class ServerDeps:
    mounts: Sequence[Mount]
    # Outermost first: error mapping, then identity, authorisation, audit.
    around: Sequence[Around] = ()
    health: HealthServicer = field(default_factory=HealthServicer)


@dataclass(frozen=True)
class BoundServer:
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    service_names: tuple[str, ...]


# How far a client may stream ahead of the server on one call (HTTP/2 flow control).
STREAM_WINDOW_BYTES = 4 * 1024 * 1024


class GenericOnly:
    """The server as generated `add_<Service>Servicer_to_server` code sees it: each
    service's generic handler is added, its registered method handlers are not.

    grpc.aio keeps a call requested for every registered method and, after each call it
    takes, waits again on all of those requests: with the platform's ~85 methods, an
    asyncio.wait over 86 tasks per RPC, ~10 % of a GetReport's CPU. The generic handlers
    serve the same methods by a dictionary lookup."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(
        self, handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        """Left out: the generic handler added with them serves these methods."""


def create_server(settings: ServerSettings, deps: ServerDeps) -> BoundServer:
    """Build a TLS server carrying the mounts, health, reflection and interceptors.

    It binds the port (0 picks a free one) but does not start.
    """
    server = grpc.aio.server(
        interceptors=[AroundInterceptor(deps.around)],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
            # A fixed receive window per stream instead of one grown by BDP probing: on a
            # fast link the probe let an uploading client run far ahead of S3, and the
            # server held what it had sent (peak RSS growth over a 1 GiB upload 55-98 MiB;
            # with this window 57 MiB, at the same speed). 4 MiB still carries ~130 MB/s
            # per stream at 30 ms round trip.
            ("grpc.http2.bdp_probe", 0),
            ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
        ],
    )
    handlers: Any = GenericOnly(server)
    for mount in deps.mounts:
        mount.add(handlers)
    health_pb2_grpc.add_HealthServicer_to_server(deps.health, handlers)
    names = tuple(m.service_name for m in deps.mounts)
    # The asyncio servicer named here: enable_server_reflection picks it only when handed
    # the grpc.aio.Server itself.
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(  # type: ignore[attr-defined]  # in its __all__
            (
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            )
        ),
        handlers,
    )
    port = server.add_secure_port(settings.listen, settings.tls.credentials())
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    return BoundServer(server, port, deps.health, names)


# The health service name a liveness probe asks: SERVING while the process runs (until it
# drains), whatever its dependencies, so a database outage does not restart every pod.
LIVENESS = "liveness"


def create_health_server(listen: str, health: HealthServicer) -> BoundServer:
    """Only `health`, without TLS, bound on `listen` (Kubernetes' native gRPC probes cannot
    do mTLS). Readiness asks service "" (follows the dependencies), liveness LIVENESS."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return BoundServer(server, port, health, ())


async def serve_health(bound: BoundServer) -> None:
    """Run the health-only server until cancelled."""
    await bound.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    await bound.server.start()
    try:
        await bound.server.wait_for_termination()
    finally:
        await bound.server.stop(None)


# mallopt parameter number of M_ARENA_MAX in glibc's malloc.h.
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Call once at process start, before threads allocate.

    glibc gives threads their own malloc arenas (up to 8 per core) and keeps freed blocks
    in them. The buffers gRPC's threads and the S3 workers allocate while an upload streams
    then pile up as resident memory across many arenas and grow from upload to upload
    (measured: 72, 76, 100 MiB over three 1 GiB uploads; with two arenas 65, 54, 38).
    Not glibc: nothing to do.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, arenas)


def freeze_heap() -> None:
    """Call once start-up has built its objects, before serving: they go to the permanent
    generation (gc.freeze), so the collector's full passes no longer walk the modules,
    SQLAlchemy's metadata and protobuf's descriptors each time. Measured on the exchange
    benchmark: full passes of 117-178 ms (five in a run, the receipt p99 at 100/s between
    28 and 137 ms from run to run), 9-13 ms once frozen."""
    gc.collect()
    gc.freeze()


async def start(bound: BoundServer) -> None:
    await bound.server.start()
    for name in ("", *bound.service_names):
        await bound.health.set(name, health_pb2.HealthCheckResponse.SERVING)


async def drain(bound: BoundServer, grace: float, settle: float = 0.0) -> None:
    """Say NOT_SERVING, keep serving for `settle` seconds, then stop taking calls and let
    the ones in flight finish within `grace`.

    The settle time matters under load: calls that reached the server but were not yet
    picked up by the event loop are cancelled by gRPC's shutdown (measured: 26 of 40
    concurrent SubmitReports CANCELLED 7 ms after SIGTERM without it, none with 1 s), and
    load balancers learn of NOT_SERVING, or Kubernetes of the pod's end, only after a while.
    """
    await bound.health.enter_graceful_shutdown()
    if settle > 0:
        await asyncio.sleep(settle)
    await bound.server.stop(grace)


async def serve(
    bound: BoundServer,
    grace: float,
    stop: asyncio.Event | None = None,
    settle: float = 0.0,
    started: Callable[[int], None] | None = None,
) -> None:
    """Run until SIGTERM, SIGINT or `stop`, then drain; `started` hears the port."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    freeze_heap()
    await start(bound)
    log.info("serving on port %d", bound.port)
    if started is not None:
        started(bound.port)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await drain(bound, grace, settle)
