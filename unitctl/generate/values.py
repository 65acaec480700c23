"""The validators of one spec value each, for :mod:`unitctl.generate.spec`.

Pure (no I/O). Each ``parse_*`` function takes one raw value, as YAML, TOML or
a CLI flag gives it, and returns it checked and normalized, or raises
:class:`~unitctl.errors.UsageError` (:class:`~unitctl.errors.InvalidUnitNameError`
for names) naming the spec key and the value (see :func:`spec_error`).
``None`` means "not given": list values become ``()``, others their default.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from collections.abc import Iterable, Mapping

from unitctl.docker.argv import PortMapping, parse_port
from unitctl.errors import InvalidUnitNameError, UsageError

DEFAULT_DOCKER_RUN = "/usr/local/bin/docker-run"
DEFAULT_TIMEOUT_START = "0"
UNIT_SUFFIXES = (
    ".service", ".socket", ".target", ".mount", ".automount", ".timer", ".path",
    ".device", ".swap", ".slice", ".scope",
)  # fmt: skip
MIN_MEMORY = 6 * 1024**2  # docker refuses less

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,199}$")
_UNIT_RE = re.compile(r"^[a-zA-Z0-9:_.@\\-]+$")
_UNIT_GLOB_RE = re.compile(r"^[a-zA-Z0-9:_.@\\*?\[\]-]+$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_META_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
_VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PATH_RE = re.compile(r"^/[^\x00-\x1f\x7f:]*$")
_EXEC_PATH_RE = re.compile(r"^/[A-Za-z0-9_./+-]+$")
_MEM_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$", re.IGNORECASE)
_TIMESPAN_RE = re.compile(
    r"^(infinity|(\d+(\.\d+)?\s*(us|usec|ms|msec|s|sec|seconds?|m|min|minutes?|h|hr|hours?"
    r"|d|days?|w|weeks?)?\s*)+)$"
)
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_MEM_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclasses.dataclass(frozen=True)
class Volume:
    """One bind mount or named volume: ``source:target[:mode]``."""

    source: str
    target: str
    mode: str | None = None

    def __str__(self) -> str:
        """Docker's ``-v`` syntax."""
        return f"{self.source}:{self.target}" + (f":{self.mode}" if self.mode else "")


@dataclasses.dataclass(frozen=True)
class Link:
    """A docker link to another unit's container: ``name[:alias]``."""

    name: str
    alias: str

    @property
    def unit(self) -> str:
        """The linked container's unit name."""
        return f"{self.name}.service"


def spec_error(key: str, value: object, why: str) -> UsageError:
    """A UsageError naming the spec key and the offending value."""
    return UsageError(f"spec key {key!r}: {why} (got {value!r})")


def parse_text(key: str, value: object) -> str:
    """Coerce a scalar to str (not bool, not None); refuse control characters."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise spec_error(key, value, "expected a string")
    text = str(value)
    if CONTROL_RE.search(text):
        raise spec_error(key, value, "control characters (such as newlines) are not allowed")
    return text


def parse_items(key: str, value: object) -> list[str]:
    """A list of strings from a list or a single scalar; ``None`` gives ``[]``."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [parse_text(key, v) for v in value]
    return [parse_text(key, value)]


