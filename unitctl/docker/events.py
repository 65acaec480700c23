"""A container engine's event lines, read as the event names docker-run acts on.

Pure (no I/O). ``docker events --format '{{json .}}'`` prints one JSON object a
line with ``Action`` (``start``, ``die``, ``health_status: healthy``...);
``podman events --format json`` prints ``Status`` (``start``, ``died``,
``health_status``) and, for health events, ``HealthStatus``. :func:`parse_event`
maps both to one :data:`ContainerEvent` name, or None for a line that is not a
container event (or not JSON): such a line is skipped, never an error.
"""

from __future__ import annotations

import json
import typing as t

__all__ = ["ContainerEvent", "parse_event"]

#: The names :func:`parse_event` yields: an engine action, or a health status.
ContainerEvent = str

_HEALTH_PREFIX = "health_status"
_PODMAN_ALIASES = {"died": "die", "remove": "destroy", "cleanup": "die"}


def _health(action: str, data: t.Mapping[str, t.Any]) -> str:
    """``healthy``/``unhealthy``/``starting`` of a health event (docker's or podman's)."""
    _, _, status = action.partition(":")
    return (status.strip() or str(data.get("HealthStatus") or "")) or _HEALTH_PREFIX


def parse_event(line: str) -> ContainerEvent | None:
    """The event name of one JSON line; None for a line that is not a container event.

    ``start``, ``die``, ``stop``, ``destroy``... pass through (podman's
    ``died`` becomes ``die``, ``remove`` becomes ``destroy``); a health event
    becomes its status (``healthy``, ``unhealthy``, ``starting``).
    """
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = str(data.get("Type") or data.get("type") or "container")
    action = str(data.get("Action") or data.get("Status") or data.get("status") or "")
    if kind != "container" or not action:
        return None
    if action.startswith(_HEALTH_PREFIX):
        return _health(action, data)
    return _PODMAN_ALIASES.get(action, action)
