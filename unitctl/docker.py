"""Run one named container in the foreground under systemd, idempotently.

This is the only module of unitctl that runs the container CLI (``docker`` or
``podman``; the same CLI subset is used for both). It backs ``bin/docker-run``::

    docker-run [--engine docker|podman] [docker run options] IMAGE [CMD...]

The module has a pure part and an impure part.

Pure (no I/O, fully unit-testable):

* :func:`parse_run_argv` turns the argv into a :class:`RunRequest`: the docker
  options, normalized to ``--long-flag=value`` tokens, the image and the
  command. ``--name`` is required; ``-d/--detach`` and ``--rm`` are refused.
* :class:`ContainerSpec` and :func:`spec_hash`: the desired container and its
  fingerprint (sha256 over image id, normalized options and command). The hash
  is stored on the container as the label ``unitctl.spec-hash``. The machine
  docker-run runs on (:func:`machine_identity`) is part of the spec and of the
  hash and is stored as the label ``unitctl.machine``: on an engine shared by
  several machines, a container left by another machine is never adopted.
* :func:`parse_port`: the ``[IP:][HOST:]CONTAINER[/PROTO]`` syntax of ``-p``.

Impure:

* :class:`ContainerRuntime` wraps the CLI with ``subprocess`` (argument lists,
  never a shell) and maps its failures to :class:`~unitctl.errors.ContainerError`
  carrying the CLI's stderr.
* :func:`run` is the main flow: under a per-name ``flock`` it inspects the
  container, keeps it when its spec hash matches, recreates it when the hash
  differs and creates it when absent (``create``, never ``run -d``); then,
  with the lock released, it attaches with ``start --attach``, forwards SIGTERM
  and SIGINT as ``stop`` and returns the container's exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t
from collections.abc import Iterator, Sequence
from pathlib import Path

from unitctl.errors import ContainerError, UnitctlError, UsageError

#: Label carrying the spec hash on every container docker-run creates.
HASH_LABEL = "unitctl.spec-hash"

#: Label naming the machine whose docker-run created the container (part of the spec hash).
MACHINE_LABEL = "unitctl.machine"

#: Environment variable overriding the machine identity (default: the machine id).
MACHINE_ENV = "UNITCTL_MACHINE"

#: Where the machine identity comes from by default (the id unitctl's agent registers).
MACHINE_ID_FILE = Path("/etc/machine-id")

#: Labels only docker-run sets.
RESERVED_LABELS = (HASH_LABEL, MACHINE_LABEL)

#: Environment variable choosing the engine when ``--engine`` is not given.
ENGINE_ENV = "UNITCTL_CONTAINER_ENGINE"

#: Engines whose CLI subset this module relies on.
SUPPORTED_ENGINES = ("docker", "podman")

#: Directory of the per-container lock files (falls back to the temp dir).
LOCK_DIR = Path("/run/lock/unitctl-docker-run")

#: How often :func:`ensure_container` re-inspects after losing a name race.
CREATE_ATTEMPTS = 5

#: Seconds a forwarded stop waits for a container that is still being started.
START_GRACE = 10.0

#: Seconds docker-run waits for the containers named by ``--link`` to run.
LINK_WAIT = 30.0

# Short flags and their long names.
_SHORT_TO_LONG: dict[str, str] = {
    "-e": "--env",
    "-p": "--publish",
    "-v": "--volume",
    "-l": "--label",
    "-m": "--memory",
    "-w": "--workdir",
    "-u": "--user",
    "-h": "--hostname",
    "-a": "--attach",
    "-i": "--interactive",
    "-t": "--tty",
    "-P": "--publish-all",
    "-d": "--detach",
    "-c": "--cpu-shares",
}

# Long flags of `docker run` that take a value.
_VALUE_FLAGS: frozenset[str] = frozenset(
    {
        "--add-host", "--attach", "--blkio-weight", "--cap-add", "--cap-drop",
        "--cgroup-parent", "--cgroupns", "--cidfile", "--cpu-period", "--cpu-quota",
        "--cpu-shares", "--cpus", "--cpuset-cpus", "--cpuset-mems", "--device",
        "--device-cgroup-rule", "--dns", "--dns-option", "--dns-search", "--domainname",
        "--entrypoint", "--env", "--env-file", "--expose", "--gpus", "--group-add",
        "--health-cmd", "--health-interval", "--health-retries", "--health-start-period",
        "--health-timeout", "--hostname", "--ip", "--ip6", "--ipc", "--isolation",
        "--label", "--label-file", "--link", "--log-driver", "--log-opt", "--mac-address",
        "--memory", "--memory-reservation", "--memory-swap", "--memory-swappiness",
        "--mount", "--name", "--network", "--network-alias", "--oom-score-adj", "--pid",
        "--pids-limit", "--platform", "--publish", "--restart", "--runtime",
        "--security-opt", "--shm-size", "--stop-signal", "--stop-timeout", "--storage-opt",
        "--sysctl", "--tmpfs", "--ulimit", "--user", "--userns", "--uts", "--volume",
        "--volumes-from", "--workdir",
    }
)  # fmt: skip

# Long flags of `docker run` that take no value.
_BOOL_FLAGS: frozenset[str] = frozenset(
    {
        "--detach", "--init", "--interactive", "--no-healthcheck", "--oom-kill-disable",
        "--privileged", "--publish-all", "--read-only", "--rm", "--sig-proxy", "--tty",
    }
)  # fmt: skip

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,199}$")
_PORT_RE = re.compile(r"^(?P<lo>\d{1,5})(?:-(?P<hi>\d{1,5}))?$")

_REFUSED: dict[str, str] = {
    "--detach": (
        "-d/--detach is refused: under systemd the container must stay in the "
        "foreground (docker-run attaches to it and exits with its exit code)"
    ),
    "--rm": (
        "--rm is refused: it defeats idempotent restart (docker-run keeps the "
        "container and starts the same one again while its spec is unchanged)"
    ),
}

USAGE = "usage: docker-run [--engine docker|podman] --name NAME [docker run options] IMAGE [CMD...]"


# --------------------------------------------------------------------------- pure part


@dataclasses.dataclass(frozen=True)
class PortMapping:
    """One ``-p`` value: ``[IP:][HOST:]CONTAINER[/PROTO]`` (ports may be ranges)."""

    container: str
    host: str | None = None
    ip: str | None = None
    proto: str = "tcp"

    def __str__(self) -> str:
        """Render in docker's syntax; ``parse_port(str(m)) == m`` holds."""
        ip = f"[{self.ip}]" if self.ip is not None and ":" in self.ip else self.ip
        parts = [p for p in (ip, self.host) if p is not None]
        if self.ip is not None and self.host is None:
            parts.append("")
        parts.append(self.container)
        return ":".join(parts) + ("" if self.proto == "tcp" else f"/{self.proto}")


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """The parsed argv of ``docker-run``.

    ``options`` are normalized ``--long-flag`` or ``--long-flag=value`` tokens
    and exclude ``--name`` (held in ``name``); ``engine`` is the ``--engine``
    value or None when not given.
    """

    name: str
    image: str
    options: tuple[str, ...]
    command: tuple[str, ...]
    engine: str | None = None

    def option_values(self, flag: str) -> list[str]:
        """Return the values given for the long ``flag`` in order (``[]`` if absent)."""
        prefix = flag + "="
        return [o[len(prefix) :] for o in self.options if o.startswith(prefix)]


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    """The container docker-run wants: what :func:`spec_hash` fingerprints.

    ``image`` is the reference the user gave, ``image_id`` what it resolved to
    (so re-tagging an image changes the hash); ``options`` are normalized
    tokens as produced by :func:`parse_run_argv`. ``machine`` is the identity
    of the machine creating the container ("" for none): it becomes the
    ``unitctl.machine`` label and is part of the hash. ``link_ids`` are the
    ids of the ``--link`` target containers (see :func:`wait_for_links`).
    """

    name: str
    image: str
    image_id: str
    options: tuple[str, ...]
    command: tuple[str, ...]
    machine: str = ""
    link_ids: tuple[str, ...] = ()


