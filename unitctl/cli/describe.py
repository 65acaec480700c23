"""The verbs that describe one stored unit: ``cat`` (its text) and ``explain``
(where it is placed, or which rule keeps it off each machine).
"""

from __future__ import annotations

import json
import time

import click

from unitctl import names as unames
from unitctl.cli.complete import complete_units
from unitctl.cli.output import failure_note, iso_time
from unitctl.cli.session import Session, pass_session
from unitctl.client import explain as explaining
from unitctl.client.explain import Explanation
from unitctl.legend import format_reasons, machine_legend, short_id
from unitctl.volumes import format_size


@click.command("cat")
@click.argument("unit", shell_complete=complete_units)
@pass_session
def cat(sess: Session, unit: str) -> None:
    """Print the unit file stored in the registry."""
    name = unames.mangle(unit)
    click.echo(sess.read(lambda c: c.cat(name)), nl=False)


@click.command("explain")
@click.argument("unit", shell_complete=complete_units)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_session
def explain(sess: Session, unit: str, as_json: bool) -> None:
    """Tell where a unit is placed, or which rule keeps it off each machine."""
    name = unames.mangle(unit)
    info = sess.read(lambda c: explaining.explain(c.registry, c.bodies, name))
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
                      "sub": s.sub, "hash": s.hash, "error": s.error or None,
                      "retry_at": iso_time(s.retry_at), "waiting": s.waiting or None,
                      "health": s.health or None}
                     for s in e.reported],
        "failures": [{"machine": f.machine, "count": f.count, "first": iso_time(f.first),
                      "last": iso_time(f.last), "why": f.why}
                     for _, f in sorted(e.failures.items())],
        "moves": [{"from": m.source, "at": iso_time(m.at), "why": m.why} for m in e.moves],
        "volumes": [{"name": v.name, "machine": v.machine or None, "store": v.store or None,
                     "path": v.path, "size": v.size,
                     "here": v.store != "" or e.placement in (None, v.machine),
                     "left_on": v.left_on or None}
                    for v in e.volumes],
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
    now = time.time()
    for s in e.reported:
        lines.append(f"Reported by {short_id(s.machine_id)}: load={s.load or '-'} "
                     f"active={s.active or '-'} sub={s.sub or '-'} hash={s.hash[:7] or '-'}")
        note = failure_note(s, now)
        if note is not None:
            lines.append(f"  Failing on {short_id(s.machine_id)}: {note}")
        if s.waiting:
            lines.append(f"  Waiting on {short_id(s.machine_id)}: {s.waiting}")
        if s.health:
            lines.append(f"  Health on {short_id(s.machine_id)}: {s.health}")
    return lines + volume_lines(e) + failure_lines(e)


def volume_lines(e: Explanation) -> list[str]:
    """Where each of the unit's volumes keeps its data, loudly when it is not where the
    unit is placed (it moved without it: ``MoveWithoutVolume=yes``)."""
    lines = []
    for v in e.volumes:
        size = format_size(v.size)
        if v.store:
            lines.append(f"Volume {v.name}: on shared store {v.store} ({size}), moves with "
                         "the unit")
        elif e.placement is None or e.placement == v.machine:
            lines.append(f"Volume {v.name}: local on {short_id(v.machine)} at {v.path} "
                         f"({size})")
        else:
            lines.append(f"Volume {v.name}: local on {short_id(v.machine)}, NOT where the unit "
                         f"is placed ({short_id(e.placement)}): its data stays behind there")
        if v.left_on:
            lines.append(f"  MOVED WITHOUT ITS VOLUME: the data it had before stays behind on "
                         f"{short_id(v.left_on)} (MoveWithoutVolume=yes)")
    return lines


def failure_lines(e: Explanation) -> list[str]:
    """The failure policy's history: ``failed 3 times on 2c8e5b1f in 5 min; moved at 12:04``."""
    lines = []
    moved = {m.source: m for m in e.moves}
    for machine, rec in sorted(e.failures.items(), key=lambda kv: kv[1].last):
        move = moved.pop(machine, None)
        tail = f"; moved at {_clock(move.at)}" if move else ""
        lines.append(f"History: {rec.describe()}{tail}")
    for move in moved.values():  # moves whose failure record has expired
        lines.append(f"History: {move.why}; moved at {_clock(move.at)}")
    return lines


def _clock(unix: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix))


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


COMMANDS = (cat, explain)
