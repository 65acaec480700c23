"""Ranking: which feasible machine gets a unit.

fleet's only score is the unit count (``leastLoadedScheduler``): the machine
running the fewest units wins, ties broken by machine id ascending
(``sortableAgentStates.Less``), so the order is total and deterministic.
The count includes the global units running on the machine.

A unit that needs CPU or memory is ranked by the room it would leave instead
(:func:`by_room`): spread by default, bin-packing with ``Placement=binpack``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping


def by_load(machines: Iterable[str], load: Callable[[str], int]) -> list[str]:
    """Return ``machines`` least loaded first, ties by id ascending."""
    return sorted(machines, key=lambda m: (load(m), m))


def by_room(machines: Iterable[str], room_left: Callable[[str], float],
            load: Callable[[str], int], binpack: bool = False) -> list[str]:
    """Return ``machines`` by the share of CPU and memory a unit would leave there:
    the most first (spread), or with ``binpack`` the least first; ties by unit
    count, then id ascending (Nomad's spread and bin-packing, deterministic)."""
    sign = 1.0 if binpack else -1.0
    return sorted(machines, key=lambda m: (sign * room_left(m), load(m), m))


class LeastLoaded:
    """Every machine ordered by (load, id), kept up to date as loads change.

    A heap with lazy invalidation: each load change pushes a new entry with a
    fresh version; entries whose version is not the machine's current one are
    skipped. Most units have no rules, so the first machine popped usually
    takes the unit: O(log machines) per placement instead of a sort.
    """

    def __init__(self, loads: Mapping[str, int]) -> None:
        self._version = dict.fromkeys(loads, 0)
        self._heap: list[tuple[int, str, int]] = [(n, m, 0) for m, n in loads.items()]
        heapq.heapify(self._heap)

    def set_load(self, machine: str, load: int) -> None:
        """Record a machine's new unit count."""
        version = self._version[machine] + 1
        self._version[machine] = version
        heapq.heappush(self._heap, (load, machine, version))
        if len(self._heap) > 4 * len(self._version) + 64:
            self._compact()

    def first(self, accept: Callable[[str], bool]) -> str | None:
        """Return the first machine in (load, id) order that ``accept`` takes, or None.

        ``accept`` is called at most once per machine, in that order.
        """
        popped: list[tuple[int, str, int]] = []
        chosen = None
        heap = self._heap
        version = self._version
        while heap:
            entry = heapq.heappop(heap)
            if version[entry[1]] != entry[2]:
                continue
            popped.append(entry)
            if accept(entry[1]):
                chosen = entry[1]
                break
        for entry in popped:
            heapq.heappush(heap, entry)
        return chosen

    def _compact(self) -> None:
        """Drop stale entries."""
        self._heap = [e for e in self._heap if self._version[e[1]] == e[2]]
        heapq.heapify(self._heap)
