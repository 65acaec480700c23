"""The agent's :class:`~unitctl.agent.ports.UnitManager` over systemd's D-Bus API.

The only module that imports dbus-fast. It does what fleet's
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
  the file. A name with no file (and no runtime link) of ours is left alone.

State is reported from signals, never by polling. After ``Subscribe()`` systemd
sends ``PropertiesChanged`` for the ``org.freedesktop.systemd1.Unit`` interface
of a unit object whenever ``ActiveState``/``SubState`` change; ``LoadState`` is
not part of those signals (systemd 252), so it is cached per unit and fetched
with one ``ListUnitsByNames`` call when unknown: at the first signal of a unit,
after a daemon-reload (``Reloading(false)``) and after systemd loaded a
rewritten file anew (``UnitNew``). A fetch is only ever triggered by a signal, and a
fetch cannot trigger a ``PropertiesChanged`` itself, so there is no feedback loop.
``on_change`` runs inside the bus reader, so a change reaches the caller in
about a millisecond after systemd emitted it.

Every dbus-fast failure (error replies, timeouts, a lost connection) is raised
as :class:`unitctl.errors.SystemdError` carrying the D-Bus error name and text.
Once the bus connection is lost every call raises ``SystemdError``; the owner
is expected to ``close()`` and build a new manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

from unitctl.agent.ports import StateCallback, SystemdState
from unitctl.errors import BusLost, InvalidUnitError, InvalidUnitNameError, SystemdError
from unitctl.names import validate_name
from unitctl.unitfile import UnitFile

__all__ = [
    "DEFAULT_UNITS_DIR",
    "SystemdUnitManager",
    "bus_label_escape",
    "bus_label_unescape",
    "unit_object_path",
]

log = logging.getLogger(__name__)

DEFAULT_UNITS_DIR = "/run/unitctl/units"
#: Where ``LinkUnitFiles(runtime=True)`` puts its symlinks.
RUNTIME_UNIT_DIR = "/run/systemd/system"

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER_IFACE = "org.freedesktop.systemd1.Manager"
UNIT_IFACE = "org.freedesktop.systemd1.Unit"
UNIT_PATH_PREFIX = "/org/freedesktop/systemd1/unit/"
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"

#: What ``state()`` reports for a unit systemd does not know.
UNKNOWN_STATE = SystemdState("not-found", "inactive", "dead")

MATCH_RULES = (
    "type='signal',sender='org.freedesktop.systemd1',"
    "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
    "path_namespace='/org/freedesktop/systemd1/unit'",
    "type='signal',sender='org.freedesktop.systemd1',"
    "interface='org.freedesktop.systemd1.Manager',path='/org/freedesktop/systemd1'",
)

# JobRemoved results kept for a waiter that registers after the signal arrived.
_FINISHED_JOBS_KEPT = 256
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


def bus_label_escape(label: str) -> str:
    """Escape a string as one object-path element (systemd's ``bus_label_escape``).

    ASCII letters and digits stay, every other byte of the UTF-8 encoding
    becomes ``_xx`` (``web-1.service`` -> ``web_2d1_2eservice``); ``""`` -> ``_``.
    """
    if not label:
        return "_"
    out: list[str] = []
    for byte in label.encode("utf-8"):
        char = chr(byte)
        out.append(char if char in _ALNUM else f"_{byte:02x}")
    return "".join(out)


def bus_label_unescape(label: str) -> str | None:
    """Invert :func:`bus_label_escape`; None for a malformed label."""
    if label == "_":
        return ""
    out = bytearray()
    i = 0
    while i < len(label):
        char = label[i]
        if char == "_":
            digits = label[i + 1:i + 3]
            if len(digits) != 2 or not set(digits) <= _HEX:
                return None
            out.append(int(digits, 16))
            i += 3
        elif char in _ALNUM:
            out.append(ord(char))
            i += 1
        else:
            return None
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return None


def unit_object_path(name: str) -> str:
    """The D-Bus object path of a unit (``/org/freedesktop/systemd1/unit/<escaped>``)."""
    return UNIT_PATH_PREFIX + bus_label_escape(name)


def content_hash(data: bytes) -> str:
    """sha1 of the normalised unit text; of the raw bytes if it does not parse."""
    try:
        return UnitFile.parse_bytes(data).hash()
    except InvalidUnitError:
        return hashlib.sha1(data).hexdigest()


class _BusCallError(SystemdError):
    """A D-Bus error reply; ``dbus_name`` is e.g. ``org.freedesktop.systemd1.NoSuchUnit``."""

    def __init__(self, member: str, dbus_name: str, text: str) -> None:
        super().__init__(f"systemd {member}: {dbus_name}: {text}")
        self.dbus_name = dbus_name
        self.text = text


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
        self._dir = os.path.abspath(units_dir)
        self._address = bus_address
        self._call_timeout = call_timeout
        self._job_timeout = job_timeout
        self._bus: MessageBus | None = None
        self._on_change: StateCallback | None = None
        self._lost: SystemdError | None = None
        self._closing = False
        # units with a file in the directory: the only ones reported
        self._owned: set[str] = set()
        self._load: dict[str, str] = {}
        self._active: dict[str, tuple[str, str]] = {}
        self._signals: dict[str, int] = {}  # PropertiesChanged seen per unit
        self._reported: dict[str, SystemdState] = {}
        # rewritten since systemd last loaded them: LoadState may change on the next load
        self._dirty: set[str] = set()
        self._refreshing: set[str] = set()
        self._refresh_again: set[str] = set()
        self._job_waiters: dict[str, asyncio.Future[str]] = {}
        self._finished_jobs: OrderedDict[str, str] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        #: D-Bus method calls sent so far (tests use it to prove reports need none).
        self.dbus_calls = 0

    @property
    def units_dir(self) -> str:
        """The absolute directory this manager owns."""
        return self._dir

    # ------------------------------------------------------------ connection
    async def start_manager(self, on_change: StateCallback) -> None:
        """Connect to the bus, add the signal matches, ``Subscribe()``."""
        if self._bus is not None:
            raise SystemdError("the systemd manager is already started")
        self._on_change = on_change
        self._closing = False
        self._lost = None
        self.present()  # learn which units are ours before the first signal
        where = self._address or "the system bus"
        try:
            bus = MessageBus(bus_address=self._address, bus_type=BusType.SYSTEM)
            await asyncio.wait_for(bus.connect(), self._call_timeout)
        except Exception as exc:
            raise SystemdError(f"cannot connect to {where}: {_describe(exc)}") from exc
        self._bus = bus
        bus.add_message_handler(self._on_message)
        self._watcher = asyncio.get_running_loop().create_task(self._watch_disconnect(bus))
        try:
            for rule in MATCH_RULES:
                await self._call("AddMatch", "s", [rule], destination="org.freedesktop.DBus",
                                 path="/org/freedesktop/DBus", interface="org.freedesktop.DBus")
            await self._call("Subscribe")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Disconnect; units keep running."""
        self._closing = True
        bus, self._bus = self._bus, None
        watcher, self._watcher = self._watcher, None
        for task in list(self._tasks):
            task.cancel()
        for fut in self._job_waiters.values():
            if not fut.done():
                fut.set_exception(SystemdError("the systemd manager was closed"))
        if bus is not None:
            bus.remove_message_handler(self._on_message)
            bus.disconnect()
        if watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watcher, 5)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch_disconnect(self, bus: MessageBus) -> None:
        err: BaseException | None = None
        try:
            await asyncio.shield(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        except Exception as exc:
            err = exc
        if self._closing or self._bus is not bus:
            return
        self._lost = BusLost(
            f"lost the connection to systemd's bus: {_describe(err) if err else 'closed'}")
        log.error("%s", self._lost)
        for fut in self._job_waiters.values():
            if not fut.done():
                fut.set_exception(self._lost)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, member: str, signature: str = "", body: Iterable[Any] = (), *,
                    destination: str = SYSTEMD, path: str = MANAGER_PATH,
                    interface: str = MANAGER_IFACE, timeout: float | None = None) -> list[Any]:
        """One method call; its reply body, or SystemdError."""
        if self._lost is not None:
            raise self._lost
        bus = self._bus
        if bus is None or not bus.connected:
            raise SystemdError(f"systemd {member}: not connected (start_manager() first)")
        msg = Message(destination=destination, path=path, interface=interface, member=member,
                      signature=signature, body=list(body))
        wait = self._call_timeout if timeout is None else timeout
        self.dbus_calls += 1
        try:
            reply = await asyncio.wait_for(bus.call(msg), wait)
        except TimeoutError as exc:
            raise SystemdError(f"systemd {member}: no reply within {wait:g}s") from exc
        except DBusError as exc:
            raise _BusCallError(member, exc.type, exc.text) from exc
        except Exception as exc:
            if self._lost is not None:
                raise self._lost from exc
            raise SystemdError(f"systemd {member}: bus failure: {_describe(exc)}") from exc
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise _BusCallError(member, reply.error_name or "unknown", text)
        return list(reply.body)

    # ------------------------------------------------------------ files
    def _path(self, name: str) -> str:
        """``<dir>/<name>`` for a valid name; refuses anything outside the dir."""
        validate_name(name)
        path = os.path.normpath(os.path.join(self._dir, name))
        if os.path.dirname(path) != self._dir or os.path.basename(path) != name:
            raise SystemdError(f"refusing {name!r}: resolves outside {self._dir}")
        return path

    def present(self) -> Mapping[str, str]:
        """Unit files in the directory: name -> sha1 of the normalised text."""
        found: dict[str, str] = {}
        try:
            entries = list(os.scandir(self._dir))
        except FileNotFoundError:
            entries = []
        except OSError as exc:
            raise SystemdError(f"cannot list {self._dir}: {exc}") from exc
        for entry in entries:
            if not _is_unit_name(entry.name):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                with open(entry.path, "rb") as f:
                    data = f.read()
            except OSError:
                continue  # removed meanwhile
            found[entry.name] = content_hash(data)
        self._owned = set(found)
        return found

    async def write(self, name: str, text: str) -> None:
        """Write ``text`` atomically as ``<dir>/<name>`` (mode 0644, dir 0755)."""
        path = self._path(name)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SystemdError(f"cannot write {path}: text is not valid UTF-8") from exc
        try:
            await asyncio.to_thread(_write_atomic, self._dir, path, data)  # fsync may block
        except OSError as exc:
            raise SystemdError(f"cannot write {path}: {exc}") from exc
        self._owned.add(name)
        self._dirty.add(name)

    def _remove_file(self, name: str, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SystemdError(f"cannot remove {path}: {exc}") from exc
        self._forget(name)

    def _forget(self, name: str) -> None:
        self._owned.discard(name)
        self._dirty.discard(name)
        for cache in (self._load, self._active, self._signals, self._reported):
            cache.pop(name, None)

    def _runtime_link_is_ours(self, name: str) -> bool:
        try:
            target = os.readlink(os.path.join(RUNTIME_UNIT_DIR, name))
        except OSError:
            return False
        return os.path.dirname(os.path.normpath(target)) == self._dir

    # ------------------------------------------------------------ operations
    async def link(self, name: str, enable: bool) -> None:
        """``LinkUnitFiles`` (runtime, force); with ``enable`` also ``EnableUnitFiles``."""
        path = self._path(name)
        if not os.path.isfile(path) or os.path.islink(path):
            raise SystemdError(f"cannot link {name}: {path} is not a regular file")
        await self._call("LinkUnitFiles", "asbb", [[path], True, True])
        if not enable:
            return
        try:
            await self._call("EnableUnitFiles", "asbb", [[path], True, True])
        except SystemdError:
            with contextlib.suppress(SystemdError):
                await self._call("DisableUnitFiles", "asb", [[name], True])
            with contextlib.suppress(SystemdError):
                self._remove_file(name, path)
            raise

    async def reload(self) -> None:
        """``Reload()``: returns after systemd finished reloading its units."""
        await self._call("Reload", timeout=max(self._call_timeout, self._job_timeout))

    async def start(self, name: str) -> None:
        """``StartUnit(name, "replace")``; returns when the job is queued."""
        self._require_file(name)
        await self._call("StartUnit", "ss", [name, "replace"])

    async def stop(self, name: str) -> None:
        """``StopUnit(name, "replace")``; returns when the job is queued."""
        self._require_file(name)
        await self._call("StopUnit", "ss", [name, "replace"])

    def _require_file(self, name: str) -> None:
        path = self._path(name)
        if not os.path.lexists(path):
            raise SystemdError(f"{name} is not a unit of {self._dir}: refusing to touch it")

    async def unload(self, name: str) -> None:
        """Stop and wait; only then disable at runtime, reset-failed, delete the file.

        A name that has neither a file in the directory nor a runtime link
        into it is not ours: nothing happens.
        """
        path = self._path(name)
        if not os.path.lexists(path) and not self._runtime_link_is_ours(name):
            log.debug("unload %s: no file in %s, nothing to do", name, self._dir)
            self._forget(name)
            return
        await self._stop_and_wait(name)
        for member, signature, args in (("DisableUnitFiles", "asb", [[name], True]),
                                        ("ResetFailedUnit", "s", [name])):
            try:
                await self._call(member, signature, args)
            except _BusCallError as exc:
                if exc.dbus_name != NO_SUCH_UNIT:  # never linked / not loaded: fine
                    raise
        self._remove_file(name, path)

    async def _stop_and_wait(self, name: str) -> None:
        try:
            body = await self._call("StopUnit", "ss", [name, "replace"])
        except _BusCallError as exc:
            if exc.dbus_name == NO_SUCH_UNIT:
                return  # not loaded and not loadable: nothing runs
            raise
        job = str(body[0])
        result = await self._wait_job(job)
        if result != "done":
            raise SystemdError(f"stopping {name} failed: job {job} ended with {result!r}")

    async def _wait_job(self, job: str) -> str:
        if job in self._finished_jobs:
            return self._finished_jobs.pop(job)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._job_waiters[job] = fut
        try:
            return await asyncio.wait_for(fut, self._job_timeout)
        except TimeoutError as exc:
            raise SystemdError(f"job {job} did not finish within {self._job_timeout:g}s") from exc
        finally:
            self._job_waiters.pop(job, None)

    async def state(self, name: str) -> SystemdState:
        """``ListUnitsByNames``: the unit's state; ``not-found/inactive/dead`` if unknown."""
        validate_name(name)
        rows = await self._list_units([name])
        for row in rows:
            if row[0] == name:
                return SystemdState(row[1], row[2], row[3])
        return UNKNOWN_STATE

    async def _list_units(self, names: list[str]) -> list[tuple[str, str, str, str]]:
        """(name, load, active, sub) of each unit (systemd loads them as needed)."""
        body = await self._call("ListUnitsByNames", "as", [names])
        return [(str(r[0]), str(r[2]), str(r[3]), str(r[4])) for r in body[0]]

    # ------------------------------------------------------------ signals
    def _on_message(self, msg: Message) -> None:
        """Bus reader hook: every incoming message passes here first."""
        if msg.message_type != MessageType.SIGNAL:
            return None
        try:
            if msg.member == "PropertiesChanged" and msg.interface == PROPERTIES_IFACE:
                self._on_properties_changed(msg.path or "", msg.body)
            elif msg.interface == MANAGER_IFACE and msg.path == MANAGER_PATH:
                self._on_manager_signal(msg.member, msg.body)
        except Exception:  # never let one odd signal break the reader
            log.exception("cannot handle signal %s %s", msg.member, msg.path)
        return None

    def _on_properties_changed(self, path: str, body: list[Any]) -> None:
        if not path.startswith(UNIT_PATH_PREFIX) or len(body) < 2 or body[0] != UNIT_IFACE:
            return
        name = bus_label_unescape(path[len(UNIT_PATH_PREFIX):])
        if name is None or name not in self._owned:
            return
        changed: dict[str, Any] = body[1]
        if "LoadState" in changed:
            self._load[name] = str(changed["LoadState"].value)
        active, sub = changed.get("ActiveState"), changed.get("SubState")
        if active is None or sub is None:
            if "LoadState" in changed:
                self._refresh([name])
            return
        self._active[name] = (str(active.value), str(sub.value))
        self._signals[name] = self._signals.get(name, 0) + 1
        load = self._load.get(name)
        if load is None:
            if name not in self._refreshing:  # a fetch in flight uses the new values
                self._refresh([name])
            return
        self._emit(name, SystemdState(load, *self._active[name]))

    def _on_manager_signal(self, member: str | None, body: list[Any]) -> None:
        if member == "JobRemoved" and len(body) >= 4:
            job, result = str(body[1]), str(body[3])
            fut = self._job_waiters.get(job)
            if fut is not None:
                if not fut.done():
                    fut.set_result(result)
            else:
                self._finished_jobs[job] = result
                while len(self._finished_jobs) > _FINISHED_JOBS_KEPT:
                    self._finished_jobs.popitem(last=False)
        elif member == "UnitNew" and body and body[0] in self._dirty:
            # loaded anew from a rewritten file: LoadState may differ
            self._dirty.discard(str(body[0]))
            self._load.pop(str(body[0]), None)
        elif member == "Reloading" and body:
            if body[0]:
                self._dirty.clear()
                for name in self._owned:
                    self._load.pop(name, None)
            elif self._owned:
                self._refresh(sorted(self._owned))

    def _refresh(self, names: list[str]) -> None:
        """Fetch the state of ``names`` (one call) and report changes."""
        if self._bus is None or self._lost is not None:
            return
        busy = [n for n in names if n in self._refreshing]
        self._refresh_again.update(busy)
        todo = [n for n in names if n not in self._refreshing]
        if todo:
            self._refreshing.update(todo)
            self._spawn(self._fetch_and_report(todo))

    async def _fetch_and_report(self, names: list[str]) -> None:
        seen = {n: self._signals.get(n, 0) for n in names}
        try:
            rows = await self._list_units(names)
        except SystemdError as exc:
            log.warning("cannot read the state of %s: %s", ", ".join(names), exc)
            rows = []
        finally:
            self._refreshing.difference_update(names)
        for name, load, active, sub in rows:
            if name not in self._owned:
                continue
            self._load[name] = load
            if self._signals.get(name, 0) != seen.get(name, 0) and name in self._active:
                # a signal came in meanwhile; systemd emits the final state
                # after any reply, so the latest signal wins
                active, sub = self._active[name]
            else:
                self._active[name] = (active, sub)
            self._emit(name, SystemdState(load, active, sub))
        again = [n for n in names if n in self._refresh_again]
        self._refresh_again.difference_update(again)
        if again:
            self._refresh(again)

    def _emit(self, name: str, state: SystemdState) -> None:
        if name not in self._owned or self._on_change is None:
            return
        if self._reported.get(name) == state:
            return
        self._reported[name] = state
        try:
            self._on_change(name, state)
        except Exception:
            log.exception("on_change(%s, %s) failed", name, state)


def _is_unit_name(name: str) -> bool:
    try:
        validate_name(name)
    except InvalidUnitNameError:
        return False
    return True


def _write_atomic(directory: str, path: str, data: bytes) -> None:
    """Temp file in the same dir, fsync, rename over ``path``, fsync the dir."""
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755, exist_ok=True)
        os.chmod(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
