"""The client side of unitctl (no click here): the names the CLI and tests import.

- :mod:`~unitctl.client.connect`: how a client reaches the registry.
- :mod:`~unitctl.client.resolve`: command-line arguments to unit files.
- :mod:`~unitctl.client.intent`: writes of units and desired states.
- :mod:`~unitctl.client.views`: the read models (snapshot, list rows, explain).
- :mod:`~unitctl.client.wait`: waiting for reported states, on watches of the waited keys.
- :mod:`~unitctl.client.facade`: :class:`Client`, the verbs' operations over one registry.
"""

from __future__ import annotations

from unitctl.client.connect import (
    DEFAULT_ENDPOINT,
    DEFAULT_PREFIX,
    ClientConfig,
    config_from_params,
    open_registry,
)
from unitctl.client.facade import Client
from unitctl.client.intent import REPLACE_ALLOWED
from unitctl.client.resolve import LocalUnit, read_unit_file, refuse_template
from unitctl.client.views import (
    BAD_LOAD_STATES,
    RUNNING_STATES,
    Explanation,
    Snapshot,
    StoredState,
    UnitFileInfo,
)
from unitctl.client.wait import Predicate
from unitctl.legend import format_reasons, machine_legend, short_id, short_reason

__all__ = [
    "BAD_LOAD_STATES", "DEFAULT_ENDPOINT", "DEFAULT_PREFIX", "REPLACE_ALLOWED",
    "RUNNING_STATES", "Client", "ClientConfig", "Explanation", "LocalUnit", "Predicate",
    "Snapshot", "StoredState", "UnitFileInfo", "config_from_params", "format_reasons",
    "machine_legend", "open_registry", "read_unit_file", "refuse_template", "short_id",
    "short_reason",
]
