"""The cluster harness itself: boot, identity, network, faults, teardown.

Runs without the agent (``start_agent=False``): only the harness is tested.
Tests share one module-scoped 3-machine cluster and run in file order; the
last one tears it down and checks that nothing is left on the host.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.real import require_tool
from unitctl_testing.cgroups import CGROUP_PARENT, cgroup_populated
from unitctl_testing.cluster import Cluster
from unitctl_testing.host import ClusterError, pid_alive

pytestmark = pytest.mark.cluster

CLUSTER_KWARGS = {"start_agent": False}
VENV_PY = "/opt/unitctl/venv/bin/python"
SHIPPED_AGENT_UNIT = Path(__file__).resolve().parents[2] / "contrib" / "unitctl-agent.service"

# the agent's adapter (etcd's JSON gateway), from the machine's venv
AGENT_KV_PUT_GET = """
import asyncio, sys
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.gateway import GatewayKV
host, port, key, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
async def main():
    kv = await GatewayKV.connect(EtcdConfig(endpoints=(f"http://{host}:{port}",), timeout=5))
    await kv.put(key, value.encode())
    print((await kv.get(key)).value.decode())
    await kv.close()
asyncio.run(main())
"""

HTTP_GET = """
import sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        print(urllib.request.urlopen(url, timeout=1).read().decode().strip()); break
    except OSError as e:
        if time.monotonic() > deadline:
            sys.exit(f"{url}: {e}")
        time.sleep(0.1)
"""


def etcd_host_port(c: Cluster) -> tuple[str, int]:
    url = c.machine_endpoints[0]
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def http_get_inside(c: Cluster, name: str, url: str, within: float = 10,
                    check: bool = True) -> subprocess.CompletedProcess[str]:
    return c.exec(name, "python3", "-c", HTTP_GET, url, str(within), check=check,
                  timeout=within + 30)


def etcd_get_from_host(c: Cluster, key: str) -> str:
    """Read a key through etcd's v3 JSON gateway on the host side."""
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    url = c.endpoint.split(",")[0] + "/v3/kv/range"
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=5) as r:
        kvs = json.load(r).get("kvs", [])
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else ""


