"""The reconcile loop's two building blocks: a watch pumped into a wake-up event,
and a wait that ends on that event or a timer (fleet's ``PeriodicReconciler``).

Every long-running loop of unitctl (the agent's schedule loop, the engine's
rounds and follower, the mirror, a waiting client) has the same shape::

    async with watch_wakes(registry.watch(...), wake) as watch:
        while True:
            await wake_or_timeout(wake, resync)
            raise_if_ended(watch)      # a dead watch is never silent
            ...reconcile...

The pump sets the event on every batch of events **and when the watch ends**,
for any reason: a loop therefore learns at once that its watch died (an etcd
restart, a lost connection) instead of at its next timer. :func:`checkpoint`
keeps a loop from outliving a cancellation that ``asyncio.wait_for`` lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from unitctl.errors import RegistryError, RegistryUnavailable


def checkpoint() -> None:
    """Raise CancelledError if this task was asked to stop but the request got lost.

    In Python 3.11, ``asyncio.wait_for`` returns the inner result when the
    inner call finishes at the moment the outer task is cancelled, and the
    cancellation is gone; a ``while True`` loop would then run forever and
    a TaskGroup waiting for it would hang. Loops call this on every turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


async def pump(stream: AsyncIterator[Any], wake: asyncio.Event) -> None:
    """Set ``wake`` on every item of ``stream``, and once more when it ends or fails."""
    try:
        async for _ in stream:
            wake.set()
    finally:
        wake.set()


@contextlib.asynccontextmanager
async def watch_wakes(stream: AsyncIterator[Any],
                      wake: asyncio.Event) -> AsyncIterator[asyncio.Task[None]]:
    """Run :func:`pump` in a task for the body of the ``with``; cancel it on the way out."""
    task = asyncio.create_task(pump(stream, wake))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RegistryError):
            await task


async def wake_or_timeout(wake: asyncio.Event, timeout: float) -> bool:
    """Wait until ``wake`` is set or ``timeout`` seconds pass; clear it.

    Returns True when the event was set (woken), False on the timer.
    """
    woken = True
    if not wake.is_set():
        try:
            await asyncio.wait_for(wake.wait(), max(timeout, 0))
        except TimeoutError:
            woken = False
    wake.clear()
    return woken


def raise_if_ended(watch: asyncio.Task[None]) -> None:
    """Raise if the pumped watch has ended: its own error, or RegistryUnavailable.

    A watch of the registry never ends by itself while the connection holds, so
    an end without an error still means the stream is gone.
    """
    if not watch.done():
        return
    if watch.cancelled():
        raise RegistryUnavailable("the watch was cancelled")
    exc = watch.exception()
    if exc is not None:
        raise exc
    raise RegistryUnavailable("the watch ended")
