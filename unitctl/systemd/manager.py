"""The agent's :class:`~unitctl.agent.ports.UnitManager` over systemd's D-Bus API.

A thin facade over three parts: the bus (:mod:`unitctl.systemd.bus`), the
owned unit directory (:mod:`unitctl.systemd.unitdir`) and the signal-fed state
cache (:mod:`unitctl.systemd.states`). It does what fleet's
``systemd/manager.go`` does (fleet-reference §4.2), for unit files in one
directory only (default ``/run/unitctl/units``):

* ``write``  -- atomic write of ``<dir>/<name>`` (temp file, fsync, rename), 0644;
* ``link``   -- ``LinkUnitFiles([path], runtime, force)`` and, with ``enable``,
  ``EnableUnitFiles([path], runtime, force)``; a failed enable removes the file;
* ``reload`` -- ``Reload()`` (the reply comes once systemd finished reloading);
* ``start``/``stop`` -- ``StartUnit``/``StopUnit(name, "replace")``, return when
  the job is queued;
* ``unload`` -- ``StopUnit`` and wait for its job (``JobRemoved``); only if that
  worked: ``DisableUnitFiles([name], runtime)``, ``ResetFailedUnit`` and delete
  the file. A name with no file (and no runtime link) of ours is left alone;
* ``host_unit`` -- ``LoadUnit(name)``, then its ``LoadState`` and
  ``FragmentPath``: a unit the host has outside the directory (a vendor or
  admin unit, or a masked name) is the host's, never ours to write or link.

State is reported from signals, never by polling (the rules are in
:mod:`unitctl.systemd.states`); the one call a signal may cause is the
``ListUnitsByNames`` fetch the tracker asks for. ``on_change`` runs inside the
bus reader, so a change reaches the caller in about a millisecond after
systemd emitted it.

Every failure is raised as :class:`unitctl.errors.SystemdError`; once the bus
connection is lost every call raises :class:`unitctl.errors.BusLost`, and the
owner is expected to ``close()`` and build a new manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

from unitctl.agent.ports import StateCallback, SystemdState
from unitctl.errors import SystemdError
from unitctl.names import validate_name
from unitctl.systemd.api import NO_SUCH_UNIT, UNKNOWN_STATE
from unitctl.systemd.bus import BusCallError, SystemdBus
from unitctl.systemd.states import FetchedRow, StateTracker, Update
from unitctl.systemd.unitdir import DEFAULT_UNITS_DIR, RUNTIME_UNIT_DIR, UnitDirectory

__all__ = ["SystemdUnitManager"]

log = logging.getLogger(__name__)

# JobRemoved results kept for a waiter that registers after the signal arrived.
_FINISHED_JOBS_KEPT = 256


class _JobWaits:
    """Waiters for systemd jobs by object path, and results nobody waited for yet."""

    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Future[str]] = {}
        self._finished: OrderedDict[str, str] = OrderedDict()

    def finished(self, job: str, result: str) -> None:
        """``JobRemoved`` for ``job``: wake its waiter, or keep the result for one."""
        fut = self._waiters.get(job)
        if fut is not None:
            if not fut.done():
                fut.set_result(result)
            return
        self._finished[job] = result
        while len(self._finished) > _FINISHED_JOBS_KEPT:
            self._finished.popitem(last=False)

    def fail_all(self, exc: SystemdError) -> None:
        """Every waiting ``wait`` raises ``exc``."""
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(exc)

    async def wait(self, job: str, timeout: float) -> str:
        """The job's result (``done``, ``failed``, ...), or SystemdError after ``timeout``."""
        if job in self._finished:
            return self._finished.pop(job)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[job] = fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError as exc:
            raise SystemdError(f"job {job} did not finish within {timeout:g}s") from exc
        finally:
            self._waiters.pop(job, None)


