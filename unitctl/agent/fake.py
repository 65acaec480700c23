"""An in-memory :class:`~unitctl.agent.ports.UnitManager` for tests and benchmarks.

It models what the agent can observe of systemd, cheaply (dicts, no I/O):

* files in the unit directory (``files``), runtime links (``linked``) and
  runtime enablement (``enabled``);
* systemd's view (``units``): a unit is known after ``reload`` once linked
  (``loaded/inactive/dead``); ``start`` -> ``active/running`` (refused, as by
  systemd, for a unit with ``RefuseManualStart=yes``), ``stop`` ->
  ``inactive/dead``, :meth:`crash` -> ``failed/failed``; after ``unload`` and
  a ``reload`` the unit is forgotten (``not-found``), as with systemd;
* *foreign* units (:meth:`add_foreign_unit`): the host's own units, known to
  systemd but not in the directory, each with its FragmentPath (what
  :meth:`host_unit` answers); nothing here ever touches them.

State changes are reported synchronously to the ``on_change`` callback, for
units with a file in the directory only, and only when the (load, active, sub)
triple changed -- the same contract as the real adapter.

Failure injection: :meth:`fail_next` makes the next call(s) of one method
raise, :meth:`fail_always` every call of one method for one unit;
:meth:`crash` simulates a unit dying. ``history`` records every call
(``keep_history=False`` for benchmarks).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from unitctl.agent.ports import RefusedBySystemd, StateCallback, SystemdState, content_hash
from unitctl.errors import InvalidUnitError, SystemdError
from unitctl.names import validate_name
from unitctl.unitfile import UnitFile

__all__ = ["FakeUnitManager"]

NOT_FOUND = SystemdState("not-found", "inactive", "dead")
LOADED = SystemdState("loaded", "inactive", "dead")
RUNNING = SystemdState("loaded", "active", "running")
FAILED = SystemdState("loaded", "failed", "failed")

#: The methods :meth:`FakeUnitManager.fail_next` can make fail.
METHODS = frozenset({"start_manager", "write", "link", "enable", "unload", "reload", "start",
                     "stop", "state", "host_unit"})


def _refuses_manual_start(text: str) -> bool:
    """``RefuseManualStart=`` is true in the unit's [Unit] section (systemd refuses StartUnit)."""
    try:
        value = UnitFile.parse(text).value("Unit", "RefuseManualStart")
    except InvalidUnitError:
        return False
    return (value or "").lower() in ("1", "yes", "y", "true", "t", "on")


