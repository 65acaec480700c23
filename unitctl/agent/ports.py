"""The agent's port to the local init system (systemd).

Implemented by :class:`unitctl.systemd.SystemdUnitManager` (D-Bus; the
``unitctl.systemd`` package is the only one that imports dbus-fast) and
:class:`unitctl.agent.fake.FakeUnitManager`; both pass
``tests/contract/test_unit_manager_contract.py``.

:func:`content_hash` is the identity of a unit file in the directory, what
:meth:`UnitManager.present` reports: both implementations compute it with this
one function, and for a file that parses it equals :meth:`UnitFile.hash`, the
hash the registry stores for a unit body.

Two errors say *why* a call failed, so the agent can tell it to a user:
:class:`RefusedBySystemd` (systemd received the call and said no, e.g.
``RefuseManualStart=``) and :class:`HostUnitError` (the name is one of the
host's own units: the agent never shadows, stops or unloads those).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from unitctl.errors import InvalidUnitError, SystemdError
from unitctl.unitfile import UnitFile

__all__ = ["HostUnitError", "RefusedBySystemd", "StateCallback", "SystemdState", "UnitManager",
           "content_hash"]


def content_hash(content: bytes | str) -> str:
    """sha1 of the normalised unit text (:meth:`UnitFile.hash`).

    Content that does not parse hashes as its raw bytes (text as UTF-8, lone
    surrogates escaped), so a broken file still has a stable identity.
    """
    try:
        if isinstance(content, bytes):
            return UnitFile.parse_bytes(content).hash()
        return UnitFile.parse(content).hash()
    except InvalidUnitError:
        raw = content if isinstance(content, bytes) else content.encode("utf-8",
                                                                        "surrogateescape")
        return hashlib.sha1(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class SystemdState:
    """systemd's LoadState / ActiveState / SubState of one unit."""

    load: str
    active: str
    sub: str


class RefusedBySystemd(SystemdError):
    """systemd answered a call with an error; ``text`` is what it said."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.text = text


class HostUnitError(SystemdError):
    """The name is a unit the host has outside the agent's directory (``fragment``)."""

    def __init__(self, name: str, fragment: str) -> None:
        super().__init__(f"{name} is a unit of this host ({fragment}): unitctl never "
                         "shadows, stops or unloads a host's own unit")
        self.fragment = fragment


#: Called with (unit name, new state) when systemd reports a change.
StateCallback = Callable[[str, SystemdState], None]


class UnitManager(Protocol):
    """Drives the local systemd for units in the agent's own directory only.

    Every method raises :class:`unitctl.errors.SystemdError` on failure and
    :class:`unitctl.errors.InvalidUnitNameError` for a name outside the rules.
    """

    async def start_manager(self, on_change: StateCallback) -> None:
        """Connect and subscribe; ``on_change`` is called for every state change
        of a unit in the directory (from D-Bus signals, not polling)."""
        ...

    async def close(self) -> None:
        """Disconnect. Units keep running."""
        ...

    def present(self) -> Mapping[str, str]:
        """Unit files present in the directory: name -> :func:`content_hash` of each."""
        ...

    async def write(self, name: str, text: str) -> None:
        """Write ``text`` atomically as ``<dir>/<name>`` (mode 0644)."""
        ...

    async def link(self, name: str, enable: bool) -> None:
        """Link the file into systemd at runtime; with ``enable``, enable it at
        runtime as well (the unit has an [Install] section)."""
        ...

    async def host_unit(self, name: str) -> str | None:
        """Where the host's own unit of this name comes from (its FragmentPath, or
        ``masked``), or None when the name is free or the unit is ours (its file
        is in the directory, or its runtime link points there). Asked before
        ``write``: a host unit is never written over, linked, stopped or unloaded."""
        ...

    async def unload(self, name: str) -> None:
        """Stop the unit; only if that worked: disable/unlink at runtime,
        reset-failed, delete the file."""
        ...

    async def reload(self) -> None:
        """systemctl daemon-reload; returns after systemd finished reloading."""
        ...

    async def start(self, name: str, ignore_requirements: bool = False) -> None:
        """StartUnit(name, "replace"); returns when the job is queued.

        With ``ignore_requirements`` the job mode is ``ignore-requirements``:
        the unit's Requires= are not pulled in (the agent waits for them itself,
        when they run on other machines), its ordering still holds."""
        ...

    async def stop(self, name: str) -> None:
        """StopUnit(name, "replace"); returns when the job is queued."""
        ...

    async def state(self, name: str) -> SystemdState:
        """The unit's current state (``not-found/inactive/dead`` when unknown); never
        older than a state already passed to ``on_change`` (a read that raced a
        signal returns the signalled state)."""
        ...
