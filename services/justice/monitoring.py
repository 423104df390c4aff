"""What operators watch: the Prometheus figures each service keeps in its own tables, and
health that follows the database and NATS. Wired by the composition root (app.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import text

from justice.audit.service import AuditService
from justice.exchange.service import ExchangeService
from justice.platform.bus import Bus
from justice.platform.config import Settings
from justice.platform.db import Database
from justice.platform.health import DependencyHealth, Probe
from justice.platform.metrics import Metrics
from justice.platform.server import BoundServer, create_health_server, serve_health

__all__ = ["dependency_probes", "monitor"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _samplers(
    metrics: Metrics,
    exchange: ExchangeService,
    audit: AuditService,
    clock: Callable[[], datetime],
) -> None:
    async def outbox(m: Metrics) -> None:
        status = await exchange.relay_status()
        m.outbox_backlog.set(status.backlog)
        oldest = status.oldest_pending
        m.outbox_oldest_age.set((clock() - oldest).total_seconds() if oldest else 0.0)

    async def deliveries(m: Metrics) -> None:
        for state, count in (await exchange.delivery_counts()).items():
            m.deliveries.labels(state.value).set(count)

    async def audit_figures(m: Metrics) -> None:
        figures = await audit.figures()
        m.audit_chain_length.set(figures.chain_length)
        m.alerts.set(figures.alerts)

    for sampler in (outbox, deliveries, audit_figures):
        metrics.add_sampler(sampler)


def dependency_probes(database: Database, bus: Bus | None) -> dict[str, Probe]:
    """The database always; NATS where this process has a bus."""

    async def database_answers() -> bool:
        async with database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True

    probes: dict[str, Probe] = {"database": database_answers}
    if bus is not None:

        async def nats_connected() -> bool:
            return bus.connected

        probes["nats"] = nats_connected
    return probes


def monitor(
    settings: Settings,
    metrics: Metrics,
    server: BoundServer,
    database: Database,
    exchange: ExchangeService,
    bus: Bus | None,
    audit: AuditService,
    clock: Callable[[], datetime] = _utc_now,
    *,
    endpoints: bool = True,
) -> tuple[DependencyHealth, list[asyncio.Task[None]]]:
    """Start health following the dependencies, and when configured the plaintext health
    port for probes and the metrics endpoint.

    The returned tasks run until cancelled; cancelling the sampler also closes the endpoint.
    """
    health = DependencyHealth(
        server, dependency_probes(database, bus), every=settings.health_check_seconds
    )
    tasks = [asyncio.create_task(health.run())]
    if not endpoints:
        # Another `--workers` process holds the probe and metrics ports.
        return health, tasks
    if settings.health_listen:
        probes = create_health_server(settings.health_listen, server.health)
        tasks.append(asyncio.create_task(serve_health(probes)))
    if settings.metrics_listen:
        _samplers(metrics, exchange, audit, clock)
        metrics.serve(settings.metrics_listen)

        async def sampling() -> None:
            try:
                await metrics.sample_forever(settings.metrics_sample_seconds)
            finally:
                metrics.close()

        tasks.append(asyncio.create_task(sampling()))
    return health, tasks
