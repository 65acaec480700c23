"""The container engine as docker-run sees it: the port and its CLI adapter.

:class:`ContainerRuntime` is the port: the operations docker-run needs
(resolve and pull an image, inspect, create, remove, stop, wait, start
attached, follow a container's events), each
with its contract -- what ``None`` means, what is not an error, what raises.
:class:`CliContainerRuntime` is the real adapter, the only code of unitctl that
runs the container CLI (``docker`` or ``podman``; the same CLI subset is used
for both). It passes argument lists to :mod:`subprocess`, never a shell, and
maps every failure to :class:`~unitctl.errors.ContainerError` carrying the
CLI's stderr; a CLI run that SIGTERM or SIGINT ended (a unit's stop reaches
every process of its cgroup) is run again (:data:`CLI_ATTEMPTS`), not a failure.
:class:`~unitctl.docker.fake.FakeContainerRuntime` is the in-memory
implementation beside it; one contract suite
(tests/contract/test_container_runtime_contract.py) runs on both.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import typing as t

from unitctl.docker.argv import DEFAULT_ENGINE, ENGINE_ENV, SUPPORTED_ENGINES
from unitctl.docker.events import parse_event
from unitctl.docker.spec import HASH_LABEL, MACHINE_LABEL, ContainerSpec
from unitctl.errors import ContainerError, UsageError

__all__ = [
    "CLI_ATTEMPTS", "AttachedClient", "CliContainerRuntime", "ContainerRuntime", "ContainerState",
    "EventStream", "ImageNotFound", "NameInUse", "interrupted", "is_missing", "one_line",
    "resolve_engine",
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ContainerState:
    """What ``inspect`` says about an existing container.

    ``error`` is the engine's ``State.Error``: why it could not start the
    container ("" when there is none). ``has_healthcheck`` is True when the
    container has a health check (the image's HEALTHCHECK or ``--health-cmd``,
    not disabled by ``--no-healthcheck``); ``health`` is its
    ``State.Health.Status`` (``starting``, ``healthy``, ``unhealthy``; "" when
    it has none or was never started).
    """

    id: str
    running: bool
    exit_code: int
    labels: dict[str, str]
    error: str = ""
    has_healthcheck: bool = False
    health: str = ""

    @property
    def ready(self) -> bool:
        """Running, and healthy when it has a health check: what READY=1 waits for."""
        return self.running and (not self.has_healthcheck or self.health == "healthy")

    @property
    def spec_hash(self) -> str | None:
        """The ``unitctl.spec-hash`` label, or None for a container made elsewhere."""
        return self.labels.get(HASH_LABEL)


class NameInUse(ContainerError):
    """``create`` lost a race: another process made a container of that name."""


class ImageNotFound(ContainerError):
    """:meth:`ContainerRuntime.image_id`: the image is not present locally."""


class EventStream(t.Protocol):
    """A container's events as they happen, from a moment before it was opened.

    Iterating yields :data:`~unitctl.docker.events.ContainerEvent` names
    (``start``, ``healthy``, ``unhealthy``, ``die``...) and ends when the
    stream is closed or the engine ends it.
    """

    def __iter__(self) -> t.Iterator[str]:
        """The events, in order."""

    def close(self) -> None:
        """Stop following (idempotent); a running iteration ends."""


class AttachedClient(t.Protocol):
    """The attach client of a started container (a :class:`subprocess.Popen` for the CLI)."""

    def poll(self) -> int | None:
        """The client's exit code, or None while it still runs."""

    def wait(self) -> int:
        """Block until the client ends (the container stopped or vanished); its exit code."""


class ContainerRuntime(t.Protocol):
    """The container engine, as docker-run uses it. Every failure is a ContainerError.

    Containers are addressed by name or id alike.
    """

    @property
    def engine(self) -> str:
        """The engine's name as error messages show it (``docker``, ``podman``)."""

    def image_id(self, image: str) -> str:
        """The local image id of ``image``; never pulls.

        Raises ImageNotFound "image X not found locally" when it is not present.
        """

    def pull(self, image: str) -> None:
        """Pull ``image`` from its registry; the progress goes to docker-run's stderr.

        Raises ContainerError naming the image and the engine's error.
        """

    def events(self, name: str, since: float) -> EventStream:
        """Follow the events of container ``name`` from ``since`` (a ``time.time()``) on.

        Events between ``since`` and the call are not lost.
        """

    def inspect(self, name: str) -> ContainerState | None:
        """The state of container ``name``, or None when it does not exist."""

    def create(self, spec: ContainerSpec, digest: str) -> str:
        """Create (not start) the container of ``spec``; return its id.

        It carries the labels ``unitctl.spec-hash=digest``, ``unitctl.machine``
        (when ``spec.machine`` is set) and the ``--label`` options of the spec.
        Raises NameInUse when the name is taken, ContainerError otherwise.
        """

    def remove(self, name: str) -> None:
        """Force-remove container ``name`` (running or not); a missing one is not an error."""

    def stop(self, name: str, timeout: int | None = None) -> None:
        """Stop ``name``: TERM, KILL after ``timeout`` s; a missing one is not an error."""

    def wait(self, name: str) -> int:
        """Block until the started container ``name`` stops; return its exit code."""

    def start_attached(self, name: str) -> AttachedClient:
        """Start container ``name`` (or attach to it if it runs) in the foreground.

        The client ends when the container stops or is removed. A container
        that cannot be started ends the client; ``inspect`` then tells why
        (``error``).
        """