def test_systemd_reaches_running(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\nharness timings: { {k: round(v, 2) for k, v in cluster.timings.items()} }")
    for name in cluster.names:
        state = cluster.system_state(name, wait=True, timeout=60)
        failed = cluster.systemctl(name, "--failed", "--no-legend", check=False).stdout
        assert state in ("running", "degraded"), f"{name}: {state}\n{failed}"


def test_identity_and_config(cluster: Cluster) -> None:
    ids = {}
    for name in cluster.names:
        inside = cluster.exec(name, "cat", "/etc/machine-id").stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{32}", inside), inside
        assert inside == cluster.machine_id(name)
        ids[name] = inside
        assert cluster.exec(name, "hostname").stdout.strip() == name
        conf = cluster.exec(name, "cat", "/etc/unitctl/unitctl.conf").stdout
        assert f"etcd_servers = {cluster.machine_endpoints[0]}" in conf
        assert f"public_ip = {cluster.ip(name)}" in conf
        assert "etcd_key_prefix = /unitctl/" in conf
        unit = cluster.exec(name, "cat", "/etc/systemd/system/unitctl-agent.service").stdout
        # the unit users install, byte for byte and without drop-ins, and its ExecStart
        assert unit == SHIPPED_AGENT_UNIT.read_text()
        assert "ExecStart=/usr/local/bin/unitctl-agent" in unit
        assert cluster.exec(name, "test", "-x", "/usr/local/bin/unitctl-agent").returncode == 0
        cat = cluster.systemctl(name, "cat", "unitctl-agent").stdout
        assert "# /etc/systemd/system/unitctl-agent.service\n" in cat
        assert ".service.d/" not in cat
        # start_agent=False: installed but not pulled in by multi-user.target
        assert cluster.systemctl(name, "is-active", "unitctl-agent", check=False).stdout.strip() \
            in ("inactive", "unknown")
        assert cluster.exec(name, "test", "-d", "/opt/unitctl/src/unitctl").returncode == 0
    assert len(set(ids.values())) == len(ids), ids


def test_bus_address_reaches_machine_systemd(cluster: Cluster) -> None:
    busctl = require_tool("busctl", "busctl is not installed on the host (systemd)")
    p = subprocess.run(
        [busctl, f"--address={cluster.bus_address('m1')}", "get-property",
         "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
         "org.freedesktop.systemd1.Manager", "SystemState"],
        capture_output=True, text=True, timeout=10, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[-1].strip('"') in ("running", "degraded")


def test_every_machine_reaches_etcd_over_the_bridge(cluster: Cluster) -> None:
    host, port = etcd_host_port(cluster)
    assert host == cluster.bridge_ip
    for name in cluster.names:
        key, value = f"/unitctl/test/{name}", f"hello-from-{name}"
        out = cluster.exec(name, VENV_PY, "-c", AGENT_KV_PUT_GET, host, str(port), key, value,
                           timeout=30).stdout.strip()
        assert out == value
        assert etcd_get_from_host(cluster, key) == value


def test_machine_to_machine_tcp(cluster: Cluster) -> None:
    ip1 = cluster.ip("m1")
    cluster.exec("m1", "systemd-run", "--unit=harness-http", "--", "/usr/bin/python3", "-m",
                 "http.server", "8080", "--bind", ip1, "--directory", "/etc")
    try:
        for peer in ("m2", "m3"):
            got = http_get_inside(cluster, peer, f"http://{ip1}:8080/hostname").stdout.strip()
            assert got == "m1"
    finally:
        cluster.systemctl("m1", "stop", "harness-http", check=False)


def test_partition_cuts_etcd_and_heal_restores(cluster: Cluster) -> None:
    health = cluster.machine_endpoints[0] + "/health"
    assert "true" in http_get_inside(cluster, "m3", health).stdout
    cluster.partition("m3")
    try:
        p = http_get_inside(cluster, "m3", health, within=2, check=False)
        assert p.returncode != 0, p.stdout
        assert "true" in http_get_inside(cluster, "m2", health).stdout  # others unaffected
    finally:
        cluster.heal("m3")
    assert "true" in http_get_inside(cluster, "m3", health, within=15).stdout


def test_freeze_and_thaw(cluster: Cluster) -> None:
    cluster.freeze("m2")
    try:
        events = Path("/sys/fs/cgroup/unified") / CGROUP_PARENT / "m2/payload/cgroup.events"
        assert "frozen 1" in events.read_text()
    finally:
        cluster.thaw("m2")
    assert cluster.system_state("m2") in ("running", "degraded")


def test_kill_and_boot_keep_identity(cluster: Cluster) -> None:
    m = cluster.machine("m3")
    mid, nspawn, leader = m.machine_id, m.nspawn_pid, m.leader_pid
    cgroup = m.cgroup_dir("unified")
    cluster.kill("m3")
    assert not pid_alive(nspawn) and not pid_alive(leader)
    assert not cgroup_populated(cgroup)
    with pytest.raises(ClusterError):
        cluster.exec("m3", "true")
    cluster.boot("m3")
    assert cluster.leader_pid("m3") not in (0, leader)
    assert cluster.exec("m3", "cat", "/etc/machine-id").stdout.strip() == mid
    assert cluster.system_state("m3") in ("running", "degraded")
    assert "true" in http_get_inside(cluster, "m3", cluster.machine_endpoints[0] + "/health",
                                     within=15).stdout


def test_boot_keeps_the_machines_agent_options(cluster: Cluster) -> None:
    """Agent options set on a machine survive kill + boot (boot writes unitctl.conf
    anew: it used to drop them), and the agent's own parser reads them there."""
    cluster.set_agent_options("m3", {"template_dirs": "/etc/unitctl-demo"}, restart=False)
    cluster.kill("m3")
    cluster.boot("m3")
    conf = cluster.exec("m3", "cat", "/etc/unitctl/unitctl.conf").stdout
    assert "template_dirs = /etc/unitctl-demo" in conf
    assert f"public_ip = {cluster.ip('m3')}" in conf
    read = cluster.exec("m3", VENV_PY, "-c", "from unitctl.config import load_config; "
                        "print(load_config().template_dirs)").stdout
    assert read.strip() == "('/etc/unitctl-demo',)"


def test_poweroff_and_boot(cluster: Cluster) -> None:
    nspawn = cluster.machine("m2").nspawn_pid
    cluster.poweroff("m2")
    assert not pid_alive(nspawn)
    # the persistent journal in the overlay is still readable from the host
    assert "Reached target" in cluster.journal("m2")
    cluster.boot("m2")
    assert cluster.system_state("m2") in ("running", "degraded")


def test_collect_logs(cluster: Cluster, tmp_path: Path) -> None:
    dest = cluster.collect_logs(str(tmp_path / "logs"))
    files = sorted(os.listdir(dest))
    for name in cluster.names:
        assert f"{name}.journal.txt" in files and f"{name}.console.log" in files
        assert "Reached target" in (tmp_path / "logs" / f"{name}.journal.txt").read_text()
    assert "etcd-e0.log" in files and "state.json" in files


def test_factory_cluster_coexists_and_grows(
        cluster: Cluster, cluster_factory: Callable[..., Cluster]) -> None:
    with pytest.raises(ClusterError, match="already exists and is not ours"):
        Cluster(n_machines=1, bridge=cluster.bridge, subnet="10.231.99").up()
    small = cluster_factory(n_machines=1, start_agent=False, metadata=[{"role": "edge"}])
    name = small.add_machine({"disk": "ssd"})
    assert name == "m2" and small.names == ["m1", "m2"]
    assert small.machine("m1").netns == f"unitctl-{small.tag}m1"
    assert "metadata = disk=ssd" in small.exec("m2", "cat", "/etc/unitctl/unitctl.conf").stdout
    assert "metadata = role=edge" in small.exec("m1", "cat", "/etc/unitctl/unitctl.conf").stdout
    url = f"http://{small.ip('m1')}:8081/hostname"
    small.exec("m1", "systemd-run", "--unit=h", "--", "/usr/bin/python3", "-m", "http.server",
               "8081", "--bind", small.ip("m1"), "--directory", "/etc")
    assert http_get_inside(small, "m2", url).stdout.strip() == "m1"
    # the two clusters' bridges are not connected
    assert http_get_inside(cluster, "m1", url, within=1, check=False).returncode != 0


def test_down_leaves_nothing(cluster: Cluster) -> None:
    workdir = cluster.workdir
    # only this cluster's objects: other clusters (the demo, a developer's) may coexist
    own_netns = {cluster.machine(n).netns for n in cluster.names}
    own_veths = {cluster.machine(n).veth for n in cluster.names}
    cgroups = [Path("/sys/fs/cgroup", h, CGROUP_PARENT, f"{cluster.tag}{n}")
               for h in ("systemd", "unified") for n in cluster.names]
    cluster.down()
    cluster.down()  # idempotent
    mounts = Path("/proc/self/mountinfo").read_text()
    assert workdir not in mounts
    assert not os.path.exists(workdir)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not {ln.split()[0] for ln in netns.splitlines() if ln.strip()} & own_netns, netns
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = {re.split(r"[@:]", ln.split(": ")[1])[0] for ln in links.splitlines() if ": " in ln}
    assert not names & own_veths, links
    assert cluster.bridge not in names
    assert not [c for c in cgroups if c.exists()]
    rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True,
                           text=True).stdout
    assert cluster.bridge not in rules
