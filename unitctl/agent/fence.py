"""The fence: the I/O around the pure rule :func:`unitctl.agent.fencing.decide`.

Three parts:

* :class:`PeerServer` and :func:`ask_peers`: the small TCP protocol between
  agents (the asker sends ``{"nonce"}``, the server answers one JSON line
  ``{"id", "etcd_age", "mac"}``; an answer without a valid MAC of the cluster
  secret counts as silent, :mod:`.peerauth`); a taken port is retried and
  reported loudly, never ignored;
* :class:`Fence`: the loop that, once the lease has not been renewed for
  ``FENCE_AFTER * ttl`` (:meth:`~.session.Session.lease_age`), asks the
  peers, applies ``decide`` and, on FENCE (and one last failed look at etcd,
  a refresh of the lease), stops every local unit; :meth:`Fence.lift`
  ends the fence when etcd answers again;
* :meth:`Fence.watch_peers`: the list of peers, kept from membership changes
  (a watch on the machine keys from the listing's revision; no polling), in
  a :class:`PeerBook` that decodes a key only when the fence reads the peers;
  a machine key that does not decode is reported once and skipped (that
  machine is no peer).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
from collections.abc import Callable, Sequence

from unitctl.errors import RegistryError, UnitctlError
from unitctl.loop import checkpoint
from unitctl.model import Machine
from unitctl.registry import poison
from unitctl.registry.codec import decode_machine
from unitctl.registry.keyspace import Record
from unitctl.registry.kv import EventKind
from unitctl.registry.registry import Registry

from .executor import Executor
from .fencing import (
    FENCE_AFTER,
    LAST_LOOK,
    PeerReport,
    Verdict,
    check_interval,
    decide,
    hold_pause,
    peer_timeout,
)
from .peerauth import mac, valid_nonce, verify
from .ports import UnitManager
from .session import Session

log = logging.getLogger("unitctl.agent")

def new_nonce() -> str:
    """A fresh random nonce, 32 hex digits (``secrets.token_hex(16)``, without the
    secrets module's import of random into every agent)."""
    return os.urandom(16).hex()


#: Seconds the server waits for the asker's nonce line.
NONCE_WAIT = 1.0
#: The longest line the server reads (a nonce line is under 200 bytes).
NONCE_LINE_LIMIT = 1024
#: Seconds between two attempts to bind a taken peer_port.
BIND_RETRY = 5.0
#: The largest fraction of a hold's pause taken off at random (spreads the questions).
HOLD_JITTER = 0.2


def _unit_random() -> float:
    """A uniform float in [0, 1) from os.urandom (no import of random)."""
    return int.from_bytes(os.urandom(4), "big") / 2**32


class PeerServer:
    """Answers each TCP connection: reads ``{"nonce"}``, writes one JSON line
    ``{"id", "etcd_age", "mac"}`` (:mod:`.peerauth`), closes."""

    def __init__(self, machine_id: str, etcd_age: Callable[[], float],
                 secret: Callable[[], bytes] = lambda: b"") -> None:
        self.machine_id = machine_id
        self.etcd_age = etcd_age
        self.secret = secret
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        """Bind and listen; raises OSError when the port cannot be bound."""
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True,
                                                  limit=NONCE_LINE_LIMIT)

    async def keep_bound(self, host: str, port: int, notify: Callable[[str], None],
                         retry: float = BIND_RETRY) -> None:
        """Bind, retrying every ``retry`` s while the port is taken; a failure is loud:
        logged at ERROR and shown as the unit's STATUS=."""
        while True:
            try:
                await self.start(host, port)
            except OSError as exc:
                log.error("agent: cannot bind peer_port %s:%d: %s: peers will count this "
                          "machine as silent; retrying in %gs", host, port, exc, retry)
                notify(f"STATUS=peer_port {port} not bound: {exc.strerror or exc}")
                await asyncio.sleep(retry)
                continue
            log.info("agent: answering peers on %s:%d", host, port)
            return

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ValueError, TimeoutError):
            nonce = json.loads(await asyncio.wait_for(r.readline(), NONCE_WAIT))["nonce"]
            if valid_nonce(nonce):
                age = round(self.etcd_age(), 3)
                tag = mac(self.secret(), nonce, self.machine_id, age) if self.secret() else ""
                line = json.dumps({"id": self.machine_id, "etcd_age": age, "mac": tag})
                w.write(line.encode() + b"\n")
                await w.drain()
        with contextlib.suppress(OSError):
            w.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


