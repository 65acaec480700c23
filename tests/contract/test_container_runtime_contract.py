"""One contract suite for :class:`~unitctl.docker.runtime.ContainerRuntime`: fake and real.

Every scenario runs twice:

* ``fake``: against :class:`~unitctl.docker.fake.FakeContainerRuntime`, in-process;
* ``docker``: against :class:`~unitctl.docker.runtime.CliContainerRuntime` on a
  real dockerd (the ``dockerd`` fixture of tests/integration/dockerd.py starts
  it and builds the busybox test image).

The scenarios use only what both can do: busybox's ``true``, ``sh -c 'exit N'``
and ``sleep`` (a PID 1 without a TERM handler, so ``stop -t 0`` kills it: 137),
the labels docker-run stamps, a network that does not exist, and names or ids
that are absent. Each scenario uses fresh container names, removed afterwards.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.integration.dockerd import IMAGE, dockerd_fixture  # noqa: F401  (the fixture)
from unitctl.docker.fake import FakeContainerRuntime
from unitctl.docker.runtime import CliContainerRuntime, ContainerRuntime, ContainerState, NameInUse
from unitctl.docker.spec import HASH_LABEL, MACHINE_LABEL, ContainerSpec, spec_hash
from unitctl.errors import ContainerError

FAKE_IMAGE_ID = "sha256:" + "ab" * 32
KILLED = 137  # stop -t 0: SIGKILL


@dataclasses.dataclass
class Engine:
    """The runtime under test, the image id of IMAGE, and the names to clean up."""

    runtime: ContainerRuntime
    image_id: str
    names: list[str] = dataclasses.field(default_factory=list)

    def spec(
        self, *command: str, options: tuple[str, ...] = (), machine: str = ""
    ) -> ContainerSpec:
        """A spec of a fresh container name running ``command`` on IMAGE."""
        name = f"unitctl-ct-{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        return ContainerSpec(name, IMAGE, self.image_id, options, command, machine)

    def create(self, spec: ContainerSpec) -> str:
        return self.runtime.create(spec, spec_hash(spec))

    def state(self, name: str) -> ContainerState:
        state = self.runtime.inspect(name)
        assert state is not None, f"container {name} does not exist"
        return state


@pytest.fixture(params=["fake", pytest.param("docker", marks=[pytest.mark.docker,
                                                              pytest.mark.slow])])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The fake engine, or the docker CLI on a real dockerd."""
    if request.param == "fake":
        yield Engine(FakeContainerRuntime({IMAGE: FAKE_IMAGE_ID}), FAKE_IMAGE_ID)
        return
    request.getfixturevalue("dockerd")
    runtime = CliContainerRuntime("docker")
    engine = Engine(runtime, runtime.image_id(IMAGE))
    try:
        yield engine
    finally:
        for name in engine.names:
            runtime.remove(name)


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``check()`` holds (the real engine starts containers asynchronously)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


# --------------------------------------------------------------------------- images


def test_image_id_is_stable(engine: Engine) -> None:
    assert engine.runtime.image_id(IMAGE) == engine.image_id
    assert engine.image_id.startswith("sha256:")


def test_missing_image_is_not_found(engine: Engine) -> None:
    with pytest.raises(ContainerError, match="image unitctl-no-such-image:never not found"):
        engine.runtime.image_id("unitctl-no-such-image:never")


# --------------------------------------------------------------------------- missing containers


def test_missing_container(engine: Engine) -> None:
    missing = f"unitctl-ct-missing-{uuid.uuid4().hex[:8]}"
    assert engine.runtime.inspect(missing) is None
    engine.runtime.remove(missing)  # not an error
    engine.runtime.stop(missing)  # not an error
    engine.runtime.stop(missing, 0)
    with pytest.raises(ContainerError):
        engine.runtime.wait(missing)


# --------------------------------------------------------------------------- create and inspect


