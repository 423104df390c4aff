"""Alerts the platform raises itself (evidence S3 not keeping a lock, a stored object gone),
next to the detector's: stored in the same table, listed by ListAlerts, announced on the
same NATS subject.

An alert's id is derived from (rule, principal, subject), as the detector's are: the same
fault seen twice is one alert.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol

from justice.audit.detection import alert_id
from justice.audit.model import Alert, AlertRule
from justice.platform import ports

log = logging.getLogger(__name__)

# The principal of an alert nobody's call caused.
PLATFORM = "platform"


class _Alerts(Protocol):
    async def add_new(self, alerts: Sequence[Alert]) -> list[Alert]: ...


class AlarmTransaction(ports.UnitOfWork, Protocol):
    @property
    def alerts(self) -> _Alerts: ...


class PlatformAlarms:
    def __init__(
        self,
        uow: Callable[[], AlarmTransaction],
        clock: Callable[[], datetime],
        publish: Callable[[list[Alert]], Awaitable[None]] | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._publish = publish

    async def raise_alert(self, kind: str, subject: str, summary: str) -> None:
        """Store (once) and announce an alert of rule `kind` about `subject` (a resource
        name). The summary carries identifiers and hashes only."""
        rule = AlertRule(kind)
        alert = Alert(
            id=alert_id(rule, PLATFORM, subject),
            rule=rule,
            principal=PLATFORM,
            agency="",
            unit="",
            summary=summary[:1000],
            create_time=self._clock(),
            first_sequence=0,
            last_sequence=0,
        )
        await self.raise_alerts([alert])

    async def raise_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store the alerts not seen before (idempotent by id) and announce those."""
        async with self._uow() as uow:
            fresh = await uow.alerts.add_new(alerts)
            await uow.commit()
        if fresh and self._publish is not None:
            try:
                await self._publish(fresh)
            except Exception as error:  # stored; the announcement is best effort
                log.warning("alert not announced on NATS: %s", type(error).__name__)
        return fresh
