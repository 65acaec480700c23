"""systemd as the simulator models it: a :class:`~unitctl.agent.ports.UnitManager`
that never waits, so the agent's real :class:`~unitctl.agent.executor.Executor`
runs on it synchronously (:func:`run_now`).

A machine's systemd is two sets: the unit files present (name -> hash) and the
units running. The simulator has no unit texts: the body of hash ``h`` is a
two-line unit whose Description is ``h`` (:data:`BODIES`), and writing it
records ``h`` as the file's hash. The ports drop-in the agent's executor
writes (:class:`SimDropins`) is kept per unit, and a unit that starts binds its
fixed ports and the drop-in's ports of that moment. Every start and stop is
recorded in the world's :class:`~unitctl.sim.ledger.RunLedger`
(:class:`RunningUnits`), so nothing can run without the checks seeing it.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable, Iterator, Mapping, MutableSet
from typing import Any, TypeVar

from unitctl.agent.ports import StateCallback, SystemdState
from unitctl.sim.ledger import PortEnv, RunLedger

T = TypeVar("T")

_HEAD = "[Unit]\nDescription="
_RUNNING = SystemdState("loaded", "active", "running")
_LOADED = SystemdState("loaded", "inactive", "dead")
_NOT_FOUND = SystemdState("not-found", "inactive", "dead")


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (no event loop, no clock); return its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a simulated coroutine suspended: the model must never wait")


class SimBodies(Mapping[str, str]):
    """hash -> unit text, for every hash (the text only carries the hash)."""

    def __getitem__(self, sha: str) -> str:
        return f"{_HEAD}{sha}\n"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


#: The one body store of every simulated agent.
BODIES = SimBodies()


class RunningUnits(MutableSet[str]):
    """The units active on one machine; every start and stop goes to the ledger."""

    def __init__(self, machine: str, ledger: RunLedger, dropins: Mapping[str, PortEnv]) -> None:
        self._machine = machine
        self._ledger = ledger
        self._dropins = dropins
        self._names: set[str] = set()

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def add(self, name: str) -> None:
        if name not in self._names:
            self._names.add(name)
            self._ledger.started(self._machine, name, self._dropins.get(name, ()))

    def discard(self, name: str) -> None:
        if name in self._names:
            self._names.remove(name)
            self._ledger.stopped(self._machine, name)

    def clear(self) -> None:
        for name in sorted(self._names):
            self.discard(name)

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> set[Any]:
        return set(it)  # set operators (a | b) give plain sets, not a second record


class SimDropins:
    """The executor's ports sink on one machine: unit -> the ports its drop-in passes in."""

    def __init__(self) -> None:
        self.env: dict[str, PortEnv] = {}

    def write(self, name: str, ports: PortEnv) -> None:
        if ports:
            self.env[name] = ports
        else:
            self.env.pop(name, None)

    def read(self, name: str) -> PortEnv:
        return tuple(sorted(self.env.get(name, ())))


class SimSystemd:
    """One machine's systemd: the files present, the drop-ins and the units running."""

    def __init__(self, machine: str, ledger: RunLedger) -> None:
        #: The unit directory: name -> hash.
        self.files: dict[str, str] = {}
        #: The ports drop-ins (in /run, like the unit files).
        self.dropins = SimDropins()
        #: Units active.
        self.running = RunningUnits(machine, ledger, self.dropins.env)

    def wipe(self) -> None:
        """A reboot: /run is empty, nothing runs."""
        self.files.clear()
        self.dropins.env.clear()
        self.running.clear()

    async def start_manager(self, on_change: StateCallback) -> None:
        pass

    async def close(self) -> None:
        pass

    def present(self) -> Mapping[str, str]:
        return self.files

    async def write(self, name: str, text: str) -> None:
        self.files[name] = text.removeprefix(_HEAD).rstrip("\n")

    async def link(self, name: str, enable: bool) -> None:
        pass

    async def host_unit(self, name: str) -> str | None:
        return None  # the modelled host has no units of its own

    async def unload(self, name: str) -> None:
        self.files.pop(name, None)
        self.running.discard(name)

    async def reload(self) -> None:
        pass

    async def start(self, name: str, ignore_requirements: bool = False) -> None:
        self.running.add(name)

    async def stop(self, name: str) -> None:
        self.running.discard(name)

    async def state(self, name: str) -> SystemdState:
        if name in self.running:
            return _RUNNING
        return _LOADED if name in self.files else _NOT_FOUND
