"""Reading google.rpc.Status details back from a failed call, as a client would."""

from __future__ import annotations

import grpc

from justice.platform.rpc import ErrorDetails, error_details


def rich_error(error: grpc.aio.AioRpcError) -> ErrorDetails:
    """The details, insisting that the server sent them at all."""
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None, f"no status details on {error.code()}: {error.details()}"
    return error_details(error)
