"""``bin/demo dig NAME QNAME [TYPE]``: a DNS query asked from inside a machine.

Every agent answers DNS for the cluster domain (``unitctl.``) on
``127.0.0.2:53`` (docs/reference.md "Service discovery"); the demo's machines
run no systemd-resolved, so the query goes to that address directly, with
dnspython from the machine's own venv (the agent's). Prints the status, then
the answer and additional records as dig prints them; exits 1 unless the
status is NOERROR.
"""

from __future__ import annotations

import argparse
import sys

from unitctl_testing.demo.state import attach, find_machine, require_root
from unitctl_testing.rootfs import VENV

AGENT_DNS = "127.0.0.2"
RDTYPES = ("A", "SRV")

QUERY = """
import sys, dns.message, dns.query, dns.rcode
q = dns.message.make_query(sys.argv[1], sys.argv[2])
r = dns.query.udp(q, sys.argv[3], port=53, timeout=3)
print("status: " + dns.rcode.to_text(r.rcode()))
for rrset in r.answer + r.additional:
    print(rrset.to_text())
"""


def cmd_dig(args: argparse.Namespace) -> int:
    require_root()
    c = attach(args.state_file)
    find_machine(c, args.name)
    qname = args.qname if args.qname.endswith(".") else f"{args.qname}."
    r = c.exec(args.name, f"{VENV}/bin/python", "-c", QUERY, qname, args.rdtype.upper(),
               AGENT_DNS, check=False, timeout=15)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    ok = r.returncode == 0 and r.stdout.startswith("status: NOERROR")
    return 0 if ok else 1
