"""Prometheus metrics on a port of their own (JUSTICE_METRICS_LISTEN, off when empty).

The instruments live in a registry of their own, not prometheus_client's global one, so one
process (a test) can build several applications. Counters and histograms are updated where
the work happens (the RPC chain, the signer, the evidence streams); figures that live in the
database (outbox backlog, deliveries by state, audit chain length, alerts raised) are
sampled every few seconds by the samplers the composition root registers, never at scrape
time, so a scrape never waits on the database.

`justice serve --workers N` shares one endpoint among its processes with prometheus_client's
multiprocess mode: the parent names a fresh directory of its own in PROMETHEUS_MULTIPROC_DIR
before it starts the workers (`shared_across_workers`), every worker's prometheus_client then
keeps its values in files there (it chooses when first imported), and the worker serving
/metrics reads them all: counters and histograms are summed, gauges (set only by the worker
that samples) are summed over the live processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Final
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from justice.platform.rpc import Around, Call, code_name

__all__ = ["Metrics", "Sampler", "shared_across_workers"]

log = logging.getLogger(__name__)

# RPCs range from a cached read (~1 ms) to a signed export or a large upload (seconds).
_RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# One XAdES signature: ~0.5 ms for the RSA part, a few ms with canonicalisation, more on an HSM.
_SIGNING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

Sampler = Callable[["Metrics"], Awaitable[None]]

# prometheus_client's switch to multiprocess mode.
_MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Gauges in multiprocess mode: the sum over live processes; only one worker sets them.
_GAUGE_MODE: Final = "livesum"


@contextmanager
def shared_across_workers() -> Iterator[str]:
    """For the parent of `--workers` processes started inside: one directory per run
    (values of an earlier run must not be counted again), removed afterwards."""
    directory = tempfile.mkdtemp(prefix="justice-metrics-")
    before = os.environ.get(_MULTIPROCESS_DIR)
    os.environ[_MULTIPROCESS_DIR] = directory
    try:
        yield directory
    finally:
        if before is None:
            os.environ.pop(_MULTIPROCESS_DIR, None)
        else:
            os.environ[_MULTIPROCESS_DIR] = before
        shutil.rmtree(directory, ignore_errors=True)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rpcs = Counter(
            "justice_rpcs", "RPCs handled", ["service", "method", "code"], registry=r
        )
        self.rpc_seconds = Histogram(
            "justice_rpc_duration_seconds",
            "RPC latency, until the last response",
            ["service", "method", "code"],
            buckets=_RPC_BUCKETS,
            registry=r,
        )
        self.signing_seconds = Histogram(
            "justice_signing_duration_seconds",
            "One XAdES signature, key lookup included",
            buckets=_SIGNING_BUCKETS,
            registry=r,
        )
        self.evidence_bytes = Counter(
            "justice_evidence_bytes",
            "Evidence bytes received from uploads (in) and sent in downloads (out)",
            ["direction"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "justice_outbox_backlog",
            "Outbox messages not yet published",
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )
        self.outbox_oldest_age = Gauge(
            "justice_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox message (0 when none)",
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )
        self.deliveries = Gauge(
            "justice_deliveries",
            "Partner deliveries by state",
            ["state"],
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )
        self.audit_chain_length = Gauge(
            "justice_audit_chain_length",
            "Records in the audit hash chain",
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )
        self.alerts = Gauge(
            "justice_audit_alerts",
            "Atypical-use alerts raised (all time)",
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )
        self.leader = Gauge(
            "justice_leader",
            "1 while this process runs the singleton work (justice.platform.leadership)",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.sample_failures = Counter(
            "justice_metrics_sample_failures", "Samplers that failed (database down?)", registry=r
        )
        self._samplers: list[Sampler] = []
        self._server: WSGIServer | None = None
        self.port = 0

    # -- updated where the work happens ------------------------------------------------------------

    def around(self) -> Around:
        """Counts and times every RPC by its final code; put it outermost in the chain."""

        @asynccontextmanager
        async def around(call: Call) -> AsyncIterator[None]:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                yield
                code = call.context.code() or grpc.StatusCode.OK
            except grpc.aio.AbortError:
                code = call.context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                code = grpc.StatusCode.UNKNOWN
                raise
            finally:
                labels = (call.service, call.method_name, code_name(code))
                self.rpcs.labels(*labels).inc()
                self.rpc_seconds.labels(*labels).observe(time.perf_counter() - started)

        return around

    def observe_signing(self, seconds: float) -> None:
        self.signing_seconds.observe(seconds)

    def evidence_traffic(self, direction: str, size: int) -> None:
        self.evidence_bytes.labels(direction).inc(size)

    # -- sampled from the database ---------------------------------------------------------------

    def add_sampler(self, sampler: Sampler) -> None:
        self._samplers.append(sampler)

    async def sample(self) -> None:
        for sampler in self._samplers:
            try:
                await sampler(self)
            except Exception as error:
                self.sample_failures.inc()
                log.warning("metrics sampler failed: %s", type(error).__name__)

    async def sample_forever(self, every: float) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(every)

    # -- the endpoint ----------------------------------------------------------------------------

    def serve(self, listen: str) -> int:
        """Serve /metrics on `host:port` in a thread (port 0 picks one); returns the port."""
        host, _, port = listen.rpartition(":")
        registry = self.registry
        shared = os.environ.get(_MULTIPROCESS_DIR)
        if shared:
            # Every worker's values, read from their files at each scrape.
            registry = CollectorRegistry()
            MultiProcessCollector(registry, shared)  # type: ignore[no-untyped-call]
        server, _thread = start_http_server(int(port), host or "0.0.0.0", registry=registry)  # noqa: S104
        self._server = server
        self.port = int(server.server_port)
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
