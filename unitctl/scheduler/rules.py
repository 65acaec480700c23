"""Cycles between units (pure): MachineOf cycles, and the rule for Replaces cycles.

* A **MachineOf cycle** is a set of units that wait for each other and can
  never be placed.
* A **Replaces cycle** is a set of units whose ``Replaces=`` globs reach each
  other (``a`` replaces ``b`` and ``b`` replaces ``a``, or longer). The submit
  path refuses one, but one may still reach the scheduler (an older client, a
  write straight into etcd). The rule: of the units of one cycle (a strongly
  connected component of the replace graph), only the one whose name sorts
  first is scheduled; every other member is held unscheduled. So exactly one
  of them runs, whatever the order of the input.

The glob relations (``Conflicts``, ``Replaces``) come from :mod:`unitctl.xfleet`
(Go ``path.Match`` semantics), through
:class:`~unitctl.scheduler.snapshot.Relations`, which indexes and caches them.
"""

from __future__ import annotations

from collections.abc import Mapping

from unitctl.graphs import shortest_cycle


def machine_of_cycles(graph: Mapping[str, list[str]]) -> dict[str, str]:
    """Return every unit on a MachineOf cycle -> its shortest cycle, ``a -> b -> a``.

    Args:
        graph: unit -> the peers it waits for (sorted), restricted to the graph's units.
    """
    found: dict[str, str] = {}
    for component in _strongly_connected(graph):
        if len(component) > 1:
            members = set(component)
            for node in component:
                found[node] = " -> ".join(shortest_cycle(graph, node, members) or [node, node])
    return found


def replace_cycle_holds(graph: Mapping[str, list[str]]) -> dict[str, tuple[str, str]]:
    """Return every held member of a Replaces cycle -> (the member that runs, its cycle).

    Args:
        graph: unit -> the units its Replaces globs match (itself excluded); every
            unit named as a target is a key too.
    """
    held: dict[str, tuple[str, str]] = {}
    for component in _strongly_connected(graph):
        if len(component) > 1:
            winner, members = component[0], set(component)
            for node in component[1:]:
                cycle = shortest_cycle(graph, node, members) or [node, node]
                held[node] = (winner, " -> ".join(cycle))
    return held


def _strongly_connected(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; nodes visited in sorted order (deterministic)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, successors = work[-1]
            nxt = next(successors, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components
