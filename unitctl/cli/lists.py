"""The read-only verbs: ``list-units``, ``list-unit-files``, ``list-machines``,
``cat`` and ``explain``; and the shell-completion callbacks of unit and machine
arguments (they read the registry, best effort, silent on any error).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from unitctl import names as unames
from unitctl import xfleet
from unitctl.cli.output import parse_fields, render_json, render_table
from unitctl.client import (
    Client,
    Explanation,
    UnitFileInfo,
    config_from_params,
    format_reasons,
    machine_legend,
    open_registry,
    short_id,
)
from unitctl.errors import ConfigError
from unitctl.model import Machine, UnitState
from unitctl.registry.registry import Registry

if TYPE_CHECKING:
    from unitctl.cli.main import Session

Cell = str | None

# ------------------------------------------------------------------ fields

UnitStateField = Callable[[UnitState, Mapping[str, Machine], bool], Cell]

UNIT_FIELDS: dict[str, UnitStateField] = {
    "unit": lambda s, ms, full: s.name,
    "load": lambda s, ms, full: s.load,
    "active": lambda s, ms, full: s.active,
    "sub": lambda s, ms, full: s.sub,
    "machine": lambda s, ms, full: machine_legend(s.machine_id, ms.get(s.machine_id), full),
    "hash": lambda s, ms, full: s.hash if full else s.hash[:7],
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
@click.pass_obj
def list_units(sess: Session, fields: str, full: bool, no_legend: bool, as_json: bool) -> None:
    """List the units' systemd states as the machines report them."""
    cols = parse_fields(fields, list(UNIT_FIELDS))
    states, machines = sess.run(lambda c: c.list_units())
    table = [{f: UNIT_FIELDS[f](s, machines, full) for f in cols} for s in states]
    js = [{f: UNIT_FIELDS[f](s, machines, True) for f in cols} for s in states]
    _emit(cols, table, as_json, js, not no_legend)


@click.command("list-unit-files")
@_list_options(False, UNIT_FILE_DEFAULT)
@click.pass_obj
def list_unit_files(sess: Session, fields: str, full: bool, no_legend: bool,
                    as_json: bool) -> None:
    """List the units in the registry with their desired and current states."""
    cols = parse_fields(fields, list(UNIT_FILE_FIELDS))
    if "tmachine" in cols:
        click.echo("WARNING: the tmachine field is deprecated, use target", err=True)
    infos = sess.run(lambda c: c.list_unit_files())
    table = [{f: UNIT_FILE_FIELDS[f](u, full) for f in cols} for u in infos]
    js = [{f: UNIT_FILE_FIELDS[f](u, True) for f in cols} for u in infos]
    _emit(cols, table, as_json, js, not no_legend)


@click.command("list-machines")
@_list_options(True, MACHINE_DEFAULT)
@click.pass_obj
def list_machines(sess: Session, fields: str, full: bool, no_legend: bool,
                  as_json: bool) -> None:
    """List the live machines of the cluster."""
    cols = parse_fields(fields, list(MACHINE_FIELDS))
    machines = sess.run(lambda c: c.list_machines())
    table = [{f: MACHINE_FIELDS[f](m, full) for f in cols} for m in machines]
    js = [{f: MACHINE_FIELDS[f](m, True) for f in cols} for m in machines]
    _emit(cols, table, as_json, js, not no_legend)


# ------------------------------------------------------------------ completion


def _complete(ctx: click.Context, fetch: Callable[[Client], Any]) -> list[str]:
    root = ctx.find_root()
    injected = getattr(root.obj, "registry", None)
    cfg = config_from_params(root.params)

    async def go() -> list[str]:
        registry = injected if isinstance(injected, Registry) else await open_registry(cfg)
        try:
            return list(await fetch(Client(registry)))
        finally:
            if registry is not injected:
                await registry.close()

    return asyncio.run(asyncio.wait_for(go(), max(1.0, cfg.request_timeout)))


