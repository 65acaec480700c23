"""``bin/demo up``: boot the demo cluster, start the example units, print what to try.

The host's tools and the cached rootfs come from scripts/setup-cluster.sh
(idempotent, ~0.3 s when all is there); bin/demo made the .venv before.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from unitctl_testing.cluster import Cluster
from unitctl_testing.demo.client import registered, service_record, show, unit_rows, unitctl
from unitctl_testing.demo.console import PROG, die, say
from unitctl_testing.demo.scenario import (
    AGENT_TTL,
    DEFAULT_STATE,
    DNS_DOMAIN,
    MACHINES,
    REPO,
    SERVICE,
    SERVICE_VOLUME_FILE,
    TEMPLATE_DEST,
    TEMPLATE_FILE,
    UNIT_DIR,
    UNITS,
    UNSCHEDULABLE,
    venv_dir,
)
from unitctl_testing.demo.state import machine_name_of, require_root
from unitctl_testing.demo.templates import enable_templates
from unitctl_testing.host import ClusterError


def run_script(rel: str) -> None:
    # their chatter goes to stderr, so our stdout stays the demo's story
    p = subprocess.run(["bash", str(REPO / rel)], cwd=REPO, stdin=subprocess.DEVNULL,
                       stdout=sys.stderr, stderr=sys.stderr, check=False)
    if p.returncode != 0:
        die(f"{rel} failed (exit {p.returncode}); see its messages above")


def cmd_up(args: argparse.Namespace) -> int:
    require_root()
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    if os.path.exists(args.state_file):
        die(f"a demo cluster is already up ({args.state_file}): "
            f"`{PROG} status` shows it, `{PROG} down` removes it")

    t = time.monotonic()
    run_script("scripts/setup-cluster.sh")  # bin/demo made the .venv (install-deps.sh)
    timings["deps"] = time.monotonic() - t

    t = time.monotonic()
    c = boot_cluster(args)
    timings["boot"] = time.monotonic() - t
    endpoint = c.endpoint

    try:
        t = time.monotonic()
        enable_templates(c)
        wait_agents(c, endpoint, timeout=60)
        timings["agents"] = time.monotonic() - t
        t = time.monotonic()
        start_units(c, endpoint)
        timings["units"] = time.monotonic() - t
    except KeyboardInterrupt:
        die(f"interrupted; the cluster is still up: `{PROG} status`, `{PROG} down`", 130)

    print()
    show(endpoint, "list-machines")
    print()
    show(endpoint, "list-units")
    timings["total"] = time.monotonic() - t0
    print()
    say("up in " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    print_next_steps(c, endpoint, args.state_file)
    return 0


def boot_cluster(args: argparse.Namespace) -> Cluster:
    say(f"booting {len(MACHINES)} machines (systemd-nspawn) + etcd on bridge {args.bridge} "
        f"{args.subnet}.0/24")
    c = Cluster(n_machines=len(MACHINES), metadata=list(MACHINES.values()),
                agent_ttl=AGENT_TTL, bridge=args.bridge, subnet=args.subnet, tag=args.tag,
                state_file=args.state_file)
    try:
        c.up()
    except ClusterError as e:
        die(f"booting the cluster failed: {' '.join(str(e).split())}")
    return c


def wait_agents(c: Cluster, endpoint: str, timeout: float) -> None:
    say(f"waiting for the {len(c.names)} agents to register in etcd")
    want = {c.machines[n].machine_id for n in c.names}
    deadline = time.monotonic() + timeout
    while True:
        have = set(registered(endpoint))
        if want <= have:
            return
        if time.monotonic() > deadline:
            missing = [n for n in c.names if c.machines[n].machine_id not in have]
            die(f"agents of {', '.join(missing)} did not register within {timeout:.0f}s "
                f"(see `{PROG} journal {missing[0]} -u unitctl-agent`); "
                f"the cluster is still up, `{PROG} down` removes it")
        time.sleep(0.2)


def start_units(c: Cluster, endpoint: str) -> None:
    say(f"starting the example units of {UNIT_DIR}/:")
    for unit, what in UNITS:
        for i, line in enumerate(what.splitlines()):
            print(f"    {unit if i == 0 else '':22} {line}")
    print(f"    {UNSCHEDULABLE:22} a 4th web@ for 3 machines: stays unscheduled")
    files = [f"{UNIT_DIR}/{u}" for u, _ in UNITS]
    print(f"$ unitctl start {' '.join(files)}", flush=True)
    p = unitctl(endpoint, "start", *files, check=False, timeout=180)
    print((p.stdout + p.stderr).rstrip("\n"), flush=True)
    if p.returncode != 0:
        die(f"unitctl start failed (exit {p.returncode}); the cluster is still up: "
            f"`{PROG} status`, `{PROG} down`")
    # a blocking start of a unit that cannot be placed fails (exit 7): don't block
    show(endpoint, "start", "--no-block", f"{UNIT_DIR}/{UNSCHEDULABLE}")
    say(f"submitting the config template {TEMPLATE_FILE}: {TEMPLATE_DEST} on every machine")
    show(endpoint, "template", "submit", TEMPLATE_FILE)
    wait_settled(c, endpoint, timeout=30)


def wait_settled(c: Cluster, endpoint: str, timeout: float) -> None:
    """Until the global unit runs everywhere, the engine explained web@4 and the
    service's record is published."""
    deadline = time.monotonic() + timeout
    global_unit = "node-exporter.service"
    while time.monotonic() < deadline:
        rows = unit_rows(endpoint)
        on = {r.get("machine", "").split("/")[0] for r in rows
              if r.get("unit") == global_unit and r.get("active") == "active"}
        ex = unitctl(endpoint, "explain", UNSCHEDULABLE, check=False, timeout=30).stdout
        if len(on) >= len(c.names) and "cannot be placed" in ex \
                and service_record(endpoint, SERVICE):
            return
        time.sleep(0.2)
    say(f"warning: the units did not all settle within {timeout:.0f}s; see below")