class FakeUnitManager:
    """systemd in a few dicts. See the module docs for the model."""

    def __init__(self, units_dir: str = "/run/unitctl/units", *,
                 keep_history: bool = True) -> None:
        self.units_dir = units_dir
        #: The unit directory: name -> text.
        self.files: dict[str, str] = {}
        #: Names linked at runtime (``/run/systemd/system/<name>``).
        self.linked: set[str] = set()
        #: Names enabled at runtime (``[Install]`` symlinks).
        self.enabled: set[str] = set()
        #: systemd's view: every unit it has loaded (ours and foreign).
        self.units: dict[str, SystemdState] = {}
        #: Units systemd knows that are not in the directory.
        self.foreign: set[str] = set()
        #: The FragmentPath of each foreign unit.
        self.fragments: dict[str, str] = {}
        #: Every call as ``(method, name or "")``.
        self.history: list[tuple[str, str]] = []
        self.keep_history = keep_history
        self.started = False
        self.closed = False
        self._on_change: StateCallback | None = None
        self._failures: dict[str, list[Exception]] = {}
        self._refusals: dict[tuple[str, str], Exception] = {}
        self._hashes: dict[str, str] = {}
        self._reported: dict[str, SystemdState] = {}

    # ------------------------------------------------------------ test hooks
    def fail_next(self, method: str, error: Exception | None = None, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` raise ``error``.

        ``method`` is a UnitManager method name, or ``"enable"`` for the
        enable step of ``link(name, enable=True)`` (the file is then removed,
        as the real adapter does). Default error: :class:`SystemdError`.
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r} (one of {sorted(METHODS)})")
        err = error or SystemdError(f"injected failure of {method}")
        self._failures.setdefault(method, []).extend([err] * times)

    def fail_always(self, method: str, name: str, error: Exception | None = None) -> None:
        """Make every call of ``method`` for unit ``name`` raise ``error`` (as systemd
        refusing one unit); ``error=None`` ends it."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r} (one of {sorted(METHODS)})")
        if error is None:
            self._refusals.pop((method, name), None)
        else:
            self._refusals[(method, name)] = error

    def crash(self, name: str) -> None:
        """The unit's main process died: ``loaded/failed/failed``."""
        if name not in self.units:
            raise KeyError(f"{name} is not loaded")
        self._set(name, FAILED)

    def add_foreign_unit(self, name: str, state: SystemdState = RUNNING,
                         fragment: str | None = None) -> None:
        """A unit systemd knows whose file lives outside the directory (default
        FragmentPath: ``/etc/systemd/system/<name>``)."""
        self.foreign.add(name)
        self.fragments[name] = fragment or f"/etc/systemd/system/{name}"
        self.units[name] = state

    def set_state(self, name: str, state: SystemdState) -> None:
        """Put a unit in any state (as if systemd changed it on its own)."""
        self._set(name, state)

    # ------------------------------------------------------------ internals
    def _enter(self, method: str, name: str = "") -> None:
        if self.keep_history:
            self.history.append((method, name))
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)
        refusal = self._refusals.get((method, name))
        if refusal is not None:
            raise refusal

    def _check(self, name: str) -> None:
        validate_name(name)
        if "/" in name or name in (".", ".."):  # validate_name forbids both; stay safe
            raise SystemdError(f"refusing {name!r}: resolves outside {self.units_dir}")

    def _require_started(self) -> None:
        if not self.started or self.closed:
            raise SystemdError("not connected (start_manager() first)")

    def _set(self, name: str, state: SystemdState) -> None:
        self.units[name] = state
        self._report(name)

    def _report(self, name: str) -> None:
        if self._on_change is None or name not in self.files:
            return
        state = self.units.get(name, NOT_FOUND)
        if self._reported.get(name) == state:
            return
        self._reported[name] = state
        self._on_change(name, state)

    # ------------------------------------------------------------ UnitManager
    async def start_manager(self, on_change: StateCallback) -> None:
        self._enter("start_manager")
        self._on_change = on_change
        self.started, self.closed = True, False

    async def close(self) -> None:
        self.closed = True
        self._on_change = None

    def present(self) -> Mapping[str, str]:
        return dict(self._hashes)

    async def write(self, name: str, text: str) -> None:
        self._check(name)
        self._enter("write", name)
        self.files[name] = text
        self._hashes[name] = content_hash(text)

    async def link(self, name: str, enable: bool) -> None:
        self._check(name)
        self._enter("link", name)
        self._require_started()
        if name not in self.files:
            raise SystemdError(f"cannot link {name}: {os.path.join(self.units_dir, name)} "
                               "is not a regular file")
        self.linked.add(name)
        if enable:
            try:
                self._enter("enable", name)
            except Exception:
                self.linked.discard(name)
                self._drop_file(name)
                raise
            self.enabled.add(name)

    async def reload(self) -> None:
        self._enter("reload")
        self._require_started()
        for name in self.linked:
            if name in self.files and self.units.get(name, NOT_FOUND).load != "loaded":
                self.units[name] = LOADED
        for name in list(self.units):
            known = name in self.foreign or (name in self.linked and name in self.files)
            if not known and self.units[name].active in ("inactive", "failed"):
                del self.units[name]  # garbage-collected: not-found from now on
        for name in self.files:
            self._report(name)

    async def start(self, name: str, ignore_requirements: bool = False) -> None:
        self._check(name)
        self._enter("start", name)
        self._require_started()
        self._require_file(name)
        if self.units.get(name, NOT_FOUND).load != "loaded":
            raise SystemdError(f"systemd StartUnit: org.freedesktop.systemd1.NoSuchUnit: "
                               f"Unit {name} not found.")
        if _refuses_manual_start(self.files[name]):
            text = (f"Operation refused, unit {name} may be requested by dependency only "
                    "(it is configured to refuse manual start/stop).")
            raise RefusedBySystemd(
                f"systemd StartUnit: org.freedesktop.systemd1.OnlyByDependency: {text}", text)
        self._set(name, RUNNING)

    async def stop(self, name: str) -> None:
        self._check(name)
        self._enter("stop", name)
        self._require_started()
        self._require_file(name)
        if name in self.units and self.units[name].active != "failed":
            self._set(name, SystemdState(self.units[name].load, "inactive", "dead"))

    def _require_file(self, name: str) -> None:
        if name not in self.files:
            raise SystemdError(f"{name} is not a unit of {self.units_dir}: refusing to touch it")

    async def host_unit(self, name: str) -> str | None:
        self._check(name)
        self._enter("host_unit", name)
        self._require_started()
        if name not in self.foreign or name in self.files or name in self.linked:
            return None
        return self.fragments.get(name, f"/etc/systemd/system/{name}")

    async def unload(self, name: str) -> None:
        self._check(name)
        self._enter("unload", name)
        self._require_started()
        if name not in self.files and name not in self.linked:
            return  # not ours
        if name in self.units:  # stop, then reset-failed
            self._set(name, SystemdState(self.units[name].load, "inactive", "dead"))
        self.linked.discard(name)
        self.enabled.discard(name)
        self._drop_file(name)

    def _drop_file(self, name: str) -> None:
        self.files.pop(name, None)
        self._hashes.pop(name, None)
        self._reported.pop(name, None)

    async def state(self, name: str) -> SystemdState:
        self._check(name)
        self._enter("state", name)
        self._require_started()
        return self.units.get(name, NOT_FOUND)
