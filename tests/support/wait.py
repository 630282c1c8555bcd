"""Wait for a condition with a deadline: the only way tests synchronise (never a bare sleep)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def wait_for(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    message: str = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
) -> T: ...


@overload
async def wait_for(
    check: Callable[[], T],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    message: str = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
) -> T: ...


async def wait_for(
    check: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 (a deadline is this helper's contract)
    interval: float = 0.05,
    message: str = "condition",
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``check`` (sync or async) until it returns something truthy and return that value.

    Raises ``TimeoutError`` after ``timeout`` seconds, naming ``message`` and the last value (or
    exception) seen. Exceptions listed in ``retry_on`` (e.g. ``httpx.ConnectError`` while a
    server starts) count as "not yet"; any other exception propagates at once.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            value = await result if inspect.isawaitable(result) else result
        except retry_on as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)
