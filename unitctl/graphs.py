"""Directed graphs of unit names (pure): the shortest cycle through one node.

Shared by the Replaces-cycle check at submit (:mod:`unitctl.xfleet`) and the
scheduler's MachineOf and Replaces cycle rules (:mod:`unitctl.scheduler.rules`).
"""

from __future__ import annotations

from collections.abc import Container, Mapping

__all__ = ["shortest_cycle"]


def shortest_cycle(graph: Mapping[str, list[str]], start: str,
                   within: Container[str] | None = None) -> list[str] | None:
    """Breadth-first: the shortest path ``start -> ... -> start`` (through nodes in
    ``within`` only, when given), or None when there is none."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in graph.get(node, ()):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if (within is None or nxt in within) and nxt not in parent:
                    parent[nxt] = node
                    following.append(nxt)
        frontier = following
    return None
