"""A bundle's desired units against what is stored: the plan of an apply (pure).

:func:`plan` compares a :class:`Desired` bundle with the :class:`Stored` units
and owners and returns the :class:`Plan`: units to create, bodies to replace,
desired states to change, owner records to write, and (with ``prune``) the
units the bundle owns but no longer names. :func:`applied` is the plan's
effect on the stored state, so the invariants can be checked without a store:
``plan(d, applied(s, plan(d, s)))`` is empty, and a prune only ever names
units whose owner is this bundle.

Ownership: a unit belongs to the bundle that created (or, with ``adopt``,
took over) it; a unit of another bundle is refused, and so is a unit nobody
owns unless ``adopt`` is given. Every refusal is raised before any write.

Config template resources (``spec.templates``) follow the same rules with
owner records of their own: a template whose stored resource differs is
submitted, one the bundle owns and no longer names is destroyed with
``prune`` (the files it rendered stay on the machines, as with
``unitctl template destroy``).
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field

from unitctl.errors import ConflictError
from unitctl.model import DesiredState, UnitRecord
from unitctl.record import replace
from unitctl.templating.resource import TemplateResource


@dataclass(frozen=True, slots=True)
class DesiredUnit:
    """One unit a bundle wants: its name, serialised body, body hash and desired state."""

    name: str
    body: str
    hash: str
    desired: DesiredState


@dataclass(frozen=True, slots=True)
class Desired:
    """A bundle's units and config templates, each sorted by name (names are unique)."""

    bundle: str
    units: tuple[DesiredUnit, ...]
    templates: tuple[TemplateResource, ...] = ()

    def by_name(self) -> dict[str, DesiredUnit]:
        return {u.name: u for u in self.units}


@dataclass(frozen=True, slots=True)
class Stored:
    """What is stored: the unit records and each owned unit's bundle; the template
    resources (those a plan needs) and each owned template's bundle."""

    units: Mapping[str, UnitRecord]
    owners: Mapping[str, str]
    templates: Mapping[str, TemplateResource] = field(default_factory=dict)
    template_owners: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateChange:
    """A unit's desired state going from ``old`` to ``new``."""

    name: str
    old: DesiredState
    new: DesiredState


@dataclass(frozen=True, slots=True)
class Plan:
    """What an apply writes, in this order: owners, bodies, desired states, prunes.

    Attributes:
        create: units not stored yet (created ``inactive``, then given their state).
        replace: stored units whose body differs (the stored record beside each).
        states: desired-state changes, created units' included.
        claim: units whose owner record becomes this bundle.
        prune: stored units this bundle owns and no longer names.
        release: owner records to delete (pruned units, and stale ones of units gone).
        templates: the template resources to submit (new, or differing from the
            stored one, which is beside it; None when there is none).
        template_claim, template_prune, template_release: as ``claim``, ``prune``
            and ``release``, for templates.
    """

    bundle: str
    create: tuple[DesiredUnit, ...] = ()
    replace: tuple[tuple[DesiredUnit, UnitRecord], ...] = ()
    states: tuple[StateChange, ...] = ()
    claim: tuple[str, ...] = ()
    prune: tuple[str, ...] = ()
    release: tuple[str, ...] = ()
    templates: tuple[tuple[TemplateResource, TemplateResource | None], ...] = ()
    template_claim: tuple[str, ...] = ()
    template_prune: tuple[str, ...] = ()
    template_release: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.create or self.replace or self.states or self.claim or self.prune
                    or self.release or self.templates or self.template_claim
                    or self.template_prune or self.template_release)

    def summary(self) -> str:
        """``2 created, 1 replaced, 3 state changes, 1 pruned`` (the parts that are not 0)."""
        parts = [(len(self.create), "created"), (len(self.replace), "replaced"),
                 (len(self.states), "state changes"), (len(self.prune), "pruned"),
                 (len(set(self.claim) - {u.name for u in self.create}), "adopted"),
                 (len(self.templates), "templates submitted"),
                 (len(self.template_prune), "templates pruned")]
        return ", ".join(f"{n} {what}" for n, what in parts if n) or "owner records only"


def _refuse_foreign(what: str, names: Sequence[str], owners: Mapping[str, str],
                    stored: Container[str], bundle: str, adopt: bool) -> None:
    """Refuse a ``what`` (unit, template) of another bundle, or an unowned stored one
    without ``adopt``."""
    for name in names:
        owner = owners.get(name)
        if owner is not None and owner != bundle:
            raise ConflictError(f"{what} {name} belongs to bundle {owner}, not "
                                f"{bundle}: remove it from one of them")
        if owner is None and name in stored and not adopt:
            raise ConflictError(f"{what} {name} exists and belongs to no bundle: give "
                                f"--adopt to let bundle {bundle} take it over")


