"""A generated container unit stops its container inside the fence margin, on a
real dockerd (issue 10, defect 5).

The workload ignores SIGTERM (sh as PID 1 without a trap), the worst case: the
unit's own ``ExecStop=`` command, run as systemd runs it, must have the
container gone within ``fence_margin(agent_ttl)`` of the stop (2.45 s for the
default 10 s). docker's default grace alone is 10 s.
"""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.dockerd import IMAGE, dockerd_fixture  # noqa: F401  (the fixture)
from tests.integration.test_docker_run import docker, finish, inspect, spawn, wait_for_output
from unitctl.agent.fencing import fence_margin
from unitctl.generate import docker_run_argv, parse_spec, render_service

pytestmark = [pytest.mark.docker, pytest.mark.slow]
IGNORES_TERM = ["sh", "-c", "echo ready; while true; do sleep 0.1; done"]


@pytest.fixture
def name(dockerd: None) -> Iterator[str]:
    """A unique container name, force-removed after the test."""
    container = f"unitctl-stop-{uuid.uuid4().hex[:10]}"
    yield container
    docker("rm", "-f", container, check=False)


def _service_value(text: str, key: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"{key}=")]
    return line.split("=", 1)[1]


def test_generated_unit_stops_its_container_inside_the_fence_margin(name: str) -> None:
    spec = parse_spec({"name": name, "image": IMAGE, "command": IGNORES_TERM})
    text = render_service(spec)
    assert int(_service_value(text, "TimeoutStopSec")) <= fence_margin(10)
    proc = spawn(*docker_run_argv(spec)[1:])  # ExecStart=, with this tree's docker-run
    try:
        wait_for_output(proc, b"ready")
        started = time.monotonic()
        subprocess.run(shlex.split(_service_value(text, "ExecStop")), check=True,
                       capture_output=True, timeout=60)
        took = time.monotonic() - started
        state = inspect(name)
        assert state is not None and state["State"]["Running"] is False
        print(f"container gone {took:.2f}s after ExecStop (fence margin "
              f"{fence_margin(10):.2f}s)")
        assert took <= fence_margin(10)
    finally:
        finish(proc)
