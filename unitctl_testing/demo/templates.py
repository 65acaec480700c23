"""The demo's config template: the machines allow its directory, and ``bin/demo cat``.

``up`` gives every agent ``template_dirs = /etc/unitctl-demo`` through a
drop-in of its unit (``Environment=UNITCTL_TEMPLATE_DIRS=``, and, since the
shipped agent unit has ``ProtectSystem=full``, ``ReadWritePaths=``), restarts
it, and submits units/demo/upstreams.toml: the upstream list of the
``web@*.service`` instances, rendered on every machine (docs/templates.md).
"""

from __future__ import annotations

import argparse
import sys

from unitctl_testing.cluster import Cluster
from unitctl_testing.demo.scenario import AGENT_DROP_IN, TEMPLATE_DIR
from unitctl_testing.demo.state import attach, find_machine, require_root


def enable_templates(c: Cluster) -> None:
    """template_dirs on every machine's agent (restarted before any unit is started),
    kept when ``bin/demo boot`` boots the machine again."""
    for name in c.names:
        c.exec(name, "mkdir", "-p", TEMPLATE_DIR, AGENT_DROP_IN.rpartition("/")[0])
        # a drop-in, not /etc/unitctl/unitctl.conf: `boot` writes that file anew
        c.exec(name, "sh", "-c", f"printf '[Service]\\nReadWritePaths={TEMPLATE_DIR}\\n"
               f"Environment=UNITCTL_TEMPLATE_DIRS={TEMPLATE_DIR}\\n' > {AGENT_DROP_IN}")
        c.systemctl(name, "daemon-reload")
        c.systemctl(name, "restart", "unitctl-agent")


def cmd_cat(args: argparse.Namespace) -> int:
    require_root()
    c = attach(args.state_file)
    find_machine(c, args.name)
    r = c.exec(args.name, "cat", args.path, check=False, timeout=10)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return r.returncode
