"""What an apply would do, shown as a user reads it (pure).

:func:`diff_text` prints a :class:`~unitctl.bundle.plan.Plan` as a unified
diff of each unit body that changes (``--- a/<unit>`` is what is stored,
``+++ b/<unit>`` what the Clusterfile makes; a new unit's old side is
``/dev/null``, a pruned unit's new side too) followed by one line per
desired-state change, ownership change and pruned unit, then the same for
config templates (``a/template:<name>``: its fields one per line, then its
text). An empty plan prints nothing. :func:`action_lines` are the lines ``unitctl apply`` prints
for the same plan, once done.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping

from unitctl.bundle.plan import Plan
from unitctl.templating.resource import TemplateResource, to_mapping


def _unified(old: str, new: str, before: str, after: str) -> list[str]:
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 before, after)
    return [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines]


def template_text(res: TemplateResource | None) -> str:
    """A resource as a diff shows it: ``key: value`` lines (JSON values), then
    ``template: |`` and its text indented (empty for None)."""
    if res is None:
        return ""
    fields = {k: v for k, v in to_mapping(res).items() if k != "template"}
    lines = [f"{k}: {json.dumps(fields[k])}\n" for k in sorted(fields)]
    lines.append("template: |\n")
    lines += [f"  {line}\n" for line in res.template.splitlines()]
    return "".join(lines)


def _template_lines(plan: Plan) -> list[str]:
    out: list[str] = []
    for res, old in plan.templates:
        before = f"a/template:{res.name}" if old is not None else "/dev/null"
        out += _unified(template_text(old), template_text(res), before,
                        f"b/template:{res.name}")
    for name in plan.template_claim:
        out.append(f"own template {name}: bundle {plan.bundle} becomes its owner\n")
    for name in plan.template_prune:
        out.append(f"prune template {name}: owned by bundle {plan.bundle}, no longer in it "
                   "(its files stay on the machines)\n")
    for name in plan.template_release:
        if name not in plan.template_prune:
            out.append(f"forget template {name}: owned by bundle {plan.bundle}, no longer "
                       "stored\n")
    return out


def diff_text(plan: Plan, stored_bodies: Mapping[str, str]) -> str:
    """The plan as a unified diff plus its state, owner and prune lines.

    ``stored_bodies`` maps a body sha to its stored text (the replaced and
    pruned units' shas; a missing one diffs as empty).
    """
    out: list[str] = []
    for unit in plan.create:
        out += _unified("", unit.body, "/dev/null", f"b/{unit.name}")
    for unit, rec in plan.replace:
        out += _unified(stored_bodies.get(rec.hash, ""), unit.body, f"a/{unit.name}",
                        f"b/{unit.name}")
    created = {u.name for u in plan.create}
    for change in plan.states:
        out.append(f"state {change.name}: {change.old.value} -> {change.new.value}\n")
    for name in plan.claim:
        if name not in created:
            out.append(f"adopt {name}: bundle {plan.bundle} becomes its owner\n")
    for name in plan.prune:
        out.append(f"prune {name}: owned by bundle {plan.bundle}, no longer in it\n")
    for name in plan.release:
        if name not in plan.prune:
            out.append(f"forget {name}: owned by bundle {plan.bundle}, no longer stored\n")
    return "".join(out + _template_lines(plan))


def action_lines(plan: Plan) -> list[str]:
    """One line per change an apply made (created, replaced, state, adopted, pruned)."""
    lines = [f"Unit {u.name} created" for u in plan.create]
    lines += [f"Unit {u.name} replaced" for u, _ in plan.replace]
    lines += [f"Unit {c.name} {c.new.value} (was {c.old.value})" for c in plan.states]
    created = {u.name for u in plan.create}
    lines += [f"Unit {n} adopted by bundle {plan.bundle}" for n in plan.claim
              if n not in created]
    lines += [f"Unit {n} pruned" for n in plan.prune]
    lines += [f"Template {r.name} {'updated' if old else 'created'}" for r, old in plan.templates]
    lines += [f"Template {n} pruned (its files stay on the machines)"
              for n in plan.template_prune]
    return lines
