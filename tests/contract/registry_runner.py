"""Run a registry contract body over one KV (memory or real etcd) in a fresh event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.conftest import KVFactory
from unitctl.registry.registry import Registry


def run(make: KVFactory, prefix: str, body: Callable[[Registry], Awaitable[None]]) -> None:
    """Open a Registry on ``make()`` under ``prefix``, run ``body``, close the KV."""

    async def go() -> None:
        kv = await make()
        try:
            reg = Registry(kv, prefix)
            await reg.ensure_schema()
            await body(reg)
        finally:
            await kv.close()
    asyncio.run(go())
