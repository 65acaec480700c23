"""The argv of ``docker-run``, parsed: pure (no I/O), fully unit-testable.

::

    docker-run [--engine docker|podman] [docker run options] IMAGE [CMD...]

:func:`parse_run_argv` turns the argv into a :class:`RunRequest`: the docker
options, normalized to ``--long-flag=value`` tokens, the image and the command.
``--name`` is required; ``-d/--detach`` and ``--rm`` are refused; ``--pull``
(docker's flag, with podman's ``newer`` added) and docker-run's own
``--ephemeral`` are taken off the options into the request; the labels of
:data:`~unitctl.docker.spec.RESERVED_LABELS` may not be set. :func:`parse_port`
parses the ``[IP:][HOST:]CONTAINER[/PROTO]`` syntax of ``-p`` into a
:class:`PortMapping` (``unitctl generate`` uses it too). Every bad input raises
:class:`~unitctl.errors.UsageError` naming the offending value.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Sequence

from unitctl.docker.spec import RESERVED_LABELS
from unitctl.errors import UsageError

__all__ = [
    "DEFAULT_ENGINE", "DEFAULT_PULL", "ENGINE_ENV", "PULL_POLICIES", "SUPPORTED_ENGINES", "USAGE",
    "PortMapping", "RunRequest",
    "link_targets", "parse_port", "parse_run_argv", "stop_timeout", "validate_name",
]  # fmt: skip

#: Environment variable choosing the engine when ``--engine`` is not given.
ENGINE_ENV = "UNITCTL_CONTAINER_ENGINE"

#: Engines whose CLI subset docker-run relies on.
SUPPORTED_ENGINES = ("docker", "podman")

#: The engine used when neither ``--engine`` nor ``$UNITCTL_CONTAINER_ENGINE`` names one.
DEFAULT_ENGINE = SUPPORTED_ENGINES[0]

#: Pull policies of ``--pull``: docker run's three and podman's ``newer``.
PULL_POLICIES = ("missing", "always", "never", "newer")

#: The policy when ``--pull`` is not given: ``docker run``'s.
DEFAULT_PULL = PULL_POLICIES[0]

# Options docker-run acts on itself: never passed to the engine, not in the spec hash.
_WRAPPER_FLAGS = frozenset({"--pull", "--ephemeral"})

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
        "--pids-limit", "--platform", "--publish", "--pull", "--restart", "--runtime",
        "--security-opt", "--shm-size", "--stop-signal", "--stop-timeout", "--storage-opt",
        "--sysctl", "--tmpfs", "--ulimit", "--user", "--userns", "--uts", "--volume",
        "--volumes-from", "--workdir",
    }
)  # fmt: skip

# Long flags of `docker run` that take no value.
_BOOL_FLAGS: frozenset[str] = frozenset(
    {
        "--detach", "--ephemeral", "--init", "--interactive", "--no-healthcheck",
        "--oom-kill-disable", "--privileged", "--publish-all", "--read-only", "--rm",
        "--sig-proxy", "--tty",
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

USAGE = (
    "usage: docker-run [--engine docker|podman] --name NAME [--pull missing|always|never|newer]"
    " [--ephemeral] [docker run options] IMAGE [CMD...]"
)


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
    value or None when not given. ``pull`` is the ``--pull`` policy;
    ``ephemeral`` (``--ephemeral``) asks for the container to be removed when
    it ends and made anew at each start.
    """

    name: str
    image: str
    options: tuple[str, ...]
    command: tuple[str, ...]
    engine: str | None = None
    pull: str = DEFAULT_PULL
    ephemeral: bool = False

    def option_values(self, flag: str) -> list[str]:
        """Return the values given for the long ``flag`` in order (``[]`` if absent)."""
        prefix = flag + "="
        return [o[len(prefix) :] for o in self.options if o.startswith(prefix)]


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
    elif flag == "--pull" and value not in PULL_POLICIES:
        raise UsageError(f"bad --pull {value!r}: use one of {', '.join(PULL_POLICIES)}")


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
    option without a value, a bad ``-p`` value, a bad name, a ``--pull``
    outside PULL_POLICIES, or a reserved label (``unitctl.spec-hash``,
    ``unitctl.machine``). ``--pull`` and ``--ephemeral`` go into the request,
    not into ``options``.
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
    engine_pairs = [(f, v) for f, v in pairs if f != "--name" and f not in _WRAPPER_FLAGS]
    options = tuple(f if v is None else f"{f}={v}" for f, v in engine_pairs)
    pulls = [v for f, v in pairs if f == "--pull" and v is not None]
    return RunRequest(
        names[0], rest[0], options, tuple(rest[1:]), engine,
        pull=pulls[-1] if pulls else DEFAULT_PULL,
        ephemeral=any(f == "--ephemeral" and v in (None, "true") for f, v in pairs),
    )  # fmt: skip


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

