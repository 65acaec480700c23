"""The list verbs: ``list-units``, ``list-unit-files`` and ``list-machines``.

Each prints fleetctl's table (or ``--json``) of the fields asked for with
``--fields``; ``--full`` keeps machine ids and hashes whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from unitctl import xfleet
from unitctl.cli import listfields as lf
from unitctl.cli.listfields import (
    UNIT_DEFAULT,
    UNIT_FIELDS,
    UNIT_FILE_DEFAULT,
    UNIT_FILE_FIELDS,
    Cell,
)
from unitctl.cli.output import parse_fields, render_json, render_table
from unitctl.cli.session import Session, pass_session
from unitctl.client import views
from unitctl.client.facade import Client
from unitctl.client.usage import Usage, machine_usage
from unitctl.client.views import Snapshot, UnitFileInfo
from unitctl.errors import ConfigError
from unitctl.legend import short_id
from unitctl.model import Machine
from unitctl.resources import format_bytes, format_cpu

__all__ = ["COMMANDS", "MACHINE_DEFAULT", "MACHINE_FIELDS", "UNIT_DEFAULT", "UNIT_FIELDS",
           "UNIT_FILE_DEFAULT", "UNIT_FILE_FIELDS", "list_machines", "list_unit_files",
           "list_units"]

MachineField = Callable[[Machine, bool], Cell]


def _metadata(m: Machine) -> Cell:
    if not m.metadata:
        return None
    try:
        return xfleet.format_metadata(m.metadata)
    except ConfigError:
        return ",".join(f"{k}={m.metadata[k]}" for k in sorted(m.metadata))


MACHINE_FIELDS: dict[str, MachineField] = {
    "machine": lambda m, full: m.id if full else short_id(m.id),
    "ip": lambda m, full: m.public_ip,
    "metadata": lambda m, full: _metadata(m),
}
MACHINE_DEFAULT = "machine,ip,metadata"


def _cpu(milli: int | None) -> Cell:
    return None if milli is None else format_cpu(milli)


def _mem(n: int | None) -> Cell:
    return None if n is None else format_bytes(n)


def _free(cap: int | None, used: int) -> int | None:
    return None if cap is None else cap - used


#: Capacity columns (``--fields``): what the machine offers, what its units take.
UsageField = Callable[[Machine, Usage], Cell]
USAGE_FIELDS: dict[str, UsageField] = {
    "cpu": lambda m, u: _cpu(m.capacity.cpu_milli),
    "cpu_alloc": lambda m, u: _cpu(u.cpu_milli),
    "cpu_free": lambda m, u: _cpu(_free(m.capacity.cpu_milli, u.cpu_milli)),
    "mem": lambda m, u: _mem(m.capacity.mem_bytes),
    "mem_alloc": lambda m, u: _mem(u.mem_bytes),
    "mem_free": lambda m, u: _mem(_free(m.capacity.mem_bytes, u.mem_bytes)),
    "port_range": lambda m, u: "-".join(map(str, m.capacity.port_range)),
    "ports": lambda m, u: ",".join(text for _p, text in u.ports) or None,
}


async def _machines(c: Client, usage: bool) -> tuple[list[Machine], dict[str, Usage]]:
    machines = await c.list_machines()
    return machines, (await machine_usage(c.registry) if usage else {})


def _warn_invalid(invalid: Mapping[str, str]) -> None:
    """One stderr line per unit key that does not decode (the list still succeeds)."""
    for line in lf.invalid_warnings(invalid):
        click.echo(line, err=True)


async def _unit_files(c: Client) -> tuple[list[UnitFileInfo], Snapshot]:
    snap = await c.snapshot()
    return await views.unit_file_rows(c.registry, c.bodies, snap), snap


def _emit(fields: Sequence[str], table: list[dict[str, Cell]], as_json: bool,
          json_rows: list[dict[str, Cell]], legend: bool) -> None:
    if as_json:
        click.echo(render_json(fields, json_rows))
    else:
        click.echo(render_table(fields, table, legend), nl=False)


def _list_options(short_full: bool, default: str) -> Callable[[Any], Any]:
    def deco(f: Any) -> Any:
        full_decls = ["--full", "-l"] if short_full else ["--full"]
        f = click.option("--json", "as_json", is_flag=True,
                         help="Print a JSON list of objects (full values, null if missing).")(f)
        f = click.option("--no-legend", is_flag=True, help="Do not print the header line.")(f)
        f = click.option(*full_decls, "full", is_flag=True,
                         help="Do not shorten machine ids and hashes.")(f)
        f = click.option("--fields", default=default, show_default=True,
                         help="Comma-separated columns to print.")(f)
        return f
    return deco


@click.command("list-units")
@_list_options(True, UNIT_DEFAULT)
@pass_session
def list_units(sess: Session, fields: str, full: bool, no_legend: bool, as_json: bool) -> None:
    """List the units' systemd states as the machines report them.

    With the default fields, an ERROR column follows when a unit's task failed
    on its machine (what failed, and when the agent retries), a WAITING
    column when a unit waits for a dependency, and a HEALTH column when a unit
    has a health check (starting, healthy, unhealthy).
    """
    cols = parse_fields(fields, list(UNIT_FIELDS))
    snap = sess.read(lambda c: c.snapshot())
    _warn_invalid(snap.invalid)
    states = views.reported_states(snap)
    cols = lf.unit_columns(fields, cols, states)
    table, js = lf.rows(cols, states, lf.unit_cell(snap.machines), full)
    _emit(cols, table, as_json, js, not no_legend)


@click.command("list-unit-files")
@_list_options(False, UNIT_FILE_DEFAULT)
@pass_session
def list_unit_files(sess: Session, fields: str, full: bool, no_legend: bool,
                    as_json: bool) -> None:
    """List the units in the registry with their desired and current states."""
    cols = parse_fields(fields, list(UNIT_FILE_FIELDS))
    if "tmachine" in cols:
        click.echo(lf.TMACHINE_WARNING, err=True)
    infos, snap = sess.read(_unit_files)
    _warn_invalid(snap.invalid)
    table, js = lf.rows(cols, infos, lf.unit_file_cell, full)
    _emit(cols, table, as_json, js, not no_legend)


@click.command("list-machines")
@_list_options(True, MACHINE_DEFAULT)
@pass_session
def list_machines(sess: Session, fields: str, full: bool, no_legend: bool,
                  as_json: bool) -> None:
    """List the live machines of the cluster.

    Besides fleet's columns, ``--fields`` offers capacity: cpu, mem (what the
    machine offers units), cpu_alloc, mem_alloc (what its units take), cpu_free,
    mem_free, port_range and ports (the host ports held there); "-" is unlimited.
    """
    cols = parse_fields(fields, [*MACHINE_FIELDS, *USAGE_FIELDS])
    machines, usage = sess.read(lambda c: _machines(c, any(f in USAGE_FIELDS for f in cols)))

    def row(m: Machine, whole: bool) -> dict[str, Cell]:
        used = usage.get(m.id, Usage())
        return {f: USAGE_FIELDS[f](m, used) if f in USAGE_FIELDS else MACHINE_FIELDS[f](m, whole)
                for f in cols}

    _emit(cols, [row(m, full) for m in machines], as_json, [row(m, True) for m in machines],
          not no_legend)


COMMANDS = (list_units, list_unit_files, list_machines)