def spec_hash(spec: ContainerSpec) -> str:
    """Return the hex sha256 of the image id, options, command, machine and link ids.

    The name and the image reference are not part of it: the same options on
    the same image content give the same hash. Deterministic across runs.

    The machine is part of it (when not empty; an empty machine leaves the
    hash as it was before machines were hashed): where several machines share
    one engine, the container of a unit that moved here from a machine that
    died is "different" and gets recreated instead of adopted, so nothing of
    the old machine keeps running under the unit's name. With one engine per
    machine the identity is constant, so it never causes drift. The ids of
    the ``--link`` targets are part of it too (see :func:`wait_for_links`).
    """
    fields: dict[str, t.Any] = {
        "image_id": spec.image_id,
        "options": list(spec.options),
        "command": list(spec.command),
    }
    if spec.machine:
        fields["machine"] = spec.machine
    if spec.link_ids:
        fields["link_ids"] = list(spec.link_ids)
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def validate_name(name: str) -> str:
    """Return ``name`` if docker accepts it as a container name, else raise UsageError."""
    if not _NAME_RE.match(name):
        raise UsageError(
            f"invalid container name {name!r}: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, at most 200 characters)"
        )
    return name


def _parse_port_number(text: str, value: str) -> str:
    """Check one port or ``LO-HI`` range in 1..65535; return it unchanged."""
    match = _PORT_RE.match(text)
    if match is None:
        raise UsageError(f"bad port {value!r}: {text!r} is not a port number or range")
    lo = int(match["lo"])
    hi = int(match["hi"]) if match["hi"] is not None else lo
    if not (1 <= lo <= hi <= 65535):
        raise UsageError(f"bad port {value!r}: {text!r} is out of range 1-65535")
    return text


