"""The access domain assembled from the platform's parts: the registry every call is
resolved against (behind its cache), its gRPC mount, and the personnel feed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from justice.access.api import AccessApi
from justice.access.events import PersonnelFeed
from justice.access.service import AccessService
from justice.access.store import AccessTransaction
from justice.access.v1 import access_pb2, access_pb2_grpc
from justice.platform.bus import Bus
from justice.platform.config import AccessSettings
from justice.platform.db import Database
from justice.platform.server import Mount
from justice.security.approvals import FourEyes
from justice.security.identity import CachedDirectory
from justice.security.principal import Role


@dataclass(frozen=True)
class AccessComponent:
    service: AccessService
    # What the identity interceptor resolves callers through.
    directory: CachedDirectory
    mount: Mount
    # The HR feed; None without NATS.
    feed: PersonnelFeed | None


def build(
    settings: AccessSettings, database: Database, bus: Bus | None, clock: Callable[[], datetime]
) -> AccessComponent:
    service = AccessService(
        uow=lambda: AccessTransaction(database.sessions),
        four_eyes=FourEyes(clock, timedelta(seconds=settings.approval_ttl_seconds)),
        clock=clock,
        four_eyes_roles=frozenset(Role(r) for r in settings.four_eyes_roles),
    )
    directory = CachedDirectory(service, settings.identity_cache_seconds)
    service.on_change(directory.invalidate)
    mount = Mount.of(
        access_pb2.DESCRIPTOR.services_by_name["AccessService"],
        access_pb2_grpc.add_AccessServiceServicer_to_server,
        AccessApi(service, clock),
    )
    feed = PersonnelFeed(service, bus) if bus is not None else None
    return AccessComponent(service, directory, mount, feed)
