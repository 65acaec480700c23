"""The agent's :class:`~unitctl.agent.ports.UnitManager` over systemd's D-Bus API.

The only package that imports dbus-fast (in :mod:`unitctl.systemd.bus` only).
Its modules, one concept each:

* :mod:`~unitctl.systemd.api` -- systemd's D-Bus names and the object-path escaping (pure);
* :mod:`~unitctl.systemd.bus` -- the connection: calls, error mapping, signals, a lost bus;
* :mod:`~unitctl.systemd.unitdir` -- the owned unit directory: paths, files, content hashes;
* :mod:`~unitctl.systemd.states` -- the pure state tracker fed with signal bodies;
* :mod:`~unitctl.systemd.manager` -- :class:`SystemdUnitManager`, the facade.
"""

from __future__ import annotations

from unitctl.agent.ports import content_hash
from unitctl.systemd.api import (
    UNKNOWN_STATE,
    bus_label_escape,
    bus_label_unescape,
    unit_object_path,
)
from unitctl.systemd.manager import SystemdUnitManager
from unitctl.systemd.unitdir import DEFAULT_UNITS_DIR, RUNTIME_UNIT_DIR

__all__ = [
    "DEFAULT_UNITS_DIR",
    "RUNTIME_UNIT_DIR",
    "UNKNOWN_STATE",
    "SystemdUnitManager",
    "bus_label_escape",
    "bus_label_unescape",
    "content_hash",
    "unit_object_path",
]
