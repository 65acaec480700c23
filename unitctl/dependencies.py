"""Dependencies between cluster units (pure): what a unit's [Unit] section names,
the ordering graph, cycles, and the gate that tells a unit to wait.

Read from a unit's ``[Unit]`` section, as systemd reads them: ``After=``,
``Before=``, ``Requires=``, ``BindsTo=``, ``Wants=``; space-separated lists,
repeated keys accumulate; an empty assignment adds nothing (systemd cannot
reset a dependency list, so neither do we); the name specifiers ``%n %N %p %i``
are expanded (:func:`unitctl.specifiers.expand`).

Ordering (as in systemd): ``X After=Y`` or ``Y Before=X`` orders Y before X.
``Requires=``, ``BindsTo=`` and ``Wants=`` without ``After=`` order nothing on
one machine. Across machines (fleet issue 338) every key the dependant names
in ``After=``, ``Requires=``, ``BindsTo=`` or ``Wants=`` makes it wait until the
named unit is active on its machine (:func:`start_wait`); a lost
``Requires=``/``BindsTo=`` dependency stops it (:func:`requirement_lost`).
Units that are not in the cluster (``network.target``, host units) are left to
systemd.

The contract of the gate, level-triggered: it is asked again on every change,
and says *why* a unit must wait (a line for a user), or None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from unitctl.record import Frozen, init
from unitctl.specifiers import expand
from unitctl.unitfile import UnitFile

__all__ = ["KEYS", "NO_DEPS", "Dependency", "Placement", "UnitDeps", "cycle_message",
           "cycle_problem", "find_cycle", "ordered_before", "parse", "requirement_lost",
           "start_order", "start_wait", "stop_wait"]

#: The dependency keys read from [Unit], each with its meaning for the reference table.
KEYS = ("After", "Before", "Requires", "BindsTo", "Wants")

#: ActiveStates in which a dependency counts as running.
RUNNING = ("active", "reloading")
#: ActiveStates of a unit that is up or on its way up or down (not yet stopped).
NOT_STOPPED = ("active", "activating", "reloading", "deactivating")

_WORDS = re.compile(r"\S+")


class UnitDeps(Frozen):
    """The dependency keys of one unit, names expanded.

    Attributes:
        requires: ``Requires=`` and ``BindsTo=`` (both stop the dependant when
            the dependency goes, across machines).
        binds: ``BindsTo=`` alone: across machines systemd itself stops a unit
            bound to a unit it does not run, so the gate refuses to start it.
    """

    __slots__ = ("after", "before", "binds", "requires", "wants")
    after: frozenset[str]
    before: frozenset[str]
    requires: frozenset[str]
    wants: frozenset[str]
    binds: frozenset[str]

    def __init__(self, after: frozenset[str] = frozenset(), before: frozenset[str] = frozenset(),
                 requires: frozenset[str] = frozenset(), wants: frozenset[str] = frozenset(),
                 binds: frozenset[str] = frozenset()) -> None:
        init(self, after, before, requires, wants, binds)

    def named(self) -> frozenset[str]:
        """Every unit this one names in a key that makes it wait across machines."""
        return self.after | self.requires | self.wants

    def orders(self) -> bool:
        """Whether the unit declares any ordering (After= or Before=)."""
        return bool(self.after or self.before)


NO_DEPS = UnitDeps()


def _names(name: str, unit: UnitFile, *keys: str) -> frozenset[str]:
    out: set[str] = set()
    for option in unit.options:
        if option.section == "Unit" and option.name in keys:
            out.update(expand(name, word) for word in _WORDS.findall(option.value))
    out.discard(name)
    return frozenset(out)


def parse(name: str, unit: UnitFile) -> UnitDeps:
    """The dependency keys of unit ``name`` (a unit naming itself is ignored)."""
    return UnitDeps(after=_names(name, unit, "After"), before=_names(name, unit, "Before"),
                    requires=_names(name, unit, "Requires", "BindsTo"),
                    wants=_names(name, unit, "Wants"), binds=_names(name, unit, "BindsTo"))


# ------------------------------------------------------------------ the graph

def ordered_before(units: Mapping[str, UnitDeps]) -> dict[str, frozenset[str]]:
    """name -> the names ordered before it: its After= plus every unit whose Before=
    names it. Every name mentioned is a node (a unit not in ``units`` declares nothing)."""
    preds: dict[str, set[str]] = {}
    for name, deps in units.items():
        preds.setdefault(name, set()).update(deps.after)
        for later in deps.before:
            preds.setdefault(later, set()).add(name)
        for other in deps.after | deps.before:
            preds.setdefault(other, set())
    return {name: frozenset(p) for name, p in preds.items()}


def find_cycle(preds: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of the ordering graph as ``[a, b, ..., a]`` (each ordered before the
    next), or None. Deterministic: the search starts from names in sorted order."""
    succs: dict[str, list[str]] = {n: [] for n in preds}
    for name, before in preds.items():
        for b in before:
            succs.setdefault(b, []).append(name)
    done: set[str] = set()
    for start in sorted(succs):
        cycle = _cycle_from(start, succs, done)
        if cycle is not None:
            return cycle
    return None


