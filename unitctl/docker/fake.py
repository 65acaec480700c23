"""An in-memory :class:`~unitctl.docker.runtime.ContainerRuntime` for tests.

It models what docker-run can observe of an engine, with dicts and one
condition variable (no I/O, no processes):

* images (``images``: reference -> id; a reference without a tag means
  ``:latest``); :meth:`image_id` of another reference fails as "not found";
  :meth:`pull` copies a reference from ``registry`` (reference -> id) into
  ``images`` and fails for one the registry does not hold; ``pulls`` lists
  the references pulled;
* events: every start, stop, exit, removal and health change is logged with
  its ``time.time()``; :meth:`events` yields those since a moment, then the
  new ones until closed;
* health: a container made with ``--health-cmd`` (and without
  ``--no-healthcheck``) has a health check, ``starting`` once started;
  :meth:`set_health` changes it (the test plays the check);
* containers, by name or id: ``created`` after :meth:`create`, ``running``
  after :meth:`start_attached`, ``exited`` when their program ends or they are
  stopped; :meth:`remove` forgets them (an attached client then ends);
* what a started container does comes from ``program(spec)``: an exit code
  (it ends at once) or None (it runs until stopped). The default,
  :func:`default_program`, reads ``true``, ``false``, ``echo ...`` and
  ``sh -c 'exit N'``; anything else runs until stopped. A stop ends it with
  ``stop_exit_code`` (137: a PID 1 without a TERM handler is killed);
* a ``--network`` outside :data:`NETWORKS` makes the start fail: the
  container exits with 128 and ``inspect`` reports the error, as docker does.

:meth:`add_container` puts a container made elsewhere (by hand, by another
docker-run) in place. It is thread-safe: a stop from a signal thread ends a
client waiting in another thread. The contract suite
(tests/contract/test_container_runtime_contract.py) holds it to the same
scenarios as the real CLI adapter.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import re
import threading
import time
import typing as t
from collections.abc import Callable, Iterator, Mapping

from unitctl.docker.argv import DEFAULT_ENGINE
from unitctl.docker.runtime import ContainerRuntime, ContainerState, ImageNotFound, NameInUse
from unitctl.docker.spec import HASH_LABEL, MACHINE_LABEL, ContainerSpec
from unitctl.errors import ContainerError

__all__ = [
    "NETWORKS", "FakeAttachedClient", "FakeContainerRuntime", "FakeEventStream", "Program",
    "default_program",
]  # fmt: skip

#: What a started container does: an exit code (it ends at once) or None (runs until stopped).
Program = Callable[[ContainerSpec], int | None]

#: The networks the fake engine knows (docker's built-in ones).
NETWORKS = frozenset({"bridge", "host", "none"})

_EXIT_RE = re.compile(r"^\s*exit\s+(\d+)\s*$")

#: Exit code of a container whose start failed (docker's).
_START_FAILED = 128


def default_program(spec: ContainerSpec) -> int | None:
    """``true`` -> 0, ``false`` -> 1, ``echo ...`` -> 0, ``sh -c 'exit N'`` -> N, else None."""
    command = spec.command
    if command[:1] in (("true",), ("echo",)):
        return 0
    if command[:1] == ("false",):
        return 1
    if len(command) == 3 and command[:2] == ("sh", "-c"):
        match = _EXIT_RE.match(command[2])
        if match:
            return int(match[1])
    return None


def _option_values(spec: ContainerSpec, flag: str) -> list[str]:
    prefix = flag + "="
    return [o[len(prefix) :] for o in spec.options if o.startswith(prefix)]


def _labels(spec: ContainerSpec, digest: str) -> dict[str, str]:
    """The labels ``create`` puts on the container of ``spec``."""
    labels = dict(v.partition("=")[::2] for v in _option_values(spec, "--label"))
    labels[HASH_LABEL] = digest
    if spec.machine:
        labels[MACHINE_LABEL] = spec.machine
    return labels


def _has_healthcheck(spec: ContainerSpec | None) -> bool:
    """``--health-cmd`` given and ``--no-healthcheck`` not."""
    if spec is None or "--no-healthcheck" in spec.options:
        return False
    return bool(_option_values(spec, "--health-cmd"))


def _with_tag(image: str) -> str:
    """``busybox`` -> ``busybox:latest``; references with a tag or digest stay."""
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in last else f"{image}:latest"


@dataclasses.dataclass
class _Container:
    """One container of the fake engine."""

    id: str
    name: str
    labels: dict[str, str]
    spec: ContainerSpec | None = None
    status: str = "created"  # created | running | exited
    exit_code: int = 0
    error: str = ""
    removed: bool = False
    health: str = ""

    def state(self) -> ContainerState:
        return ContainerState(
            self.id, self.status == "running", self.exit_code, dict(self.labels), self.error,
            has_healthcheck=_has_healthcheck(self.spec), health=self.health,
        )  # fmt: skip


class FakeEventStream:
    """The events of one fake container since a moment, then new ones until closed."""

    def __init__(self, engine: FakeContainerRuntime, name: str, since: float) -> None:
        self._engine, self._name, self._since = engine, name, since
        self._closed = False

    def __iter__(self) -> Iterator[str]:
        """Each logged event of the container, in order, blocking for new ones."""
        seen = 0
        cond, log = self._engine._cond, self._engine.event_log
        while True:
            with cond:
                cond.wait_for(functools.partial(self._more, log, seen))
                if self._closed:
                    return
                stamp, who, event = log[seen]
                seen += 1
            if stamp >= self._since and self._name in who:
                yield event

    def _more(self, log: list[tuple[float, tuple[str, str], str]], seen: int) -> bool:
        return self._closed or len(log) > seen

    def close(self) -> None:
        """End a running iteration."""
        with self._engine._cond:
            self._closed = True
            self._engine._cond.notify_all()


class FakeAttachedClient:
    """The attach client of a fake container: ends when the container does."""

    def __init__(self, cond: threading.Condition, container: _Container, code: int) -> None:
        self._cond, self._container, self._failed_code = cond, container, code

    def _done(self) -> bool:
        return self._container.removed or self._container.status != "running"

    def _code(self) -> int:
        if self._container.error:
            return self._failed_code
        return 137 if self._container.removed else self._container.exit_code

    def poll(self) -> int | None:
        """The exit code, or None while the container runs."""
        with self._cond:
            return self._code() if self._done() else None

    def wait(self) -> int:
        """Block until the container stops or is removed; the exit code."""
        with self._cond:
            self._cond.wait_for(self._done)
            return self._code()


class FakeContainerRuntime:
    """In-memory engine implementing :class:`~unitctl.docker.runtime.ContainerRuntime`."""

    def __init__(
        self,
        images: Mapping[str, str] | None = None,
        *,
        engine: str = DEFAULT_ENGINE,
        program: Program = default_program,
        stop_exit_code: int = 137,
        new_id: Callable[[], str] | None = None,
        registry: Mapping[str, str] | None = None,
    ) -> None:
        """An engine holding ``images`` (reference -> id) and no containers.

        ``new_id`` makes the ids of created containers (default: 64 hex
        digits); ``registry`` is what :meth:`pull` can fetch.
        """
        self.engine = engine
        self.images = {_with_tag(ref): image_id for ref, image_id in (images or {}).items()}
        self.registry = {_with_tag(ref): image_id for ref, image_id in (registry or {}).items()}
        self.pulls: list[str] = []
        #: ``(time.time(), (name, id), event)`` of every event, in order
        self.event_log: list[tuple[float, tuple[str, str], str]] = []
        self.program, self.stop_exit_code = program, stop_exit_code
        self._counter: Iterator[int] = itertools.count(1)
        self._new_id = new_id or self._hex_id
        self._containers: dict[str, _Container] = {}  # by name
        self._cond = threading.Condition()

    def _hex_id(self) -> str:
        return hashlib.sha256(f"fake-container-{next(self._counter)}".encode()).hexdigest()

    def _find(self, name: str) -> _Container | None:
        """The container named ``name`` or with id ``name``; call with the lock held."""
        found = self._containers.get(name)
        if found is not None:
            return found
        return next((c for c in self._containers.values() if c.id == name), None)

    def add_container(self, name: str, state: ContainerState) -> None:
        """Put a container made elsewhere in place (replacing one of that name)."""
        status = "running" if state.running else "exited"
        with self._cond:
            self._containers[name] = _Container(
                state.id, name, dict(state.labels), None, status, state.exit_code, state.error
            )
            self._cond.notify_all()

    def image_id(self, image: str) -> str:
        """See :meth:`ContainerRuntime.image_id`."""
        try:
            return self.images[_with_tag(image)]
        except KeyError:
            raise ImageNotFound(
                f"image {image} not found locally: No such image: {image}"
            ) from None

    def pull(self, image: str) -> None:
        """See :meth:`ContainerRuntime.pull`."""
        self.pulls.append(image)
        try:
            self.images[_with_tag(image)] = self.registry[_with_tag(image)]
        except KeyError:
            raise ContainerError(f"{self.engine} pull {image} failed: not found") from None

    def events(self, name: str, since: float) -> FakeEventStream:
        """See :meth:`ContainerRuntime.events`."""
        return FakeEventStream(self, name, since)

    def _event(self, container: _Container, event: str) -> None:
        """Log ``event`` of ``container``; lock held."""
        self.event_log.append((time.time(), (container.name, container.id), event))
        self._cond.notify_all()

    def set_health(self, name: str, status: str) -> None:
        """Set the health status of container ``name`` (a test plays its check)."""
        with self._cond:
            found = self._find(name)
            if found is None:
                raise ContainerError(f"no such container: {name}")
            found.health = status
            self._event(found, status)

    def inspect(self, name: str) -> ContainerState | None:
        """See :meth:`ContainerRuntime.inspect`."""
        with self._cond:
            found = self._find(name)
            return None if found is None else found.state()

    def create(self, spec: ContainerSpec, digest: str) -> str:
        """See :meth:`ContainerRuntime.create`."""
        self.image_id(spec.image)
        with self._cond:
            if spec.name in self._containers:
                raise NameInUse(f"container name {spec.name} already in use")
            container = _Container(self._new_id(), spec.name, _labels(spec, digest), spec)
            self._containers[spec.name] = container
            return container.id

    def remove(self, name: str) -> None:
        """See :meth:`ContainerRuntime.remove`."""
        with self._cond:
            found = self._find(name)
            if found is not None:
                found.removed = True
                del self._containers[found.name]
                self._event(found, "destroy")

    def stop(self, name: str, timeout: int | None = None) -> None:
        """See :meth:`ContainerRuntime.stop` (the fake never waits ``timeout``)."""
        with self._cond:
            found = self._find(name)
            if found is not None and found.status == "running":
                found.status, found.exit_code = "exited", self.stop_exit_code
                self._event(found, "die")

    def wait(self, name: str) -> int:
        """See :meth:`ContainerRuntime.wait`."""
        with self._cond:
            found = self._find(name)
            if found is None:
                raise ContainerError(f"{self.engine} wait failed: No such container: {name}")
            self._cond.wait_for(lambda: found.removed or found.status != "running")
            return found.exit_code

    def start_attached(self, name: str) -> FakeAttachedClient:
        """See :meth:`ContainerRuntime.start_attached`."""
        with self._cond:
            found = self._find(name)
            if found is None:
                raise ContainerError(f"{self.engine} start failed: No such container: {name}")
            if found.status != "running":
                self._start(found)
            self._cond.notify_all()
            return FakeAttachedClient(self._cond, found, 1)

    def _start(self, container: _Container) -> None:
        """Run the container's program (or fail on an unknown network); lock held."""
        spec = container.spec
        bad = [n for n in _option_values(spec, "--network") if n not in NETWORKS] if spec else []
        if bad:
            container.status, container.exit_code = "exited", _START_FAILED
            container.error = f"network {bad[0]} not found"
            return
        code = self.program(spec) if spec is not None else None
        container.error = ""
        container.health = "starting" if _has_healthcheck(spec) else ""
        container.status = "running"
        self._event(container, "start")
        if code is not None:
            container.status, container.exit_code = "exited", code
            self._event(container, "die")


if t.TYPE_CHECKING:  # mypy holds the fake to the port
    _PORT: type[ContainerRuntime] = FakeContainerRuntime