async def ask_peer(host: str, port: int, timeout: float, secret: bytes) -> PeerReport | None:
    """Ask one peer; None when it cannot be reached, answers nonsense, or its
    answer lacks a valid MAC for our nonce (:mod:`.peerauth`)."""
    nonce = new_nonce()
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        try:
            w.write(json.dumps({"nonce": nonce}).encode() + b"\n")
            line = await asyncio.wait_for(r.readline(), timeout)
        finally:
            w.close()
        obj = json.loads(line)
        report = PeerReport(str(obj["id"]), float(obj["etcd_age"]))
        tag = str(obj["mac"])
    except (OSError, TimeoutError, ValueError, KeyError, TypeError):
        return None
    if not verify(secret, nonce, report.machine_id, report.etcd_age, tag):
        log.warning("agent: peer %s:%d answered without a valid MAC: counted as silent",
                    host, port)
        return None
    return report


#: The most peers asked at once (open connections of one asking agent).
MAX_ASKS = 64


async def ask_peers(addrs: Sequence[tuple[str, int]], timeout: float, secret: bytes,
                    limit: int = MAX_ASKS) -> list[PeerReport]:
    """Ask the peers, at most ``limit`` at a time, all within ``2 * timeout`` (one
    connect and one read: what :func:`~.fencing.fence_margin` allows); return the
    authenticated answers that came.

    A peer not asked before the time is up counts as silent, so a large cluster
    fences rather than holds when it cannot hear everyone in time: safe, as a
    silent peer may be on the side that reaches etcd. Without the bound, 5,000
    machines each opened 5,000 connections at once when etcd went quiet.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2 * timeout
    todo = iter(addrs)
    running: set[asyncio.Task[PeerReport | None]] = set()
    reports: list[PeerReport] = []
    try:
        while True:
            for host, port in itertools.islice(todo, max(0, limit - len(running))):
                running.add(asyncio.create_task(ask_peer(host, port, timeout, secret)))
            left = deadline - loop.time()
            if not running or left <= 0:
                return reports
            done, running = await asyncio.wait(running, timeout=left,
                                               return_when=asyncio.FIRST_COMPLETED)
            reports += [r for r in (t.result() for t in done) if r is not None]
    finally:
        for task in running:
            task.cancel()


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
        #: fences applied and lifted since the agent started (for /metrics)
        self.fenced_total = 0
        self.lifted_total = 0
        #: rounds of questions to the peers since the agent started (for /metrics)
        self.asks_total = 0
        self._book = PeerBook(session.machine.id, registry.keys.machines())

    def lift(self) -> bool:
        """etcd answered: end the fence. Returns True if there was one."""
        if not self.fenced:
            return False
        log.warning("agent: etcd reachable again; lifting the fence")
        self.fenced = False
        self.lifted_total += 1
        return True

    async def run(self) -> None:
        """Every ttl/20: consult the peers once the lease has gone unrenewed for
        ``FENCE_AFTER * ttl``; fence or hold. While holding, the questions back off
        (:func:`~.fencing.hold_pause`, with up to :data:`HOLD_JITTER` of it taken
        off at random so that the agents' questions spread out)."""
        step = check_interval(self.ttl)
        pause, backoff, last_hold = step, 0.0, ""
        while True:
            checkpoint()
            await asyncio.sleep(pause)
            pause = step
            if self.fenced or self.session.lease_age() < FENCE_AFTER * self.ttl:
                backoff, last_hold = 0.0, ""
                continue
            verdict, why = await self._consult()
            if verdict is Verdict.FENCE and not await self._reaches_etcd():
                await self.fence(why)
            elif verdict is Verdict.HOLD and why != last_hold:
                log.warning("agent: etcd silent for %.1fs: %s", self.session.etcd_age(), why)
            if verdict is Verdict.HOLD:
                backoff = hold_pause(self.ttl, self.session.lease_age(), backoff)
                pause = backoff * (1 - HOLD_JITTER * _unit_random())
            else:
                backoff = 0.0
            last_hold = why if verdict is Verdict.HOLD else ""
            self.asks_total += 1

    async def _consult(self) -> tuple[Verdict, str]:
        """Ask every known peer once and apply :func:`~.fencing.decide`."""
        addrs = [(ip, self.peer_port) for ip in self.peers.values()]
        reports = await ask_peers(addrs, peer_timeout(self.ttl), self.session.peer_secret)
        return decide(self.session.lease_age(), self.ttl, self.session.keepalive,
                      len(addrs), reports)

    async def _reaches_etcd(self) -> bool:
        """One last quick look before fencing (a refresh of the lease): etcd may have
        just come back."""
        return await self.session.reaches_etcd(LAST_LOOK)

    async def fence(self, why: str) -> None:
        """Stop every local unit now (files stay; the schedule decides later)."""
        self.fenced = True
        self.fenced_total += 1
        log.warning("agent: FENCING after %.1fs without etcd: %s", self.session.etcd_age(),
                    why)
        self.notify(f"STATUS=fenced: {why}")
        for name in sorted(self.units.present()):
            with contextlib.suppress(UnitctlError):
                await self.units.stop(name)
        self.executor.forget_all()

    @property
    def peers(self) -> dict[str, str]:
        """Live peers: machine id -> public IP (this machine excluded)."""
        return self._book.ips()

    async def watch_peers(self) -> None:
        """Keep :attr:`peers` (membership changes only; no polling).

        Watch events are applied one by one, and stored undecoded
        (:class:`PeerBook`): re-listing every machine on each change would cost N
        machines x N agents reads per membership change, and decoding each event
        N x N decodes when every machine registers again at once.
        """
        while True:
            checkpoint()
            try:
                await self._follow_peers()
            except (RegistryError, ValueError):
                await asyncio.sleep(0.5)

    async def _follow_peers(self) -> None:
        base = self.registry.keys.machines()
        listed, revision = await self.registry.records(base)
        self._book.reset(listed)
        # from the listing's own revision: a peer registering after the listing is
        # in the watch (a second read of the revision would skip it)
        async for events in self.registry.watch(base, revision + 1):
            for ev in events:
                if ev.kind is EventKind.DELETE:
                    self._book.drop(ev.key)
                else:
                    self._book.put(ev.key, ev.value, ev.mod_rev)


class PeerBook:
    """The machine keys this agent last saw, kept raw and decoded only when read.

    A membership change is one watch event at every agent; storing its bytes
    costs a dict assignment. The fence reads the peers only when etcd is
    silent, so decoding waits until then (each key once per change). A key
    that does not decode is reported once and skipped (that machine is no peer).
    """

    def __init__(self, me: str, base: str) -> None:
        self.me = me
        self.base = base
        self._raw: dict[str, tuple[bytes, int]] = {}
        self._ips: dict[str, str] = {}
        self._undecoded: set[str] = set()

    def reset(self, listed: Sequence[Record]) -> None:
        """Start again from a listing of the machine keys (decoded by the registry)."""
        self._raw, self._ips, self._undecoded = {}, {}, set()
        for record in listed:
            machine = record.value
            if isinstance(machine, Machine) and machine.id != self.me:
                self._raw[record.key] = (record.data, record.mod_rev)
                if machine.public_ip:
                    self._ips[machine.id] = machine.public_ip

    def put(self, key: str, value: bytes, mod_rev: int) -> None:
        if key.startswith(self.base) and key[len(self.base):] != self.me:
            self._raw[key] = (value, mod_rev)
            self._undecoded.add(key)

    def drop(self, key: str) -> None:
        self._raw.pop(key, None)
        self._undecoded.discard(key)
        self._ips.pop(key[len(self.base):], None)

    def ips(self) -> dict[str, str]:
        """machine id -> public IP of every peer whose key decodes and has an IP."""
        for key in self._undecoded:
            value, mod_rev = self._raw[key]
            mid = key[len(self.base):]
            self._ips.pop(mid, None)
            try:
                m = decode_machine(key, value)
            except poison.DECODE_ERRORS as exc:  # a poison key: skip it, once logged
                poison.invalid(key, mod_rev, exc)
                continue
            if m.public_ip and m.id != self.me:
                self._ips[m.id] = m.public_ip
        self._undecoded.clear()
        return self._ips
