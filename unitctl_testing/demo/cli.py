"""The demo's command line: ``bin/demo [--state-file F] COMMAND``, up to down."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from collections.abc import Sequence

from unitctl_testing import demo
from unitctl_testing.demo.console import PROG, Parser, die
from unitctl_testing.demo.dig import RDTYPES, cmd_dig
from unitctl_testing.demo.scenario import DEFAULT_BRIDGE, DEFAULT_STATE, DEFAULT_SUBNET, DEFAULT_TAG
from unitctl_testing.demo.templates import cmd_cat
from unitctl_testing.demo.up import cmd_up
from unitctl_testing.demo.verbs import cmd_boot, cmd_down, cmd_journal, cmd_kill, cmd_status
from unitctl_testing.host import ClusterError


def build_parser() -> Parser:
    doc = (demo.__doc__ or "").split("\n\n")
    ap = Parser(prog=PROG, description=doc[0], epilog=doc[1] + "\n\n" + doc[2] + "\n\n"
                "Typical session: bin/demo up, then the commands it prints.",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state-file", default=DEFAULT_STATE,
                    help=f"the cluster's state file (default {DEFAULT_STATE}; "
                    "env UNITCTL_DEMO_STATE)")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)
    up = sub.add_parser("up", help="install what is missing, boot 3 machines, start the "
                        "example units, print what to try next")
    up.add_argument("--tag", default=DEFAULT_TAG,
                    help=f"name prefix of netns/veths/cgroups (default {DEFAULT_TAG!r})")
    up.add_argument("--bridge", default=DEFAULT_BRIDGE,
                    help=f"bridge to create (default {DEFAULT_BRIDGE})")
    up.add_argument("--subnet", default=DEFAULT_SUBNET,
                    help=f"the bridge's /24, as A.B.C (default {DEFAULT_SUBNET})")
    sub.add_parser("status", help="machines (ip, machine id, alive?), etcd endpoint, "
                   "unitctl list-units")
    k = sub.add_parser("kill", help="hard-kill a machine (its units move elsewhere)")
    k.add_argument("name", metavar="NAME", help="m1, m2 or m3")
    b = sub.add_parser("boot", help="boot a killed machine again")
    b.add_argument("name", metavar="NAME", help="m1, m2 or m3")
    j = sub.add_parser("journal", help="a machine's journal (extra args go to journalctl, "
                       "e.g. -u mongo.service)")
    j.add_argument("name", metavar="NAME")
    j.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    f = sub.add_parser("cat", help="print a file inside a machine (e.g. the config template's "
                       "/etc/unitctl-demo/upstreams.conf)")
    f.add_argument("name", metavar="NAME")
    f.add_argument("path", metavar="PATH")
    q = sub.add_parser("dig", help="a DNS query asked from a machine: testdb.unitctl [A|SRV]")
    q.add_argument("name", metavar="NAME", help="the machine to ask from")
    q.add_argument("qname", metavar="QNAME")
    q.add_argument("rdtype", metavar="TYPE", nargs="?", default="A", type=str.upper,
                   choices=RDTYPES, help="A (default) or SRV")
    sub.add_parser("down", help="remove the cluster and everything it made (idempotent)")
    for p in sub.choices.values():  # --state-file also after the command
        p.add_argument("--state-file", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `bin/demo status | head`: no traceback
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.cmd is None:
        die(f"a command is needed: up, status, kill, boot, journal, cat, dig or down "
            f"(see {PROG} --help)", 2)
    args.state_file = os.path.abspath(args.state_file)
    handler = {"up": cmd_up, "status": cmd_status, "kill": cmd_kill, "boot": cmd_boot,
               "journal": cmd_journal, "cat": cmd_cat, "dig": cmd_dig,
               "down": cmd_down}[args.cmd]
    try:
        return handler(args)
    except ClusterError as e:
        die(" ".join(str(e).split()))
    except subprocess.TimeoutExpired as e:
        die(f"timed out: {' '.join(map(str, e.cmd))}")
