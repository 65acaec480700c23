"""Applying a bundle: read what is stored, plan, write through the client layer.

:func:`read_stored` reads the records of the bundle's units and of the units
it owns, and every owner record. :func:`execute` writes a
:class:`~unitctl.bundle.plan.Plan` in this order: the submit-time cycle
checks (before any write), the owner records (so a unit is owned before it
exists), the config templates (before the units that may read their files),
the bodies through :func:`unitctl.client.intent.submit` (new units
batched, changed bodies with ``--replace``'s semantics: a replaced unit keeps
its desired state and its agent reloads it), the desired states through the
batched :func:`unitctl.client.intent.set_desired` (stops before starts),
the prunes through :func:`unitctl.client.intent.destroy` (then the templates
pruned), and last the revision record. An empty plan writes nothing at all.

:func:`load_revision` turns a recorded revision back into a desired bundle,
for ``unitctl rollback``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from unitctl.bundle.plan import Desired, DesiredUnit, Plan, Stored, owned, state_groups
from unitctl.client import intent
from unitctl.client.cycles import refuse_cycles
from unitctl.client.resolve import LocalUnit, read_records
from unitctl.errors import NotFoundError, UnitctlError
from unitctl.model import UnitRecord
from unitctl.registry.registry import Registry
from unitctl.registry.revisions import Revision
from unitctl.templating import resource as res_codec
from unitctl.templating.resource import TemplateResource
from unitctl.unitfile import UnitFile

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StoredBundle:
    """What an apply reads: the stored units and owners, and the bundle's kept revisions."""

    stored: Stored
    revisions: list[Revision]


async def read_stored(registry: Registry, desired: Desired) -> StoredBundle:
    """The records of the bundle's units and owned units, every owner, the bundle's
    templates and owned templates, every template owner, its revisions."""
    owners = await registry.bundles.owners()
    template_owners = await registry.bundles.template_owners()
    names = [u.name for u in desired.units] + owned(Stored({}, owners), desired.bundle)
    found = await read_records(registry, names)
    units = {name: rec for name, rec in found.items() if rec is not None}
    wanted = {r.name for r in desired.templates} | {
        n for n, b in template_owners.items() if b == desired.bundle}
    templates = {r.name: r for r in await registry.templates.all() if r.name in wanted} \
        if wanted else {}
    return StoredBundle(Stored(units, owners, templates, template_owners),
                        await registry.bundles.revisions(desired.bundle))


def template_sha(res: TemplateResource) -> str:
    """The sha1 of a resource's stored form (its revision entry's key)."""
    return hashlib.sha1(res_codec.encode(res)).hexdigest()


async def stored_bodies(registry: Registry, plan: Plan) -> dict[str, str]:
    """The stored texts of the units a plan replaces (for the diff)."""
    return await registry.get_bodies_by_hash(rec.hash for _, rec in plan.replace)


def _local(unit: DesiredUnit, rec: UnitRecord | None, bundle: str) -> LocalUnit:
    return LocalUnit(unit.name, UnitFile.parse(unit.body), f"bundle {bundle}", "file",
                     record=rec)


async def execute(registry: Registry, desired: Desired, read: StoredBundle, plan: Plan,
                  note: str, source: str, now: float, err: Say) -> Revision | None:
    """Write ``plan`` (see the module docstring); return the revision recorded, or
    None when the plan is empty."""
    if plan.empty:
        return None
    stored = read.stored
    changed = [_local(u, stored.units.get(u.name), desired.bundle)
               for u in [*plan.create, *(u for u, _ in plan.replace)]]
    await refuse_cycles(registry, changed)
    await registry.bundles.claim(desired.bundle, plan.claim, stored.owners)
    await registry.bundles.claim_templates(desired.bundle, plan.template_claim,
                                           stored.template_owners)
    for res, _ in plan.templates:
        await registry.templates.submit(res)
    written = await intent.submit(registry, changed, True, "start", lambda _: None, err)
    records = {**stored.units, **{rec.name: rec for rec in written}}
    for state, names in state_groups(plan.states):
        await intent.set_desired(registry, [records[n] for n in names if n in records], state)
    if plan.prune:
        await intent.destroy(registry, [stored.units[n] for n in plan.prune])
    for name in plan.template_prune:
        await registry.templates.destroy(name)
    await registry.bundles.release(desired.bundle, plan.release)
    await registry.bundles.release_templates(desired.bundle, plan.template_release)
    return await _record(registry, desired, read, note, source, now)


async def _record(registry: Registry, desired: Desired, read: StoredBundle, note: str,
                  source: str, now: float) -> Revision:
    number = max((r.number for r in read.revisions), default=0) + 1
    templates = {template_sha(r): r for r in desired.templates}
    rev = Revision(desired.bundle, number, now, note, source,
                   tuple((u.name, u.hash, u.desired) for u in desired.units),
                   tuple((r.name, sha) for sha, r in templates.items()))
    bodies = {u.hash: u.body for u in desired.units}
    bodies.update((sha, res_codec.encode(r).decode()) for sha, r in templates.items())
    await registry.bundles.record(rev, bodies, read.revisions)
    return rev


async def load_revision(registry: Registry, bundle: str, number: int | None,
                        ) -> tuple[Desired, Revision]:
    """Revision ``number`` of ``bundle`` (None: the one before the newest) as a
    desired bundle.

    Raises:
        NotFoundError: no such bundle, revision or (dropped) body.
    """
    revs = await registry.bundles.revisions(bundle)
    if not revs:
        raise NotFoundError(f"bundle {bundle} has no recorded revision")
    if number is None:
        if len(revs) < 2:
            raise NotFoundError(f"bundle {bundle} has only revision {revs[-1].number}: "
                                "nothing to roll back to")
        rev = revs[-2]
    else:
        rev = next((r for r in revs if r.number == number), None)  # type: ignore[assignment]
        if rev is None:
            kept = ", ".join(str(r.number) for r in revs)
            raise NotFoundError(f"bundle {bundle} has no revision {number} (kept: {kept})")
    bodies = await registry.bundles.bodies(bundle, rev.shas)
    missing = sorted(rev.shas - set(bodies))
    if missing:
        raise NotFoundError(f"bundle {bundle} revision {rev.number}: body {missing[0]} "
                            "is missing from the store")
    units = tuple(DesiredUnit(name, bodies[sha], sha, state) for name, sha, state in rev.units)
    templates = tuple(sorted((_decoded(bundle, rev, bodies[sha]) for _, sha in rev.templates),
                             key=lambda r: r.name))
    return Desired(bundle, tuple(sorted(units, key=lambda u: u.name)), templates), rev


def _decoded(bundle: str, rev: Revision, text: str) -> TemplateResource:
    try:
        return res_codec.decode(text.encode())
    except (UnitctlError, ValueError) as exc:
        raise NotFoundError(f"bundle {bundle} revision {rev.number}: a template's stored "
                            f"form does not decode: {exc}") from None