def _split_ip(value: str) -> tuple[str | None, str]:
    """Split a leading ``[v6]:`` or ``v4:`` address off a publish value."""
    if value.startswith("["):
        end = value.find("]:")
        if end < 0:
            raise UsageError(f"bad port {value!r}: unterminated IPv6 address")
        return value[1:end], value[end + 2 :]
    parts = value.split(":")
    if len(parts) == 3:
        return parts[0], ":".join(parts[1:])
    return None, value


def parse_port(value: str) -> PortMapping:
    """Parse docker's ``-p`` syntax ``[IP:][HOST:]CONTAINER[/tcp|udp|sctp]``.

    Raises UsageError naming the value when a part is malformed, a port is out
    of 1..65535, the protocol is unknown or the IP is not an IP address.
    """
    rest, _, proto = value.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise UsageError(f"bad port {value!r}: protocol must be tcp, udp or sctp")
    ip, rest = _split_ip(rest)
    if ip is not None:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise UsageError(f"bad port {value!r}: {ip!r} is not an IP address") from None
    parts = rest.split(":")
    if len(parts) > 2 or not parts[-1]:
        raise UsageError(f"bad port {value!r}: expected [IP:][HOST:]CONTAINER[/PROTO]")
    host = parts[0] if len(parts) == 2 and parts[0] else None
    if host is not None:
        _parse_port_number(host, value)
    container = _parse_port_number(parts[-1], value)
    return PortMapping(container=container, host=host, ip=ip, proto=proto)


def _long_name(flag: str) -> str:
    """Map a short flag to its long name; reject flags docker-run does not know."""
    long = _SHORT_TO_LONG.get(flag, flag)
    if long not in _VALUE_FLAGS and long not in _BOOL_FLAGS:
        raise UsageError(f"unknown docker run option {flag!r}")
    if long in _REFUSED:
        raise UsageError(_REFUSED[long])
    return long


def _check_option(flag: str, value: str) -> None:
    """Validate the values docker-run cares about (name, ports, reserved labels)."""
    if flag == "--publish":
        parse_port(value)
    elif flag == "--label" and value.split("=", 1)[0] in RESERVED_LABELS:
        raise UsageError(f"label {value.split('=', 1)[0]!r} is reserved for docker-run")
    elif flag == "--name":
        validate_name(value)


def _expand_short_cluster(token: str) -> list[str]:
    """Split ``-it`` into ``-i -t`` and ``-eK=V`` into ``-e K=V`` (docker's rules).

    ``-p=80:80`` is left whole: the caller splits it at ``=``.
    """
    if token[2] == "=":
        return [token]
    out: list[str] = []
    for i, char in enumerate(token[1:], start=1):
        flag = "-" + char
        out.append(flag)
        if _long_name(flag) in _VALUE_FLAGS:
            if token[i + 1 :]:
                out.append(token[i + 1 :])
            break
    return out