def complete_units(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Unit names in the registry starting with ``incomplete`` (best effort)."""

    async def fetch(client: Client) -> list[str]:
        return [u.name for u in await client.registry.list_units()]

    try:
        names = _complete(ctx, fetch)
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


def complete_machines(ctx: click.Context, param: click.Parameter,
                      incomplete: str) -> list[str]:
    """Machine ids (and unit names) starting with ``incomplete`` (best effort)."""

    async def fetch(client: Client) -> list[str]:
        ids = [m.id for m in await client.list_machines()]
        return ids + [u.name for u in await client.registry.list_units()]

    try:
        found = _complete(ctx, fetch)
    except Exception:
        return []
    return [n for n in found if n.startswith(incomplete)]


# ------------------------------------------------------------------ cat / explain


@click.command("cat")
@click.argument("unit", shell_complete=complete_units)
@click.pass_obj
def cat(sess: Session, unit: str) -> None:
    """Print the unit file stored in the registry."""
    name = unames.mangle(unit)
    click.echo(sess.run(lambda c: c.cat(name)), nl=False)


@click.command("explain")
@click.argument("unit", shell_complete=complete_units)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def explain(sess: Session, unit: str, as_json: bool) -> None:
    """Tell where a unit is placed, or which rule keeps it off each machine."""
    name = unames.mangle(unit)
    info = sess.run(lambda c: c.explain(name))
    if as_json:
        click.echo(json.dumps(explain_json(info), indent=2, sort_keys=True))
        return
    for line in explain_lines(info):
        click.echo(line)


def explain_json(e: Explanation) -> dict[str, object]:
    """``explain --json``: the same facts as the text, as data."""
    rec = e.record
    return {
        "unit": rec.name, "desired": rec.desired.value, "hash": rec.hash,
        "state": None if e.state is None else e.state.value, "global": e.is_global,
        "requirements": None if e.requirements is None else _describe_requirements(e),
        "machine": e.placement, "reasons": None if e.reasons is None else dict(e.reasons),
        "reported": [{"machine": s.machine_id, "load": s.load, "active": s.active,
                      "sub": s.sub, "hash": s.hash} for s in e.reported],
    }


def explain_lines(e: Explanation) -> list[str]:
    """The text of ``explain``."""
    rec = e.record
    state = "-" if e.state is None else e.state.value
    lines = [f"Unit {rec.name}: desired {rec.desired.value}, state {state}, hash {rec.hash[:7]}"]
    if e.requirements is not None:
        lines.append(f"Requirements: {_describe_requirements(e)}")
    if e.is_global:
        lines.append("Global unit: runs on every machine that matches its requirements.")
    elif e.placement is not None:
        lines.append(f"Placed on {machine_legend(e.placement, e.placement_machine)}")
        if e.placement_machine is None:
            lines.append("  (that machine is not registered: its agent is down or gone)")
    elif e.reasons is not None:
        lines.append(f"Unit {rec.name} cannot be placed:")
        lines += [f"  {line}" for line in format_reasons(e.reasons)]
    elif rec.desired.value == "inactive":
        lines.append("Not placed: its desired state is inactive (load or start it).")
    else:
        lines.append("Not placed yet: waiting for the engine.")
    for s in e.reported:
        lines.append(f"Reported by {short_id(s.machine_id)}: load={s.load or '-'} "
                     f"active={s.active or '-'} sub={s.sub or '-'} hash={s.hash[:7] or '-'}")
    return lines


def _describe_requirements(e: Explanation) -> str:
    req = e.requirements
    assert req is not None
    parts = []
    if req.machine_id:
        parts.append(f"MachineID={req.machine_id}")
    for key in sorted(req.metadata):
        parts.append(f"MachineMetadata={key}=" + "|".join(sorted(req.metadata[key])))
    parts += [f"MachineOf={p}" for p in req.machine_of]
    parts += [f"Conflicts={p}" for p in req.conflicts]
    parts += [f"Replaces={p}" for p in req.replaces]
    if req.is_global:
        parts.append("Global=true")
    return ", ".join(parts) if parts else "none"


COMMANDS = (list_units, list_unit_files, list_machines, cat, explain)
