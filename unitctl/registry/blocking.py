"""Running the registry's coroutines without an event loop: the CLI's read paths.

The registry and its KV port are coroutines. A coroutine whose awaits all
finish without suspending (the gateway adapter's calls do, while driven here:
they talk to etcd over blocking sockets) runs to its end on one
``send(None)``: :func:`run_blocking` does that, so a read-only command never
imports asyncio (about 25 ms of a 60 ms budget). :func:`active` tells an
adapter that it is being driven this way; :func:`gather` is the one
"several reads in flight" of the registry: concurrent under asyncio, one after
another here.

Contract: a coroutine run by :func:`run_blocking` that does suspend (waits for
a timer, a watch, another task) is closed and :class:`NeedsEventLoop` is
raised; a read-only verb never does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_DRIVEN: ContextVar[bool] = ContextVar("unitctl_blocking", default=False)


class NeedsEventLoop(RuntimeError):
    """A coroutine driven by :func:`run_blocking` waited for something."""


def active() -> bool:
    """True while the current code is being driven by :func:`run_blocking`."""
    return _DRIVEN.get()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end without an event loop; return its result."""
    token = _DRIVEN.set(True)
    try:
        try:
            coro.send(None)
        except StopIteration as stop:
            result: T = stop.value
            return result
        coro.close()
        raise NeedsEventLoop("a coroutine run without an event loop waited for something")
    finally:
        _DRIVEN.reset(token)


async def gather(*aws: Awaitable[T]) -> list[T]:
    """Await ``aws``: concurrently under asyncio, one by one under :func:`run_blocking`."""
    if active():
        return [await aw for aw in aws]
    import asyncio  # only here: a blocking run must not pay for asyncio's import

    return list(await asyncio.gather(*aws))


async def gather_bounded(aws: list[Awaitable[T]], width: int) -> list[T]:
    """Await ``aws`` in order of their results: at most ``width`` in flight under
    asyncio, one by one under :func:`run_blocking`."""
    if active() or len(aws) <= 1:
        return [await aw for aw in aws]
    import asyncio

    gate = asyncio.Semaphore(width)

    async def gated(aw: Awaitable[T]) -> T:
        async with gate:
            return await aw
    return list(await asyncio.gather(*(gated(aw) for aw in aws)))
