"""gRPC health that follows the dependencies: NOT_SERVING while the database or NATS is
unreachable, SERVING again once they answer.

Kubernetes' readiness probe asks the standard health service, so a replica that lost its
database stops receiving calls instead of answering each with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from grpc_health.v1 import health_pb2

from justice.platform.server import BoundServer

__all__ = ["DependencyHealth", "Probe"]

log = logging.getLogger(__name__)

# True when the dependency answers; may raise, which counts as not answering.
Probe = Callable[[], Awaitable[bool]]

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class DependencyHealth:
    def __init__(
        self,
        bound: BoundServer,
        probes: Mapping[str, Probe],
        *,
        every: float = 2.0,
        timeout: float = 2.0,
    ) -> None:
        self._bound = bound
        self._probes = dict(probes)
        self._every = every
        self._timeout = timeout
        self.down: frozenset[str] = frozenset()

    async def _answers(self, probe: Probe) -> bool:
        try:
            return await asyncio.wait_for(probe(), self._timeout)
        except Exception:
            return False

    async def check(self) -> frozenset[str]:
        """Probe every dependency once and set the health; returns the ones down."""
        names = list(self._probes)
        answers = await asyncio.gather(*(self._answers(self._probes[n]) for n in names))
        down = frozenset(n for n, ok in zip(names, answers, strict=True) if not ok)
        if down != self.down:
            if down:
                log.warning("dependencies down: %s; health NOT_SERVING", ", ".join(sorted(down)))
            else:
                log.info("dependencies back; health SERVING")
        # NOT_SERVING is set again on every check, so a server started during an outage
        # (start() says SERVING) is corrected within one period; SERVING only on recovery.
        if down or self.down:
            status = _NOT_SERVING if down else _SERVING
            for name in ("", *self._bound.service_names):
                await self._bound.health.set(name, status)
        self.down = down
        return down

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._every)