def one_line(text: str) -> str:
    """Collapse the CLI's stderr to one line for an error message."""
    return " ".join(text.split()) or "(no output)"


def is_missing(stderr: str) -> bool:
    """True when the CLI's stderr says the object does not exist."""
    lowered = stderr.lower()
    return "no such" in lowered or "not found" in lowered or "no container with name" in lowered


#: How often one CLI call is run when the stop signal ends it. Under systemd, a
#: unit's stop SIGTERMs every process of its cgroup, docker-run's CLI children too,
#: also those forked while systemd's kill loop runs: the forwarded stop's own
#: ``inspect`` or ``stop``, or the ``inspect`` that reads the exit code. docker-run
#: handles the signal (it is the stop it forwards); its engine calls are not what
#: was stopped, so they run again, once the kill loop is over.
CLI_ATTEMPTS = 3

#: The CLI's return codes when SIGTERM or SIGINT ended it: killed by the signal
#: (negative), or exited 128 + signal (docker's own handler).
_INTERRUPTED = frozenset(code for sig in (signal.SIGTERM, signal.SIGINT)
                         for code in (-sig, 128 + sig))


def interrupted(returncode: int) -> bool:
    """True when a CLI run ended because SIGTERM or SIGINT reached it."""
    return returncode in _INTERRUPTED


def resolve_engine(flag: str | None, environ: t.Mapping[str, str] | None = None) -> str:
    """Return the engine: ``flag``, else ``$UNITCTL_CONTAINER_ENGINE``, else ``docker``.

    A path is allowed when its basename is a supported engine. Raises
    UsageError otherwise.
    """
    env = os.environ if environ is None else environ
    engine = flag or env.get(ENGINE_ENV) or DEFAULT_ENGINE
    if os.path.basename(engine) not in SUPPORTED_ENGINES:
        raise UsageError(
            f"unsupported container engine {engine!r}: use one of {', '.join(SUPPORTED_ENGINES)}"
        )
    return engine


#: The events docker-run follows (``health_status`` matches every health status).
_FOLLOWED = ("start", "die", "destroy", "health_status")


def _has_healthcheck(config: t.Mapping[str, t.Any]) -> bool:
    """True when ``Config.Healthcheck.Test`` is a check (not absent, not ``["NONE"]``)."""
    test = (config.get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def _parse_inspect(stdout: str) -> ContainerState:
    """The ContainerState of ``container inspect`` JSON; raises on malformed output."""
    data = json.loads(stdout)[0]
    state = data["State"]
    return ContainerState(
        id=str(data["Id"]),
        running=bool(state["Running"]),
        exit_code=int(state["ExitCode"]),
        labels=dict(data["Config"].get("Labels") or {}),
        error=str(state.get("Error") or ""),
        has_healthcheck=_has_healthcheck(data["Config"]),
        health=str((state.get("Health") or {}).get("Status") or ""),
    )


class CliEventStream:
    """The :class:`EventStream` of an ``events`` child process reading JSON lines."""

    def __init__(self, argv: list[str]) -> None:
        """Spawn ``argv`` (no shell); its stderr is docker-run's."""
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, text=True)
        except OSError as exc:
            raise ContainerError(f"cannot run {argv[0]}: {exc}") from exc

    def __iter__(self) -> t.Iterator[str]:
        """Each line's event name; lines that are not events are skipped."""
        stdout = self._proc.stdout
        assert stdout is not None
        with stdout:
            for line in stdout:
                event = parse_event(line)
                if event is not None:
                    yield event

    def close(self) -> None:
        """End the child: its stdout reaches its end, so a running iteration ends."""
        if self._proc.poll() is None:
            self._proc.terminate()
        self._proc.wait()