def test_create_makes_a_stopped_container_with_the_labels(engine: Engine) -> None:
    spec = engine.spec("true", options=("--label=team=core",), machine="m1")
    container_id = engine.create(spec)
    state = engine.state(spec.name)
    assert state == engine.state(container_id)  # by name or by id alike
    assert state.id == container_id
    assert (state.running, state.exit_code, state.error) == (False, 0, "")
    assert state.spec_hash == spec_hash(spec)
    assert state.labels[HASH_LABEL] == spec_hash(spec)
    assert state.labels[MACHINE_LABEL] == "m1"
    assert state.labels["team"] == "core"


def test_no_machine_label_without_a_machine(engine: Engine) -> None:
    spec = engine.spec("true")
    engine.create(spec)
    assert MACHINE_LABEL not in engine.state(spec.name).labels


def test_create_refuses_a_name_in_use(engine: Engine) -> None:
    spec = engine.spec("true")
    first = engine.create(spec)
    with pytest.raises(NameInUse):
        engine.create(dataclasses.replace(spec, command=("false",)))
    assert engine.state(spec.name).id == first


def test_remove_forgets_the_container(engine: Engine) -> None:
    spec = engine.spec("true")
    container_id = engine.create(spec)
    engine.runtime.remove(spec.name)
    assert engine.runtime.inspect(spec.name) is None
    assert engine.runtime.inspect(container_id) is None
    assert engine.create(spec) != container_id  # the name is free again


# --------------------------------------------------------------------------- start, exit, stop


def test_exit_code_of_a_started_container(engine: Engine) -> None:
    spec = engine.spec("sh", "-c", "exit 7")
    container_id = engine.create(spec)
    assert engine.runtime.start_attached(container_id).wait() == 7
    state = engine.state(spec.name)
    assert (state.running, state.exit_code, state.error) == (False, 7, "")
    assert engine.runtime.wait(spec.name) == 7


def test_an_exited_container_starts_again(engine: Engine) -> None:
    spec = engine.spec("sh", "-c", "exit 3")
    container_id = engine.create(spec)
    assert engine.runtime.start_attached(spec.name).wait() == 3
    assert engine.runtime.start_attached(spec.name).wait() == 3
    assert engine.state(spec.name).id == container_id


def test_stop_ends_a_running_container_and_its_client(engine: Engine) -> None:
    spec = engine.spec("sleep", "300")
    engine.create(spec)
    client = engine.runtime.start_attached(spec.name)
    eventually(lambda: engine.state(spec.name).running)
    assert client.poll() is None
    engine.runtime.stop(spec.name, 0)
    assert client.wait() == KILLED
    state = engine.state(spec.name)
    assert (state.running, state.exit_code) == (False, KILLED)
    assert engine.runtime.wait(spec.name) == KILLED
    engine.runtime.stop(spec.name, 0)  # stopping a stopped container is not an error


def test_start_attached_attaches_to_a_running_container(engine: Engine) -> None:
    spec = engine.spec("sleep", "300")
    container_id = engine.create(spec)
    first = engine.runtime.start_attached(spec.name)
    eventually(lambda: engine.state(spec.name).running)
    second = engine.runtime.start_attached(spec.name)
    assert engine.state(spec.name).id == container_id
    engine.runtime.stop(spec.name, 0)
    assert (first.wait(), second.wait()) == (KILLED, KILLED)


def test_remove_ends_a_running_container(engine: Engine) -> None:
    spec = engine.spec("sleep", "300")
    engine.create(spec)
    client = engine.runtime.start_attached(spec.name)
    eventually(lambda: engine.state(spec.name).running)
    engine.runtime.remove(spec.name)
    assert engine.runtime.inspect(spec.name) is None
    assert client.wait() != 0


def test_a_failed_start_is_reported_by_inspect(engine: Engine) -> None:
    spec = engine.spec("true", options=("--network=unitctl-no-such-net",))
    engine.create(spec)  # the engine checks the network only when it starts
    assert engine.runtime.start_attached(spec.name).wait() != 0
    state = engine.state(spec.name)
    assert not state.running
    assert "unitctl-no-such-net" in state.error