TemplatePart = tuple[tuple[tuple[TemplateResource, TemplateResource | None], ...],
                     tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _template_plan(desired: Desired, stored: Stored, prune: bool) -> TemplatePart:
    """The template part of a plan: (templates, claim, prune, release)."""
    put = tuple((res, stored.templates.get(res.name)) for res in desired.templates
                if stored.templates.get(res.name) != res)
    claim = tuple(r.name for r in desired.templates
                  if stored.template_owners.get(r.name) != desired.bundle)
    names = {r.name for r in desired.templates}
    gone = sorted(n for n, owner in stored.template_owners.items()
                  if owner == desired.bundle and n not in names)
    pruned = tuple(n for n in gone if n in stored.templates) if prune else ()
    stale = tuple(n for n in gone if n not in stored.templates)
    return put, claim, pruned, tuple(sorted({*pruned, *stale}))


def owned(stored: Stored, bundle: str) -> list[str]:
    """The units whose owner record names ``bundle``, sorted."""
    return sorted(name for name, owner in stored.owners.items() if owner == bundle)


def plan(desired: Desired, stored: Stored, prune: bool = False, adopt: bool = False) -> Plan:
    """The writes that make ``stored`` hold ``desired`` (see the module docstring).

    Raises:
        ConflictError: a unit of another bundle, or an unowned one without ``adopt``.
    """
    _refuse_foreign("unit", [u.name for u in desired.units], stored.owners, stored.units,
                    desired.bundle, adopt)
    _refuse_foreign("template", [r.name for r in desired.templates], stored.template_owners,
                    stored.templates, desired.bundle, adopt)
    create: list[DesiredUnit] = []
    swap: list[tuple[DesiredUnit, UnitRecord]] = []
    states: list[StateChange] = []
    for unit in desired.units:
        rec = stored.units.get(unit.name)
        if rec is None:
            create.append(unit)
        elif rec.hash != unit.hash:
            swap.append((unit, rec))
        old = DesiredState.INACTIVE if rec is None else rec.desired
        if old is not unit.desired:
            states.append(StateChange(unit.name, old, unit.desired))
    claim = tuple(u.name for u in desired.units
                  if stored.owners.get(u.name) != desired.bundle)
    names = desired.by_name()
    gone = [n for n in owned(stored, desired.bundle) if n not in names]
    pruned = tuple(n for n in gone if n in stored.units) if prune else ()
    stale = tuple(n for n in gone if n not in stored.units)
    return Plan(desired.bundle, tuple(create), tuple(swap), tuple(states), claim, pruned,
                tuple(sorted({*pruned, *stale})), *_template_plan(desired, stored, prune))


def applied(stored: Stored, done: Plan, desired: Desired) -> Stored:
    """The stored state once ``done`` (a plan for ``desired``) has been written."""
    units = dict(stored.units)
    owners = dict(stored.owners)
    wanted = desired.by_name()
    for unit in done.create:
        units[unit.name] = UnitRecord(unit.name, unit.hash, DesiredState.INACTIVE)
    for unit, rec in done.replace:
        units[unit.name] = replace(rec, hash=unit.hash)
    for change in done.states:
        units[change.name] = replace(units[change.name], desired=wanted[change.name].desired)
    owners.update((name, done.bundle) for name in done.claim)
    for name in done.prune:
        units.pop(name, None)
    for name in done.release:
        owners.pop(name, None)
    return Stored(units, owners, *_templates_applied(stored, done))


def _templates_applied(stored: Stored, done: Plan) -> tuple[dict[str, TemplateResource],
                                                            dict[str, str]]:
    templates = dict(stored.templates)
    owners = dict(stored.template_owners)
    templates.update((res.name, res) for res, _ in done.templates)
    owners.update((name, done.bundle) for name in done.template_claim)
    for name in done.template_prune:
        templates.pop(name, None)
    for name in done.template_release:
        owners.pop(name, None)
    return templates, owners


def state_groups(changes: Sequence[StateChange]) -> list[tuple[DesiredState, list[str]]]:
    """Changes grouped by target, lowest first (stops before starts), names in order."""
    order = sorted({c.new for c in changes}, key=lambda s: s.rank)
    return [(state, [c.name for c in changes if c.new is state]) for state in order]
