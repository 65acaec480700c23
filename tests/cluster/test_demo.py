"""``bin/demo`` end to end, run as a user would: ``up``, placement, ``kill``, ``down``.

One demo cluster for the module, booted by ``bin/demo up`` in a subprocess
with its own state file, tag, bridge and subnet (so it coexists with the
default demo and with the other cluster tests). Tests run in file order; the
last one runs ``bin/demo down`` and checks that nothing of ours is left.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.real import require_nspawn
from unitctl_testing.cgroups import CGROUP_PARENT, CGROUP_ROOT
from unitctl_testing.cluster import Cluster
from unitctl_testing.host import pid_alive

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "bin" / "demo"
TAG, BRIDGE, SUBNET = "dt", "br-unitctl-dt", "10.231.98"
AGENT_TTL = 3.0  # bin/demo's agent_ttl
MOVE_WITHIN = AGENT_TTL + 9  # TTL + a few seconds for the engine and systemd
UP_BUDGET = 60.0  # warm rootfs cache: "well under a minute"
LOG_ROOT = os.environ.get("UNITCTL_CLUSTER_LOGS") or "/tmp/unitctl-cluster-logs"
MACHINE_META = {"m1": "disk=ssd,region=eu", "m2": "disk=hdd,region=us",
                "m3": "disk=hdd,region=eu"}


@dataclass
class Demo:
    state_file: str
    up: subprocess.CompletedProcess[str]
    up_seconds: float
    state: dict[str, Any]
    downed: bool = False
    killed: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return str(self.state["endpoint"])

    @property
    def workdir(self) -> str:
        return str(self.state["workdir"])

    def name_of(self, machine_id: str) -> str:
        for m in self.state["machines"]:
            if m["machine_id"] == machine_id:
                return str(m["name"])
        raise AssertionError(f"machine id {machine_id} is not one of the demo's")

    def ip_of(self, name: str) -> str:
        return next(str(m["ip"]) for m in self.state["machines"] if m["name"] == name)

    def id_of(self, name: str) -> str:
        return next(str(m["machine_id"]) for m in self.state["machines"] if m["name"] == name)


def demo_cmd(state_file: str, *args: str, timeout: float = 300,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([str(DEMO), "--state-file", state_file, *args], cwd=REPO,
                       capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, check=False)
    if check:
        assert p.returncode == 0, f"bin/demo {' '.join(args)}: exit {p.returncode}\n" \
                                  f"--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
    return p


def unitctl(d: Demo, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "unitctl", "--endpoint", d.endpoint, *args],
                       cwd=REPO, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, check=False)
    if check:
        assert p.returncode == 0, f"unitctl {' '.join(args)}: {p.stdout}{p.stderr}"
    return p


def units(d: Demo) -> list[tuple[str, str, str]]:
    """(unit, machine name, active) of every reported unit."""
    rows = json.loads(unitctl(d, "list-units", "--json", "--full").stdout)
    return [(r["unit"], d.name_of(r["machine"].split("/")[0]), r["active"]) for r in rows]


def http_get(url: str, within: float = 10) -> str:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def table(output: str, header: str) -> list[list[str]]:
    """The rows of the tab-separated table of ``$ unitctl <header>`` in output."""
    block = output.split(f"$ unitctl {header}\n", 1)[1].split("\n\n", 1)[0]
    return [re.split(r"\t+", line.strip()) for line in block.strip().splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    require_nspawn("bin/demo's machines")
    state_file = str(tmp_path_factory.mktemp("demo") / "state.json")
    t0 = time.monotonic()
    p = demo_cmd(state_file, "up", "--tag", TAG, "--bridge", BRIDGE, "--subnet", SUBNET,
                 timeout=600, check=False)
    seconds = time.monotonic() - t0
    try:
        assert p.returncode == 0, f"bin/demo up: exit {p.returncode}\n--- stdout\n" \
                                  f"{p.stdout}\n--- stderr\n{p.stderr}"
        with open(state_file, encoding="utf-8") as f:
            d = Demo(state_file, p, seconds, json.load(f))
        yield d
    finally:
        if os.path.exists(state_file):
            demo_cmd(state_file, "down", check=False)


@pytest.fixture(autouse=True)
def _demo_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed or "demo" not in request.fixturenames:
        return
    d: Demo = request.getfixturevalue("demo")
    if not os.path.exists(d.state_file):
        return
    dest = os.path.join(LOG_ROOT, "test_demo", request.node.name)
    try:
        Cluster.attach(d.state_file).collect_logs(dest)
        msg = f"demo cluster logs: {dest}"
    except Exception as e:  # best effort: never mask the failure
        msg = f"collecting demo logs failed: {e}"
    request.node.add_report_section("teardown", "demo logs", msg)


# --------------------------------------------------------------------------- up

def test_up_prints_tables_and_next_steps(demo: Demo,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = demo.up.stdout
    with capsys.disabled():
        print(f"\nbin/demo up: {demo.up_seconds:.1f}s; "
              + " ".join(re.findall(r"demo: (up in .*)", out)))
    assert demo.up_seconds < UP_BUDGET, f"bin/demo up took {demo.up_seconds:.1f}s"
    machines = table(out, "list-machines")
    assert machines[0] == ["MACHINE", "IP", "METADATA"]
    assert sorted(row[1:] for row in machines[1:]) == sorted(
        [demo.ip_of(n), meta] for n, meta in MACHINE_META.items())
    units_table = table(out, "list-units")
    assert units_table[0] == ["UNIT", "MACHINE", "ACTIVE", "SUB"]
    assert {row[0] for row in units_table[1:]} >= {
        "mongo.service", "employees.service", "node-exporter.service", "cache.service",
        "web@1.service", "web@2.service", "web@3.service", "testdb.service"}
    # the next steps, copy-pasteable
    assert "Next steps" in out
    assert f"export UNITCTL_ENDPOINT={demo.endpoint}\n" in out
    assert f"export PATH={REPO}/.venv/bin:$PATH" in out
    assert "\n  unitctl list-units\n" in out
    assert "\n  watch -n0.5 unitctl list-units\n" in out
    assert "unitctl explain web@4.service" in out
    demo_ref = f"bin/demo --state-file {demo.state_file}"
    assert re.search(rf"{re.escape(demo_ref)} kill m[123]\b", out)
    assert f"{demo_ref} down" in out


def test_units_placed_by_their_rules(demo: Demo) -> None:
    rows = units(demo)
    where: dict[str, list[str]] = {}
    for unit, machine, active in rows:
        assert active == "active", rows
        where.setdefault(unit, []).append(machine)
    # mongo + employees together (X-ConditionMachineOf)
    assert len(where["mongo.service"]) == 1
    assert where["employees.service"] == where["mongo.service"]
    # Global=true: on all 3
    assert sorted(where["node-exporter.service"]) == ["m1", "m2", "m3"]
    # MachineMetadata=disk=ssd: on m1
    assert where["cache.service"] == ["m1"]
    # Conflicts=web@*.service: 3 active on distinct machines, web@4 unscheduled
    webs = {u: ms for u, ms in where.items() if u.startswith("web@")}
    assert sorted(webs) == ["web@1.service", "web@2.service", "web@3.service"], rows
    assert sorted(m for ms in webs.values() for m in ms) == ["m1", "m2", "m3"]
    explain = unitctl(demo, "explain", "web@4.service").stdout
    assert "cannot be placed" in explain, explain
    reasons = explain.split("cannot be placed:", 1)[1].strip().splitlines()
    assert len(reasons) == 3 and all("Conflicts=web@*.service" in r for r in reasons), explain
    # the units do what they say: employees reads mongo on its own machine
    mongo_on = where["mongo.service"][0]
    body = http_get(f"http://{demo.ip_of(mongo_on)}:3000/")
    assert body.startswith(f"employees app on {mongo_on}: alice, bob, carol"), body
    assert f"stored by mongo on {mongo_on}" in body
    for n in MACHINE_META:
        metrics = http_get(f"http://{demo.ip_of(n)}:9100/metrics")
        assert f'node_up{{host="{n}"}} 1' in metrics, metrics


def test_status(demo: Demo) -> None:
    out = demo_cmd(demo.state_file, "status").stdout
    assert demo.endpoint in out
    for n in MACHINE_META:
        line = next(ln for ln in out.splitlines() if ln.startswith(f"{n} "))
        assert line.split()[1:5] == [demo.ip_of(n), demo.id_of(n), "yes", "registered"], line
    assert "$ unitctl list-units" in out and "mongo.service" in out


UPSTREAMS = "/etc/unitctl-demo/upstreams.conf"


def upstream_ips(d: Demo, machine: str) -> set[str]:
    """The servers of the demo's config template, as rendered on ``machine``."""
    out = demo_cmd(d.state_file, "cat", machine, UPSTREAMS, check=False).stdout
    return set(re.findall(r"server ([0-9.]+):8080;", out))


