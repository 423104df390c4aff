"""Interceptors for grpc.aio that see the ServicerContext.

grpc.aio interceptors only get the method name, not the context (peer certificate,
abort). So each concern here is an async context manager ("around") that the one
interceptor enters around every call, whatever its streaming kind.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from justice.platform import errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """What an interceptor knows about the call it wraps."""

    method: str  # "/justice.reports.v1.ReportService/GetReport"
    context: grpc.aio.ServicerContext[Any, Any]
    request: Any  # the request message, or None for client streaming

    @property
    def service(self) -> str:
        return self.method.rsplit("/", 2)[1]

    @property
    def method_name(self) -> str:
        return self.method.rsplit("/", 1)[1]


Around = Callable[[Call], AbstractAsyncContextManager[None]]


if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # the runtime class is not generic
    _ServerInterceptor = grpc.aio.ServerInterceptor


class AroundInterceptor(_ServerInterceptor):
    """Enters every `around(call)`, outermost first, around each RPC of any streaming kind.

    One interceptor for the whole chain: each handler is wrapped once, however many
    concerns (errors, identity, audit, authorisation) run around it.
    """

    def __init__(self, arounds: Sequence[Around]) -> None:
        self._arounds = tuple(arounds)
        # Each method's handler wrapped once, not at every call: the wrapper is the same
        # for as long as grpc hands out the same handler.
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            wrapped: grpc.RpcMethodHandler[Any, Any] = known[1]
            return wrapped
        # Only methods that have a handler get here: a fixed set, whatever names clients send.
        wrapped = _wrap(handler, method, self._arounds)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class _Malformed:
    """Stands in for request bytes that do not parse. grpc would answer UNKNOWN by itself;
    this way the call still passes identity and audit and ends INVALID_ARGUMENT."""


_MALFORMED = _Malformed()


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # any parse failure is the client's
            return _MALFORMED

    return parse


def _nul_fields(message: Message, prefix: str = "") -> Iterator[str]:
    """Paths of the text fields holding a NUL character: no text of ours has one, and
    PostgreSQL cannot store it (it would fail the query, not the request)."""
    for field, value in message.ListFields():
        path = prefix + field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                where = f"{path}[{key!r}]"
                if any(isinstance(text, str) and "\x00" in text for text in (key, item)):
                    yield where
                if isinstance(item, Message):
                    yield from _nul_fields(item, where + ".")
            continue
        items = value if field.is_repeated else (value,)
        if field.type == FieldDescriptor.TYPE_STRING:
            yield from (path for item in items if "\x00" in item)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for i, item in enumerate(items):
                index = f"[{i}]" if field.is_repeated else ""
                yield from _nul_fields(item, f"{path}{index}.")


def _check(request: Any) -> Any:
    if request is _MALFORMED:
        raise errors.InvalidArgument(
            "MALFORMED_REQUEST",
            "the request is not a valid protobuf message of the expected type",
            violations=[errors.FieldViolation("request", "does not parse")],
        )
    if isinstance(request, Message):
        bad = list(_nul_fields(request))
        if bad:
            raise errors.InvalidArgument.of(
                [errors.FieldViolation(path, "contains a NUL character") for path in bad]
            )
    return request


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield _check(request)


@asynccontextmanager
async def _around_all(arounds: tuple[Around, ...], call: Call) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for around in arounds:
            await stack.enter_async_context(around(call))
        yield


def _wrap(handler: Any, method: str, arounds: tuple[Around, ...]) -> Any:
    """The same handler kind, with every around entered first. Nothing escapes the chain."""
    deserialize = _tolerant(handler.request_deserializer)
    serialize = handler.response_serializer
    streaming_in = handler.request_streaming
    kind = (
        ("stream" if streaming_in else "unary")
        + "_"
        + ("stream" if handler.response_streaming else "unary")
    )
    inner = getattr(handler, kind)

    def call_of(request: Any, context: Any) -> Call:
        return Call(method, context, None if streaming_in else request)

    def checked(request: Any) -> Any:
        return _checked(request) if streaming_in else _check(request)

    if inspect.isasyncgenfunction(inner):

        async def generator(request: Any, context: Any) -> AsyncIterator[Any]:
            async with _around_all(arounds, call_of(request, context)):
                async for response in inner(checked(request), context):
                    yield response

        behaviour: Any = generator
    elif inspect.iscoroutinefunction(inner):
        # Unary responses, and streams written with context.write().
        async def coroutine(request: Any, context: Any) -> Any:
            async with _around_all(arounds, call_of(request, context)):
                return await inner(checked(request), context)

        behaviour = coroutine
    else:
        # grpc.aio serves only async behaviours; a plain function is a generated base-class
        # stub, i.e. a method nobody implemented. It still passes identity and audit.
        async def unimplemented(request: Any, context: Any) -> Any:
            async with _around_all(arounds, call_of(request, context)):
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, "method not implemented")

        behaviour = unimplemented
    factory = getattr(grpc, f"{kind}_rpc_method_handler")
    return factory(behaviour, deserialize, serialize)


# The one mapping from domain errors to status codes (DESIGN.md, API conventions).
_CODES: dict[type[errors.JusticeError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.DataLoss: grpc.StatusCode.DATA_LOSS,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code_of(error: BaseException) -> grpc.StatusCode:
    """The status a call ends with when `error` escapes its handler."""
    for kind, code in _CODES.items():
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def rich_status(error: errors.JusticeError, domain: str) -> status_pb2.Status:
    code = status_code_of(error)
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
    )
    details = [info]
    if error.violations:
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
        details.append(bad)
    return status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message, details=details
    )


def error_mapping() -> Around:
    """Turns domain errors into rich statuses; anything else into a bare INTERNAL.

    ErrorInfo.domain is the proto package of the service that failed, e.g. justice.reports.v1.
    """

    @asynccontextmanager
    async def around(call: Call) -> AsyncIterator[None]:
        try:
            yield
        except errors.JusticeError as error:
            status = rich_status(error, call.service.rsplit(".", 1)[0])
            await call.context.abort(
                status_code_of(error),
                error.message,
                trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
            )
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception:
            # A bug of ours: log the stack (no payloads) and say nothing more to the caller.
            log.exception("unhandled error in %s", call.method)
            await call.context.abort(grpc.StatusCode.INTERNAL, "internal error")

    return around


@dataclass(frozen=True)
class ErrorDetails:
    """The rich status of a failed call, as a client reads it back."""

    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    fields: dict[str, str]
    metadata: dict[str, str]


def error_details(error: grpc.aio.AioRpcError) -> ErrorDetails:
    trailers: Any = error.trailing_metadata() or ()
    raw = next((value for key, value in trailers if key == "grpc-status-details-bin"), None)
    reason = domain = ""
    fields: dict[str, str] = {}
    metadata: dict[str, str] = {}
    if isinstance(raw, bytes):
        for detail in status_pb2.Status.FromString(raw).details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                fields = {v.field: v.description for v in bad.field_violations}
    return ErrorDetails(error.code(), error.details() or "", reason, domain, fields, metadata)


def code_name(code: object) -> str:
    """The name of the status a call ended with; context.code() answers a StatusCode, or
    the raw integer on some paths."""
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status.name
    return "UNKNOWN"


# -- client side ---------------------------------------------------------------------------------

MetadataPairs = Callable[[], Sequence[tuple[str, str]]]


class _Metadata:
    """Adds metadata to a call's details, computed per call (the subclasses below name the
    call kind)."""

    def __init__(self, pairs: MetadataPairs) -> None:
        self._pairs = pairs

    def _details(self, details: Any) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        for key, value in self._pairs():
            metadata[key] = value
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files an interceptor under the first call kind it implements and ignores the
# others, so each kind gets its own class and its own object.
class _UnaryUnary(_Metadata, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_Metadata, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_Metadata, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStream(_Metadata, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def metadata_interceptors(pairs: MetadataPairs) -> list[Any]:
    """One interceptor per call kind, each adding what `pairs()` answers to every call.

    (grpc-stubs types ClientInterceptor as a placeholder to cast, hence Any.)
    """
    return [kind(pairs) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
