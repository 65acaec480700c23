"""The demo's other verbs: status, kill, boot, journal and down, on the cluster of a state file."""

from __future__ import annotations

import argparse
import os
import sys
import time

from unitctl_testing.demo.client import registered, show
from unitctl_testing.demo.console import PROG, die, say
from unitctl_testing.demo.state import attach, find_machine, require_root, rmdir_state_dir
from unitctl_testing.host import ClusterError, pid_alive


def cmd_status(args: argparse.Namespace) -> int:
    require_root()
    c = attach(args.state_file)
    endpoint = c.endpoint
    reg = registered(endpoint)
    print(f"etcd: {endpoint}  (machines use {','.join(c.machine_endpoints)})")
    print(f"state: {args.state_file}  workdir: {c.workdir}  bridge: {c.bridge}")
    print()
    print(f"{'NAME':5} {'IP':13} {'MACHINE-ID':32}  {'ALIVE':5}  {'AGENT':10}  METADATA")
    for n in c.names:
        m = c.machines[n]
        alive = "yes" if pid_alive(m.nspawn_pid) else "no"
        agent = "registered" if m.machine_id in reg else "-"
        meta = ",".join(f"{k}={v}" for k, v in m.metadata.items())
        print(f"{n:5} {m.ip:13} {m.machine_id:32}  {alive:5}  {agent:10}  {meta}")
    print()
    show(endpoint, "list-units")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    require_root()
    c = attach(args.state_file)
    m = find_machine(c, args.name)
    if not m.running():
        die(f"{args.name} is not running (boot it with `{PROG} boot {args.name}`)")
    c.kill(args.name)
    say(f"killed {args.name} (cgroup.kill: its systemd, agent and units died at once); "
        f"its units move when its agent's lease expires ({c.agent_ttl}): "
        f"watch -n0.5 unitctl list-units")
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    require_root()
    c = attach(args.state_file)
    m = find_machine(c, args.name)
    if m.running():
        die(f"{args.name} is already running")
    t = time.monotonic()
    try:
        c.boot(args.name)
    except ClusterError as e:
        die(f"booting {args.name} failed: {' '.join(str(e).split())}")
    say(f"booted {args.name} in {time.monotonic() - t:.1f}s; its agent registers again: "
        "global units and units waiting for a machine (web@, cache) get placed on it, "
        "the others stay where they moved")
    return 0


def cmd_journal(args: argparse.Namespace) -> int:
    require_root()
    c = attach(args.state_file)
    find_machine(c, args.name)
    sys.stdout.write(c.journal(args.name, *args.args))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    require_root()
    if not os.path.exists(args.state_file):
        say(f"no demo cluster ({args.state_file} does not exist): nothing to do")
        rmdir_state_dir(args.state_file)
        return 0
    c = attach(args.state_file)
    try:
        c.down()
    except ClusterError as e:
        die(f"down left things behind: {' '.join(str(e).split())}")
    rmdir_state_dir(args.state_file)
    say(f"down in {c.timings.get('down', 0):.1f}s: machines, etcd, mounts, netns, veths, "
        f"cgroups, bridge {c.bridge}, iptables rule and {c.workdir} removed")
    return 0