def test_the_config_template_lists_every_running_web(demo: Demo) -> None:
    web_on = {m for u, m, a in units(demo) if u.startswith("web@") and a == "active"}
    want = {demo.ip_of(m) for m in web_on}
    deadline = time.monotonic() + 20
    while any(upstream_ips(demo, n) != want for n in MACHINE_META):
        assert time.monotonic() < deadline, \
            {n: upstream_ips(demo, n) for n in MACHINE_META}
        time.sleep(0.25)
    assert "ok" in unitctl(demo, "templates").stdout


# --------------------------------------------------------------------------- the service

SERVICE = "testdb"  # units/demo/testdb.service: Ports=@PORT, Volume=testdb:64M:/var/lib/testdb
FETCH = ("import sys, urllib.request as u; "
         "print(u.urlopen(sys.argv[1], timeout=3).read().decode(), end='')")


def resolved(d: Demo) -> list[dict[str, Any]]:
    """``unitctl resolve testdb --json --full`` ([] when it exits 3: no record)."""
    p = unitctl(d, "resolve", "--json", "--full", SERVICE, check=False)
    if p.returncode == 3:
        return []
    assert p.returncode == 0, p.stdout + p.stderr
    rows: list[dict[str, Any]] = json.loads(p.stdout)
    return rows