def _cycle_from(start: str, succs: Mapping[str, list[str]], done: set[str]) -> list[str] | None:
    """Iterative depth-first search from ``start``; ``done`` holds nodes known acyclic."""
    if start in done:
        return None
    path: list[str] = [start]
    on_path = {start}
    stack = [iter(sorted(succs.get(start, ())))]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            finished = path.pop()
            on_path.discard(finished)
            done.add(finished)
            continue
        if nxt in on_path:
            return [*path[path.index(nxt):], nxt]
        if nxt not in done:
            path.append(nxt)
            on_path.add(nxt)
            stack.append(iter(sorted(succs.get(nxt, ()))))
    return None


def cycle_message(cycle: list[str]) -> str:
    """``dependency cycle: a.service -> b.service -> a.service``."""
    return "dependency cycle: " + " -> ".join(cycle)


def start_order(names: Iterable[str], preds: Mapping[str, Iterable[str]]) -> list[str]:
    """``names`` in an order that respects every ordering edge between them
    (ties by name). Raises ValueError on a cycle among them."""
    todo = set(names)
    before = {n: {p for p in preds.get(n, ()) if p in todo} for n in todo}
    out: list[str] = []
    while todo:
        ready = sorted(n for n in todo if not before[n])
        if not ready:
            raise ValueError(cycle_message(find_cycle(before) or sorted(todo)))
        out.append(ready[0])
        todo.discard(ready[0])
        for n in todo:
            before[n].discard(ready[0])
    return out


# ------------------------------------------------------------------ the gate

class Placement(Frozen):
    """A dependency's state on one machine, as systemd reports it there."""

    __slots__ = ("active", "machine", "sub")
    machine: str
    active: str
    sub: str

    def __init__(self, machine: str, active: str, sub: str = "") -> None:
        init(self, machine, active, sub)


class Dependency(Frozen):
    """What an agent knows of one cluster unit that its units name.

    Attributes:
        to_run: its desired state is launched (for a local unit: in this
            machine's schedule; otherwise: its unit record).
        local: it is scheduled on this machine (then ``states`` holds this
            machine's systemd state only).
        states: where it is reported, one entry per machine.
    """

    __slots__ = ("local", "name", "states", "to_run")
    name: str
    to_run: bool
    local: bool
    states: tuple[Placement, ...]

    def __init__(self, name: str, to_run: bool, local: bool,
                 states: tuple[Placement, ...] = ()) -> None:
        init(self, name, to_run, local, states)

    def running(self) -> bool:
        return any(s.active in RUNNING for s in self.states)

    def where(self) -> str:
        """``activating on 2c8e5b1f``, or ``not running on any machine``."""
        if not self.states:
            return "not running on any machine" if self.to_run else "not started"
        return ", ".join(f"{s.active} on {s.machine[:8]}"
                         for s in sorted(self.states, key=lambda s: s.machine))


def start_wait(preds: frozenset[str], deps: UnitDeps,
               known: Mapping[str, Dependency]) -> str | None:
    """Why a unit must not start yet, or None.

    ``preds``: the units ordered before it on this machine (:func:`ordered_before`
    over the units scheduled here); ``known``: the cluster units it names (a name
    absent from ``known`` is not a cluster unit: systemd decides).

    * a local dependency holds it only if ordered before it and to run;
    * a remote one holds it while not running if named in After=/Wants= and to
      run, or in Requires=/BindsTo= (to run or not: it is required).
    """
    for name in sorted(preds | deps.named()):
        dep = known.get(name)
        if dep is not None and not dep.local and name in deps.binds:
            return (f"not started: BindsTo={name} names a unit of another machine, and "
                    "systemd stops a unit bound to a unit it does not run; use Requires=")
        if dep is None or dep.running():
            continue
        if dep.local:
            waits = name in preds and dep.to_run
        else:
            waits = name in deps.requires or (dep.to_run and name in deps.named())
        if waits:
            return f"waiting for {name}, {dep.where()}"
    return None


def requirement_lost(deps: UnitDeps, known: Mapping[str, Dependency]) -> str | None:
    """Why a running unit must stop: a Requires=/BindsTo= dependency on another
    machine is not running (stopped, failed, or its machine gone). None otherwise;
    a local requirement is systemd's own business."""
    for name in sorted(deps.requires):
        dep = known.get(name)
        if dep is not None and not dep.local and not dep.running():
            return f"required {name} is {dep.where()}"
    return None


def stop_wait(name: str, preds: Mapping[str, frozenset[str]],
              leaving: Mapping[str, str]) -> str | None:
    """Why the stop of ``name`` must wait, or None.

    ``leaving``: the local units that are not to run here, with their systemd
    ActiveState. A unit ordered after ``name`` that is still up holds its stop
    (systemd stops in the reverse order of starting)."""
    for later in sorted(leaving):
        if name in preds.get(later, ()) and leaving[later] in NOT_STOPPED:
            return f"waiting for {later} to stop ({leaving[later]})"
    return None


def cycle_problem(units: Mapping[str, UnitDeps]) -> str | None:
    """The submit check: ``dependency cycle: a -> b -> a`` when the ordering of
    ``units`` (the stored units with the submitted ones in their place) has a
    cycle, else None."""
    cycle = find_cycle(ordered_before(units))
    return None if cycle is None else cycle_message(cycle)
