"""Polling with a deadline, for what happens in the background (relays, tails, detectors)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float = 10.0, what: str = "condition"
) -> T:
    """The first truthy value `probe` returns; AssertionError when none comes in time."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached within {within:.0f}s")
        await asyncio.sleep(0.05)