def print_next_steps(c: Cluster, endpoint: str, state_file: str) -> None:
    rows = unit_rows(endpoint)
    mongo_id = next((r.get("machine", "").split("/")[0] for r in rows
                     if r.get("unit") == "mongo.service"), "")
    mongo_on = machine_name_of(c, mongo_id) if mongo_id else "m2"
    mongo_ip = c.machines[mongo_on].ip if mongo_on in c.machines else ""
    here = Path.cwd().resolve()
    demo = PROG if here == REPO else str(REPO / PROG)
    if state_file != DEFAULT_STATE:
        demo += f" --state-file {shlex.quote(state_file)}"
    steps = next_steps(c, endpoint, mongo_on, demo, fetch_command(f"http://{mongo_ip}:3000/"))
    steps[-3:-3] = service_steps(c, service_record(endpoint, SERVICE), demo)
    width = max(len(cmd) for cmd, note in steps if note and len(cmd) < 48) + 2
    print("\nNext steps -- copy and paste (as root):\n")
    for cmd, note in steps:
        if note and len(cmd) < width:
            print(f"  {cmd:{width}}# {note}")
        elif note:
            print(f"  {cmd}\n  {'':{width}}# {note}")
        else:
            print(f"  {cmd}".rstrip())
    print(flush=True)


def fetch_command(url: str) -> str:
    """A python3 one-liner printing the body at ``url`` (no curl needed on the host)."""
    return (f"python3 -c \"import urllib.request as u; "
            f"print(u.urlopen('{url}').read().decode(), end='')\"")


def service_steps(c: Cluster, record: dict[str, Any], demo: str) -> list[tuple[str, str]]:
    """The steps of the service with an allocated port and a local volume."""
    on = machine_name_of(c, str(record.get("machine", ""))) if record else "?"
    port = record.get("ports", {}).get("PORT", "PORT") if record else "PORT"
    address = record.get("address", "ADDRESS") if record else "ADDRESS"
    ask = next((n for n in c.names if n != on), c.names[0])
    fetch = fetch_command(f"http://{address}:{port}/{SERVICE_VOLUME_FILE}")
    name = f"{SERVICE}.{DNS_DOMAIN}"
    return [
        ("", ""),
        (f"# {SERVICE}: a host port the engine allocated (@PORT) and a local volume", ""),
        (f"unitctl resolve {SERVICE}", f"its machine's address and PORT={port}"),
        (f"{demo} dig {ask} {name}", f"DNS, asked from {ask} (A: {on}'s address)"),
        (f"{demo} dig {ask} _port._tcp.{name} SRV", f"its port {port}, as SRV"),
        (fetch, "one line per start, kept in its volume"),
        (f"{demo} kill {on}", f"a local volume: {SERVICE} waits for {on}, it does not move"),
        (f"unitctl explain {SERVICE}.service", f"'waits for machine ...: its volume "
         f"{SERVICE} lives there'"),
        (f"unitctl resolve {SERVICE}", "no record while it waits (exit 3)"),
        (f"{demo} boot {on}", f"back on {on}, same name; port {port} again (the lowest free)"),
        (f"unitctl resolve {SERVICE}", f"{address}, PORT={port}, as before"),
        (fetch, "one line more: the old ones stayed"),
    ]


def next_steps(c: Cluster, endpoint: str, mongo_on: str, demo: str,
               fetch: str) -> list[tuple[str, str]]:
    """(command, note) lines of the copy-paste session printed after ``up``."""
    return [
        (f"export UNITCTL_ENDPOINT={endpoint}", ""),
        (f"export PATH={venv_dir() / 'bin'}:$PATH", "the unitctl client"),
        ("unitctl list-units", ""),
        ("unitctl list-machines", ""),
        (f"unitctl explain {UNSCHEDULABLE}", "why it has no machine (Conflicts)"),
        ("unitctl explain employees.service", "placed with mongo (MachineOf)"),
        (fetch, f"the employees app on {mongo_on}"),
        ("", ""),
        ("# kill mongo's machine and watch mongo + employees move together", ""),
        ("# (watch in a second terminal, after the two exports above):", ""),
        ("watch -n0.5 unitctl list-units", ""),
        (f"{demo} kill {mongo_on}", f"hard-kill {mongo_on}; units move in ~{c.agent_ttl}"),
        (f"unitctl explain {UNSCHEDULABLE}", "now blocked on fewer machines"),
        (f"{demo} cat m1 {TEMPLATE_DEST}", "the web@ upstream list (a config template)"),
        ("unitctl templates", "each machine's last render"),
        (f"{demo} kill m3", "its web@ cannot move (one per machine): the list shrinks"),
        (f"{demo} cat m1 {TEMPLATE_DEST}", "rendered again without m3"),
        (f"{demo} boot m3", ""),
        (f"{demo} boot {mongo_on}", "boot it again"),
        (f"{demo} journal m1 -u cache.service", "a unit's log on a machine"),
        (f"{demo} status", "machines, etcd endpoint, units"),
        (f"{demo} down", "remove everything"),
    ]
