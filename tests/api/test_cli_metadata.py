"""The CLI's metadata (the purpose) rides every call kind, not only unary-unary (issue 8,
point 2): grpc.aio files one interceptor object under the first kind it implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from justice.audit.personal_data import PURPOSE_HEADER
from justice.cli.connection import call_metadata, metadata_interceptors
from tests.plain_server import plain_server

_SERVICE = "test.Echo"


def _purpose(context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return dict(context.invocation_metadata() or ()).get(PURPOSE_HEADER, "(none)").encode()


async def _unary_unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return _purpose(context)


async def _unary_stream(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    yield _purpose(context)


async def _stream_unary(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> bytes:
    async for _ in requests:
        pass
    return _purpose(context)


async def _stream_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    async for _ in requests:
        pass
    yield _purpose(context)


async def _one_request() -> AsyncIterator[bytes]:
    yield b"x"


@pytest.fixture
async def address() -> AsyncIterator[str]:
    handlers = {
        "UnaryUnary": grpc.unary_unary_rpc_method_handler(_unary_unary),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(_unary_stream),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(_stream_unary),
        "StreamStream": grpc.stream_stream_rpc_method_handler(_stream_stream),
    }
    generic = grpc.method_handlers_generic_handler(_SERVICE, handlers)
    async with plain_server(lambda server: server.add_generic_rpc_handlers((generic,))) as address:
        yield address


async def _purposes_seen(address: str, purpose: str) -> list[bytes]:
    interceptors = metadata_interceptors(call_metadata(purpose))
    async with grpc.aio.insecure_channel(address, interceptors=interceptors) as channel:
        path = f"/{_SERVICE}/"
        return [
            await channel.unary_unary(path + "UnaryUnary")(b"x"),
            *[r async for r in channel.unary_stream(path + "UnaryStream")(b"x")],
            await channel.stream_unary(path + "StreamUnary")(_one_request()),
            *[r async for r in channel.stream_stream(path + "StreamStream")(_one_request())],
        ]


async def test_the_purpose_rides_every_call_kind(address: str) -> None:
    assert (
        await _purposes_seen(address, "case review PV/2026/17") == [b"case review PV/2026/17"] * 4
    )


async def test_no_purpose_adds_nothing(address: str) -> None:
    assert await _purposes_seen(address, "") == [b"(none)"] * 4


def test_one_interceptor_per_call_kind() -> None:
    kinds = (
        grpc.aio.UnaryUnaryClientInterceptor,
        grpc.aio.UnaryStreamClientInterceptor,
        grpc.aio.StreamUnaryClientInterceptor,
        grpc.aio.StreamStreamClientInterceptor,
    )
    interceptors = metadata_interceptors(call_metadata("x"))
    # Each object is exactly one kind, so grpc.aio cannot file it under another one.
    assert [[isinstance(i, k) for k in kinds] for i in interceptors] == [
        [k is kind for k in kinds] for kind in kinds
    ]
