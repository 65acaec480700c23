"""Opening a waiter's watches so that no change falls between them and its first read.

Two ways, one contract (every change after the returned revision comes on a
watch, and the caller's read, made after this returns, sees every change up to
it):

* on etcd's JSON gateway (:class:`~unitctl.registry.gateway.GatewayKV`,
  :meth:`~unitctl.registry.registry.Registry.watch_now`), each
  watch starts at etcd's current revision and this waits for etcd's "created"
  reply of each: no revision read first, and each watch is a synced watcher
  (one from a past revision gets its events only at etcd's next sync, up to
  100 ms later: a write landing between a revision read and the watch, such as
  the engine's placement, used to put the whole wait behind that sync);
* elsewhere (the in-memory store, gRPC), the revision is read first and the
  watches start after it.

A watch that ends before etcd created it ends its pump (its wake is set, as
every ending watch's is): the waiter sees a finished watch and reads again. A
watch etcd neither creates nor ends within :data:`CREATED_TIMEOUT` raises
RegistryUnavailable (the command's error, never a hang).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from unitctl.errors import RegistryUnavailable
from unitctl.loop import wake_or_timeout, watch_wakes
from unitctl.registry.kv import Event
from unitctl.registry.registry import Registry

#: A filter of one batch: True when it changed a waited-on key (it wakes the waiter).
Relevant = Callable[[list[Event]], bool]


class AsyncWatches:
    """The waiter's watches under asyncio: each pumped by a task into one wake."""

    def __init__(self, tasks: list[asyncio.Task[None]], wake: asyncio.Event,
                 stack: contextlib.AsyncExitStack) -> None:
        self.tasks = tasks
        self.wake = wake
        self.stack = stack

    def broken(self) -> bool:
        return any(t.done() for t in self.tasks)

    async def wait(self, timeout: float) -> None:
        await wake_or_timeout(self.wake, timeout)

    async def close(self) -> None:
        await self.stack.aclose()


class AsyncWatching:
    """:class:`unitctl.client.wait.Watching` under asyncio (:func:`open_watches`)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def open(self, registry: Registry, prefixes: Sequence[str],
                   relevant: Relevant) -> tuple[AsyncWatches, int]:
        wake, stack = asyncio.Event(), contextlib.AsyncExitStack()
        try:
            tasks, revision = await open_watches(registry, prefixes, relevant, wake, stack)
        except BaseException:
            await stack.aclose()
            raise
        return AsyncWatches(tasks, wake, stack), revision

Opened = tuple[list[asyncio.Task[None]], int]

#: Seconds etcd has to create the watches (then it counts as unreachable).
CREATED_TIMEOUT = 10.0


async def open_watches(registry: Registry, prefixes: Sequence[str], relevant: Relevant,
                       wake: asyncio.Event, stack: contextlib.AsyncExitStack) -> Opened:
    """Watch ``prefixes`` (pumped into ``wake`` for relevant batches, closed with
    ``stack``); return the pumps and the revision the watches start after."""
    loop = asyncio.get_running_loop()
    created: list[asyncio.Future[int]] = [loop.create_future() for _ in prefixes]
    streams = [registry.watch_now(p, _setter(fut)) for p, fut in zip(prefixes, created,
                                                                      strict=True)]
    if not all(streams):
        revision = await registry.revision()
        past = [registry.watch(p, revision + 1) for p in prefixes]
        return await _pumps(past, relevant, wake, stack), revision
    made = [_until_created(s, fut) for s, fut in zip(streams, created, strict=True) if s]
    tasks = await _pumps(made, relevant, wake, stack)
    try:
        revisions = await asyncio.wait_for(asyncio.gather(*created), CREATED_TIMEOUT)
    except TimeoutError as exc:
        raise RegistryUnavailable(
            f"etcd did not create the watches within {CREATED_TIMEOUT:g}s") from exc
    return tasks, max(revisions, default=0)


def _setter(created: asyncio.Future[int]) -> Callable[[int], None]:
    def done(revision: int) -> None:
        if not created.done():
            created.set_result(revision)
    return done


async def _until_created(stream: AsyncIterator[list[Event]],
                         created: asyncio.Future[int]) -> AsyncIterator[list[Event]]:
    """``stream``; ``created`` gets 0 when it ended before etcd created it."""
    try:
        async for batch in stream:
            yield batch
    finally:
        _setter(created)(0)


async def _pumps(streams: Sequence[AsyncIterator[list[Event]]], relevant: Relevant,
                 wake: asyncio.Event, stack: contextlib.AsyncExitStack
                 ) -> list[asyncio.Task[None]]:
    return [await stack.enter_async_context(watch_wakes(_filtered(s, relevant), wake))
            for s in streams]


async def _filtered(stream: AsyncIterator[list[Event]],
                    relevant: Relevant) -> AsyncIterator[None]:
    """Yield once per batch that changed a waited-on key."""
    async for batch in stream:
        if relevant(batch):
            yield None