def _pair_value(key: str, value: object) -> str:
    """A mapping value as text: YAML booleans become ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return parse_text(key, value)


def _pairs(key: str, value: object, sep: str = "=") -> list[tuple[str, str]]:
    """``KEY=VAL`` pairs from a mapping or a list of strings."""
    if isinstance(value, Mapping):
        return [(parse_text(key, k), _pair_value(key, v)) for k, v in value.items()]
    pairs = []
    for item in parse_items(key, value):
        k, found, v = item.partition(sep)
        if not found or not k:
            raise spec_error(key, item, f"expected KEY{sep}VALUE")
        pairs.append((k, v))
    return pairs


def parse_name(value: object) -> str:
    """Validate a unit/container name; a ``.service`` suffix is dropped.

    Raises UsageError when missing and InvalidUnitNameError naming the value
    when docker or fleet would refuse it.
    """
    if value is None or value == "":
        raise UsageError("spec key 'name' is required")
    name = parse_text("name", value).removesuffix(".service")
    if not _NAME_RE.match(name):
        raise InvalidUnitNameError(
            f"spec key 'name': invalid unit name {value!r}: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, at most 200 characters)"
        )
    return name


def parse_unit_ref(key: str, value: str, *, glob: bool = False) -> str:
    """Validate a reference to another unit; append ``.service`` when it has no suffix."""
    pattern = _UNIT_GLOB_RE if glob else _UNIT_RE
    if not pattern.match(value):
        raise InvalidUnitNameError(f"spec key {key!r}: invalid unit name {value!r}")
    return value if value.endswith(UNIT_SUFFIXES) or value.endswith("*") else f"{value}.service"


def parse_mem(value: object) -> int:
    """Bytes from ``536870912``, ``512m``, ``1g``, ``1.5G``, ``512MiB``... (binary units).

    Raises UsageError when malformed or below docker's 6 MiB minimum.
    """
    if isinstance(value, bool):
        raise spec_error("mem", value, "expected bytes or a size such as 512m or 1g")
    match = _MEM_RE.match(parse_text("mem", value).strip())
    if match is None:
        raise spec_error("mem", value, "expected bytes or a size such as 512m or 1g")
    size = int(float(match[1]) * _MEM_UNITS[match[2].lower()])
    if size < MIN_MEMORY:
        raise spec_error("mem", value, "must be at least 6m (docker's minimum)")
    return size


def parse_cpu(value: object) -> float:
    """Cores as a positive finite float whose percentage has at most two decimals."""
    if isinstance(value, bool):
        raise spec_error("cpu", value, "expected a number of cores such as 0.5 or 2")
    try:
        cpu = float(parse_text("cpu", value))
    except ValueError:
        raise spec_error("cpu", value, "expected a number of cores such as 0.5 or 2") from None
    if not math.isfinite(cpu) or cpu <= 0:
        raise spec_error("cpu", value, "must be a positive number of cores")
    percent = cpu * 100
    if abs(round(percent, 2) - percent) > 1e-9 or round(percent, 2) <= 0:
        raise spec_error("cpu", value, "at most 4 decimals (CPUQuota= has 0.01% steps)")
    return cpu


def parse_volume(value: str) -> Volume:
    """``HOST:CONTAINER[:ro|:rw]``; HOST is an absolute path or a volume name."""
    parts = value.split(":")
    mode = parts.pop() if len(parts) == 3 else None
    if len(parts) != 2 or mode not in (None, "ro", "rw"):
        raise spec_error("volumes", value, "expected HOST:CONTAINER[:ro|:rw]")
    source, target = parts
    if not (_PATH_RE.match(source) or _VOLUME_NAME_RE.match(source)):
        raise spec_error("volumes", value, "HOST must be an absolute path or a volume name")
    if not _PATH_RE.match(target):
        raise spec_error("volumes", value, "CONTAINER must be an absolute path")
    return Volume(source, target, mode)


def parse_spec_port(value: str) -> PortMapping:
    """``[IP:]HOST:CONTAINER[/PROTO]`` with both ports given (docker's -p syntax);
    HOST may be ``@PORT`` or ``@PORT_NAME``, a host port the engine allocates."""
    dynamic = _DYNAMIC_HOST_RE.search(value)
    try:
        text = _DYNAMIC_HOST_RE.sub(lambda m: m[0].replace(m[1], "1"), value, count=1)
        port = parse_port(text if dynamic else value)
    except UsageError as exc:
        raise UsageError(f"spec key 'ports': {exc}") from None
    if port.host is None:
        raise spec_error("ports", value, "expected [IP:]HOST:CONTAINER[/tcp|/udp]")
    return dataclasses.replace(port, host=dynamic[1]) if dynamic else port


#: A dynamic host side in a ``-p`` value: ``@PORT:5432``, ``1.2.3.4:@PORT_HTTP:80``.
_DYNAMIC_HOST_RE = re.compile(r"(?:^|:)(@PORT(?:_[A-Z0-9]+)*):")


def parse_link(value: str) -> Link:
    """``NAME[:ALIAS]``; the alias defaults to the name."""
    name, _, alias = value.partition(":")
    alias = alias or name
    if not _NAME_RE.match(name) or not _NAME_RE.match(alias):
        raise spec_error("link", value, "expected NAME[:ALIAS] of container names")
    return Link(name, alias)


def parse_env(value: object) -> tuple[tuple[str, str], ...]:
    """``KEY=VAL`` pairs (a list or a mapping) with valid variable names."""
    pairs = _pairs("env", value)
    for k, _ in pairs:
        if not _ENV_KEY_RE.match(k):
            raise spec_error("env", k, "invalid environment variable name")
    return tuple(pairs)


def parse_metadata(value: object) -> tuple[tuple[str, str], ...]:
    """``k=v`` machine metadata pairs (a list or a mapping) of safe characters."""
    pairs = _pairs("metadata", value)
    for k, v in pairs:
        if not _META_RE.match(k) or not _META_RE.match(v):
            raise spec_error("metadata", f"{k}={v}", "use letters, digits, '_', '.', '-' in k=v")
    return tuple(pairs)


def parse_command(value: object) -> tuple[str, ...]:
    """The command: a string split like a shell, or a list of arguments."""
    if isinstance(value, str):
        try:
            return tuple(shlex.split(parse_text("command", value)))
        except ValueError as exc:
            raise spec_error("command", value, f"cannot split: {exc}") from None
    return tuple(parse_items("command", value))


def parse_choice(key: str, value: object, choices: Iterable[str], default: str) -> str:
    """One of ``choices``; ``default`` when not given."""
    if value is None:
        return default
    text = parse_text(key, value)
    if text not in choices:
        raise spec_error(key, value, f"expected one of {', '.join(choices)}")
    return text


def parse_timeout(value: object) -> str:
    """A systemd time span for TimeoutStartSec= (default ``0``: no timeout)."""
    if value is None:
        return DEFAULT_TIMEOUT_START
    text = parse_text("timeout_start", value).strip()
    if isinstance(value, bool) or not _TIMESPAN_RE.match(text):
        raise spec_error("timeout_start", value, "expected seconds or a systemd time span (5min)")
    return text


def parse_image(value: object) -> str:
    """The required image reference."""
    if value is None or value == "":
        raise UsageError("spec key 'image' is required")
    image = parse_text("image", value)
    if not _IMAGE_RE.match(image):
        raise spec_error("image", value, "not a valid image reference")
    return image


def parse_docker_run(value: object) -> str:
    """The absolute path of docker-run (default /usr/local/bin/docker-run)."""
    if value is None:
        return DEFAULT_DOCKER_RUN
    path = parse_text("docker_run", value)
    if not _EXEC_PATH_RE.match(path):
        raise spec_error("docker_run", value, "expected an absolute path of safe characters")
    return path


def parse_ports(value: object) -> tuple[PortMapping, ...]:
    """The ``ports`` list; a YAML number (``22:22`` read as base 60) is refused."""
    if isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                raise spec_error(
                    "ports", item, "quote HOST:CONTAINER in YAML (YAML 1.1 reads 22:22 as a number)"
                )
    return tuple(parse_spec_port(p) for p in parse_items("ports", value))


def parse_flag(key: str, value: object) -> bool:
    """A YAML/TOML boolean; ``None`` is False."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise spec_error(key, value, "expected true or false")


_DURATION_RE = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")

#: The health-check spec keys and the docker run flags they become, in order.
HEALTH_FLAGS = (
    ("health_cmd", "--health-cmd"),
    ("health_interval", "--health-interval"),
    ("health_timeout", "--health-timeout"),
    ("health_start_period", "--health-start-period"),
    ("health_retries", "--health-retries"),
)


def parse_duration(key: str, value: object) -> str:
    """A docker duration (``30s``, ``1m30s``, ``500ms``); a bare number means seconds."""
    if isinstance(value, bool):
        raise spec_error(key, value, "expected a duration such as 30s or 1m30s")
    text = parse_text(key, value).strip()
    if re.fullmatch(r"\d+", text):
        text += "s"
    if not _DURATION_RE.match(text):
        raise spec_error(key, value, "expected a duration such as 30s or 1m30s")
    return text


def parse_health(raw: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """The ``health_*`` keys as ``(docker flag, value)`` pairs; checks need ``health_cmd``."""
    pairs: list[tuple[str, str]] = []
    for key, flag in HEALTH_FLAGS:
        value = raw.get(key)
        if value is None:
            continue
        if key == "health_cmd":
            text = parse_text(key, value)
            if not text.strip():
                raise spec_error(key, value, "expected a command")
        elif key == "health_retries":
            if isinstance(value, bool) or not re.fullmatch(r"\d+", str(value)):
                raise spec_error(key, value, "expected a whole number of retries")
            text = str(int(str(value)))
        else:
            text = parse_duration(key, value)
        pairs.append((flag, text))
    if pairs and pairs[0][0] != "--health-cmd":
        key = next(k for k, flag in HEALTH_FLAGS if flag == pairs[0][0])
        raise spec_error(key, raw.get(key), "needs health_cmd (the check to run)")
    return tuple(pairs)


def parse_unit_lines(key: str, value: object) -> tuple[tuple[str, str], ...]:
    """Passthrough ``Key=Value`` lines of a unit section (a list, or a mapping)."""
    pairs = _pairs(key, value)
    for k, _ in pairs:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", k):
            raise spec_error(key, k, "invalid unit file key")
    return tuple(pairs)
