"""bin/docker-run against a real dockerd (started by scripts/setup-docker.sh, see dockerd.py).

Each test uses its own container name and removes its containers afterwards.
docker-run runs as a subprocess: ``[sys.executable, "bin/docker-run", ...]``
with PYTHONPATH set to the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.dockerd import IMAGE, dockerd_fixture  # noqa: F401  (the fixture)

REPO = Path(__file__).resolve().parents[2]
HASH_LABEL = "unitctl.spec-hash"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def name(dockerd: None) -> Iterator[str]:
    """A unique container name, force-removed after the test."""
    container = f"unitctl-it-{uuid.uuid4().hex[:10]}"
    yield container
    docker("rm", "-f", container, check=False)


# --------------------------------------------------------------------------- helpers


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=120
    )


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def docker_run_cmd(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "bin" / "docker-run"), *args]


def docker_run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        docker_run_cmd(*args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env(**extra_env),
        timeout=120,
        check=False,
    )


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        docker_run_cmd(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env(),
    )


def inspect(container: str) -> dict[str, t.Any] | None:
    proc = docker("container", "inspect", container, check=False)
    if proc.returncode != 0:
        return None
    data: dict[str, t.Any] = json.loads(proc.stdout)[0]
    return data


def container_id(container: str) -> str:
    data = inspect(container)
    assert data is not None, f"container {container} does not exist"
    return str(data["Id"])


def count_containers(container: str) -> int:
    out = docker("ps", "-a", "--filter", f"name=^/{container}$", "--format", "{{.ID}}").stdout
    return len(out.split())


def wait_for_output(proc: subprocess.Popen[bytes], text: bytes, timeout: float = 30) -> bytes:
    """Read proc's stdout until ``text`` appears; return what was read."""
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while text not in seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for {text!r}; got {seen!r}"
            if sel.select(remaining):
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, f"stdout closed before {text!r}; got {seen!r}"
                seen += chunk
    return seen