def starts_seen_from(d: Demo, machine: str, address: str, port: int) -> list[str]:
    """The service's /starts, fetched from inside ``machine`` (one line per start)."""
    r = Cluster.attach(d.state_file).exec(machine, "python3", "-c", FETCH,
                                          f"http://{address}:{port}/starts", check=False,
                                          timeout=15)
    return r.stdout.splitlines() if r.returncode == 0 else []


def step(d: Demo, pattern: str) -> re.Match[str]:
    """The printed next-step line matching ``pattern`` (after the command prefix)."""
    m = re.search(pattern, d.up.stdout, re.M)
    assert m, f"no next step matching {pattern!r} in\n{d.up.stdout}"
    return m


def test_the_service_answers_on_its_allocated_port_and_resolves(demo: Demo) -> None:
    [(on, active)] = [(m, a) for u, m, a in units(demo) if u == f"{SERVICE}.service"]
    assert active == "active"
    [rec] = resolved(demo)
    port = rec["ports"]["PORT"]
    assert demo.name_of(rec["machine"]) == on and rec["address"] == demo.ip_of(on), rec
    assert 31000 <= port <= 31999, rec  # the agents' default port_range
    # `unitctl start` printed it, `unitctl resolve` shows it
    assert f"Unit {SERVICE}.service on {demo.ip_of(on)}: PORT={port}" in demo.up.stdout
    table = unitctl(demo, "resolve", SERVICE).stdout
    assert f"PORT={port}" in table and demo.ip_of(on) in table, table
    other = next(n for n in MACHINE_META if n != on)
    assert starts_seen_from(demo, other, rec["address"], port) == \
        [f"started on {on} port {port}"]
    # the next steps, as printed, with this machine and port
    demo_ref = re.escape(f"bin/demo --state-file {demo.state_file}")
    dig_a = step(demo, rf"^  {demo_ref} dig (m[123]) {SERVICE}\.unitctl\s+#").group(1)
    assert dig_a != on
    out = demo_cmd(demo.state_file, "dig", dig_a, f"{SERVICE}.unitctl").stdout
    assert out.splitlines()[0] == "status: NOERROR", out
    assert re.search(rf"^{SERVICE}\.unitctl\. \d+ IN A {re.escape(demo.ip_of(on))}$", out,
                     re.M), out
    step(demo, rf"^  {demo_ref} dig {dig_a} _port\._tcp\.{SERVICE}\.unitctl SRV\s+#")
    srv = demo_cmd(demo.state_file, "dig", dig_a, f"_port._tcp.{SERVICE}.unitctl", "SRV").stdout
    assert re.search(rf" IN SRV 0 0 {port} m-{demo.id_of(on)}\.unitctl\.$", srv, re.M), srv
    assert re.search(rf"IN A {re.escape(demo.ip_of(on))}$", srv, re.M), srv  # additional
    gone = demo_cmd(demo.state_file, "dig", dig_a, "nosuch.unitctl", check=False)
    assert gone.returncode == 1 and "status: NXDOMAIN" in gone.stdout, gone.stdout
    step(demo, rf"^  unitctl resolve {SERVICE}\s+# its machine's address and PORT={port}$")
    step(demo, rf"^  python3 -c .*http://{re.escape(demo.ip_of(on))}:{port}/starts")


