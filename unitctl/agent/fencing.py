"""Fencing: stop this machine's units before anyone else may start them.

The rule (documented in docs/fencing.md):

* The engine re-places a machine's units only after the machine's lease has
  expired, i.e. ``agent_ttl`` after the agent's last successful keepalive.
* An agent that has not reached etcd for ``FENCE_AFTER * ttl`` asks its peers
  (the other live machines it last saw) how long ago *they* last reached etcd.
  A peer "reaches etcd" when its last contact is more recent than this
  machine's first failed keepalive (``peer_age < own_age - keepalive - SLACK``):
  ages are relative, so no clock needs to agree with another.
  - some peer reaches etcd → this machine is cut off while the cluster goes on:
    **fence** (stop every local unit now, well before the lease can expire);
  - no peer answers at all → this machine is isolated: **fence**;
  - some peer does not answer → it may be on the side of a split that still
    reaches etcd: **fence** (safety first: a unit must never run twice);
  - every known peer answers and every one is cut off from etcd too → etcd
    itself is down; no engine can move anything and leases survive an etcd
    restart: **hold** (stop nothing);
  - there are no peers (a one-machine cluster) → nobody could take the units:
    **hold**.

``decide`` is pure; ``PeerServer`` and ``ask_peers`` are the small TCP
protocol (one JSON line per connection, no input read from the peer).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Fraction of the TTL without etcd contact after which peers are consulted.
FENCE_AFTER = 0.5
#: Allowance for round trips when comparing a peer's age with ours (seconds).
SLACK = 0.1


class Verdict(enum.Enum):
    OK = "ok"
    FENCE = "fence"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class PeerReport:
    """What a peer said: its machine id and seconds since it last reached etcd."""

    machine_id: str
    etcd_age: float


def decide(since_contact: float, ttl: float, keepalive: float, peers_known: int,
           reports: Sequence[PeerReport]) -> tuple[Verdict, str]:
    """Decide whether to fence, and why.

    Args:
        since_contact: seconds since this agent last reached etcd.
        ttl: the lease TTL; keepalive: seconds between this agent's keepalives.
        peers_known: how many peers were asked; reports: the answers.
    """
    if since_contact < FENCE_AFTER * ttl:
        return Verdict.OK, "etcd reachable"
    if peers_known == 0:
        return Verdict.HOLD, "no peers: nobody could take over the units"
    fresh = [r for r in reports if r.etcd_age < since_contact - keepalive - SLACK]
    if fresh:
        return Verdict.FENCE, (f"peer {fresh[0].machine_id[:8]} reaches etcd "
                               "and this machine does not")
    if not reports:
        return Verdict.FENCE, "isolated: neither etcd nor any peer answers"
    if len(reports) < peers_known:
        return Verdict.FENCE, (f"{peers_known - len(reports)} of {peers_known} peers do not "
                               "answer and may still reach etcd")
    return Verdict.HOLD, "etcd is unreachable from every peer too: holding"


class PeerServer:
    """Answers each TCP connection with one JSON line: {"id", "etcd_age"}."""

    def __init__(self, machine_id: str, etcd_age: Callable[[], float]) -> None:
        self.machine_id = machine_id
        self.etcd_age = etcd_age
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True)

    async def _handle(self, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        line = json.dumps({"id": self.machine_id, "etcd_age": round(self.etcd_age(), 3)})
        with contextlib.suppress(OSError):
            w.write(line.encode() + b"\n")
            await w.drain()
            w.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


async def ask_peer(host: str, port: int, timeout: float) -> PeerReport | None:
    """Ask one peer; None when it cannot be reached or answers nonsense."""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        try:
            line = await asyncio.wait_for(r.readline(), timeout)
        finally:
            w.close()
        obj = json.loads(line)
        return PeerReport(str(obj["id"]), float(obj["etcd_age"]))
    except (OSError, TimeoutError, ValueError, KeyError, TypeError):
        return None


async def ask_peers(addrs: Sequence[tuple[str, int]], timeout: float) -> list[PeerReport]:
    """Ask every peer at once; return the answers that came."""
    answers = await asyncio.gather(*(ask_peer(h, p, timeout) for h, p in addrs))
    return [a for a in answers if a is not None]
