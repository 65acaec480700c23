"""bin/docker-run's pull policy, READY/STOPPING and ephemeral containers on a real dockerd.

Images come from a local registry (tests/integration/registry.py: Debian's
docker-registry on a loopback port), pushed there after a ``docker import``
and removed locally, so only a pull brings them back. systemd's side of
``Type=notify`` is played by the test: a datagram socket named by
``$NOTIFY_SOCKET`` receives what docker-run sends; when ``READY=1`` arrives
the test inspects the container, which must already run (and be healthy when
it has a health check).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.dockerd import IMAGE, dockerd_fixture  # noqa: F401  (the fixture)
from tests.integration.registry import push_imported, registry_fixture  # noqa: F401
from tests.integration.test_docker_run import REPO, docker, docker_run, docker_run_cmd, inspect

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: A health check that passes once the container wrote /tmp/ok (busybox sh's builtin ``[``).
OK_CHECK = "[ -f /tmp/ok ]"
#: Runs, becomes healthy after about two seconds, and runs on.
SLOW_HEALTHY = ["sh", "-c", "sleep 2; echo > /tmp/ok; sleep 1000"]


@pytest.fixture
def name(dockerd: None) -> Iterator[str]:
    container = f"unitctl-pn-{uuid.uuid4().hex[:10]}"
    yield container
    docker("rm", "-f", container, check=False)


@pytest.fixture
def reference(registry: str) -> Iterator[str]:
    """An image reference in the local registry (not yet pushed), removed locally after."""
    ref = f"{registry}/unitctl-pull-{uuid.uuid4().hex[:8]}:1"
    yield ref
    docker("rmi", "-f", ref, check=False)


class NotifySocket:
    """systemd's notify socket, as the test plays it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(120)
        self.messages: list[str] = []

    def until(self, prefix: str) -> str:
        """Receive (blocking) until a message with a line starting with ``prefix``."""
        while True:
            message = self.sock.recv(4096).decode()
            self.messages.append(message)
            if any(line.startswith(prefix) for line in message.splitlines()):
                return message


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.sock.close()


