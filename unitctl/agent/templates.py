"""The agent's config templates: mirror the keys they read, render, check, install, reload.

One task of the agent, running only when ``template_dirs`` is set. It keeps a
mirror of ``templates/`` and ``data/`` (and of ``states/`` and ``machines/``
once a template reads ``units()``): each root is read once, then watched from
the revision after the last event seen; a watch that ends (an etcd restart, a
lost connection) is resumed from ``last + 1``, so no change is missed, and
only a compacted revision makes it read the root again. Every change wakes the
loop; the loop waits until the changes settle (``settle`` seconds without a
new one, at most ten times), so a burst renders once.

For each template that applies to this machine (:func:`~unitctl.templating.plan.applies`):
the destination must be allowed (``template_dirs``, resolved, no symlink);
the template is rendered over a snapshot of its keys
(:func:`~unitctl.templating.render.render`); a ``min_entries`` guard or a
render error leaves the file alone. Bytes equal to the file's are not written
and nothing is reloaded. Otherwise the file is staged next to the destination,
``check_cmd`` runs on the staged file (a failure discards it: the old file
stays), the staged file replaces the destination (the previous one kept as
``dest.unitctl-prev``), and ``reload_cmd`` runs (a failure puts the previous
file back). The outcome is published as ``template-status/<name>/<machine>``
under the machine's lease. The same failed output is not tried twice: the
next change of what the template reads (or of the template) tries again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Iterable

from unitctl.errors import RegistryError, UnitctlError
from unitctl.loop import checkpoint, wake_or_timeout
from unitctl.model import Machine
from unitctl.registry.registry import Registry
from unitctl.templating.functions import Snapshot, UnitPlace, under
from unitctl.templating.plan import Result, Status, applies
from unitctl.templating.resource import TemplateResource

from .rootmirror import RootMirror
from .template_host import TemplateHost

log = logging.getLogger("unitctl.agent.templates")


def _digest(res: TemplateResource, data: bytes) -> str:
    h = hashlib.sha256(data)
    for part in (res.dest, f"{res.mode:o}", res.owner, res.group, res.check_cmd,
                 res.reload_cmd):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:16]


class TemplateRunner:
    """This machine's templates, rendered as what they read changes."""

    def __init__(self, registry: Registry, machine: Machine, dirs: tuple[str, ...],
                 host: TemplateHost, lease: Callable[[], int],
                 scheduled: Callable[[], Collection[str]], *, settle: float = 0.2,
                 resync: float = 60.0, command_timeout: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = registry.templates
        self.machine = machine
        self.dirs = dirs
        self.host = host
        self.lease = lease
        self.scheduled = scheduled
        self.settle, self.resync, self.command_timeout = settle, resync, command_timeout
        self.clock = clock
        self.wake = asyncio.Event()
        self.mirrors: dict[str, RootMirror] = {}
        self.statuses: dict[str, Status] = {}
        self._published: dict[str, Status] = {}
        self._published_lease = 0
        #: template → the digest of the output last tried and the status it got
        self._tried: dict[str, tuple[str, Status]] = {}
        self._units_seen: frozenset[str] = frozenset()
        self._group: asyncio.TaskGroup | None = None
        #: renders done (every attempt that reached the file), for tests
        self.renders = 0

    def poke(self) -> None:
        """Something outside the mirror changed (the lease, the schedule): look again."""
        self.wake.set()

    def schedule_changed(self, names: Iterable[str]) -> None:
        """The agent's schedule was read: wake only when the set of units changed."""
        names = frozenset(names)
        if names != self._units_seen:
            self._units_seen = names
            self.wake.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._group = tg
            for root in ("templates", "data"):
                self._mirror(root)
            while True:
                checkpoint()
                await wake_or_timeout(self.wake, self.resync)
                await self._settled()
                try:
                    await self.render_all()
                except RegistryError as exc:
                    log.warning("templates: %s; trying again", exc)
                    await asyncio.sleep(0.5)
                    self.wake.set()

    def _mirror(self, root: str) -> RootMirror:
        if root not in self.mirrors:
            mirror = RootMirror(self.store, self.store.root(root), self.wake)
            self.mirrors[root] = mirror
            assert self._group is not None
            self._group.create_task(mirror.run())
        return self.mirrors[root]

    async def _settled(self) -> None:
        """Coalesce a burst: wait until no change came for ``settle`` seconds (bounded)."""
        for _ in range(10):
            await asyncio.sleep(self.settle)
            if not self.wake.is_set():
                return
            self.wake.clear()

    async def render_all(self) -> None:
        """Render every template that applies here; publish the statuses."""
        defs, data = self.mirrors["templates"], self.mirrors["data"]
        if not (defs.ready and data.ready):
            return
        wanted = {name: res for name, res in self.store.resources(defs.kvs).items()
                  if applies(res, self.machine.metadata, self.scheduled())}
        for name in set(self.statuses) - set(wanted):
            del self.statuses[name]
            self._tried.pop(name, None)
        for res in wanted.values():
            snapshot = self._snapshot(res)
            if snapshot is not None:
                await self.render_one(res, snapshot)
        await self._publish()

    def _snapshot(self, res: TemplateResource) -> Snapshot | None:
        data = self.mirrors["data"]
        places: tuple[UnitPlace, ...] = ()
        revision = data.last
        if res.units:
            states, machines = self._mirror("states"), self._mirror("machines")
            if not (states.ready and machines.ready):
                return None
            places = self.store.places(states.kvs, machines.kvs)
            revision = max(revision, states.last, machines.last)
        values = {k: v for k, v in self.store.data_values(data.kvs).items()
                  if any(under(k, p) for p in res.keys)}
        return Snapshot(values, places, revision)

    def _set(self, res: TemplateResource, result: Result, detail: str, revision: int,
             digest: str = "") -> None:
        if result is not Result.OK or detail:
            log.log(logging.INFO if result is Result.OK else logging.WARNING,
                    "templates: %s → %s: %s: %s", res.name, res.dest, result.value, detail)
        self.statuses[res.name] = Status(result.value, detail[:400], revision, self.clock(),
                                         digest)

    async def render_one(self, res: TemplateResource, snapshot: Snapshot) -> None:
        rev = snapshot.revision
        refusal = self.host.refusal(res.dest, self.dirs)
        if refusal:
            self._set(res, Result.REFUSED, refusal, rev)
            return
        # jinja2 (~3 MiB) is imported by the first render, not by an agent with no template
        from unitctl.templating.render import render
        out = render(res, snapshot)
        if not out.ok:
            result = Result.HELD_BACK if out.held else Result.RENDER_FAILED
            self._set(res, result, out.held or out.error, rev)
            return
        digest = _digest(res, out.data)
        tried = self._tried.get(res.name)
        if tried is not None and tried[0] == digest:
            self.statuses[res.name] = tried[1]
            return
        if self.host.read(res.dest) == out.data:
            self._set(res, Result.OK, "", rev, digest)
        else:
            self.renders += 1
            result, detail = await self._install(res, out.data)
            self._set(res, result, detail, rev, digest)
        self._tried[res.name] = (digest, self.statuses[res.name])

    async def _install(self, res: TemplateResource, data: bytes) -> tuple[Result, str]:
        """Stage, check, replace, reload; put the previous file back if the reload fails."""
        try:
            staged = self.host.stage(res.dest, data, res.mode, res.owner, res.group)
        except (OSError, KeyError) as exc:
            return Result.WRITE_FAILED, f"cannot write {res.dest}: {exc}"
        if res.check_cmd:
            code, output = await self.host.run(res.check_argv(staged), self.command_timeout)
            if code != 0:
                self.host.discard(staged)
                return Result.CHECK_FAILED, f"check_cmd exited {code}: {output}"
        try:
            self.host.install(staged, res.dest)
        except OSError as exc:
            self.host.discard(staged)
            return Result.WRITE_FAILED, f"cannot replace {res.dest}: {exc}"
        if res.reload_cmd:
            code, output = await self.host.run(res.reload_argv(), self.command_timeout)
            if code != 0:
                self.host.restore(res.dest)
                return Result.RELOAD_FAILED, f"reload_cmd exited {code}: {output}; " \
                                             "previous file restored"
        return Result.OK, ""

    def published(self, name: str) -> Status | None:
        """The status of ``name`` last written to etcd (None: not yet)."""
        return self._published.get(name)

    async def _publish(self) -> None:
        """Write the statuses that changed (all of them under a new lease); drop gone ones."""
        lease = self.lease()
        if not lease:
            return
        fresh = lease != self._published_lease
        for name in set(self._published) - set(self.statuses):
            await self.store.delete_status(name, self.machine.id)
            del self._published[name]
        for name, status in self.statuses.items():
            if fresh or self._published.get(name) != status:
                try:
                    await self.store.put_status(name, self.machine.id, status, lease)
                except UnitctlError as exc:
                    log.warning("templates: status of %s not published: %s", name, exc)
                    asyncio.get_running_loop().call_later(1.0, self.wake.set)
                    return
                self._published[name] = status
        self._published_lease = lease
