"""The files that make a booted rootfs one machine of the cluster, and its agent.

Written into the machine's overlay before each boot: its identity
(machine-id, hostname, /etc/hosts), the agent's configuration
``/etc/unitctl/unitctl.conf``, and the agent installed as a user installs it:

* ``contrib/unitctl-agent.service`` copied byte for byte to
  /etc/systemd/system (enabled unless ``start_agent=False``), no drop-in;
* the ``unitctl-agent`` command at the path of the unit's ``ExecStart=``
  (/usr/local/bin), the console script that ``pip install`` writes for the
  ``unitctl-agent`` entry point, run by the rootfs venv's python;
* ``unitctl`` importable in that venv from the source tree bind-mounted
  read-only at /opt/unitctl/src, by a ``.pth`` file: what an editable install
  (``pip install -e /opt/unitctl/src``) puts there; byte-compiled first, in the
  host's tree, as ``pip install`` compiles what it installs (:func:`compile_source`).
"""

from __future__ import annotations

import compileall
from collections.abc import Sequence
from pathlib import Path

from unitctl_testing.machine import Machine
from unitctl_testing.rootfs import REPO, VENV

AGENT_UNIT = "unitctl-agent.service"
SHIPPED_AGENT_UNIT = REPO / "contrib" / AGENT_UNIT
MACHINE_SRC = "/opt/unitctl/src"  # where nspawn binds the source tree
SOURCE_PTH = "unitctl-src.pth"
# pip's console script for the entry point unitctl-agent=unitctl.daemon:main
AGENT_SCRIPT = f"""\
#!{VENV}/bin/python
# -*- coding: utf-8 -*-
import re
import sys
from unitctl.daemon import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def agent_config(etcd_servers: Sequence[str], public_ip: str, metadata: dict[str, str],
                 agent_ttl: str, options: dict[str, str] | None = None) -> str:
    """``/etc/unitctl/unitctl.conf`` of one machine (``options``: the machine's own)."""
    meta = ",".join(f"{k}={v}" for k, v in metadata.items())
    own = "".join(f"{k} = {v}\n" for k, v in (options or {}).items())
    return (f"etcd_servers = {','.join(etcd_servers)}\n"
            f"public_ip = {public_ip}\n"
            f"metadata = {meta}\n"
            f"agent_ttl = {agent_ttl}\n"
            f"etcd_key_prefix = /unitctl/\n{own}")


def agent_exec_path(unit_text: str) -> str:
    """The program of the unit's ``ExecStart=`` (without systemd's prefixes)."""
    for line in unit_text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "ExecStart":
            return value.strip().lstrip("-@:+!").split()[0]
    raise ValueError(f"{SHIPPED_AGENT_UNIT}: no ExecStart=")


def write_identity(root: Path, m: Machine) -> None:
    (root / "etc/machine-id").write_text(m.machine_id + "\n")
    (root / "etc/hostname").write_text(m.name + "\n")
    with open(root / "etc/hosts", "w", encoding="utf-8") as f:
        f.write(f"127.0.0.1 localhost\n{m.ip} {m.name}\n")


def compile_source() -> None:
    """Write ``unitctl``'s bytecode next to its sources (``__pycache__``, ignored by git).

    A machine cannot write it (the tree is bound read-only), so without it the
    agent compiled every module in memory at each start, which a user's install
    never does: ``pip install`` byte-compiles, and a writable editable checkout
    keeps what the first run wrote. Compiling costs resident memory (~1 MiB in the
    idle agent, ``bench/results/nspawn_footprint.json``). Up-to-date files are
    skipped. The machines use it when the host's python is the rootfs's 3.11
    (same cache tag); otherwise they ignore it and compile as before.
    """
    if not compileall.compile_dir(str(REPO / "unitctl"), quiet=1):
        raise RuntimeError(f"{REPO / 'unitctl'}: byte-compiling failed")


def install_agent(root: Path, enabled: bool) -> None:
    """The shipped unit (enabled or not), its command, and unitctl in the venv
    (its bytecode written first: :func:`compile_source`)."""
    compile_source()
    unit = SHIPPED_AGENT_UNIT.read_bytes()
    (root / "etc/systemd/system" / AGENT_UNIT).write_bytes(unit)
    wants = root / "etc/systemd/system/multi-user.target.wants" / AGENT_UNIT
    wants.parent.mkdir(parents=True, exist_ok=True)
    if wants.is_symlink():
        wants.unlink()
    if enabled:
        wants.symlink_to(f"/etc/systemd/system/{AGENT_UNIT}")
    script = root / agent_exec_path(unit.decode()).lstrip("/")
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(AGENT_SCRIPT)
    script.chmod(0o755)
    for site in (root / VENV.lstrip("/")).glob("lib/python3*/site-packages"):
        (site / SOURCE_PTH).write_text(MACHINE_SRC + "\n")


def write_agent_config(root: Path, m: Machine, etcd_servers: Sequence[str],
                       agent_ttl: str) -> None:
    (root / "etc/unitctl").mkdir(parents=True, exist_ok=True)
    (root / "etc/unitctl/unitctl.conf").write_text(
        agent_config(etcd_servers, m.ip, m.metadata, agent_ttl, m.agent_options))
