"""The cluster's network: one host bridge, and per machine a netns with a veth on it.

The bridge carries the alias ``unitctl-cluster:<workdir>`` so that a cluster
only ever deletes its own bridge, and tells whose a leftover bridge is. With
iptables present, one FORWARD ACCEPT rule lets bridged traffic through
(docker's FORWARD DROP + br_netfilter would drop it, pitfall 3). Every
machine gets netns ``unitctl-<tag><name>`` whose ``eth0`` is the peer of the
host veth ``uv<tag><idx>``, enslaved to the bridge.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unitctl_testing.host import ClusterError, link_exists, sh

BRIDGE_ALIAS_PREFIX = "unitctl-cluster:"
DOWN_HINT = "`python -m unitctl_testing down`"


@dataclass
class Bridge:
    """The host bridge ``name`` with ``<subnet>.1/24``, owned by the workdir ``owner``."""

    name: str
    subnet: str
    owner: str
    made: bool = False
    iptables_rule: bool = False

    @property
    def ip(self) -> str:
        return f"{self.subnet}.1"

    def alias(self) -> str:
        try:
            return Path("/sys/class/net", self.name, "ifalias").read_text().strip()
        except OSError:
            return ""

    def check_free(self) -> None:
        """Raise unless neither the bridge nor the subnet is in use on the host."""
        if link_exists(self.name):
            alias = self.alias()
            owner = alias[len(BRIDGE_ALIAS_PREFIX):]
            hint = (f" (left by the unitctl cluster with workdir {owner}; run {DOWN_HINT})"
                    if alias.startswith(BRIDGE_ALIAS_PREFIX) else "")
            raise ClusterError(f"bridge {self.name} already exists and is not ours{hint}; "
                               "pick another with bridge=/--bridge")
        used = sh("ip", "-4", "-o", "addr", "show").stdout
        if f" {self.subnet}." in used:
            raise ClusterError(f"subnet {self.subnet}.0/24 is already used on this host; "
                               "pick another with subnet=/--subnet")

    def create(self, save: Callable[[], None]) -> None:
        """Make the bridge (and the iptables rule); ``save`` records what was made."""
        sh("ip", "link", "add", self.name, "type", "bridge")
        self.made = True
        sh("ip", "link", "set", self.name, "alias", BRIDGE_ALIAS_PREFIX + self.owner)
        sh("ip", "addr", "add", f"{self.ip}/24", "dev", self.name)
        sh("ip", "link", "set", self.name, "up")
        if shutil.which("iptables"):
            sh("iptables", "-w", "-I", "FORWARD", "-i", self.name, "-o", self.name,
               "-j", "ACCEPT")
            self.iptables_rule = True
        save()

    def remove(self) -> None:
        """Delete the rule and the bridge, if this cluster made them (idempotent)."""
        if self.iptables_rule:
            p = sh("iptables", "-w", "-D", "FORWARD", "-i", self.name, "-o", self.name,
                   "-j", "ACCEPT", check=False)
            if p.returncode != 0 and "does a matching rule exist" not in p.stderr \
                    and "Bad rule" not in p.stderr:
                raise ClusterError(f"iptables -D failed: {p.stderr.strip()}")
            self.iptables_rule = False
        if self.made:
            if link_exists(self.name):
                if self.alias() != BRIDGE_ALIAS_PREFIX + self.owner:
                    raise ClusterError(f"bridge {self.name} is no longer ours; not deleting")
                sh("ip", "link", "del", self.name)
            self.made = False


def netns_exists(netns: str) -> bool:
    return os.path.exists(f"/run/netns/{netns}")


def add_netns(netns: str, veth: str) -> None:
    """Create the netns (``wire_netns`` then gives it its eth0); refuse if taken."""
    if netns_exists(netns) or link_exists(veth):
        raise ClusterError(f"netns {netns} or link {veth} already exists (another "
                           f"cluster? {DOWN_HINT}, or use tag=)")
    sh("ip", "netns", "add", netns)


def wire_netns(netns: str, veth: str, ip: str, bridge: str) -> None:
    """``eth0`` at ``ip``/24 in the netns, whose host peer ``veth`` is on ``bridge``."""
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    sh("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
    sh("ip", "-n", netns, "link", "set", "eth0", "up")
    sh("ip", "-n", netns, "link", "set", "lo", "up")
    sh("ip", "link", "set", veth, "master", bridge, "up")


def remove_netns(netns: str, veth: str, who: str) -> list[str]:
    """Delete the veth and the netns; return what is left (``[]``: all gone)."""
    errors: list[str] = []
    if link_exists(veth):
        sh("ip", "link", "del", veth, check=False)
    if netns_exists(netns):
        sh("ip", "netns", "del", netns, check=False)
        if netns_exists(netns):
            errors.append(f"{who}: netns {netns} still exists")
    if link_exists(veth):
        errors.append(f"{who}: link {veth} still exists")
    return errors


def set_link(veth: str, state: str) -> None:
    """``ip link set VETH up|down``: a machine's cable in or out."""
    sh("ip", "link", "set", veth, state)