class SystemdUnitManager:
    """Drives the local systemd over D-Bus for the unit files in ``units_dir``.

    Args:
        units_dir: the directory this manager owns; nothing outside it is
            written, linked, stopped or deleted.
        bus_address: a D-Bus address (``unix:path=...``); default: the system bus.
        call_timeout: seconds to wait for the reply to one D-Bus call.
        job_timeout: seconds ``unload`` waits for its stop job, and ``reload``
            for systemd to finish reloading.
    """

    def __init__(self, units_dir: str = DEFAULT_UNITS_DIR, bus_address: str | None = None,
                 *, call_timeout: float = 30.0, job_timeout: float = 120.0) -> None:
        self._dir = UnitDirectory(units_dir)
        self._call_timeout = call_timeout
        self._job_timeout = job_timeout
        self._bus = SystemdBus(bus_address, call_timeout, self._on_signal, self._on_lost)
        self._states = StateTracker()
        self._jobs = _JobWaits()
        self._on_change: StateCallback | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def units_dir(self) -> str:
        """The absolute directory this manager owns."""
        return self._dir.path

    @property
    def dbus_calls(self) -> int:
        """D-Bus method calls sent so far (tests use it to prove reports need none)."""
        return self._bus.calls

    # ------------------------------------------------------------ connection
    async def start_manager(self, on_change: StateCallback) -> None:
        """Connect to the bus, add the signal matches, ``Subscribe()``."""
        if self._bus.is_open:
            raise SystemdError("the systemd manager is already started")
        self._on_change = on_change
        self.present()  # learn which units are ours before the first signal
        await self._bus.connect()
        try:
            await self._bus.subscribe()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Disconnect; units keep running."""
        for task in list(self._tasks):
            task.cancel()
        self._jobs.fail_all(SystemdError("the systemd manager was closed"))
        await self._bus.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_lost(self, lost: SystemdError) -> None:
        self._jobs.fail_all(lost)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ files
    def present(self) -> Mapping[str, str]:
        """Unit files in the directory: name -> sha1 of the normalised text."""
        found = self._dir.present()
        self._states.own(found)
        return found

    async def write(self, name: str, text: str) -> None:
        """Write ``text`` atomically as ``<dir>/<name>`` (mode 0644, dir 0755)."""
        await asyncio.to_thread(self._dir.write, name, text)  # fsync may block
        self._states.wrote(name)

    def _remove_file(self, name: str) -> None:
        self._dir.remove(name)
        self._states.forget(name)

    def _require_file(self, name: str) -> None:
        if not self._dir.has_file(name):
            raise SystemdError(f"{name} is not a unit of {self._dir.path}: refusing to touch it")

    # ------------------------------------------------------------ operations
    async def link(self, name: str, enable: bool) -> None:
        """``LinkUnitFiles`` (runtime, force); with ``enable`` also ``EnableUnitFiles``."""
        path = self._dir.file_path(name)
        if not self._dir.has_regular_file(name):
            raise SystemdError(f"cannot link {name}: {path} is not a regular file")
        await self._bus.call("LinkUnitFiles", "asbb", [[path], True, True])
        if not enable:
            return
        try:
            await self._bus.call("EnableUnitFiles", "asbb", [[path], True, True])
        except SystemdError:
            with contextlib.suppress(SystemdError):
                await self._bus.call("DisableUnitFiles", "asb", [[name], True])
            with contextlib.suppress(SystemdError):
                self._remove_file(name)
            raise

    async def reload(self) -> None:
        """``Reload()``: returns after systemd finished reloading its units."""
        await self._bus.call("Reload", timeout=max(self._call_timeout, self._job_timeout))

    async def start(self, name: str, ignore_requirements: bool = False) -> None:
        """``StartUnit(name, "replace")`` (or ``"ignore-requirements"``); returns when
        the job is queued."""
        self._require_file(name)
        mode = "ignore-requirements" if ignore_requirements else "replace"
        await self._bus.call("StartUnit", "ss", [name, mode])

    async def stop(self, name: str) -> None:
        """``StopUnit(name, "replace")``; returns when the job is queued."""
        self._require_file(name)
        await self._bus.call("StopUnit", "ss", [name, "replace"])

    async def host_unit(self, name: str) -> str | None:
        """The host's unit of this name: its FragmentPath (or ``masked``), None if free or ours.

        Ours: systemd loads it from the directory, or from the runtime link the
        agent made into it. ``LoadUnit`` loads a name nobody has as ``not-found``
        (systemd collects it again).
        """
        self._dir.file_path(name)  # validates the name
        path = str((await self._bus.call("LoadUnit", "s", [name]))[0])
        load = str(await self._bus.unit_property(path, "LoadState"))
        fragment = str(await self._bus.unit_property(path, "FragmentPath") or "")
        if load == "masked":
            return "masked"
        if not fragment or os.path.dirname(os.path.normpath(fragment)) == self._dir.path:
            return None
        ours = (fragment == os.path.join(RUNTIME_UNIT_DIR, name)
                and self._dir.runtime_link_is_ours(name))
        return None if ours else fragment

    async def unload(self, name: str) -> None:
        """Stop and wait; only then disable at runtime, reset-failed, delete the file.

        A name that has neither a file in the directory nor a runtime link
        into it is not ours: nothing happens.
        """
        if not self._dir.has_file(name) and not self._dir.runtime_link_is_ours(name):
            log.debug("unload %s: no file in %s, nothing to do", name, self._dir.path)
            self._states.forget(name)
            return
        await self._stop_and_wait(name)
        for member, signature, args in (("DisableUnitFiles", "asb", [[name], True]),
                                        ("ResetFailedUnit", "s", [name])):
            try:
                await self._bus.call(member, signature, args)
            except BusCallError as exc:
                if exc.dbus_name != NO_SUCH_UNIT:  # never linked / not loaded: fine
                    raise
        self._remove_file(name)

    async def _stop_and_wait(self, name: str) -> None:
        try:
            body = await self._bus.call("StopUnit", "ss", [name, "replace"])
        except BusCallError as exc:
            if exc.dbus_name == NO_SUCH_UNIT:
                return  # not loaded and not loadable: nothing runs
            raise
        job = str(body[0])
        result = await self._jobs.wait(job, self._job_timeout)
        if result != "done":
            raise SystemdError(f"stopping {name} failed: job {job} ended with {result!r}")

    async def state(self, name: str) -> SystemdState:
        """``ListUnitsByNames``: the unit's state; ``not-found/inactive/dead`` if unknown.

        Never older than a state already handed to ``on_change``: a signal
        that arrives with the reply wins over it (see :meth:`StateTracker.read_done`).
        """
        validate_name(name)
        mark = self._states.read_started(name)
        fetched = UNKNOWN_STATE
        for row in await self._list_units([name]):
            if row[0] == name:
                fetched = SystemdState(row[1], row[2], row[3])
                break
        return self._states.read_done(name, mark, fetched)

    async def _list_units(self, names: list[str]) -> list[FetchedRow]:
        """(name, load, active, sub) of each unit (systemd loads them as needed)."""
        body = await self._bus.call("ListUnitsByNames", "as", [names])
        return [(str(r[0]), str(r[2]), str(r[3]), str(r[4])) for r in body[0]]

    # ------------------------------------------------------------ signals
    def _on_signal(self, path: str, interface: str, member: str, body: list[Any]) -> None:
        self._apply(self._states.signal(path, interface, member, body))

    def _apply(self, update: Update) -> None:
        """Do what the tracker asks: wake a job waiter, report changes, fetch."""
        if update.finished_job is not None:
            self._jobs.finished(*update.finished_job)
        for name, state in update.changed:
            self._emit(name, state)
        if update.fetch:
            self._refresh(update.fetch)

    def _emit(self, name: str, state: SystemdState) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(name, state)
        except Exception:
            log.exception("on_change(%s, %s) failed", name, state)

    def _refresh(self, names: Iterable[str]) -> None:
        """Fetch the state of ``names`` (one call) and report changes."""
        if not self._bus.usable:
            return
        todo = self._states.request_fetch(names)
        if todo:
            self._spawn(self._fetch_and_report(todo))

    async def _fetch_and_report(self, names: list[str]) -> None:
        mark = self._states.fetch_started(names)
        rows: list[FetchedRow] = []
        try:
            rows = await self._list_units(names)
        except SystemdError as exc:
            log.warning("cannot read the state of %s: %s", ", ".join(names), exc)
        except BaseException:
            self._states.fetch_abandoned(names)
            raise
        self._apply(self._states.fetch_done(names, mark, rows))
