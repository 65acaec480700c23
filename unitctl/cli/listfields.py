"""The columns of ``list-units`` and ``list-unit-files``, and their rows (no click here).

Both the click commands (:mod:`unitctl.cli.lists`) and the launcher's lean
path for the two list verbs (:mod:`unitctl.cli.leanlist`) build their output
here, so the two print the same bytes: a field table maps a ``--fields`` name
to its cell, :func:`unit_columns` adds fleetctl's default extra columns, and
:func:`rows` lays out the table and the ``--json`` rows. :func:`invalid_warnings`
are the stderr lines for unit keys that do not decode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from unitctl.cli.output import failure_note, iso_time
from unitctl.client.snapshot import UnitFileInfo
from unitctl.legend import machine_legend
from unitctl.model import Machine, UnitState

Cell = str | None
T = TypeVar("T")

UnitStateField = Callable[[UnitState, Mapping[str, Machine], bool], Cell]

UNIT_FIELDS: dict[str, UnitStateField] = {
    "unit": lambda s, ms, full: s.name,
    "load": lambda s, ms, full: s.load,
    "active": lambda s, ms, full: s.active,
    "sub": lambda s, ms, full: s.sub,
    "machine": lambda s, ms, full: machine_legend(s.machine_id, ms.get(s.machine_id), full),
    "hash": lambda s, ms, full: s.hash if full else s.hash[:7],
    "error": lambda s, ms, full: failure_note(s, time.time()),
    "retry_at": lambda s, ms, full: iso_time(s.retry_at),
    "waiting": lambda s, ms, full: s.waiting or None,
    "health": lambda s, ms, full: s.health or None,
}
UNIT_DEFAULT = "unit,machine,active,sub"

UnitFileField = Callable[[UnitFileInfo, bool], Cell]


def _target(u: UnitFileInfo, full: bool) -> Cell:
    if u.is_global:
        return "global"
    return machine_legend(u.target, u.target_machine, full) if u.target else None


UNIT_FILE_FIELDS: dict[str, UnitFileField] = {
    "unit": lambda u, full: u.name,
    "global": lambda u, full: "true" if u.is_global else "false",
    "dstate": lambda u, full: u.desired.value,
    "target": _target,
    "tmachine": _target,
    "state": lambda u, full: None if u.state is None else u.state.value,
    "hash": lambda u, full: u.hash if full else u.hash[:7],
    "desc": lambda u, full: u.description,
    "reason": lambda u, full: u.reason,
}
UNIT_FILE_DEFAULT = "unit,hash,dstate,state,target"

#: The warning ``list-unit-files`` prints (stderr) before reading, for ``tmachine``.
TMACHINE_WARNING = "WARNING: the tmachine field is deprecated, use target"


def invalid_warnings(invalid: Mapping[str, str]) -> list[str]:
    """One stderr line per unit key that does not decode (the list still succeeds)."""
    return [f"WARNING: unit {name} is invalid ({invalid[name]}); "
            f"'unitctl destroy {name}' removes it" for name in sorted(invalid)]


def unit_columns(spec: str, cols: list[str], states: Sequence[UnitState]) -> list[str]:
    """``list-units``' columns: with the default fields, fleetctl's, plus an ERROR
    column when a unit's task failed, WAITING when one waits for a dependency and
    HEALTH when one has a health check."""
    if spec == UNIT_DEFAULT and any(s.error for s in states):
        cols.append("error")
    if spec == UNIT_DEFAULT and any(s.waiting for s in states):
        cols.append("waiting")
    if spec == UNIT_DEFAULT and any(s.health for s in states):
        cols.append("health")
    return cols


def rows(cols: Sequence[str], items: Sequence[T], cell: Callable[[str, T, bool], Cell],
         full: bool) -> tuple[list[dict[str, Cell]], list[dict[str, Cell]]]:
    """(table rows, as ``--full`` asks; JSON rows, always full) of ``items``."""
    table = [{f: cell(f, item, full) for f in cols} for item in items]
    js = [{f: cell(f, item, True) for f in cols} for item in items]
    return table, js


def unit_cell(machines: Mapping[str, Machine]) -> Callable[[str, UnitState, bool], Cell]:
    """The cell of field ``f`` of a report (machines: for the legend)."""
    return lambda f, s, full: UNIT_FIELDS[f](s, machines, full)


def unit_file_cell(f: str, u: UnitFileInfo, full: bool) -> Cell:
    """The cell of field ``f`` of a ``list-unit-files`` row."""
    return UNIT_FILE_FIELDS[f](u, full)