def finish(proc: subprocess.Popen[bytes]) -> None:
    """Make sure a spawned docker-run is gone (test cleanup)."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("docker-run: error: "), proc.stderr
    assert fragment in lines[0], proc.stderr


# --------------------------------------------------------------------------- paths


def test_run_path_creates_container_and_shows_output(name: str) -> None:
    proc = docker_run("--name", name, IMAGE, "echo", "hello from run")
    assert proc.returncode == 0, proc.stderr
    assert "hello from run" in proc.stdout
    data = inspect(name)
    assert data is not None
    assert data["Config"]["Labels"][HASH_LABEL]
    assert data["State"]["Running"] is False


def test_start_path_reuses_the_same_container(name: str) -> None:
    args = ("--name", name, "-e", "GREETING=hi", IMAGE, "sh", "-c", "echo $GREETING")
    first = docker_run(*args)
    assert first.returncode == 0, first.stderr
    first_id = container_id(name)
    second = docker_run(*args)
    assert second.returncode == 0, second.stderr
    assert "hi" in second.stdout
    assert container_id(name) == first_id
    assert count_containers(name) == 1


def test_equivalent_spelling_reuses_the_container(name: str) -> None:
    assert docker_run("--name", name, "-e", "A=1", IMAGE, "true").returncode == 0
    first_id = container_id(name)
    assert docker_run(f"--name={name}", "--env=A=1", IMAGE, "true").returncode == 0
    assert container_id(name) == first_id


def test_recreate_path_on_spec_change(name: str) -> None:
    assert docker_run("--name", name, IMAGE, "echo", "one").returncode == 0
    first = inspect(name)
    assert first is not None
    proc = docker_run("--name", name, "-e", "NEW=1", IMAGE, "echo", "two")
    assert proc.returncode == 0, proc.stderr
    assert "two" in proc.stdout
    second = inspect(name)
    assert second is not None
    assert second["Id"] != first["Id"]
    assert second["Config"]["Labels"][HASH_LABEL] != first["Config"]["Labels"][HASH_LABEL]
    assert count_containers(name) == 1


def test_recreate_replaces_a_running_container(name: str) -> None:
    old = spawn("--name", name, IMAGE, "sh", "-c", "echo up; while true; do sleep 0.2; done")
    try:
        wait_for_output(old, b"up")
        old_id = container_id(name)
        proc = docker_run("--name", name, IMAGE, "echo", "replaced")
        assert proc.returncode == 0, proc.stderr
        assert "replaced" in proc.stdout
        assert container_id(name) != old_id
        old.wait(timeout=30)  # the old attach ends when its container is removed
    finally:
        finish(old)


def test_drift_container_made_by_hand_is_recreated(name: str) -> None:
    docker("create", "--name", name, IMAGE, "echo", "by hand")
    hand_id = container_id(name)
    proc = docker_run("--name", name, IMAGE, "echo", "by hand")
    assert proc.returncode == 0, proc.stderr
    data = inspect(name)
    assert data is not None
    assert data["Id"] != hand_id
    assert HASH_LABEL in data["Config"]["Labels"]


def test_drift_image_retagged_is_recreated(name: str) -> None:
    tag = f"unitctl-drift:{name}"
    docker("tag", IMAGE, tag)
    try:
        assert docker_run("--name", name, tag, "true").returncode == 0
        first_id = container_id(name)
        assert docker_run("--name", name, tag, "true").returncode == 0
        assert container_id(name) == first_id
        # Point the tag at a different image id: same argv, new image content.
        docker("commit", "--change", "ENV DRIFT=1", first_id, tag)
        proc = docker_run("--name", name, tag, "true")
        assert proc.returncode == 0, proc.stderr
        assert container_id(name) != first_id
    finally:
        docker("rm", "-f", name, check=False)
        docker("rmi", "-f", tag, check=False)


# --------------------------------------------------------------------------- exit codes and signals


def test_exit_code_propagates(name: str) -> None:
    proc = docker_run("--name", name, IMAGE, "sh", "-c", "exit 7")
    assert proc.returncode == 7, proc.stderr
    # no error and no traceback; the one line a run may print is READY, when docker-run
    # saw the container running before it exited (a race with a container this short)
    assert all(line.endswith("is running: READY") for line in proc.stderr.splitlines()), \
        proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_is_forwarded_as_docker_stop(name: str, signum: int) -> None:
    script = 'trap "echo stopping; exit 3" TERM; echo ready; while true; do sleep 0.1; done'
    proc = spawn("--name", name, IMAGE, "sh", "-c", script)
    try:
        wait_for_output(proc, b"ready")
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 3
        out, err = proc.communicate(timeout=10)
        assert b"stopping" in out
        assert b"Traceback" not in err
        data = inspect(name)
        assert data is not None
        assert data["State"]["Running"] is False
        assert data["State"]["ExitCode"] == 3
    finally:
        finish(proc)


def test_early_signal_is_not_lost(name: str) -> None:
    """SIGTERM while the container is being created/started still stops it."""
    script = 'trap "exit 3" TERM; while true; do sleep 0.1; done'
    proc = spawn("--name", name, IMAGE, "sh", "-c", script)
    try:
        deadline = time.monotonic() + 30
        while inspect(name) is None and proc.poll() is None:
            assert time.monotonic() < deadline, "container never created"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert code in (3, -signal.SIGTERM), code  # stopped, or killed before handlers
        data = inspect(name)
        assert data is not None
        assert data["State"]["Running"] is False
    finally:
        finish(proc)


def test_stop_timeout_is_respected(name: str) -> None:
    # sh as PID 1 without a trap ignores SIGTERM: docker stop must kill it after 1 s.
    proc = spawn(
        "--name", name, "--stop-timeout", "1", IMAGE,
        "sh", "-c", "echo ready; while true; do sleep 0.1; done",
    )  # fmt: skip
    try:
        wait_for_output(proc, b"ready")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 137
        assert time.monotonic() - started < 8  # docker's default would wait 10 s
    finally:
        finish(proc)


def process_tree(root: int) -> dict[int, str]:
    """pid -> command name of ``root`` and its descendants (/proc/PID/task/*/children:
    quick enough to see a CLI call that lives some milliseconds)."""
    tree: dict[int, str] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            tree[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
            for children in Path(f"/proc/{pid}/task").glob("*/children"):
                todo += [int(c) for c in children.read_text().split()]
        except OSError:  # gone meanwhile
            continue
    return tree


def stop_as_systemd_does(proc: subprocess.Popen[bytes], timeout: float = 10) -> str:
    """SIGTERM every process of docker-run's tree at once (KillMode=control-group),
    then the first docker CLI forked after that, as systemd's kill loop does with a
    process forked while it runs (it kills until a pass finds no new pid). Return
    the command name of that late victim ("" when docker-run forked none)."""
    first = process_tree(proc.pid)
    for pid in first:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        late = [p for p, comm in process_tree(proc.pid).items()
                if p not in first and comm == "docker"]
        if late:
            with contextlib.suppress(ProcessLookupError):
                os.kill(late[0], signal.SIGTERM)
            return "docker"
        time.sleep(0.0005)
    return ""


def test_a_stop_as_systemd_does_it_ends_with_the_containers_code(name: str) -> None:
    """systemd stops a unit by SIGTERMing its whole cgroup, and also the processes
    forked while it does: the docker CLI that docker-run runs for the forwarded
    stop gets that SIGTERM too. docker-run must still stop the container and exit
    with its code, not fail (it exited 9: "docker container inspect failed")."""
    script = 'trap "echo stopping; exit 3" TERM; echo ready; while true; do sleep 0.1; done'
    proc = spawn("--name", name, IMAGE, "sh", "-c", script)
    try:
        wait_for_output(proc, b"ready")
        assert stop_as_systemd_does(proc) == "docker"  # the forwarded stop's inspect
        code = proc.wait(timeout=30)
        _out, err = proc.communicate(timeout=10)
        assert code == 3, err.decode()
        assert b"docker-run: error" not in err, err.decode()
        data = inspect(name)
        assert data is not None and data["State"]["Running"] is False
    finally:
        finish(proc)


# --------------------------------------------------------------------------- concurrency


def test_concurrent_starts_make_one_container(name: str) -> None:
    args = ("--name", name, IMAGE, "sh", "-c", "echo hello; sleep 2")
    procs = [spawn(*args) for _ in range(3)]
    try:
        results = [(p.wait(timeout=60), *p.communicate(timeout=10)) for p in procs]
    finally:
        for p in procs:
            finish(p)
    for code, _out, err in results:
        assert code == 0, err.decode()
        assert b"Traceback" not in err
    assert any(b"hello" in out for _code, out, _err in results)
    assert count_containers(name) == 1


def test_concurrent_start_attaches_to_the_running_container(name: str) -> None:
    args = ("--name", name, IMAGE, "sh", "-c", "echo begin; sleep 3; echo finished; exit 4")
    first = spawn(*args)
    try:
        wait_for_output(first, b"begin")
        first_id = container_id(name)
        second = docker_run(*args)
        assert second.returncode == 4, second.stderr
        assert "finished" in second.stdout
        assert first.wait(timeout=30) == 4
        assert container_id(name) == first_id
    finally:
        finish(first)


# --------------------------------------------------------------------------- bad input


def test_missing_name(dockerd: None) -> None:
    proc = docker_run(IMAGE, "true")
    assert proc.returncode == 2
    assert_one_line_error(proc, "--name is required")


def test_bad_port(name: str) -> None:
    proc = docker_run("--name", name, "-p", "99999:80", IMAGE, "true")
    assert proc.returncode == 2
    assert_one_line_error(proc, "bad port '99999:80'")
    assert inspect(name) is None


def test_detach_refused(name: str) -> None:
    proc = docker_run("--name", name, "-d", IMAGE, "true")
    assert proc.returncode == 2
    assert_one_line_error(proc, "foreground")
    assert inspect(name) is None


def test_missing_image(name: str) -> None:
    # --pull never: the default policy (missing) would try Docker Hub; pulling a
    # missing image is tested against a local registry (test_docker_pull_notify.py)
    proc = docker_run("--name", name, "--pull", "never", "unitctl-no-such-image:never", "true")
    assert proc.returncode == 9
    assert_one_line_error(proc, "image unitctl-no-such-image:never not found")
    assert inspect(name) is None


def test_missing_engine(name: str) -> None:
    proc = docker_run(
        "--name", name, IMAGE, "true", UNITCTL_CONTAINER_ENGINE="podman", PATH="/none"
    )
    assert proc.returncode == 9
    assert_one_line_error(proc, "container engine 'podman' not found")


def test_engine_create_failure_is_reported(name: str) -> None:
    proc = docker_run("--name", name, "--network", "unitctl-no-such-net", IMAGE, "true")
    assert proc.returncode == 9
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # the engine's own attach error may precede it
    assert last.startswith("docker-run: error: docker could not start the container"), proc.stderr
    assert "unitctl-no-such-net" in last
