"""The client half of rolling updates: the rollout request, and following its progress.

The client never replaces a body itself: it checks the request (the new body
parses and validates; every instance exists, is launched and is not global;
no other rollout in progress holds one of them), stores the rollout record
with the bodies it needs (:class:`~unitctl.registry.rollouts.RolloutStore`),
and, unless asked not to, follows the record as the engine leader drives it
(:mod:`unitctl.engine.rollout`). Leaving (Ctrl-C, ``--no-block``) leaves the
rollout running in the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from unitctl import health, xfleet
from unitctl import names as unames
from unitctl.client.resolve import read_unit_file, require_records, validate
from unitctl.errors import ConflictError, NotFoundError, UsageError
from unitctl.model import DesiredState, UnitRecord
from unitctl.registry.registry import Registry
from unitctl.registry.rollouts import StoredRollout
from unitctl.rollout import ACTIVE, DEFAULT_DEADLINE, Phase, Rollout, resume
from unitctl.unitfile import UnitFile

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Options:
    """How a rollout goes (the flags of ``unitctl rollout``)."""

    max_unavailable: int = 1
    canary: int = 0
    pause_each: bool = False
    confirmed: bool = False
    deadline: float = DEFAULT_DEADLINE


@dataclass(frozen=True, slots=True)
class Target:
    """What to roll out: the rollout's name, the new body, the instances (None: every
    stored instance of the template ``name``)."""

    name: str
    unit: UnitFile
    instances: tuple[str, ...] | None


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def target(args: Sequence[str], body: str | None) -> Target:
    """The rollout the arguments ask for.

    One template argument (``web@.service``, or a path to it) rolls out its
    body (``--body`` FILE, else the template file) to the template's stored
    instances; unit arguments roll out ``--body`` FILE (else their template's
    file in the current directory) to those units.
    """
    if not args:
        raise UsageError("rollout needs a template (web@.service) or the units to update")
    names = [unames.mangle(a) for a in args]
    for n in names:
        unames.validate_name(n)
    if len(names) == 1 and unames.is_template(names[0]):
        path = body or (args[0] if args[0].endswith(".service") else f"{args[0]}.service")
        return Target(names[0], _body(names[0], path), None)
    if any(unames.is_template(n) for n in names):
        raise UsageError("roll out one template, or units (instances) named one by one")
    if body is None:
        templates = {unames.template_of(n) for n in names if unames.is_instance(n)}
        if len(templates) != 1 or (len(templates) == 1 and not all(map(unames.is_instance,
                                                                        names))):
            raise UsageError("give the new body with --body FILE")
        body = templates.pop()
    return Target(names[0], _body(names[0], body), tuple(dict.fromkeys(names)))


def _body(name: str, path: str) -> UnitFile:
    unit = read_unit_file(path)
    validate(name, unit, path)
    if xfleet.requirements(name, unit).is_global:
        raise UsageError(f"{path}: a global unit runs on every machine; rollout replaces "
                         "placed units only")
    return unit


async def instances_of(registry: Registry, template: str) -> tuple[str, ...]:
    """The stored instances of ``template``, in natural order (web@2 before web@10)."""
    found = [u.name for u in await registry.list_units()
             if unames.is_instance(u.name) and unames.template_of(u.name) == template]
    if not found:
        raise NotFoundError(f"no instance of {template} in the registry")
    return tuple(sorted(found, key=_natural))


def _check_records(records: Sequence[UnitRecord], bodies: dict[str, str]) -> None:
    for rec in records:
        if rec.desired is not DesiredState.LAUNCHED:
            raise UsageError(f"Unit {rec.name} is {rec.desired.value}, not launched: replace "
                             "its body with submit --replace (or start it first)")
        text = bodies.get(rec.hash)
        if text is None:
            raise NotFoundError(f"the body of {rec.name} ({rec.hash[:7]}) is not stored")
        if xfleet.requirements(rec.name, UnitFile.parse(text)).is_global:
            raise UsageError(f"Unit {rec.name} is global: rollout replaces placed units only")


async def _refuse_overlap(registry: Registry, name: str,
                          instances: Sequence[str]) -> StoredRollout | None:
    """The finished record named ``name`` (None: none); ConflictError when a rollout in
    progress has that name or holds one of ``instances``."""
    stored, _ = await registry.rollouts.read_all()
    mine = set(instances)
    for s in stored:
        r = s.rollout
        if r.phase in ACTIVE and (r.name == name or mine & set(r.previous)):
            raise ConflictError(f"rollout {r.name} is {r.phase.value}: see `unitctl rollout "
                                f"status {r.name}` (undo or wait for it first)")
    return next((s for s in stored if s.rollout.name == name), None)


async def create(registry: Registry, want: Target, opts: Options, now: float,
                 out: Say) -> Rollout | None:
    """Store the rollout ``want`` asks for; None when every instance has the body already."""
    instances = want.instances or await instances_of(registry, want.name)
    records = await require_records(registry, instances)
    bodies = await registry.get_bodies_by_hash({r.hash for r in records})
    _check_records(records, bodies)
    sha = want.unit.hash()
    todo = {r.name: r.hash for r in records if r.hash != sha}
    if not todo:
        out(f"rollout {want.name}: every instance runs {sha[:7]} already, nothing to do")
        return None
    over = await _refuse_overlap(registry, want.name, list(todo))
    keep = {sha: want.unit.serialize(), **{h: bodies[h] for h in set(todo.values())}}
    checked = {h: health.parse_check(UnitFile.parse(text), want.name) is not None
               for h, text in keep.items()}
    rollout = Rollout(want.name, sha, todo, checked, opts.max_unavailable, opts.canary,
                      opts.pause_each, opts.confirmed, opts.deadline, created=now, updated=now)
    await registry.rollouts.create(rollout, keep, over.mod_rev if over else 0)
    out(f"rollout {want.name}: {len(todo)} instance(s) to {sha[:7]}, at most "
        f"{opts.max_unavailable} down at a time"
        + (f", {opts.canary} canary first" if opts.canary else ""))
    return rollout


async def stored(registry: Registry, name: str) -> StoredRollout:
    """The stored rollout ``name``; NotFoundError when there is none."""
    found = await registry.rollouts.get(name)
    if found is None:
        raise NotFoundError(f"no rollout {name}")
    return found


async def change(registry: Registry, name: str, how: Callable[[Rollout], Rollout]) -> Rollout:
    """Apply ``how`` (resume, undo) to the stored rollout; its ValueError is a UsageError."""
    s = await stored(registry, name)
    try:
        new = how(s.rollout)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    await registry.rollouts.update(s, new)
    return new


def progress_lines(before: Rollout | None, r: Rollout) -> list[str]:
    """What changed from ``before`` to ``r``, as lines for a user."""
    lines = []
    if r.batch and (before is None or r.batch != before.batch):
        shas = sorted({r.wanted(i)[:7] for i in r.batch})
        lines.append(f"{r.phase.value}: {', '.join(r.batch)} to {', '.join(shas)}")
    forward = r.phase in (Phase.ROLLING, Phase.PAUSED, Phase.DONE)
    now_done = r.replaced if forward else r.reverted
    was_done = (before.replaced if forward else before.reverted) if before else ()
    for i in now_done:
        if i not in was_done:
            sha = r.target if forward else r.previous[i]
            good = "active and healthy" if r.checked.get(sha) else "active"
            lines.append(f"{i} {good} on {sha[:7]}")
    if before is None or r.phase is not before.phase:
        lines.append(f"rollout {r.name}: {r.phase.value}"
                     + (f": {r.reason}" if r.reason else ""))
    return lines


async def follow(registry: Registry, name: str, out: Say,
                 confirm: Callable[[Rollout], bool] | None = None) -> Rollout:
    """Print the rollout's progress until it ends or pauses; return its last record.

    At a pause, ``confirm`` (when given) is asked whether to go on; True resumes.
    """
    import asyncio  # only the verbs that wait pay for it

    from unitctl.loop import raise_if_ended, wake_or_timeout, watch_wakes

    before: Rollout | None = None
    while True:
        s = await stored(registry, name)
        for line in progress_lines(before, s.rollout):
            out(line)
        before = r = s.rollout
        if r.phase is Phase.PAUSED and confirm is not None and confirm(r):
            await registry.rollouts.update(s, resume(r))
            continue
        if r.phase not in ACTIVE or r.phase is Phase.PAUSED:
            return r
        wake = asyncio.Event()
        events = registry.watch(registry.keys.rollout(name), s.mod_rev + 1)
        async with watch_wakes(events, wake) as watch:
            await wake_or_timeout(wake, 60.0)
            raise_if_ended(watch)