def test_the_service_waits_for_its_killed_machine_and_comes_back_as_printed(
        demo: Demo) -> None:
    [before] = resolved(demo)
    on, port = demo.name_of(before["machine"]), before["ports"]["PORT"]
    demo_ref = re.escape(f"bin/demo --state-file {demo.state_file}")
    assert step(demo, rf"^  {demo_ref} kill (m[123])\s+# a local volume: ").group(1) == on
    assert step(demo, rf"^  {demo_ref} boot (m[123])\s+# back on ").group(1) == on
    others = [n for n in MACHINE_META if n != on]

    demo_cmd(demo.state_file, "kill", on)
    reason = f"waits for machine {demo.id_of(on)}: its volume {SERVICE} lives there"
    deadline = time.monotonic() + MOVE_WITHIN
    while reason not in unitctl(demo, "explain", f"{SERVICE}.service", check=False).stdout:
        assert time.monotonic() < deadline, unitctl(demo, "explain", f"{SERVICE}.service",
                                                    check=False).stdout
        time.sleep(0.25)
    # the lease took the record; the unit runs nowhere else (it waits)
    while resolved(demo):
        assert time.monotonic() < deadline, resolved(demo)
        time.sleep(0.25)
    assert unitctl(demo, "resolve", SERVICE, check=False).returncode == 3
    assert not [m for u, m, _ in units(demo) if u == f"{SERVICE}.service"]

    demo_cmd(demo.state_file, "boot", on)
    deadline = time.monotonic() + 90
    while not resolved(demo):
        assert time.monotonic() < deadline, "no record after boot"
        time.sleep(0.25)
    [after] = resolved(demo)
    assert (after["machine"], after["address"], after["ports"]) == \
        (before["machine"], before["address"], {"PORT": port}), (before, after)
    # its volume kept the first start's line: two lines, both on its machine and port
    assert starts_seen_from(demo, others[0], after["address"], port) == \
        [f"started on {on} port {port}"] * 2
    # the agent publishes states and service records in separate batches: the
    # record (and the answer on the port) may come a moment before the state
    deadline = time.monotonic() + 15
    while (active := [m for u, m, a in units(demo)
                      if u == f"{SERVICE}.service" and a == "active"]) != [on]:
        assert time.monotonic() < deadline, active
        time.sleep(0.25)


