"""The client side of unitctl (no click here): the names the CLI and tests import.

- :mod:`~unitctl.client.connect`: how a client reaches the registry.
- :mod:`~unitctl.client.resolve`: command-line arguments to unit files.
- :mod:`~unitctl.client.intent`: writes of units and desired states.
- :mod:`~unitctl.client.snapshot`: the snapshot of the cluster (``list-units``).
- :mod:`~unitctl.client.views`: the read models (list rows, bodies, cat).
- :mod:`~unitctl.client.explain`: what ``explain`` tells.
- :mod:`~unitctl.client.wait`: waiting for reported states, on watches of the waited keys.
- :mod:`~unitctl.client.facade`: :class:`Client`, the verbs' operations over one registry.
"""

from __future__ import annotations

from typing import Any

#: name -> the module that defines it. Loaded on first use (PEP 562), so importing
#: one client module (``connect`` for ``--help``) does not import them all:
#: ``wait`` loads asyncio, which a read-only command never needs.
_HOMES = {
    "DEFAULT_ENDPOINT": "connect", "DEFAULT_PREFIX": "connect", "ClientConfig": "connect",
    "config_from_params": "connect", "open_registry": "connect", "Client": "facade",
    "REPLACE_ALLOWED": "intent", "LocalUnit": "resolve", "read_unit_file": "resolve",
    "refuse_template": "resolve", "BAD_LOAD_STATES": "views", "RUNNING_STATES": "views",
    "Explanation": "explain", "Snapshot": "views", "StoredState": "views",
    "UnitFileInfo": "views", "Predicate": "wait", "format_reasons": "legend",
    "machine_legend": "legend", "short_id": "legend", "short_reason": "legend",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'unitctl.client' has no attribute {name!r}")
    import importlib

    package = "unitctl" if home == "legend" else "unitctl.client"
    value = getattr(importlib.import_module(f"{package}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BAD_LOAD_STATES", "DEFAULT_ENDPOINT", "DEFAULT_PREFIX", "REPLACE_ALLOWED",
    "RUNNING_STATES", "Client", "ClientConfig", "Explanation", "LocalUnit", "Predicate",
    "Snapshot", "StoredState", "UnitFileInfo", "config_from_params", "format_reasons",
    "machine_legend", "open_registry", "read_unit_file", "refuse_template", "short_id",
    "short_reason",
]
