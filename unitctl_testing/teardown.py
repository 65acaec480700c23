"""Removing what a cluster made, machine by machine, collecting errors instead of stopping.

``down`` must remove everything it can even when one step fails (a machine
that will not die must not keep its netns or the bridge alive), so every
step here returns or raises what it left behind, and ``down`` reports all of
it at the end. Nothing is deleted recursively while a mount is below it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence

from unitctl_testing import cgroups, network, nspawn
from unitctl_testing.host import ClusterError
from unitctl_testing.machine import Machine
from unitctl_testing.mounts import mounts_under, safe_rmtree
from unitctl_testing.overlay import unmount_root


def guard(fn: Callable[[], object]) -> list[str]:
    """Run ``fn``; its exception becomes the one-item list of what was left."""
    try:
        fn()
    except Exception as e:  # down() collects and goes on
        return [str(e)]
    return []


def destroy_machine(m: Machine, docker_socket: bool) -> list[str]:
    """Kill the machine, then remove its cgroups, overlay mount, netns and nspawn state."""
    errors = guard(lambda: nspawn.stop(m, remove_containers=docker_socket))
    errors += cgroups.clean_cgroups(m.cgroup, keep_top=False)
    errors += unmount_root(m)
    was_made = m.netns_made or network.netns_exists(m.netns)
    errors += network.remove_netns(m.netns, m.veth, m.name)
    if was_made and not network.netns_exists(m.netns):
        m.netns_made = False
    nspawn.remove_nspawn_state(m)
    return errors


def remove_workdir(workdir: str, state_file: str, own_workdir: bool,
                   machine_dirs: Sequence[str]) -> None:
    """Delete the state file and the workdir (only what was put there, if not ours)."""
    # safe_rmtree refuses while anything is mounted below: a recursive
    # delete through a live overlay/bind mount would destroy its source
    left = mounts_under(workdir)
    if left:
        raise ClusterError(f"not removing {workdir}: still mounted: {left}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state_file)
    if own_workdir:
        safe_rmtree(workdir)
    else:
        for sub in [*machine_dirs, os.path.join(workdir, "etcd")]:
            safe_rmtree(sub)
    if os.path.exists(workdir) and own_workdir:
        raise ClusterError(f"could not remove {workdir}")
