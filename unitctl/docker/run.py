"""docker-run's main flow: one named container in the foreground, idempotently.

:func:`run` parses the argv (:mod:`unitctl.docker.argv`), applies the pull
policy (:func:`~unitctl.docker.pull.ensure_image`) and waits for the ``--link``
targets (:func:`~unitctl.docker.links.wait_for_links`); then, under a
per-name ``flock`` (:func:`name_lock`), :func:`ensure_container` inspects the
container, keeps it when its spec hash matches, recreates it when the hash
differs and creates it when absent (``create``, never ``run -d``); an
``--ephemeral`` request removes any old container first and its own one when
it ends. With the lock released, :func:`attach` starts it attached, sends
``READY=1`` once it runs (healthy, when it has a health check:
:class:`~unitctl.docker.ready.ReadyWatch`), forwards SIGTERM and SIGINT as
``STOPPING=1`` and ``stop``, and returns the container's exit code.
:func:`main` is the entry point of ``bin/docker-run``: an error becomes one
line on stderr and its exit code.

Everything here talks to the engine through the
:class:`~unitctl.docker.runtime.ContainerRuntime` port; only :func:`run` builds
the real adapter.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sys
import threading
import time
import typing as t
from collections.abc import Iterator, Sequence
from pathlib import Path

from unitctl import machine_id
from unitctl.docker.argv import USAGE, link_targets, parse_run_argv, stop_timeout, validate_name
from unitctl.docker.links import LINK_WAIT, wait_for_links
from unitctl.docker.notify import Notifier, SdNotifier
from unitctl.docker.portvars import substitute_ports
from unitctl.docker.pull import ensure_image
from unitctl.docker.ready import ReadyWatch
from unitctl.docker.runtime import (
    AttachedClient,
    CliContainerRuntime,
    ContainerRuntime,
    NameInUse,
    one_line,
    resolve_engine,
)
from unitctl.docker.spec import ContainerSpec, spec_hash
from unitctl.errors import ContainerError, UnitctlError

__all__ = [
    "CREATE_ATTEMPTS", "LINK_WAIT", "LOCK_DIR", "MACHINE_ENV", "MACHINE_ID_FILE", "START_GRACE",
    "attach", "ensure_container", "machine_identity", "main", "name_lock", "run",
    "wait_for_links",
]  # fmt: skip

#: Environment variable overriding the machine identity (default: the machine id).
MACHINE_ENV = "UNITCTL_MACHINE"

#: Where the machine identity comes from by default (the id unitctl's agent registers).
MACHINE_ID_FILE = Path(machine_id.MACHINE_ID_FILE)

#: Directory of the per-container lock files (falls back to the temp dir).
LOCK_DIR = Path("/run/lock/unitctl-docker-run")

#: How often :func:`ensure_container` re-inspects after losing a name race.
CREATE_ATTEMPTS = 5

#: Seconds a forwarded stop waits for a container that is still being started.
START_GRACE = 10.0


def machine_identity(
    environ: t.Mapping[str, str] | None = None, machine_id_file: Path = MACHINE_ID_FILE
) -> str:
    """Return the machine docker-run runs on.

    ``$UNITCTL_MACHINE`` if set, else the machine id (``/etc/machine-id``, as
    ``unitctl list-machines`` shows it), else the hostname.
    """
    env = os.environ if environ is None else environ
    if env.get(MACHINE_ENV):
        return env[MACHINE_ENV]
    return machine_id.machine_id_or_empty(str(machine_id_file)) or socket.gethostname()


def _lock_dirs() -> Iterator[Path]:
    """Candidate lock directories, most preferred first."""
    yield LOCK_DIR
    yield Path(os.environ.get("TMPDIR", "/tmp")) / f"unitctl-docker-run-{os.getuid()}"


@contextlib.contextmanager
def name_lock(name: str) -> Iterator[Path]:
    """Hold an exclusive flock on the lock file of container ``name``.

    Uses /run/lock/unitctl-docker-run/NAME.lock, or a per-user directory in
    the temp dir when that is not writable. Yields the lock file path.
    """
    validate_name(name)
    errors: list[str] = []
    for directory in _lock_dirs():
        path = directory / f"{name}.lock"
        try:
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror}")
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield path
        finally:
            os.close(fd)
        return
    raise ContainerError(f"cannot create a lock file: {'; '.join(errors)}")


def ensure_container(runtime: ContainerRuntime, spec: ContainerSpec) -> str:
    """Make container ``spec.name`` match ``spec``; return its id. Call under name_lock.

    Keeps a container whose ``unitctl.spec-hash`` label equals the desired
    hash (running or not); force-removes and recreates one whose label differs
    or is missing; creates one when absent. A "name already in use" race makes
    it inspect again, at most CREATE_ATTEMPTS times.
    """
    digest = spec_hash(spec)
    for _ in range(CREATE_ATTEMPTS):
        state = runtime.inspect(spec.name)
        if state is not None and state.spec_hash == digest:
            return state.id
        if state is not None:
            runtime.remove(spec.name)
        try:
            return runtime.create(spec, digest)
        except NameInUse:
            continue
    raise ContainerError(
        f"container {spec.name} kept changing under docker-run; gave up after "
        f"{CREATE_ATTEMPTS} attempts"
    )


class _Stopper:
    """Signal handler turning SIGTERM/SIGINT into ``STOPPING=1`` and one ``stop`` in a thread.

    A signal that arrives while the attach client is still starting the
    container waits (up to START_GRACE seconds) until the container runs, so
    the stop is not lost on a container that was not started yet.
    """

    def __init__(
        self, runtime: ContainerRuntime, target: str, timeout: int | None, notifier: Notifier,
        stopping: threading.Event | None = None,
    ) -> None:
        self.runtime, self.target, self.timeout = runtime, target, timeout
        self.notifier = notifier
        self.stopping = stopping or threading.Event()
        self.client: AttachedClient | None = None
        self.thread: threading.Thread | None = None
        self.error: UnitctlError | None = None

    def __call__(self, signum: int, frame: object) -> None:
        """Set ``stopping``; start the stop thread once (later signals are ignored)."""
        self.stopping.set()
        if self.thread is None:
            self.notifier.notify("STOPPING=1")
            self.thread = threading.Thread(target=self._stop, daemon=True)
            self.thread.start()

    def _should_stop(self) -> bool:
        """Wait until the container runs; False when there is nothing left to stop
        (it is gone, or it does not run and the attach client has ended)."""
        deadline = time.monotonic() + START_GRACE
        while time.monotonic() < deadline:
            state = self.runtime.inspect(self.target)
            if state is None:
                return False
            if state.running:
                return True
            if self.client is not None and self.client.poll() is not None:
                return False
            time.sleep(0.1)
        return True

    def _stop(self) -> None:
        try:
            if self._should_stop():
                self.runtime.stop(self.target, self.timeout)
        except UnitctlError as exc:
            self.error = exc

    def join(self) -> None:
        """Wait for a started stop to finish."""
        if self.thread is not None:
            self.thread.join()


@contextlib.contextmanager
def _forward_signals(stopper: _Stopper) -> Iterator[None]:
    """Install ``stopper`` for SIGTERM and SIGINT; restore the old handlers after."""
    old = {sig: signal.signal(sig, stopper) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def attach(
    runtime: ContainerRuntime, container_id: str, timeout: int | None, notifier: Notifier,
    stopping: threading.Event | None = None,
) -> int:
    """Start-or-attach container ``container_id`` in the foreground; return its exit code.

    ``READY=1`` goes to ``notifier`` once the container is ready (see
    :class:`~unitctl.docker.ready.ReadyWatch`). SIGTERM/SIGINT received
    until the exit code is known become ``STOPPING=1`` and ``stop [-t
    timeout] ID``, and set ``stopping`` (the event the CLI runtime reads: its
    calls made during a stop are run again when the stop's SIGTERM reached
    them too). The exit code comes from ``inspect`` (``wait`` if the
    attach ended while the container still runs); if the container vanished
    (recreated by another docker-run), the attach client's own exit code is
    returned. A forwarded stop that failed is moot once the container ended;
    raises ContainerError when it failed and the container still runs, or
    when the engine could not start the container (inspect's ``State.Error``).
    """
    stopper = _Stopper(runtime, container_id, timeout, notifier, stopping)
    with _forward_signals(stopper):
        with ReadyWatch(runtime, container_id, notifier, time.time()):
            stopper.client = runtime.start_attached(container_id)
            client_code = stopper.client.wait()
        state = runtime.inspect(container_id)
        stopper.join()
        if state is not None and state.running:
            if stopper.error is not None:
                raise stopper.error
            code = runtime.wait(container_id)
            stopper.join()
            return code
    if state is None:
        return client_code
    if state.error:
        raise ContainerError(f"{runtime.engine} could not start the container: {state.error}")
    return state.exit_code


def run(argv: Sequence[str]) -> int:
    """Run ``docker-run`` with ``argv`` (without the program name); return the exit code.

    Idempotent: an unchanged spec starts the same container again (an
    ``--ephemeral`` one is made anew). Raises UsageError for bad argv and
    ContainerError when the engine fails or the image is not there after the
    pull policy.
    """
    request = parse_run_argv(argv)
    timeout = stop_timeout(request)
    stopping = threading.Event()
    runtime = CliContainerRuntime(resolve_engine(request.engine), stopping)
    notifier = SdNotifier()
    machine = machine_identity()
    spec = ContainerSpec(
        name=request.name,
        image=request.image,
        image_id=ensure_image(runtime, request.image, request.pull, notifier),
        options=request.options,
        command=request.command,
        machine=machine,
        link_ids=wait_for_links(runtime, link_targets(request), machine),
    )
    with name_lock(spec.name):
        if request.ephemeral:
            runtime.remove(spec.name)
        container_id = ensure_container(runtime, spec)
    try:
        return attach(runtime, container_id, timeout, notifier, stopping)
    finally:
        if request.ephemeral:
            runtime.remove(container_id)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bin/docker-run``: errors become one line on stderr.

    Returns the container's exit code, or the error's exit code after
    printing ``docker-run: error: MESSAGE``. Never shows a traceback for a
    UnitctlError.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--help"]:
        print(USAGE)
        return 0
    try:
        return run(substitute_ports(args, os.environ))
    except UnitctlError as exc:
        print(f"docker-run: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
