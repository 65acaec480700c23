"""docker-run's pull policy, READY/STOPPING and ephemeral containers, on the fake engine.

The real-engine counterparts are in tests/integration/test_docker_pull_notify.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import typing as t

import pytest

from unitctl.docker.argv import parse_run_argv
from unitctl.docker.events import parse_event
from unitctl.docker.fake import FakeContainerRuntime
from unitctl.docker.notify import RecordingNotifier, extending_start_timeout
from unitctl.docker.pull import ensure_image
from unitctl.docker.ready import ReadyWatch
from unitctl.docker.run import attach, ensure_container
from unitctl.docker.runtime import ImageNotFound
from unitctl.docker.spec import ContainerSpec
from unitctl.errors import ContainerError, UsageError

LOCAL = "sha256:" + "aa" * 32
REMOTE = "sha256:" + "bb" * 32


def engine(local: bool = True, remote: bool = True) -> FakeContainerRuntime:
    return FakeContainerRuntime({"img:1": LOCAL} if local else {},
                                registry={"img:1": REMOTE} if remote else {})


# --------------------------------------------------------------------------- argv


def test_pull_and_ephemeral_are_docker_runs_own() -> None:
    request = parse_run_argv(["--name", "a", "--pull", "always", "--ephemeral", "-p", "80:80",
                              "img:1"])  # fmt: skip
    assert (request.pull, request.ephemeral) == ("always", True)
    assert request.options == ("--publish=80:80",)
    assert parse_run_argv(["--name", "a", "img"]).pull == "missing"
    assert parse_run_argv(["--name", "a", "img"]).ephemeral is False


def test_bad_pull_policy_is_refused_by_name() -> None:
    with pytest.raises(UsageError, match="bad --pull 'sometimes'"):
        parse_run_argv(["--name", "a", "--pull=sometimes", "img"])


# --------------------------------------------------------------------------- pull policy


@pytest.mark.parametrize(
    ("policy", "local", "pulled", "image_id"),
    [
        ("missing", True, [], LOCAL),
        ("missing", False, ["img:1"], REMOTE),
        ("always", True, ["img:1"], REMOTE),
        ("newer", True, ["img:1"], REMOTE),
        ("never", True, [], LOCAL),
    ],
)
def test_pull_policies(policy: str, local: bool, pulled: list[str], image_id: str) -> None:
    runtime = engine(local=local)
    assert ensure_image(runtime, "img:1", policy, RecordingNotifier()) == image_id
    assert runtime.pulls == pulled


def test_never_does_not_pull_a_missing_image() -> None:
    runtime = engine(local=False)
    with pytest.raises(ImageNotFound, match="image img:1 not found locally"):
        ensure_image(runtime, "img:1", "never", RecordingNotifier())
    assert runtime.pulls == []


def test_missing_and_unpullable_names_both() -> None:
    with pytest.raises(ContainerError, match=r"not found locally.*pull img:1 failed"):
        ensure_image(engine(local=False, remote=False), "img:1", "missing", RecordingNotifier())


def test_always_fails_when_the_pull_fails_newer_falls_back() -> None:
    with pytest.raises(ContainerError, match="pull img:1 failed"):
        ensure_image(engine(remote=False), "img:1", "always", RecordingNotifier())
    assert ensure_image(engine(remote=False), "img:1", "newer", RecordingNotifier()) == LOCAL
    with pytest.raises(ContainerError, match=r"not found locally.*pull img:1 failed"):
        ensure_image(engine(local=False, remote=False), "img:1", "newer", RecordingNotifier())


def test_the_pull_extends_the_start_timeout() -> None:
    notifier = RecordingNotifier()
    ensure_image(engine(local=False), "img:1", "missing", notifier)
    assert notifier.messages[0] == "STATUS=pulling img:1\nEXTEND_TIMEOUT_USEC=30000000"


def test_extension_stops_with_the_block() -> None:
    notifier = RecordingNotifier()
    with extending_start_timeout(notifier, "x"):
        pass
    count = len(notifier.messages)
    assert count == 1
    assert len(notifier.messages) == count


# --------------------------------------------------------------------------- READY


def spec(*options: str) -> ContainerSpec:
    return ContainerSpec("web", "img:1", LOCAL, options, ("sleep", "1000"))


def wait_for(check: t.Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def attach_driven(runtime: FakeContainerRuntime, notifier: RecordingNotifier,
                  drive: t.Callable[[], None], *options: str) -> int:  # fmt: skip
    """attach in this (the main) thread, which signals need; ``drive`` plays the world."""
    container = ensure_container(runtime, spec(*options))
    driver = threading.Thread(target=drive)
    driver.start()
    try:
        return attach(runtime, container, 1, notifier)
    finally:
        driver.join(10)


def health(runtime: FakeContainerRuntime) -> str:
    state = runtime.inspect("web")
    return "" if state is None else state.health


def test_ready_once_running_then_stopping_and_the_exit_code() -> None:
    runtime, notifier = engine(), RecordingNotifier()

    def drive() -> None:
        wait_for(lambda: bool(notifier.messages))
        os.kill(os.getpid(), signal.SIGTERM)

    assert attach_driven(runtime, notifier, drive) == 137
    assert notifier.messages == ["READY=1\nSTATUS=container running", "STOPPING=1"]


def test_ready_waits_for_healthy() -> None:
    runtime, notifier = engine(), RecordingNotifier()

    def drive() -> None:
        wait_for(lambda: health(runtime) == "starting")
        runtime.set_health("web", "unhealthy")
        wait_for(lambda: bool(notifier.messages))
        assert not any(m.startswith("READY=1") for m in notifier.messages)
        runtime.set_health("web", "healthy")
        wait_for(lambda: len(notifier.messages) == 2)
        runtime.stop("web")

    attach_driven(runtime, notifier, drive, "--health-cmd=true")
    assert notifier.messages == ["STATUS=container unhealthy, waiting for healthy",
                                 "READY=1\nSTATUS=container healthy"]  # fmt: skip


def test_no_ready_for_a_container_that_exits_at_once() -> None:
    runtime, notifier = engine(), RecordingNotifier()
    container = ensure_container(runtime, ContainerSpec("web", "img:1", LOCAL, (), ("false",)))
    assert attach(runtime, container, 1, notifier) == 1
    assert notifier.messages == []


def test_ready_for_an_already_running_container() -> None:
    runtime, notifier = engine(), RecordingNotifier()
    container = ensure_container(runtime, spec())
    runtime.start_attached(container)
    with ReadyWatch(runtime, container, notifier, time.time()) as watch:
        assert watch.ready.wait(10)
    assert notifier.messages == ["READY=1\nSTATUS=container running"]


# --------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    ("line", "event"),
    [
        ('{"Type":"container","Action":"start","id":"x"}', "start"),
        ('{"Type":"container","Action":"health_status: healthy"}', "healthy"),
        ('{"status":"die","Type":"container","Action":"die"}', "die"),
        ('{"Type":"container","Status":"health_status","HealthStatus":"unhealthy"}', "unhealthy"),
        ('{"Type":"container","Status":"died"}', "die"),
        ('{"Type":"network","Action":"connect"}', None),
        ("not json", None),
        ("[1]", None),
    ],
)
def test_parse_event(line: str, event: str | None) -> None:
    assert parse_event(line) == event
