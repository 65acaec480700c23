"""``docker_socket=True``: the machines drive the host's dockerd.

What makes generated container units runnable in a machine: the host's
``/var/run/docker.sock`` and docker CLI bind-mounted in, ``bin/docker-run`` of
the bind-mounted source tree at /usr/local/bin/docker-run (it labels every
container ``unitctl.machine=<machine id>``), and a ``docker.service``
stand-in for the engine that generated units ``Require=``. A killed machine's
containers are removed by that label, unless the caller keeps them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from unitctl_testing.host import sh

DOCKER_RUN_WRAPPER = """\
#!/bin/sh
# unitctl test harness: bin/docker-run of the bind-mounted repo (generated units
# call /usr/local/bin/docker-run); it labels containers unitctl.machine=MACHINE-ID.
PYTHONPATH=/opt/unitctl/src
export PYTHONPATH
exec /opt/unitctl/venv/bin/python /opt/unitctl/src/bin/docker-run "$@"
"""
DOCKER_STUB_UNIT = """\
# unitctl test harness: stands for the engine that generated units Require=;
# the engine is the host's dockerd behind the bind-mounted /var/run/docker.sock.
[Unit]
Description=host docker engine (via /var/run/docker.sock)

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/docker version
"""


def host_has_docker() -> bool:
    return os.path.exists("/var/run/docker.sock") and shutil.which("docker") is not None


def nspawn_binds() -> list[str]:
    """The systemd-nspawn options that bring the socket and the CLI in."""
    return ["--bind=/var/run/docker.sock",
            f"--bind-ro={shutil.which('docker')}:/usr/local/bin/docker"]


def write_docker_files(root: Path) -> None:
    """/usr/local/bin/docker-run + a docker.service stand-in."""
    wrapper = root / "usr/local/bin/docker-run"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(DOCKER_RUN_WRAPPER)
    wrapper.chmod(0o755)
    (root / "etc/systemd/system/docker.service").write_text(DOCKER_STUB_UNIT)


def remove_containers(machine_id: str, name: str) -> None:
    """``docker rm -f`` the containers labelled with the machine's id (or name)."""
    if shutil.which("docker") is None:
        return
    # docker-run labels its containers unitctl.machine=<machine id>; the name
    # is kept for containers labelled by hand
    ids: list[str] = []
    for ident in filter(None, (machine_id, name)):
        ids += sh("docker", "ps", "-aq", "--filter", f"label=unitctl.machine={ident}",
                  check=False).stdout.split()
    ids = list(dict.fromkeys(ids))
    if ids:
        sh("docker", "rm", "-f", *ids, check=False, timeout=120)
