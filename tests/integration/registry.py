"""A local image registry for the pull tests: Debian's docker-registry on a loopback port.

The fixture ``registry`` (import ``registry_fixture`` into a test module) runs
scripts/setup-registry.sh (installs the package if missing, never starts its
service), then starts ``docker-registry serve`` with a config file and storage
in a temp dir on a free 127.0.0.1 port (dockerd treats 127.0.0.0/8 as an
insecure registry: plain HTTP is fine), and stops it afterwards.
:func:`push_imported` puts an image made with ``docker import`` into it.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.dockerd import IMAGE
from tests.real import require_root

REPO = Path(__file__).resolve().parents[2]
REGISTRY = "/usr/bin/docker-registry"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(address: str) -> bool:
    conn = http.client.HTTPConnection(address, timeout=2)
    try:
        conn.request("GET", "/v2/")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _docker(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, check=True,
                          timeout=300)  # fmt: skip


@pytest.fixture(name="registry")
def registry_fixture(dockerd: None, tmp_path: Path) -> Iterator[str]:
    """A running registry; yields its ``127.0.0.1:PORT``."""
    require_root("installing docker-registry needs root")
    setup = subprocess.run(["bash", str(REPO / "scripts" / "setup-registry.sh")],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=900, check=False)  # fmt: skip
    if setup.returncode != 0:
        pytest.fail(f"scripts/setup-registry.sh failed: {setup.stderr.strip()}")
    address = f"127.0.0.1:{_free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'storage'}\nhttp:\n  addr: {address}\n"
    )
    log = (tmp_path / "registry.log").open("wb")
    proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _answers(address):  # a server coming up: nothing to watch but its port
            assert proc.poll() is None, (tmp_path / "registry.log").read_text()
            assert time.monotonic() < deadline, "docker-registry did not answer in 30 s"
            time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def push_imported(reference: str, *changes: str) -> None:
    """Make ``reference`` by ``docker import`` of IMAGE's files (with ``--change``s),
    push it to its registry and remove it locally: only a pull brings it back."""
    container = _docker("create", IMAGE, "true").stdout.decode().strip()
    try:
        tarball = _docker("export", container).stdout
    finally:
        _docker("rm", "-f", container)
    flags = [a for change in changes for a in ("--change", change)]
    _docker("import", *flags, "-", reference, stdin=tarball)
    _docker("push", reference)
    _docker("rmi", reference)
