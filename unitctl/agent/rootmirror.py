"""One root prefix of etcd kept live in memory: read once, then watched (no change missed).

:class:`RootMirror` reads the prefix, then follows its watch from the revision
after the last event applied; a watch that ends (an etcd restart, a lost
connection) is resumed from ``last + 1``, and only a compacted revision (or no
first read yet) makes it read the prefix again. Every change sets ``wake``.
Used by the config templates (:mod:`.templates`) and the DNS server's mirror of
``services/`` (:mod:`.dns`), which an agent without templates runs alone: its own
module, so that DNS does not import the template runner (issue 12 item 5).
"""

from __future__ import annotations

import asyncio
import logging

from unitctl.errors import RegistryError
from unitctl.loop import checkpoint
from unitctl.registry.kv import EventKind, KeyValue
from unitctl.registry.templates import TemplateStore, history_lost

log = logging.getLogger("unitctl.agent.templates")


class RootMirror:
    """One root prefix, kept live: ``kvs`` and ``last`` (the last revision applied)."""

    def __init__(self, store: TemplateStore, prefix: str, wake: asyncio.Event) -> None:
        self.store = store
        self.prefix = prefix
        self.wake = wake
        self.kvs: dict[str, KeyValue] = {}
        self.last = 0
        self.ready = False
        #: how the watch started each time: "read" or "resume" (tests read it)
        self.starts: list[str] = []

    async def run(self) -> None:
        reread = True
        while True:
            checkpoint()
            try:
                if reread:
                    self.kvs, self.last = await self.store.read_root(self.prefix)
                    self.ready = True
                    self.wake.set()
                self.starts.append("read" if reread else "resume")
                reread = False
                await self._follow()
            except RegistryError as exc:
                reread = not self.ready or history_lost(exc)
                log.info("templates: watch of %s ended (%s): %s from revision %d", self.prefix,
                         exc, "reading again" if reread else "resuming", self.last + 1)
                self.wake.set()
                await asyncio.sleep(0.5)

    async def _follow(self) -> None:
        async for batch in self.store.watch_root(self.prefix, self.last + 1):
            for ev in batch:
                if ev.kind is EventKind.PUT:
                    self.kvs[ev.key] = KeyValue(ev.key, ev.value, 0, ev.mod_rev, 1)
                else:
                    self.kvs.pop(ev.key, None)
                self.last = max(self.last, ev.mod_rev)
            self.wake.set()
        raise RegistryError("the watch ended")
