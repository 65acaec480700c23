"""The unit pool of the soak: what each unit is, and which promises apply to it.

* ``svc-<i>``: plain ``/bin/sleep infinity`` services;
* ``conflict-a``/``conflict-b``: ``[X-Fleet] Conflicts=`` each other (never on one machine);
* ``anchor``/``follower``: ``follower`` has ``MachineOf=anchor.service``; ``anchor`` is never
  stopped by the load, so ``follower`` is placeable whenever it is launched;
* ``slow-stop``: ignores SIGTERM for half the fence margin (its shell traps TERM and
  sleeps), with ``TimeoutStopSec=`` at the margin: as slow as docs/fencing.md's rule
  for unit authors allows, so "never twice" must hold for it;
* ``refused``: ``RefuseManualStart=yes``, systemd refuses to start it; started only by the
  ``refused`` fault, and no availability promise applies to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unitctl.agent.fencing import fence_margin

SLEEP = "/bin/sleep infinity"


def slow_stop_cmd(seconds: float) -> str:
    """A service that takes ``seconds`` to stop after SIGTERM."""
    return f"/bin/sh -c 'trap \"sleep {seconds:.2f}; exit 0\" TERM; while :; do sleep 1; done'"


@dataclass(frozen=True)
class PoolUnit:
    name: str
    cmd: str = SLEEP
    xfleet: str = ""
    unit_extra: str = ""
    stop_timeout: str = "10"
    by_load: bool = True  # the load generator starts/stops/destroys it
    placeable: bool = True  # the availability promise applies

    def text(self) -> str:
        body = f"[Unit]\nDescription=chaos soak {self.name}\n{self.unit_extra}"
        body += f"\n[Service]\nExecStart={self.cmd}\nTimeoutStopSec={self.stop_timeout}\n"
        return body + (f"[X-Fleet]\n{self.xfleet}\n" if self.xfleet else "")


def pool(ttl: float, n_plain: int = 5) -> list[PoolUnit]:
    """The soak's units for agents with lease ``ttl`` (the slow unit follows its margin)."""
    margin = fence_margin(ttl)
    units = [PoolUnit(f"svc-{i}.service") for i in range(n_plain)]
    units += [PoolUnit("conflict-a.service", xfleet="Conflicts=conflict-b.service"),
              PoolUnit("conflict-b.service", xfleet="Conflicts=conflict-a.service"),
              PoolUnit("anchor.service", by_load=False),
              PoolUnit("follower.service", xfleet="MachineOf=anchor.service"),
              PoolUnit("slow-stop.service", cmd=slow_stop_cmd(margin / 2),
                       stop_timeout=f"{int(margin * 1000)}ms"),
              PoolUnit("refused.service", unit_extra="RefuseManualStart=yes",
                       by_load=False, placeable=False)]
    return units


SLOW_UNIT = "slow-stop.service"
REFUSED_UNIT = "refused.service"
CONFLICT_PAIR = ("conflict-a.service", "conflict-b.service")


def write_pool(units: list[PoolUnit], directory: Path) -> dict[str, str]:
    """Write each unit file into ``directory``; return name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for u in units:
        p = directory / u.name
        p.write_text(u.text())
        paths[u.name] = str(p)
    return paths
