"""The demo's config template: the machines allow its directory, and ``bin/demo cat``.

``up`` gives every agent ``template_dirs = /etc/unitctl-demo`` (and, since the
shipped agent unit has ``ProtectSystem=full``, a ``ReadWritePaths=`` drop-in),
restarts it (``boot`` does it again for the machine it boots), and submits
units/demo/upstreams.toml: the upstream list of the ``web@*.service``
instances, rendered on every machine (docs/templates.md).
"""

from __future__ import annotations

import argparse
import sys

from unitctl_testing.cluster import Cluster
from unitctl_testing.demo.scenario import AGENT_DROP_IN, TEMPLATE_DIR
from unitctl_testing.demo.state import attach, find_machine, require_root


def enable_templates(c: Cluster, names: list[str] | None = None) -> None:
    """template_dirs on the agents of ``names`` (default: every machine), restarted.

    ``up`` does it before any unit is started; ``boot`` again for the machine it
    booted, whose /etc/unitctl/unitctl.conf the harness wrote anew.
    """
    for name in names if names is not None else c.names:
        c.exec(name, "mkdir", "-p", TEMPLATE_DIR, AGENT_DROP_IN.rpartition("/")[0])
        c.exec(name, "sh", "-c", f"printf '[Service]\\nReadWritePaths={TEMPLATE_DIR}\\n' > "
               f"{AGENT_DROP_IN} && echo 'template_dirs = {TEMPLATE_DIR}' >> "
               "/etc/unitctl/unitctl.conf")
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
