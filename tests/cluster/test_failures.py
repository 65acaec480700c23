"""Machines that join, die, stop, and lose etcd — on real systemd machines.

Each test boots its own cluster (about 2 s), with agent TTL 3 s and a
3-member etcd cluster. Timings are printed (and checked only loosely:
benchmarks in bench/ report them).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.cluster.helpers import service, unitctl, wait, where_active, write_unit
from unitctl_testing.cluster import Cluster
from unitctl_testing.etcd import EtcdCluster

TTL = 3.0
_Factory = Callable[..., Cluster]


class Factory:
    """cluster_factory, with a 3-member etcd cluster for every fault test."""

    def __init__(self, make: _Factory) -> None:
        self.make = make

    def __call__(self, n: int, **kw: object) -> Cluster:
        return self.make(n, etcd_size=3, **kw)


def _etcd(c: Cluster) -> EtcdCluster:
    """The cluster's etcd (up while the test runs)."""
    assert c.etcd is not None
    return c.etcd


def _factory(cluster_factory: _Factory) -> Factory:
    return Factory(cluster_factory)


def _start(c: Cluster, tmp: Path, *names: str, xfleet: str = "") -> None:
    paths = [write_unit(tmp, n, service(xfleet=xfleet)) for n in names]
    unitctl(c, "start", *paths)


def _placement(c: Cluster, names: list[str]) -> dict[str, set[str]]:
    return {n: where_active(c, n) for n in names}


def test_new_member_takes_new_units_and_nothing_moves(cluster_factory: _Factory,
                                                       tmp_path: Path) -> None:
    c = _factory(cluster_factory)(2)
    names = [f"a{i}.service" for i in range(4)]
    _start(c, tmp_path, *names)
    before = _placement(c, names)
    new = c.add_machine()
    wait(lambda: len(unitctl(c, "list-machines").stdout.strip().splitlines()) == 4,
         what="new machine registered")
    _start(c, tmp_path, "b0.service", "b1.service")
    assert where_active(c, "b0.service") == {new} and where_active(c, "b1.service") == {new}
    assert _placement(c, names) == before


def test_hard_killed_member_only_lost_units_move(cluster_factory: _Factory,
                                                  tmp_path: Path) -> None:
    c = _factory(cluster_factory)(3)
    names = [f"u{i}.service" for i in range(6)]
    _start(c, tmp_path, *names)
    before = _placement(c, names)
    victim = next(iter(before["u0.service"]))
    lost = [n for n, ms in before.items() if victim in ms]
    t0 = time.monotonic()
    c.kill(victim)
    alive = [m for m in c.names if m != victim]
    took = wait(lambda: all(where_active(c, n, alive) for n in lost), timeout=TTL + 10,
                step=0.05, what="lost units active elsewhere")
    print(f"hard kill: units active elsewhere after {took:.2f}s (TTL {TTL}s)")
    assert time.monotonic() - t0 < TTL + 3
    after = _placement(c, names)
    assert {n: ms for n, ms in after.items() if n not in lost} == \
        {n: ms for n, ms in before.items() if n not in lost}
    assert all(len(ms) == 1 for ms in after.values())


def test_machine_of_followers_move_with_their_leader(cluster_factory: _Factory,
                                                     tmp_path: Path) -> None:
    c = _factory(cluster_factory)(3)
    _start(c, tmp_path, "ping.service")
    _start(c, tmp_path, "pong.service", xfleet="MachineOf=ping.service")
    (m,) = where_active(c, "ping.service")
    c.kill(m)
    alive = [x for x in c.names if x != m]
    wait(lambda: len(where_active(c, "pong.service", alive)) == 1, timeout=TTL + 10,
         what="pong moved")
    assert where_active(c, "ping.service", alive) == where_active(c, "pong.service", alive)


def test_graceful_agent_stop_moves_units_at_once(cluster_factory: _Factory,
                                                 tmp_path: Path) -> None:
    c = _factory(cluster_factory)(2)
    _start(c, tmp_path, "g.service")
    (m,) = where_active(c, "g.service")
    other = next(x for x in c.names if x != m)
    t0 = time.monotonic()
    c.stop_agent(m)
    took = wait(lambda: where_active(c, "g.service") == {other}, timeout=10, step=0.05,
                what="moved after graceful stop")
    print(f"graceful stop: active elsewhere {time.monotonic() - t0:.2f}s after "
          f"`systemctl stop unitctl-agent` returned ({took:.2f}s of waiting)")
    assert time.monotonic() - t0 < TTL  # no lease expiry needed


def _watch_stops(c: Cluster, names: list[str], until: threading.Event,
                 seen: list[str]) -> None:
    """Record any moment a running unit is seen inactive on its machine."""
    where = {n: next(iter(where_active(c, n))) for n in names}
    while not until.is_set():
        for n, m in where.items():
            if not where_active(c, n, [m]):
                seen.append(f"{n} stopped on {m}")
        time.sleep(0.1)


