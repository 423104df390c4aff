"""A command's RPCs from the terminal: one channel per command; a failure is printed with its
rich status (code, ErrorInfo reason, field violations) and the command exits 1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import grpc
import typer
from rich.console import Console

from justice.platform.rpc import error_details

T = TypeVar("T")


class Channels(Protocol):
    """The CLI's root context object (justice.cli.reports.CliContext)."""

    def channel(self) -> grpc.aio.Channel: ...


def run(
    ctx: typer.Context, action: Callable[[grpc.aio.Channel], Awaitable[T]], console: Console
) -> T:
    obj: Channels = ctx.find_root().obj

    async def go() -> T:
        async with obj.channel() as channel:
            return await action(channel)

    try:
        return asyncio.run(go())
    except grpc.aio.AioRpcError as error:
        details = error_details(error)
        console.print(f"[red]{details.code.name}[/red] {details.reason}: {details.message}")
        for field, problem in details.fields.items():
            console.print(f"  {field}: {problem}")
        raise typer.Exit(1) from None