class CliContainerRuntime:
    """The :class:`ContainerRuntime` of the docker/podman CLI.

    Only argument lists are passed to ``subprocess``; no shell is involved.
    """

    def __init__(self, engine: str = DEFAULT_ENGINE,
                 stopping: threading.Event | None = None) -> None:
        """Use ``engine`` (a name on PATH or a path) as the CLI binary; ``stopping`` is
        set once docker-run received its stop signal (see :meth:`_run`)."""
        self.engine = engine
        self.stopping = stopping or threading.Event()

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``engine ARGS`` capturing output; raise ContainerError when it fails.

        A run the stop signal ended (:func:`interrupted`, or any failure but "no
        such container" once ``stopping`` is set: docker's CLI ends a request that
        SIGTERM cancelled with exit 1, ``error during connect: …``) is run again,
        up to CLI_ATTEMPTS times: see :data:`CLI_ATTEMPTS`.
        """
        cmd = [self.engine, *args]
        for _ in range(CLI_ATTEMPTS):
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            except FileNotFoundError:
                raise ContainerError(
                    f"container engine {self.engine!r} not found in PATH") from None
            except OSError as exc:
                raise ContainerError(f"cannot run {self.engine}: {exc}") from exc
            if not (interrupted(proc.returncode) or (
                    proc.returncode != 0 and self.stopping.is_set()
                    and not is_missing(proc.stderr))):
                break
        if check and proc.returncode != 0:
            raise ContainerError(
                f"{self.engine} {args[0]} failed (exit {proc.returncode}): {one_line(proc.stderr)}"
            )
        return proc

    def image_id(self, image: str) -> str:
        """See :meth:`ContainerRuntime.image_id`."""
        proc = self._run("image", "inspect", "--format", "{{.Id}}", image, check=False)
        if proc.returncode != 0:
            if is_missing(proc.stderr):
                raise ImageNotFound(f"image {image} not found locally: {one_line(proc.stderr)}")
            raise ContainerError(f"{self.engine} image inspect failed: {one_line(proc.stderr)}")
        return proc.stdout.strip()

    def pull(self, image: str) -> None:
        """See :meth:`ContainerRuntime.pull`: ``pull IMAGE``, its stdout on our stderr."""
        try:
            proc = subprocess.run([self.engine, "pull", image], stdin=subprocess.DEVNULL,
                                  stdout=sys.stderr.fileno(), stderr=subprocess.PIPE,
                                  text=True, check=False)
        except OSError as exc:
            raise ContainerError(f"cannot run {self.engine}: {exc}") from exc
        if proc.returncode != 0:
            raise ContainerError(f"{self.engine} pull {image} failed: {one_line(proc.stderr)}")

    def events(self, name: str, since: float) -> CliEventStream:
        """See :meth:`ContainerRuntime.events`: ``events --since --filter container=``."""
        kinds = [a for event in _FOLLOWED for a in ("--filter", f"event={event}")]
        return CliEventStream([
            self.engine, "events", "--since", f"{since:.6f}", "--filter", f"container={name}",
            *kinds, "--format", "{{json .}}",
        ])  # fmt: skip

    def inspect(self, name: str) -> ContainerState | None:
        """See :meth:`ContainerRuntime.inspect`."""
        proc = self._run("container", "inspect", name, check=False)
        if proc.returncode != 0:
            if is_missing(proc.stderr):
                return None
            raise ContainerError(f"{self.engine} container inspect failed: {one_line(proc.stderr)}")
        try:
            return _parse_inspect(proc.stdout)
        except (ValueError, LookupError, TypeError) as exc:
            raise ContainerError(f"cannot read {self.engine} inspect output: {exc}") from exc

    def create(self, spec: ContainerSpec, digest: str) -> str:
        """See :meth:`ContainerRuntime.create`."""
        machine = ("--label", f"{MACHINE_LABEL}={spec.machine}") if spec.machine else ()
        args = [
            "create", "--name", spec.name, "--label", f"{HASH_LABEL}={digest}", *machine,
            *spec.options, spec.image, *spec.command,
        ]  # fmt: skip
        proc = self._run(*args, check=False)
        if proc.returncode != 0:
            err = one_line(proc.stderr)
            if "already in use" in err or "already exists" in err:
                raise NameInUse(f"container name {spec.name} already in use: {err}")
            raise ContainerError(f"{self.engine} create failed: {err}")
        return proc.stdout.strip().splitlines()[-1]

    def remove(self, name: str) -> None:
        """See :meth:`ContainerRuntime.remove`."""
        proc = self._run("rm", "-f", name, check=False)
        if proc.returncode != 0 and not is_missing(proc.stderr):
            raise ContainerError(f"{self.engine} rm failed: {one_line(proc.stderr)}")

    def stop(self, name: str, timeout: int | None = None) -> None:
        """See :meth:`ContainerRuntime.stop`."""
        extra = ("-t", str(timeout)) if timeout is not None else ()
        proc = self._run("stop", *extra, name, check=False)
        if proc.returncode != 0 and not is_missing(proc.stderr):
            raise ContainerError(f"{self.engine} stop failed: {one_line(proc.stderr)}")

    def wait(self, name: str) -> int:
        """See :meth:`ContainerRuntime.wait`."""
        out = self._run("wait", name).stdout.strip().splitlines()
        try:
            return int(out[-1])
        except (IndexError, ValueError):
            raise ContainerError(f"{self.engine} wait printed no exit code") from None

    def start_attached(self, name: str) -> subprocess.Popen[bytes]:
        """Spawn ``start --attach NAME`` sharing our stdout/stderr.

        The child gets its own session so a terminal's Ctrl-C reaches only
        docker-run, which turns it into ``stop``. ``start --attach`` on an
        already running container attaches to it (checked on docker 20.10).
        """
        try:
            return subprocess.Popen(
                [self.engine, "start", "--attach", name],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise ContainerError(f"cannot run {self.engine}: {exc}") from exc