@contextlib.contextmanager
def nothing_stops_or_moves(c: Cluster, tmp: Path, prefix: str) -> Iterator[None]:
    """Start three units; while the body runs and after it, none may stop or move."""
    names = [f"{prefix}{i}.service" for i in range(3)]
    _start(c, tmp, *names)
    before = _placement(c, names)
    stop = threading.Event()
    seen: list[str] = []
    watcher = threading.Thread(target=_watch_stops, args=(c, names, stop, seen))
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
    assert seen == []
    assert _placement(c, names) == before


def test_short_etcd_outage_stops_nothing(cluster_factory: _Factory, tmp_path: Path) -> None:
    c = _factory(cluster_factory)(3)
    with nothing_stops_or_moves(c, tmp_path, "s"):
        for m in _etcd(c).members:
            m.pause()  # etcd unreachable for everyone, shorter than the TTL
        time.sleep(TTL * 0.7)
        for m in _etcd(c).members:
            m.resume()
        time.sleep(TTL * 2)


def test_long_etcd_outage_for_everyone_stops_and_moves_nothing(cluster_factory: _Factory,
                                                               tmp_path: Path) -> None:
    c = _factory(cluster_factory)(3)
    with nothing_stops_or_moves(c, tmp_path, "l"):
        for m in _etcd(c).members:
            m.pause()
        time.sleep(TTL * 3)
        for m in _etcd(c).members:
            m.resume()
        wait(lambda: len(unitctl(c, "list-machines", check=False).stdout.splitlines()) == 4,
             timeout=20, what="machines back")
        time.sleep(TTL * 2)


def test_partitioned_machine_stops_units_before_they_start_elsewhere(
        cluster_factory: _Factory, tmp_path: Path) -> None:
    c = _factory(cluster_factory)(3)
    _start(c, tmp_path, "p.service")
    (m,) = where_active(c, "p.service")
    alive = [x for x in c.names if x != m]
    t0 = time.monotonic()
    c.partition(m)
    try:
        stopped = wait(lambda: not where_active(c, "p.service", [m]), timeout=TTL + 5,
                       step=0.05, what="fenced on the partitioned machine")
        started = wait(lambda: bool(where_active(c, "p.service", alive)), timeout=TTL + 10,
                       step=0.05, what="started elsewhere") + stopped
        print(f"partition: stopped on {m} after {stopped:.2f}s, active elsewhere after "
              f"{started:.2f}s: gap {started - stopped:.2f}s, no overlap (TTL {TTL}s)")
        assert stopped < started
        assert len(where_active(c, "p.service")) == 1
    finally:
        c.heal(m)
    # back on the network: the old machine does not start it again
    wait(lambda: len(unitctl(c, "list-machines").stdout.strip().splitlines()) == 4,
         timeout=20, what="re-registered")
    time.sleep(1)
    assert not where_active(c, "p.service", [m])
    assert time.monotonic() - t0 < 60


def _main_pid(c: Cluster, machine: str, unit: str) -> str:
    return c.exec(machine, "systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip()


def test_agent_reexec_and_crash_restart_keep_units_running(cluster_factory: _Factory,
                                                           tmp_path: Path) -> None:
    c = _factory(cluster_factory)(2)
    _start(c, tmp_path, "k.service")
    (m,) = where_active(c, "k.service")
    pid = _main_pid(c, m, "k.service")
    assert pid not in ("", "0")
    # systemctl reload: SIGHUP, the agent re-executes itself in place
    agent_pid = _main_pid(c, m, "unitctl-agent.service")
    c.systemctl(m, "reload", "unitctl-agent")
    wait(lambda: "adopted running unit k.service" in c.journal(m, "-u", "unitctl-agent"),
         what="re-executed agent adopted the unit")
    assert _main_pid(c, m, "unitctl-agent.service") == agent_pid  # exec keeps the pid
    # a crash: systemd restarts the agent (Restart=always)
    c.systemctl(m, "kill", "-s", "KILL", "unitctl-agent")
    wait(lambda: _main_pid(c, m, "unitctl-agent.service") not in ("", "0", agent_pid)
         and c.exec(m, "systemctl", "is-active", "unitctl-agent", check=False).stdout.strip()
         == "active", timeout=20, what="agent restarted")
    time.sleep(TTL)  # well past the old process's last keepalive
    assert where_active(c, "k.service") == {m}
    assert _main_pid(c, m, "k.service") == pid  # never restarted
    r = unitctl(c, "list-units", "--full")
    assert c.machine_id(m) in r.stdout and "active" in r.stdout


def test_etcd_leader_loss_stops_and_moves_nothing(cluster_factory: _Factory,
                                                  tmp_path: Path) -> None:
    """fleet issues 1289 and 1690: units were stopped when etcd changed leader."""
    c = _factory(cluster_factory)(3)
    with nothing_stops_or_moves(c, tmp_path, "e"):
        for i in range(3):  # lose each member in turn, the leader among them
            _etcd(c).members[i].kill()
            time.sleep(TTL)
            _etcd(c).restart_member(i)
            _etcd(c).wait_healthy()
        time.sleep(TTL)
    _start(c, tmp_path, "after.service")  # and the cluster still works