def test_kill_moves_mongo_and_employees_together(demo: Demo,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    victim = next(m for u, m, _ in units(demo) if u == "mongo.service")
    t0 = time.monotonic()
    demo_cmd(demo.state_file, "kill", victim)
    demo.killed.append(victim)
    pair: dict[str, list[tuple[str, str]]] = {}
    moved_after = None
    while time.monotonic() - t0 < MOVE_WITHIN:
        rows = units(demo)
        pair = {u: [(m, a) for uu, m, a in rows if uu == u]
                for u in ("mongo.service", "employees.service")}
        mongo, employees = pair["mongo.service"], pair["employees.service"]
        if (len(mongo) == 1 and employees == mongo and mongo[0][0] != victim
                and mongo[0][1] == "active"):
            moved_after = time.monotonic() - t0
            break
        time.sleep(0.25)
    assert moved_after is not None, \
        f"mongo+employees not active together off {victim} within {MOVE_WITHIN}s: {pair}"
    with capsys.disabled():
        print(f"\nbin/demo kill {victim}: mongo+employees active on "
              f"{pair['mongo.service'][0][0]} after {moved_after:.1f}s (agent TTL {AGENT_TTL}s)")
    new = pair["mongo.service"][0][0]
    body = http_get(f"http://{demo.ip_of(new)}:3000/")
    assert f"stored by mongo on {new}" in body, body
    # the killed machine is gone from the cluster; its global unit copy too
    assert demo.id_of(victim) not in unitctl(demo, "list-machines", "--full").stdout
    assert victim not in [m for u, m, _ in units(demo)]


def test_the_config_template_drops_the_killed_machine(demo: Demo) -> None:
    victim = demo.killed[-1]
    survivors = [n for n in MACHINE_META if n != victim]
    web_on = {m for u, m, a in units(demo) if u.startswith("web@") and a == "active"}
    want = {demo.ip_of(m) for m in web_on}
    assert demo.ip_of(victim) not in want
    deadline = time.monotonic() + MOVE_WITHIN
    while any(upstream_ips(demo, n) != want for n in survivors):
        assert time.monotonic() < deadline, {n: upstream_ips(demo, n) for n in survivors}
        time.sleep(0.25)


def test_down_leaves_nothing(demo: Demo) -> None:
    st = demo.state
    pids = [m["nspawn_pid"] for m in st["machines"]] + list(st["etcd_pids"])
    demo_cmd(demo.state_file, "down")
    demo.downed = True
    assert not os.path.exists(demo.state_file)
    # processes
    assert not [p for p in pids if p and pid_alive(p)]
    ours = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if demo.workdir.encode() in cmd:
                ours.append(cmd.decode(errors="replace"))
    assert not ours, ours
    # mounts and the workdir
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        mounts = [line.split()[4] for line in f]
    assert not [m for m in mounts if m.startswith(demo.workdir)]
    assert not os.path.exists(demo.workdir)
    # network: netns, veths, bridge, iptables rule
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=True).stdout
    assert not re.search(rf"^unitctl-{TAG}", netns, re.M), netns
    links = os.listdir("/sys/class/net")
    assert not [x for x in links if x.startswith(f"uv{TAG}") or x == BRIDGE], links
    rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True,
                           text=True, check=False).stdout
    assert BRIDGE not in rules, rules
    # cgroups: ours under unitctl-test/ in both hierarchies, nothing else unitctl-* of ours
    for h in ("unified", "systemd"):
        parent = CGROUP_ROOT / h / CGROUP_PARENT
        left = [p.name for p in parent.glob(f"{TAG}*")] if parent.is_dir() else []
        assert not left, f"{parent}: {left}"
        assert not list((CGROUP_ROOT / h).glob(f"unitctl-{TAG}*"))
    # idempotent
    again = demo_cmd(demo.state_file, "down")
    assert "nothing to do" in again.stdout
