"""A rule for every RPC: enumerate the real server's services and try each method unauthorised.

Every method of every service registered on the server built by justice.app.build must have a
rule. Each one is then called by a principal holding every role EXCEPT those the rule allows,
and must answer PERMISSION_DENIED; health and reflection are public to authenticated callers.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import pkgutil
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

import justice
from justice.app import Application
from justice.security.principal import Role
from justice.security.rules import RULES
from tests.api.conftest import ChannelFactory, Enrol
from tests.api.rich_status import rich_error

_HEALTH = "grpc.health.v1.Health"
_REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


def _raw(data: bytes) -> bytes:
    return data


def _registered(application: Application) -> list[ServiceDescriptor]:
    pool = descriptor_pool.Default()
    names = (*application.server.service_names, _HEALTH, _REFLECTION)
    return [pool.FindServiceByName(name) for name in names]


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _all_justice_services() -> list[ServiceDescriptor]:
    """Every service any justice.*.v1 proto declares, mounted or not (e.g. evidence w/o S3)."""
    services = []
    for module in pkgutil.walk_packages(justice.__path__, "justice."):
        if module.name.endswith("_pb2") and ".v1." in module.name:
            file = importlib.import_module(module.name).DESCRIPTOR
            services += list(file.services_by_name.values())
    return services


async def _call(channel: grpc.aio.Channel, method: MethodDescriptor) -> None:
    path = _path(method)
    metadata = (("x-justice-purpose", "enumeration test"),)
    if method.client_streaming:

        async def requests() -> AsyncIterator[bytes]:
            yield b""

        if method.server_streaming:
            call = channel.stream_stream(path, _raw, _raw)(requests(), metadata=metadata)
            async for _ in call:
                pass
        else:
            await channel.stream_unary(path, _raw, _raw)(requests(), metadata=metadata)
    elif method.server_streaming:
        async for _ in channel.unary_stream(path, _raw, _raw)(b"", metadata=metadata):
            pass
    else:
        await channel.unary_unary(path, _raw, _raw)(b"", metadata=metadata)


def test_every_registered_method_has_a_rule(application: Application) -> None:
    services = _registered(application) + _all_justice_services()
    methods = {_path(m) for s in services for m in s.methods}
    assert len(methods) > 20
    missing = sorted(methods - set(RULES))
    assert not missing, f"methods without an authorisation rule: {missing}"
    # And no rule for a method that does not exist (a renamed RPC must move its rule).
    stale = sorted(set(RULES) - methods)
    assert not stale, f"rules for unknown methods: {stale}"


@pytest.mark.parametrize("public", [_HEALTH, _REFLECTION])
def test_only_health_and_reflection_are_public(public: str) -> None:
    public_methods = {path for path, rule in RULES.items() if rule.public}
    assert {p.rsplit("/", 1)[0].strip("/") for p in public_methods} == {_HEALTH, _REFLECTION}
    assert any(p.startswith(f"/{public}/") for p in public_methods)


async def test_each_method_denies_a_principal_without_an_allowed_role(
    application: Application, grpc_create_channel: ChannelFactory, enrol: Enrol
) -> None:
    denied: list[str] = []
    methods = [m for s in _registered(application) for m in s.methods]
    channels: dict[frozenset[Role], grpc.aio.Channel] = {}
    try:
        for method in methods:
            rule = RULES[_path(method)]
            if rule.public:
                continue
            # Every role but the allowed ones: the strongest unauthorised caller there is.
            others = frozenset(Role) - set(rule.allow)
            if others not in channels:
                tag = hashlib.sha256(",".join(sorted(others)).encode()).hexdigest()[:10]
                user = await enrol(f"deny-{tag}", others)
                channels[others] = grpc_create_channel(principal=user)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await asyncio.wait_for(_call(channels[others], method), 10)
            error = rich_error(caught.value)
            if (error.code, error.reason) != (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED"):
                denied.append(f"{_path(method)}: {error.code.name} {error.reason}")
    finally:
        for channel in channels.values():
            await channel.close()
    assert not denied, f"not PERMISSION_DENIED for an unauthorised caller: {denied}"
    assert len(channels) >= 5


async def test_a_principal_with_no_roles_is_denied_everything_but_health(
    application: Application, grpc_create_channel: ChannelFactory, enrol: Enrol
) -> None:
    user = await enrol("nobody-9001", frozenset())
    async with grpc_create_channel(principal=user) as channel:
        for service in _registered(application):
            for method in service.methods:
                if RULES[_path(method)].public:
                    continue
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await asyncio.wait_for(_call(channel, method), 10)
                assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, _path(method)
        # Public to the authenticated: a health check answers.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_unknown_principal_is_unauthenticated_on_every_method(
    application: Application, grpc_create_channel: ChannelFactory, pki: object
) -> None:
    from justice.devstack.pki import DevPki

    assert isinstance(pki, DevPki)
    # A certificate from the right CA whose subject the registry does not know.
    pki.issue_client("stranger-7001", "Nowhere", "Nothing")
    async with grpc_create_channel(principal="stranger-7001") as channel:
        for service in _registered(application):
            for method in service.methods:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await asyncio.wait_for(_call(channel, method), 10)
                error = rich_error(caught.value)
                assert (error.code, error.reason) == (
                    grpc.StatusCode.UNAUTHENTICATED,
                    "UNKNOWN_PRINCIPAL",
                ), _path(method)
