"""Opening a waiter's watches from etcd's "created" revision (:mod:`unitctl.client.watchopen`).

With a store that names the revision its watches were created at, no revision
is read; one that ends before it is created wakes the waiter and does not hang
the opening; one that is never created (nor ends) is an error after
:data:`~unitctl.client.watchopen.CREATED_TIMEOUT`, never a hang. A store that
cannot name it (the in-memory one) gets the revision read first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from unitctl.client import watchopen
from unitctl.errors import RegistryUnavailable
from unitctl.registry.kv import Event, Range
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry


class CreatingKV(MemoryKV):
    """A MemoryKV whose watches from now report a created revision (or not)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.revision_reads = 0

    async def get_prefix(self, prefix: str) -> Range:
        self.revision_reads += prefix.endswith("version")
        return await super().get_prefix(prefix)

    async def watch_prefix_now(self, prefix: str, created: Callable[[int], None]
                               ) -> AsyncIterator[list[Event]]:
        if self.mode == "ends":
            raise RegistryUnavailable("etcd unreachable: the watch connection closed")
        if self.mode == "creates":
            created(41)
        await asyncio.Event().wait()  # never an event, never created in "silent"
        yield []


def _open(reg: Registry, wake: asyncio.Event, stack: contextlib.AsyncExitStack
          ) -> asyncio.Future[watchopen.Opened]:
    return asyncio.ensure_future(watchopen.open_watches(
        reg, ["/unitctl/units/a.service", "/unitctl/states/a.service/"],
        lambda _batch: True, wake, stack))


def test_created_watches_read_no_revision_and_name_theirs() -> None:
    async def go() -> None:
        kv = CreatingKV("creates")
        reg = Registry(kv)
        async with contextlib.AsyncExitStack() as stack:
            tasks, revision = await _open(reg, asyncio.Event(), stack)
            assert revision == 41 and kv.revision_reads == 0
            assert not any(t.done() for t in tasks)
    asyncio.run(go())


def test_a_watch_that_ends_before_it_is_created_wakes_and_does_not_hang() -> None:
    async def go() -> None:
        reg = Registry(CreatingKV("ends"))
        wake = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            tasks, _ = await asyncio.wait_for(_open(reg, wake, stack), 10)
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
            assert wake.is_set() and all(t.done() for t in tasks)
    asyncio.run(go())


def test_a_watch_never_created_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchopen, "CREATED_TIMEOUT", 0.2)

    async def go() -> None:
        reg = Registry(CreatingKV("silent"))
        async with contextlib.AsyncExitStack() as stack:
            with pytest.raises(RegistryUnavailable, match="did not create"):
                await asyncio.wait_for(_open(reg, asyncio.Event(), stack), 10)
    asyncio.run(go())


def test_a_store_that_cannot_name_it_reads_the_revision_first() -> None:
    async def go() -> None:
        reg = Registry(MemoryKV())
        await reg.kv.put("/unitctl/x", b"1")
        async with contextlib.AsyncExitStack() as stack:
            _, revision = await watchopen.open_watches(
                reg, ["/unitctl/units/"], lambda _b: True, asyncio.Event(), stack)
            assert revision == await reg.revision()
    asyncio.run(go())
