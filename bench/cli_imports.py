"""Where a CLI command's start-up goes: its imports, grouped by who caused them.

``python -X importtime`` prints one line per module imported, children before
their parent. Each module's *self* time is charged to its nearest ancestor
(itself included) that is click or unitctl, grouped as ``click``,
``unitctl.cli``, ``unitctl.client``, ``unitctl.registry`` and ``unitctl``
(the core: model, unitfile, xfleet ...); the standard library modules they
pull in count to them (``inspect`` under click, ``socket`` under the
registry). Modules with no such ancestor count to ``interpreter`` (the
start-up that ``python -c pass`` pays too: ``site`` and what it imports).
The costliest modules, with what is charged to them, are listed too.
Each module's time is the minimum over the runs (a lower bound, steadier on a
loaded host than a median).

A second probe counts the dataclasses the command creates and the time their
creation takes (``dataclasses._process_class`` timed), which is most of what
importing unitctl's own modules costs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: How many of the costliest modules (with the library modules charged to them) to list.
TOP = 15

GROUPS = ("interpreter", "click", "unitctl.cli", "unitctl.client", "unitctl.registry", "unitctl")


@dataclass
class Node:
    """One line of ``-X importtime``."""

    name: str
    self_us: int
    depth: int
    parent: Node | None = None


def parse(stderr: str) -> list[Node]:
    """The import tree of one ``-X importtime`` run (post-order lines)."""
    nodes: list[Node] = []
    stack: list[Node] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, field = line[len("import time:"):].split("|", 2)
        name = field.strip()
        node = Node(name, int(self_us), (len(field) - len(field.lstrip()) - 1) // 2)
        while stack and stack[-1].depth > node.depth:
            stack.pop().parent = node
        stack.append(node)
        nodes.append(node)
    return nodes


def owner_of(node: Node) -> str:
    """The nearest click or unitctl module at or above ``node`` ("" when none)."""
    at: Node | None = node
    while at is not None:
        if at.name.split(".")[0] in ("click", "unitctl"):
            return at.name
        at = at.parent
    return ""


def group_of(owner: str) -> str:
    """The group of an owner module."""
    if not owner:
        return "interpreter"
    if owner.split(".")[0] == "click":
        return "click"
    family = ".".join(owner.split(".")[:2])
    return family if family in GROUPS else "unitctl"


def importtime(argv: Sequence[str], env: dict[str, str], cwd: str, runs: int) -> dict[str, Any]:
    """Import time per group (ms) of ``argv`` (an interpreter and its arguments)."""
    best: dict[str, tuple[str, int]] = {}
    for _ in range(runs):
        r = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           check=True)
        for node in parse(r.stderr):
            seen = best.get(node.name)
            if seen is None or node.self_us < seen[1]:
                best[node.name] = (owner_of(node), node.self_us)
    groups = dict.fromkeys(GROUPS, 0.0)
    owners: dict[str, float] = {}
    for owner, us in best.values():
        groups[group_of(owner)] += us / 1000
        if owner:
            owners[owner] = owners.get(owner, 0.0) + us / 1000
    top = sorted(owners.items(), key=lambda kv: -kv[1])[:TOP]
    return {"groups_ms": {g: round(ms, 1) for g, ms in groups.items()},
            "total_ms": round(sum(groups.values()), 1), "modules": len(best),
            "unitctl_modules": sum(1 for n in best if n.split(".")[0] == "unitctl"),
            "top_owners_ms": {name: round(ms, 1) for name, ms in top}}


PROBE = """
import atexit, dataclasses, json, runpy, sys, time
spent = [0.0, 0]
create = dataclasses._process_class
def timed(*a, **k):
    t = time.perf_counter()
    try:
        return create(*a, **k)
    finally:
        spent[0] += time.perf_counter() - t
        spent[1] += 1
dataclasses._process_class = timed
atexit.register(lambda: sys.stderr.write(
    "\\nPROBE " + json.dumps({"dataclasses": spent[1], "dataclass_ms": round(spent[0] * 1000, 1)})
    + "\\n"))
sys.argv = ["unitctl", *sys.argv[1:]]
runpy.run_module("unitctl", run_name="__main__", alter_sys=True)
"""


def dataclass_cost(python: str, args: Sequence[str], env: dict[str, str], cwd: str,
                   runs: int) -> dict[str, Any]:
    """How many dataclasses ``unitctl ARGS`` creates, and the least time that took (ms)."""
    seen = []
    for _ in range(runs):
        r = subprocess.run([python, "-c", PROBE, *args], env=env, cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           check=True)
        seen.append(json.loads(r.stderr.rsplit("\nPROBE ", 1)[1]))
    return {"dataclasses": seen[0]["dataclasses"],
            "dataclass_ms": min(s["dataclass_ms"] for s in seen)}


def breakdown(python: str, cli_args: Sequence[str], env: dict[str, str], cwd: str,
              runs: int = 5) -> dict[str, Any]:
    """Both probes for one command (``cli_args``: what follows ``unitctl``)."""
    return {**importtime([python, "-m", "unitctl", *cli_args], env, cwd, runs),
            **dataclass_cost(python, cli_args, env, cwd, runs)}
