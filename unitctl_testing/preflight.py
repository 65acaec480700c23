"""Host checks before a cluster goes up: root, the tools, the cgroup layout, a free network.

Each failed check raises :class:`ClusterError` with what to do about it
(run scripts/setup-cluster.sh, pick another bridge or subnet, ...), before
anything was made on the host.
"""

from __future__ import annotations

import os
import shutil

from unitctl_testing import docker_socket
from unitctl_testing.cgroups import CGROUP_ROOT
from unitctl_testing.etcd import ETCD_BIN
from unitctl_testing.host import ClusterError
from unitctl_testing.network import Bridge

HOST_TOOLS = ("systemd-nspawn", "nsenter", "ip", "mount", ETCD_BIN)


def check_host(bridge: Bridge, docker: bool) -> None:
    """Raise unless this host can run a cluster on ``bridge``."""
    if os.geteuid() != 0:
        raise ClusterError("the cluster harness needs root")
    for tool in HOST_TOOLS:
        if shutil.which(tool) is None:
            raise ClusterError(f"{tool} not found (run scripts/setup-cluster.sh)")
    if not (CGROUP_ROOT / "unified" / "cgroup.procs").exists():
        raise ClusterError("expected a hybrid cgroup host with cgroup2 at "
                           "/sys/fs/cgroup/unified")
    bridge.check_free()
    if docker and not docker_socket.host_has_docker():
        raise ClusterError("docker_socket=True needs /var/run/docker.sock and a docker CLI")
