"""The harness's command line: boot a cluster and leave it running, show it, remove it::

    python -m unitctl_testing up --machines 3 --metadata 'm1:region=eu,disk=ssd'
    python -m unitctl_testing status [--json]
    python -m unitctl_testing down

``up`` writes the state file (default /run/unitctl-cluster/state.json) that
``status`` and ``down`` (or ``Cluster.attach``) read back. Exit 0 on
success, 1 with a one-line ``cluster: error: ...`` otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from unitctl_testing.cluster import Cluster
from unitctl_testing.host import ClusterError, log, pid_alive
from unitctl_testing.state import DEFAULT_STATE_FILE

PROG = "python -m unitctl_testing"


def parse_metadata(spec: str) -> tuple[str, dict[str, str]]:
    """``'m1:region=eu,disk=ssd'`` -> ``('m1', {'region': 'eu', 'disk': 'ssd'})``."""
    name, sep, rest = spec.partition(":")
    if not sep or not name:
        raise ValueError(f"metadata {spec!r}: expected NAME:k=v[,k=v...]")
    meta: dict[str, str] = {}
    for pair in filter(None, rest.split(",")):
        k, eq, v = pair.partition("=")
        if not eq or not k:
            raise ValueError(f"metadata {spec!r}: bad pair {pair!r}")
        meta[k.strip()] = v.strip()
    return name, meta


def _cmd_up(args: argparse.Namespace) -> int:
    if os.path.exists(args.state_file):
        log(f"{args.state_file} exists: a cluster is up (run `down` first)")
        return 1
    per_name: dict[str, dict[str, str]] = {}
    for spec in args.metadata:
        name, meta = parse_metadata(spec)
        per_name.setdefault(name, {}).update(meta)
    metadata = [per_name.get(f"m{i}", {}) for i in range(1, args.machines + 1)]
    c = Cluster(n_machines=args.machines, etcd_size=args.etcd_size, metadata=metadata,
                agent_ttl=args.agent_ttl, workdir=args.workdir, bridge=args.bridge,
                subnet=args.subnet, docker_socket=args.docker_socket,
                start_agent=not args.no_agent, tag=args.tag, state_file=args.state_file)
    c.up()
    for k in sorted(c.timings):
        log(f"timing {k}: {c.timings[k]:.2f}s")
    _print_status(c)
    return 0


def _print_status(c: Cluster) -> None:
    print(f"etcd endpoint: {c.endpoint}  (machines use {','.join(c.machine_endpoints)})")
    print(f"bridge: {c.bridge} {c.bridge_ip}/24  workdir: {c.workdir}  state: {c.state_file}")
    print(f"{'NAME':6} {'IP':15} {'STATE':8} {'NSPAWN':>7} {'LEADER':>7} MACHINE-ID"
          "                        METADATA")
    for n in c.names:
        m = c.machines[n]
        state = "running" if pid_alive(m.nspawn_pid) else "stopped"
        meta = ",".join(f"{k}={v}" for k, v in m.metadata.items())
        print(f"{n:6} {m.ip:15} {state:8} {m.nspawn_pid:>7} {m.leader_pid:>7} "
              f"{m.machine_id:32} {meta}")


def _cmd_status(args: argparse.Namespace) -> int:
    if not os.path.exists(args.state_file):
        log(f"no cluster ({args.state_file} missing)")
        return 1
    c = Cluster.attach(args.state_file)
    if args.json:
        print(json.dumps(c.to_state(), indent=2, sort_keys=True))
    else:
        _print_status(c)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    if not os.path.exists(args.state_file):
        log(f"no cluster ({args.state_file} missing); nothing to do")
        return 0
    c = Cluster.attach(args.state_file)
    c.down()
    log(f"down in {c.timings['down']:.2f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG,
                                 description="Boot/inspect/remove a unitctl test cluster.")
    ap.add_argument("--state-file", default=DEFAULT_STATE_FILE)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="boot a cluster and leave it running")
    up.add_argument("--machines", type=int, default=3)
    up.add_argument("--etcd-size", type=int, default=1)
    up.add_argument("--metadata", action="append", default=[], metavar="NAME:k=v,...")
    up.add_argument("--agent-ttl", default="3s")
    up.add_argument("--no-agent", action="store_true", help="do not start unitctl-agent")
    up.add_argument("--bridge", default="br-unitctl")
    up.add_argument("--subnet", default="10.231.77")
    up.add_argument("--tag", default="", help="name prefix for netns/veth/cgroups")
    up.add_argument("--docker-socket", action="store_true")
    up.add_argument("--workdir", default=None)
    st = sub.add_parser("status", help="show machines, IPs, leader pids, etcd endpoint")
    st.add_argument("--json", action="store_true")
    sub.add_parser("down", help="remove everything the state file lists")
    for p in sub.choices.values():  # accept --state-file after the sub-command too
        p.add_argument("--state-file", default=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"up": _cmd_up, "status": _cmd_status, "down": _cmd_down}[args.cmd](args)
    except (ClusterError, ValueError, OSError, subprocess.SubprocessError) as e:
        log(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