def spawn(notify: NotifySocket, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        docker_run_cmd(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": notify.path},
    )  # fmt: skip


def stop(proc: subprocess.Popen[str], notify: NotifySocket) -> tuple[int, str]:
    """SIGTERM docker-run as systemd would; STOPPING=1 must come; its exit code and stderr."""
    proc.send_signal(signal.SIGTERM)
    notify.until("STOPPING=1")
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


def state(container: str) -> dict[str, t.Any]:
    data = inspect(container)
    assert data is not None, f"container {container} does not exist"
    return t.cast(dict[str, t.Any], data["State"])


def image_present(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


# --------------------------------------------------------------------------- pull


def test_a_missing_image_is_pulled_and_ready_comes_once_it_runs(
    name: str, reference: str, notify: NotifySocket
) -> None:
    push_imported(reference, 'CMD ["sleep", "1000"]')
    assert not image_present(reference)
    proc = spawn(notify, "--name", name, "--stop-timeout", "1", reference)
    try:
        notify.until("READY=1")
        assert state(name)["Running"] is True
        assert any("EXTEND_TIMEOUT_USEC=" in m for m in notify.messages[:-1]), notify.messages
        code, stderr = stop(proc, notify)
    finally:
        proc.kill()
    assert image_present(reference)
    assert "Pulling from" in stderr, stderr  # the engine's progress, on the journal's stream
    assert stderr.index("Pulling from") < stderr.index("READY"), stderr
    assert code == 137  # sleep as PID 1 has no TERM handler: killed after -t 1


def test_pull_never_does_not_pull(name: str, reference: str) -> None:
    push_imported(reference)
    proc = docker_run("--name", name, "--pull", "never", reference, "true")
    assert proc.returncode == 9, proc.stderr
    assert f"image {reference} not found locally" in proc.stderr
    assert not image_present(reference)
    assert inspect(name) is None


def test_pull_always_fetches_the_image_behind_a_tag(name: str, reference: str) -> None:
    push_imported(reference, 'CMD ["sh", "-c", "exit 5"]')
    docker("tag", IMAGE, reference)  # a local image of that tag, but not the registry's
    proc = docker_run("--name", name, "--pull", "always", reference)
    assert proc.returncode == 5, proc.stderr
    assert "Pulling from" in proc.stderr


def test_an_unreachable_registry_fails_missing_with_both_reasons(name: str, registry: str) -> None:
    ref = f"{registry}/unitctl-never-pushed-{uuid.uuid4().hex[:8]}:1"
    proc = docker_run("--name", name, ref, "true")
    assert proc.returncode == 9
    assert "not found locally" in proc.stderr and "pull" in proc.stderr
    assert inspect(name) is None


# --------------------------------------------------------------------------- health and READY


def test_image_healthcheck_is_healthy_before_ready(
    name: str, reference: str, notify: NotifySocket
) -> None:
    push_imported(reference, f'HEALTHCHECK --interval=1s --timeout=5s CMD {OK_CHECK}',
                  f"CMD {json.dumps(SLOW_HEALTHY)}")  # fmt: skip
    proc = spawn(notify, "--name", name, "--stop-timeout", "1", reference)
    try:
        notify.until("READY=1")
        assert state(name)["Health"]["Status"] == "healthy"
        assert "READY=1\nSTATUS=container healthy" in notify.messages
        stop(proc, notify)
    finally:
        proc.kill()


def test_health_cmd_flag_is_healthy_before_ready(name: str, notify: NotifySocket) -> None:
    proc = spawn(notify, "--name", name, "--stop-timeout", "1", "--health-cmd", OK_CHECK,
                 "--health-interval", "1s", IMAGE, *SLOW_HEALTHY)  # fmt: skip
    try:
        notify.until("READY=1")
        status = state(name)
        assert status["Running"] is True and status["Health"]["Status"] == "healthy"
        code, _ = stop(proc, notify)
    finally:
        proc.kill()
    assert code == 137


def test_ready_for_a_container_that_already_runs(name: str, notify: NotifySocket) -> None:
    first = spawn(notify, "--name", name, "--stop-timeout", "1", IMAGE, "sleep", "1000")
    try:
        notify.until("READY=1")
        second = spawn(notify, "--name", name, "--stop-timeout", "1", IMAGE, "sleep", "1000")
        try:
            notify.until("READY=1")  # the second attaches to the running container: READY at once
            assert state(name)["Running"] is True
            assert stop(second, notify)[0] == 137  # stops the container: the first ends too
        finally:
            second.kill()
        first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 137


def test_exit_code_passes_through_without_ready(name: str, notify: NotifySocket) -> None:
    proc = spawn(notify, "--name", name, IMAGE, "sh", "-c", "exit 7")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 7, stderr
    # a container this short may or may not be seen running before it exits (seen in CI):
    # READY is sent exactly when docker-run saw it running, and says so on stderr
    announced = "is running: READY" in stderr
    notify.sock.settimeout(0.5)  # docker-run has exited: anything it sent is queued already
    if announced:
        notify.until("READY=1")
    else:
        with pytest.raises(TimeoutError):
            notify.until("READY=1")


# --------------------------------------------------------------------------- ephemeral


def test_ephemeral_container_is_removed_when_it_stops(name: str, notify: NotifySocket) -> None:
    proc = spawn(notify, "--name", name, "--ephemeral", "--stop-timeout", "1", IMAGE,
                 "sleep", "1000")  # fmt: skip
    try:
        notify.until("READY=1")
        first_id = str(t.cast(dict[str, t.Any], inspect(name))["Id"])
        stop(proc, notify)
    finally:
        proc.kill()
    assert inspect(name) is None
    again = docker_run("--name", name, "--ephemeral", IMAGE, "true")
    assert again.returncode == 0, again.stderr
    assert inspect(name) is None
    assert first_id
