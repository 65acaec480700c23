"""The test harness keeps a machine's own agent options (``Cluster.set_agent_options``,
``Cluster(agent_options=...)``): in the state file, and in the
/etc/unitctl/unitctl.conf that every ``boot`` writes anew.

No machine is booted: the overlay mount and systemd-nspawn are replaced, so what
is checked is the file ``Cluster.boot`` writes into the machine's root.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from unitctl.config import load_config
from unitctl_testing import cluster as cluster_module
from unitctl_testing import nspawn, state
from unitctl_testing.cluster import Cluster
from unitctl_testing.host import ClusterError
from unitctl_testing.machine import Machine

OPTIONS = {"template_dirs": "/etc/unitctl-demo", "reserved_memory": "256M"}


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """A cluster object with one machine whose boot only writes its files."""
    monkeypatch.setattr(cluster_module, "mount_root", lambda m, base: None)
    monkeypatch.setattr(nspawn, "boot", lambda m, timeout, docker: 0.0)
    c = Cluster(n_machines=0, workdir=str(tmp_path / "work"))
    (tmp_path / "work").mkdir()
    c.etcd = state.etcd_from_state({"base_dir": str(tmp_path / "etcd"), "members": [
        {"name": "e0", "client_port": 2379, "peer_port": 2380, "data_dir": "d",
         "log_path": "l"}]}, c.bridge_ip)
    m = c._new_machine(1, {"role": "db"})
    m.machine_id, m.netns_made = "ab" * 16, True
    for d in ("etc/systemd/system", "opt/unitctl/venv/lib/python3.11/site-packages"):
        Path(m.root, d).mkdir(parents=True)
    return c


def conf(m: Machine) -> dict[str, str]:
    """The machine's unitctl.conf as the agent reads it (validated)."""
    loaded = load_config(str(Path(m.root, "etc/unitctl/unitctl.conf")), env={})
    return {k: str(getattr(loaded, k)) for k in ("template_dirs", "reserved_memory",
                                                 "public_ip", "metadata")}


def test_boot_keeps_the_options_set_on_the_machine(cluster: Cluster) -> None:
    m = cluster.machine("m1")
    cluster.boot("m1")
    cluster.set_agent_options("m1", OPTIONS)
    assert conf(m)["template_dirs"] == "('/etc/unitctl-demo',)"  # written at once
    cluster.boot("m1")  # as after kill or poweroff: the file is written anew
    after = conf(m)
    assert after["template_dirs"] == "('/etc/unitctl-demo',)"
    assert after["reserved_memory"] == str(256 * 2**20)
    assert (after["public_ip"], after["metadata"]) == (m.ip, "{'role': 'db'}")


def test_the_options_are_kept_in_the_state_file(cluster: Cluster) -> None:
    cluster.set_agent_options("m1", OPTIONS)
    again = Cluster.attach(cluster.state_file)  # e.g. `bin/demo boot` in another process
    assert again.machine("m1").agent_options == OPTIONS
    again.etcd = cluster.etcd
    again.boot("m1")
    assert "template_dirs = /etc/unitctl-demo" in \
        Path(again.machine("m1").root, "etc/unitctl/unitctl.conf").read_text()


def test_options_given_at_creation_are_written_at_the_first_boot(cluster: Cluster) -> None:
    c = Cluster(n_machines=0, workdir=cluster.workdir, agent_options=[OPTIONS])
    c.etcd = cluster.etcd
    m = c._new_machine(1, {}, None, c.agent_options[0])
    m.machine_id, m.netns_made = "cd" * 16, True
    c.boot("m1")
    assert conf(m)["template_dirs"] == "('/etc/unitctl-demo',)"


def test_replacing_the_options_drops_the_old_ones(cluster: Cluster) -> None:
    cluster.set_agent_options("m1", OPTIONS)
    cluster.set_agent_options("m1", {"reserved_memory": "1G"})
    cluster.boot("m1")
    assert conf(cluster.machine("m1"))["template_dirs"] == "()"


@pytest.mark.parametrize("options", [{"agent_ttl": "5s"}, {"public_ip": "1.2.3.4"},
                                     {"no_such_option": "1"}, {"template_dirs": "/a\n/b"}])
def test_an_option_the_harness_writes_or_the_agent_lacks_is_refused(
        cluster: Cluster, options: dict[str, str]) -> None:
    with pytest.raises(ClusterError, match="agent option"):
        cluster.set_agent_options("m1", options)
    assert cluster.machine("m1").agent_options == {}