def _split_options(argv: Sequence[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Split argv into ``(long_flag, value)`` pairs and the positional rest.

    Contract: the rest starts with the image (or is empty); a value flag
    without a value raises UsageError.
    """
    pairs: list[tuple[str, str | None]] = []
    args = list(argv)
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            return pairs, args[i + 1 :]
        if not token.startswith("-") or token == "-":
            return pairs, args[i:]
        if not token.startswith("--") and len(token) > 2:
            args[i : i + 1] = _expand_short_cluster(token)
            token = args[i]
        flag, eq, inline = token.partition("=")
        long = _long_name(flag)
        if long in _BOOL_FLAGS:
            pairs.append((long, inline if eq else None))
            i += 1
            continue
        if eq:
            value, i = inline, i + 1
        elif i + 1 < len(args):
            value, i = args[i + 1], i + 2
        else:
            raise UsageError(f"option {flag} needs a value")
        _check_option(long, value)
        pairs.append((long, value))
    return pairs, []


def _split_engine(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Take docker-run's own leading ``--engine X``/``--engine=X`` off argv."""
    args = list(argv)
    if args and args[0].startswith("--engine="):
        return args[0].split("=", 1)[1], args[1:]
    if args and args[0] == "--engine":
        if len(args) < 2:
            raise UsageError("option --engine needs a value")
        return args[1], args[2:]
    return None, args


def parse_run_argv(argv: Sequence[str]) -> RunRequest:
    """Parse ``[--engine E] [docker run options] IMAGE [CMD...]`` into a RunRequest.

    Options are normalized to ``--long`` / ``--long=value`` tokens in the
    given order (``--name`` removed). Raises UsageError for: a missing
    ``--name`` or image, ``-d/--detach``, ``--rm``, unknown options, a value
    option without a value, a bad ``-p`` value, a bad name, or a reserved
    label (``unitctl.spec-hash``, ``unitctl.machine``).
    """
    engine, args = _split_engine(argv)
    pairs, rest = _split_options(args)
    names = [v for f, v in pairs if f == "--name" and v is not None]
    if not names:
        raise UsageError("--name is required: docker-run manages exactly one named container")
    if len(names) > 1:
        raise UsageError("--name given more than once")
    if not rest:
        raise UsageError("missing IMAGE after the options")
    options = tuple(f if v is None else f"{f}={v}" for f, v in pairs if f != "--name")
    return RunRequest(names[0], rest[0], options, tuple(rest[1:]), engine)


def link_targets(request: RunRequest) -> list[str]:
    """Return the container names of the request's ``--link NAME[:ALIAS]`` options."""
    return [v.split(":", 1)[0].lstrip("/") for v in request.option_values("--link")]


def stop_timeout(request: RunRequest) -> int | None:
    """Return the ``--stop-timeout`` seconds of the request, or None if not given."""
    values = request.option_values("--stop-timeout")
    if not values:
        return None
    try:
        return int(values[-1])
    except ValueError:
        raise UsageError(f"--stop-timeout must be an integer, got {values[-1]!r}") from None


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
    try:
        machine_id = machine_id_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        machine_id = ""
    return machine_id or socket.gethostname()


def resolve_engine(flag: str | None, environ: t.Mapping[str, str] | None = None) -> str:
    """Return the engine: ``flag``, else ``$UNITCTL_CONTAINER_ENGINE``, else ``docker``.

    A path is allowed when its basename is a supported engine. Raises
    UsageError otherwise.
    """
    env = os.environ if environ is None else environ
    engine = flag or env.get(ENGINE_ENV) or "docker"
    if os.path.basename(engine) not in SUPPORTED_ENGINES:
        raise UsageError(
            f"unsupported container engine {engine!r}: use one of {', '.join(SUPPORTED_ENGINES)}"
        )
    return engine


# --------------------------------------------------------------------------- impure part


@dataclasses.dataclass(frozen=True)
class ContainerState:
    """What ``inspect`` says about an existing container."""

    id: str
    running: bool
    exit_code: int
    labels: dict[str, str]
    error: str = ""

    @property
    def spec_hash(self) -> str | None:
        """The ``unitctl.spec-hash`` label, or None for a container made elsewhere."""
        return self.labels.get(HASH_LABEL)


class NameInUse(ContainerError):
    """``create`` lost a race: another process made a container of that name."""


def _one_line(text: str) -> str:
    """Collapse the CLI's stderr to one line for an error message."""
    return " ".join(text.split()) or "(no output)"


def _is_missing(stderr: str) -> bool:
    """True when the CLI's stderr says the object does not exist."""
    lowered = stderr.lower()
    return "no such" in lowered or "not found" in lowered or "no container with name" in lowered


class ContainerRuntime:
    """Thin wrapper over the docker/podman CLI; every failure is a ContainerError.

    Only argument lists are passed to ``subprocess``; no shell is involved.
    """

    def __init__(self, engine: str = "docker") -> None:
        """Use ``engine`` (a name on PATH or a path) as the CLI binary."""
        self.engine = engine

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``engine ARGS`` capturing output; raise ContainerError when it fails."""
        cmd = [self.engine, *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise ContainerError(f"container engine {self.engine!r} not found in PATH") from None
        except OSError as exc:
            raise ContainerError(f"cannot run {self.engine}: {exc}") from exc
        if check and proc.returncode != 0:
            raise ContainerError(
                f"{self.engine} {args[0]} failed (exit {proc.returncode}): {_one_line(proc.stderr)}"
            )
        return proc

    def image_id(self, image: str) -> str:
        """Return the local image id of ``image``; never pulls.

        Raises ContainerError "image X not found" when it is not present.
        """
        proc = self._run("image", "inspect", "--format", "{{.Id}}", image, check=False)
        if proc.returncode != 0:
            if _is_missing(proc.stderr):
                raise ContainerError(
                    f"image {image} not found locally (docker-run never pulls; "
                    f"load or build it first): {_one_line(proc.stderr)}"
                )
            raise ContainerError(f"{self.engine} image inspect failed: {_one_line(proc.stderr)}")
        return proc.stdout.strip()

    def inspect(self, name: str) -> ContainerState | None:
        """Return the state of container ``name`` (or id), or None when it does not exist."""
        proc = self._run("container", "inspect", name, check=False)
        if proc.returncode != 0:
            if _is_missing(proc.stderr):
                return None
            raise ContainerError(
                f"{self.engine} container inspect failed: {_one_line(proc.stderr)}"
            )
        try:
            data = json.loads(proc.stdout)[0]
            return ContainerState(
                id=str(data["Id"]),
                running=bool(data["State"]["Running"]),
                exit_code=int(data["State"]["ExitCode"]),
                labels=dict(data["Config"].get("Labels") or {}),
                error=str(data["State"].get("Error") or ""),
            )
        except (ValueError, LookupError, TypeError) as exc:
            raise ContainerError(f"cannot read {self.engine} inspect output: {exc}") from exc

    def create(self, spec: ContainerSpec, digest: str) -> str:
        """Create (not start) the container with the hash (and machine) label; return its id.

        Raises NameInUse when the name is taken, ContainerError otherwise.
        """
        machine = ("--label", f"{MACHINE_LABEL}={spec.machine}") if spec.machine else ()
        args = [
            "create", "--name", spec.name, "--label", f"{HASH_LABEL}={digest}", *machine,
            *spec.options, spec.image, *spec.command,
        ]  # fmt: skip
        proc = self._run(*args, check=False)
        if proc.returncode != 0:
            err = _one_line(proc.stderr)
            if "already in use" in err or "already exists" in err:
                raise NameInUse(f"container name {spec.name} already in use: {err}")
            raise ContainerError(f"{self.engine} create failed: {err}")
        return proc.stdout.strip().splitlines()[-1]

    def remove(self, name: str) -> None:
        """Force-remove container ``name``; a missing container is not an error."""
        proc = self._run("rm", "-f", name, check=False)
        if proc.returncode != 0 and not _is_missing(proc.stderr):
            raise ContainerError(f"{self.engine} rm failed: {_one_line(proc.stderr)}")

    def stop(self, name: str, timeout: int | None = None) -> None:
        """Stop container ``name`` (``-t timeout`` when given); a missing one is not an error."""
        extra = ("-t", str(timeout)) if timeout is not None else ()
        proc = self._run("stop", *extra, name, check=False)
        if proc.returncode != 0 and not _is_missing(proc.stderr):
            raise ContainerError(f"{self.engine} stop failed: {_one_line(proc.stderr)}")

    def wait(self, name: str) -> int:
        """Block until container ``name`` stops; return its exit code."""
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
    """Signal handler turning SIGTERM/SIGINT into one ``stop`` in a thread.

    A signal that arrives while the attach client is still starting the
    container waits (up to START_GRACE seconds) until the container runs, so
    the stop is not lost on a container that was not started yet.
    """

    def __init__(self, runtime: ContainerRuntime, target: str, timeout: int | None) -> None:
        self.runtime, self.target, self.timeout = runtime, target, timeout
        self.client: subprocess.Popen[bytes] | None = None
        self.thread: threading.Thread | None = None
        self.error: UnitctlError | None = None

    def __call__(self, signum: int, frame: object) -> None:
        """Start the stop thread once; later signals are ignored."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._stop, daemon=True)
            self.thread.start()

    def _should_stop(self) -> bool:
        """Wait until the container runs; False when there is nothing left to stop."""
        deadline = time.monotonic() + START_GRACE
        while time.monotonic() < deadline:
            if self.client is not None and self.client.poll() is not None:
                return False
            state = self.runtime.inspect(self.target)
            if state is None:
                return False
            if state.running:
                return True
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


def attach(runtime: ContainerRuntime, container_id: str, timeout: int | None) -> int:
    """Start-or-attach container ``container_id`` in the foreground; return its exit code.

    SIGTERM/SIGINT received meanwhile become ``stop [-t timeout] ID``. The
    exit code comes from ``inspect`` (``wait`` if the attach ended while the
    container still runs); if the container vanished (recreated by another
    docker-run), the attach client's own exit code is returned. Raises
    ContainerError when the forwarded stop failed or the engine could not
    start the container (inspect's ``State.Error``).
    """
    stopper = _Stopper(runtime, container_id, timeout)
    with _forward_signals(stopper):
        stopper.client = runtime.start_attached(container_id)
        client_code = stopper.client.wait()
    stopper.join()
    if stopper.error is not None:
        raise stopper.error
    state = runtime.inspect(container_id)
    if state is None:
        return client_code
    if state.running:
        return runtime.wait(container_id)
    if state.error:
        raise ContainerError(f"{runtime.engine} could not start the container: {state.error}")
    return state.exit_code


def wait_for_links(
    runtime: ContainerRuntime, targets: Sequence[str], machine: str, timeout: float = LINK_WAIT
) -> tuple[str, ...]:
    """Wait until every ``--link`` target container runs here; return their ids.

    Why: a unit ordered ``After=`` its linked unit starts once that unit's
    docker-run has started, not once its container runs, and docker refuses to
    start a container whose link target does not run. And docker binds a link
    to the target's container id: a linking container made before its target
    was recreated (e.g. a unit that moved machines) can never start again
    ("Cannot link to a non running container"). The ids go into the spec hash,
    so such a container is recreated instead.

    A target labelled ``unitctl.machine`` with another machine than ``machine``
    is a leftover of that machine on a shared engine, about to be recreated by
    the target's own docker-run here: it does not count as running.
    Raises ContainerError when a target still does not run after ``timeout``
    seconds.
    """

    def ready(state: ContainerState | None) -> bool:
        return (
            state is not None
            and state.running
            and state.labels.get(MACHINE_LABEL, machine) == machine
        )

    ids: list[str] = []
    for target in targets:
        deadline = time.monotonic() + timeout
        state = runtime.inspect(target)
        while state is None or not ready(state):
            if time.monotonic() >= deadline:
                why = (
                    "missing" if state is None
                    else "not running" if not state.running
                    else f"left by machine {state.labels.get(MACHINE_LABEL)}"
                )  # fmt: skip
                raise ContainerError(f"linked container {target} is {why} after {timeout:g}s")
            time.sleep(0.2)
            state = runtime.inspect(target)
        ids.append(state.id)
    return tuple(ids)


def run(argv: Sequence[str]) -> int:
    """Run ``docker-run`` with ``argv`` (without the program name); return the exit code.

    Idempotent: an unchanged spec starts the same container again. Raises
    UsageError for bad argv and ContainerError when the engine fails or the
    image is not present locally.
    """
    request = parse_run_argv(argv)
    timeout = stop_timeout(request)
    runtime = ContainerRuntime(resolve_engine(request.engine))
    machine = machine_identity()
    spec = ContainerSpec(
        name=request.name,
        image=request.image,
        image_id=runtime.image_id(request.image),
        options=request.options,
        command=request.command,
        machine=machine,
        link_ids=wait_for_links(runtime, link_targets(request), machine),
    )
    with name_lock(spec.name):
        container_id = ensure_container(runtime, spec)
    return attach(runtime, container_id, timeout)


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
        return run(args)
    except UnitctlError as exc:
        print(f"docker-run: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
