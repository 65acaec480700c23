"""systemd's D-Bus API as names: the bus name, object paths, interfaces, error names.

Pure (no I/O, no dbus-fast): the bus adapter, the state tracker and the manager
share these constants, and the object path of a unit is computed here with
systemd's own bus-label escaping (``bus_label_escape`` in systemd's
``bus-label.c``): ``web-1.service`` lives at
``/org/freedesktop/systemd1/unit/web_2d1_2eservice``.
"""

from __future__ import annotations

from unitctl.agent.ports import SystemdState

__all__ = [
    "MANAGER_IFACE",
    "MANAGER_PATH",
    "MATCH_RULES",
    "NO_SUCH_UNIT",
    "PROPERTIES_IFACE",
    "SYSTEMD",
    "UNIT_IFACE",
    "UNIT_PATH_PREFIX",
    "UNKNOWN_STATE",
    "bus_label_escape",
    "bus_label_unescape",
    "unit_name_of_path",
    "unit_object_path",
]

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER_IFACE = "org.freedesktop.systemd1.Manager"
UNIT_IFACE = "org.freedesktop.systemd1.Unit"
UNIT_PATH_PREFIX = "/org/freedesktop/systemd1/unit/"
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"

#: What ``state()`` reports for a unit systemd does not know.
UNKNOWN_STATE = SystemdState("not-found", "inactive", "dead")

#: The signals the manager listens to: unit property changes and the Manager's own.
MATCH_RULES = (
    "type='signal',sender='org.freedesktop.systemd1',"
    "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
    "path_namespace='/org/freedesktop/systemd1/unit'",
    "type='signal',sender='org.freedesktop.systemd1',"
    "interface='org.freedesktop.systemd1.Manager',path='/org/freedesktop/systemd1'",
)

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


def unit_name_of_path(path: str) -> str | None:
    """The unit name of a unit object path; None for any other path."""
    if not path.startswith(UNIT_PATH_PREFIX):
        return None
    return bus_label_unescape(path[len(UNIT_PATH_PREFIX):])
