"""The fence: the I/O around the pure rule :func:`unitctl.agent.fencing.decide`.

Three parts:

* :class:`PeerServer` and :func:`ask_peers`: the small TCP protocol between
  agents (one JSON line per connection, ``{"id", "etcd_age"}``; nothing is read
  from the asking side);
* :class:`Fence`: the loop that, once etcd has been silent for
  ``FENCE_AFTER * ttl``, asks the peers, applies ``decide`` and, on FENCE (and
  one last failed look at etcd), stops every local unit; :meth:`Fence.lift`
  ends the fence when etcd answers again;
* :meth:`Fence.watch_peers`: the list of peers, kept from membership changes
  (a watch on the machine keys; no polling); a machine key that does not
  decode is reported once and skipped (that machine is no peer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence

from unitctl.errors import RegistryError, UnitctlError
from unitctl.loop import checkpoint
from unitctl.registry import poison
from unitctl.registry.codec import decode_machine
from unitctl.registry.kv import EventKind
from unitctl.registry.registry import Registry

from .executor import Executor
from .fencing import FENCE_AFTER, PeerReport, Verdict, decide
from .ports import UnitManager
from .session import Session

log = logging.getLogger("unitctl.agent")


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


class Fence:
    """Stops this machine's units when it is the one cut off from etcd."""

    def __init__(self, registry: Registry, units: UnitManager, executor: Executor,
                 session: Session, peer_port: int, notify: Callable[[str], None]) -> None:
        self.registry = registry
        self.units = units
        self.executor = executor
        self.session = session
        self.ttl = session.ttl
        self.peer_port = peer_port
        self.notify = notify
        self.fenced = False
        #: Live peers: machine id -> public IP (this machine excluded).
        self.peers: dict[str, str] = {}

    def lift(self) -> bool:
        """etcd answered: end the fence. Returns True if there was one."""
        if not self.fenced:
            return False
        log.warning("agent: etcd reachable again; lifting the fence")
        self.fenced = False
        return True

    async def run(self) -> None:
        """Every ttl/20: consult the peers once etcd is silent; fence or hold."""
        step = max(0.05, self.ttl / 20)
        last_hold = ""
        while True:
            checkpoint()
            await asyncio.sleep(step)
            age = self.session.etcd_age()
            if self.fenced or age < FENCE_AFTER * self.ttl:
                last_hold = ""
                continue
            addrs = [(ip, self.peer_port) for ip in self.peers.values()]
            reports = await ask_peers(addrs, timeout=min(0.5, self.ttl / 10))
            verdict, why = decide(self.session.etcd_age(), self.ttl, self.session.keepalive,
                                  len(addrs), reports)
            if verdict is Verdict.FENCE and not await self._reaches_etcd():
                await self.fence(why)
            elif verdict is Verdict.HOLD and why != last_hold:
                log.warning("agent: etcd silent for %.1fs: %s", self.session.etcd_age(), why)
            last_hold = why if verdict is Verdict.HOLD else ""

    async def _reaches_etcd(self) -> bool:
        """One last quick look before fencing: etcd may have just come back."""
        try:
            await asyncio.wait_for(self.registry.revision(), 0.3)
        except (TimeoutError, RegistryError):
            return False
        self.session.contact()
        return True

    async def fence(self, why: str) -> None:
        """Stop every local unit now (files stay; the schedule decides later)."""
        self.fenced = True
        log.warning("agent: FENCING after %.1fs without etcd: %s", self.session.etcd_age(),
                    why)
        self.notify(f"STATUS=fenced: {why}")
        for name in sorted(self.units.present()):
            with contextlib.suppress(UnitctlError):
                await self.units.stop(name)
        self.executor.forget_all()

    async def watch_peers(self) -> None:
        """Keep :attr:`peers` (membership changes only; no polling).

        Watch events are applied one by one: re-listing every machine on each
        change would cost N machines x N agents reads per membership change.
        """
        while True:
            checkpoint()
            try:
                await self._follow_peers()
            except (RegistryError, ValueError):
                await asyncio.sleep(0.5)

    async def _follow_peers(self) -> None:
        me = self.session.machine.id
        base = self.registry.keys.machines()
        machines = await self.registry.list_machines()
        self.peers = {m.id: m.public_ip for m in machines if m.id != me and m.public_ip}
        rev = await self.registry.revision()
        async for events in self.registry.watch(base, rev + 1):
            for ev in events:
                mid = self.registry.keys.tail(ev.key, base)
                if ev.kind is EventKind.DELETE or mid == me:
                    self.peers.pop(mid, None)
                    continue
                try:
                    m = decode_machine(ev.key, ev.value)
                except poison.DECODE_ERRORS as exc:  # a poison key: skip it, once logged
                    poison.invalid(ev.key, ev.mod_rev, exc)
                    self.peers.pop(mid, None)
                    continue
                if m.public_ip:
                    self.peers[m.id] = m.public_ip
