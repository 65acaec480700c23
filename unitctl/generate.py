"""Generate fleet service units that run one container through ``docker-run``.

Pure: a spec (a mapping, as read from YAML/TOML or built from CLI flags) is
validated into a :class:`ServiceSpec` and rendered with the Jinja template
``unitctl/templates/service.j2``. Nothing here touches the file system except
the template loader; writing files is the CLI's job.

Spec keys (all but ``name`` and ``image`` optional)::

    name          unit and container name (".service" is stripped)
    description   [Unit] Description (default "NAME container (IMAGE)")
    image         container image reference
    command       string (split like a shell) or list of arguments
    env           list of "KEY=VAL" or a mapping
    ports         list of "[IP:]HOST:CONTAINER[/tcp|/udp|/sctp]"
    volumes       list of "HOST:CONTAINER[:ro|:rw]" (HOST: absolute path or volume name)
    after         units to order after (".service" added when no suffix)
    requires      units required
    link          list of "NAME[:ALIAS]": After= + MachineOf= NAME.service, --link NAME:ALIAS
    machine_of    [X-Fleet] MachineOf units
    conflicts     [X-Fleet] Conflicts units (globs allowed)
    metadata      [X-Fleet] MachineMetadata: list of "k=v" or a mapping
    global        [X-Fleet] Global=true (not with machine_of or link)
    legacy_xfleet write fleet's pre-0.8 names (X-ConditionMachineOf, X-Conflicts,
                  X-ConditionMachineMetadata), understood by every fleet and unitctl
    cpu           cores (float): CPUQuota=N% and docker --cpus
    mem           bytes or 512m/1g...: MemoryMax= and docker --memory (at least 6m)
    restart       systemd Restart= (default "always")
    timeout_start systemd TimeoutStartSec= (default "0": no timeout)
    docker_run    path of docker-run (default /usr/local/bin/docker-run)
    engine        "docker" (default) or "podman": used for ExecStop and --engine

Bad specs raise :class:`~unitctl.errors.UsageError` (or
:class:`~unitctl.errors.InvalidUnitNameError` for a bad name,
:class:`~unitctl.errors.InvalidOptionsError` for contradicting [X-Fleet]
options) naming the key and the value.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import shlex
import tomllib
import typing as t
from collections.abc import Iterable, Mapping

import jinja2
import jinja2.sandbox
import yaml

from unitctl.docker import PortMapping, parse_port
from unitctl.errors import InvalidOptionsError, InvalidUnitNameError, UsageError

DEFAULT_DOCKER_RUN = "/usr/local/bin/docker-run"
DEFAULT_RESTART = "always"
DEFAULT_TIMEOUT_START = "0"
RESTART_VALUES = (
    "no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always",
)  # fmt: skip
ENGINES = ("docker", "podman")
SPEC_KEYS = (
    "name", "description", "image", "command", "env", "ports", "volumes", "after",
    "requires", "link", "machine_of", "conflicts", "metadata", "global", "cpu", "mem",
    "restart", "timeout_start", "docker_run", "engine", "legacy_xfleet",
)  # fmt: skip
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
_SAFE_WORD_RE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
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


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """A validated spec; build it with :func:`parse_spec`."""

    name: str
    image: str
    description: str
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[PortMapping, ...] = ()
    volumes: tuple[Volume, ...] = ()
    after: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    machine_of: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    global_: bool = False
    #: write fleet's pre-0.8 [X-Fleet] names (X-ConditionMachineOf, ...), which
    #: every fleet and unitctl understand, as the CoreOS guide's units do
    legacy_xfleet: bool = False
    cpu: float | None = None
    mem: int | None = None
    restart: str = DEFAULT_RESTART
    timeout_start: str = DEFAULT_TIMEOUT_START
    docker_run: str = DEFAULT_DOCKER_RUN
    engine: str = "docker"

    @property
    def unit_name(self) -> str:
        """The file name of the generated unit."""
        return f"{self.name}.service"


# --------------------------------------------------------------------------- scalar checks


def _bad(key: str, value: object, why: str) -> UsageError:
    """A UsageError naming the spec key and the offending value."""
    return UsageError(f"spec key {key!r}: {why} (got {value!r})")


def _text(key: str, value: object) -> str:
    """Coerce a scalar to str (not bool, not None); refuse control characters."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad(key, value, "expected a string")
    text = str(value)
    if _CONTROL_RE.search(text):
        raise _bad(key, value, "control characters (such as newlines) are not allowed")
    return text


def _items(key: str, value: object) -> list[str]:
    """A list of strings from a list or a single scalar; ``None`` gives ``[]``."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [_text(key, v) for v in value]
    return [_text(key, value)]


def _pair_value(key: str, value: object) -> str:
    """A mapping value as text: YAML booleans become ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _text(key, value)


def _pairs(key: str, value: object, sep: str = "=") -> list[tuple[str, str]]:
    """``KEY=VAL`` pairs from a mapping or a list of strings."""
    if isinstance(value, Mapping):
        return [(_text(key, k), _pair_value(key, v)) for k, v in value.items()]
    pairs = []
    for item in _items(key, value):
        k, found, v = item.partition(sep)
        if not found or not k:
            raise _bad(key, item, f"expected KEY{sep}VALUE")
        pairs.append((k, v))
    return pairs


def parse_name(value: object) -> str:
    """Validate a unit/container name; a ``.service`` suffix is dropped.

    Raises UsageError when missing and InvalidUnitNameError naming the value
    when docker or fleet would refuse it.
    """
    if value is None or value == "":
        raise UsageError("spec key 'name' is required")
    name = _text("name", value).removesuffix(".service")
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
        raise _bad("mem", value, "expected bytes or a size such as 512m or 1g")
    match = _MEM_RE.match(_text("mem", value).strip())
    if match is None:
        raise _bad("mem", value, "expected bytes or a size such as 512m or 1g")
    size = int(float(match[1]) * _MEM_UNITS[match[2].lower()])
    if size < MIN_MEMORY:
        raise _bad("mem", value, "must be at least 6m (docker's minimum)")
    return size


def parse_cpu(value: object) -> float:
    """Cores as a positive finite float whose percentage has at most two decimals."""
    if isinstance(value, bool):
        raise _bad("cpu", value, "expected a number of cores such as 0.5 or 2")
    try:
        cpu = float(_text("cpu", value))
    except ValueError:
        raise _bad("cpu", value, "expected a number of cores such as 0.5 or 2") from None
    if not math.isfinite(cpu) or cpu <= 0:
        raise _bad("cpu", value, "must be a positive number of cores")
    percent = cpu * 100
    if abs(round(percent, 2) - percent) > 1e-9 or round(percent, 2) <= 0:
        raise _bad("cpu", value, "at most 4 decimals (CPUQuota= has 0.01% steps)")
    return cpu


def parse_volume(value: str) -> Volume:
    """``HOST:CONTAINER[:ro|:rw]``; HOST is an absolute path or a volume name."""
    parts = value.split(":")
    mode = parts.pop() if len(parts) == 3 else None
    if len(parts) != 2 or mode not in (None, "ro", "rw"):
        raise _bad("volumes", value, "expected HOST:CONTAINER[:ro|:rw]")
    source, target = parts
    if not (_PATH_RE.match(source) or _VOLUME_NAME_RE.match(source)):
        raise _bad("volumes", value, "HOST must be an absolute path or a volume name")
    if not _PATH_RE.match(target):
        raise _bad("volumes", value, "CONTAINER must be an absolute path")
    return Volume(source, target, mode)


def parse_spec_port(value: str) -> PortMapping:
    """``[IP:]HOST:CONTAINER[/PROTO]`` with both ports given (docker's -p syntax)."""
    try:
        port = parse_port(value)
    except UsageError as exc:
        raise UsageError(f"spec key 'ports': {exc}") from None
    if port.host is None:
        raise _bad("ports", value, "expected [IP:]HOST:CONTAINER[/tcp|/udp]")
    return port


def parse_link(value: str) -> Link:
    """``NAME[:ALIAS]``; the alias defaults to the name."""
    name, _, alias = value.partition(":")
    alias = alias or name
    if not _NAME_RE.match(name) or not _NAME_RE.match(alias):
        raise _bad("link", value, "expected NAME[:ALIAS] of container names")
    return Link(name, alias)


def _env(value: object) -> tuple[tuple[str, str], ...]:
    pairs = _pairs("env", value)
    for k, _ in pairs:
        if not _ENV_KEY_RE.match(k):
            raise _bad("env", k, "invalid environment variable name")
    return tuple(pairs)


def _metadata(value: object) -> tuple[tuple[str, str], ...]:
    pairs = _pairs("metadata", value)
    for k, v in pairs:
        if not _META_RE.match(k) or not _META_RE.match(v):
            raise _bad("metadata", f"{k}={v}", "use letters, digits, '_', '.', '-' in k=v")
    return tuple(pairs)


def _command(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            return tuple(shlex.split(_text("command", value)))
        except ValueError as exc:
            raise _bad("command", value, f"cannot split: {exc}") from None
    return tuple(_items("command", value))


def _choice(key: str, value: object, choices: Iterable[str], default: str) -> str:
    if value is None:
        return default
    text = _text(key, value)
    if text not in choices:
        raise _bad(key, value, f"expected one of {', '.join(choices)}")
    return text


def _restart(value: object) -> object:
    """YAML 1.1 reads an unquoted ``restart: no`` as False: take it as ``no``."""
    return "no" if value is False else value


def _timeout(value: object) -> str:
    if value is None:
        return DEFAULT_TIMEOUT_START
    text = _text("timeout_start", value).strip()
    if isinstance(value, bool) or not _TIMESPAN_RE.match(text):
        raise _bad("timeout_start", value, "expected seconds or a systemd time span (5min)")
    return text


def _image(value: object) -> str:
    if value is None or value == "":
        raise UsageError("spec key 'image' is required")
    image = _text("image", value)
    if not _IMAGE_RE.match(image):
        raise _bad("image", value, "not a valid image reference")
    return image


def _docker_run(value: object) -> str:
    if value is None:
        return DEFAULT_DOCKER_RUN
    path = _text("docker_run", value)
    if not _EXEC_PATH_RE.match(path):
        raise _bad("docker_run", value, "expected an absolute path of safe characters")
    return path




def _ports(value: object) -> tuple[PortMapping, ...]:
    if isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                raise _bad(
                    "ports", item, "quote HOST:CONTAINER in YAML (YAML 1.1 reads 22:22 as a number)"
                )
    return tuple(parse_spec_port(p) for p in _items("ports", value))


# --------------------------------------------------------------------------- spec


def parse_spec_text(text: str, filename: str) -> dict[str, t.Any]:
    """Parse spec file text: YAML for ``.yaml``/``.yml``, TOML for ``.toml``.

    Raises UsageError for another extension, a syntax error or a document
    that is not a mapping.
    """
    try:
        if filename.endswith((".yaml", ".yml")):
            data = yaml.safe_load(text)
        elif filename.endswith(".toml"):
            data = tomllib.loads(text)
        else:
            raise UsageError(f"spec file {filename}: use a .yaml, .yml or .toml file")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"spec file {filename}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise UsageError(f"spec file {filename}: expected a mapping of spec keys")
    return data


def _check_keys(raw: Mapping[str, t.Any]) -> None:
    unknown = sorted(str(k) for k in raw if k not in SPEC_KEYS)
    if unknown:
        raise UsageError(f"unknown spec key {unknown[0]!r} (known keys: {', '.join(SPEC_KEYS)})")


def _flag(key: str, value: t.Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise _bad(key, value, "expected true or false")


def _check_xfleet(spec: ServiceSpec) -> None:
    """fleet refuses Global units with MachineOf, and MachineOf itself."""
    if spec.global_ and (spec.machine_of or spec.links):
        raise InvalidOptionsError(
            "spec key 'global': a global unit cannot use machine_of or link "
            "(fleet allows metadata and conflicts with Global)"
        )
    if spec.unit_name in spec.machine_of or any(lk.name == spec.name for lk in spec.links):
        raise InvalidOptionsError(f"spec: unit {spec.unit_name} cannot be MachineOf itself")


def _unit_refs(raw: Mapping[str, t.Any], key: str, *, glob: bool = False) -> tuple[str, ...]:
    return tuple(parse_unit_ref(key, u, glob=glob) for u in _items(key, raw.get(key)))


def parse_spec(raw: Mapping[str, t.Any]) -> ServiceSpec:
    """Validate a raw spec mapping into a ServiceSpec.

    Raises UsageError (unknown key, missing image/name, bad port, volume, env,
    mem, cpu, restart...), InvalidUnitNameError (bad unit names) or
    InvalidOptionsError (Global with MachineOf/Conflicts); messages name the
    key and the value.
    """
    _check_keys(raw)
    name = parse_name(raw.get("name"))
    image = _image(raw.get("image"))
    description = raw.get("description")
    spec = ServiceSpec(
        name=name,
        image=image,
        description=(
            _text("description", description)
            if description is not None
            else f"{name} container ({image})"
        ),
        command=_command(raw.get("command")),
        env=_env(raw.get("env")),
        ports=_ports(raw.get("ports")),
        volumes=tuple(parse_volume(v) for v in _items("volumes", raw.get("volumes"))),
        after=_unit_refs(raw, "after"),
        requires=_unit_refs(raw, "requires"),
        links=tuple(parse_link(v) for v in _items("link", raw.get("link"))),
        machine_of=_unit_refs(raw, "machine_of"),
        conflicts=_unit_refs(raw, "conflicts", glob=True),
        metadata=_metadata(raw.get("metadata")),
        global_=_flag("global", raw.get("global")),
        legacy_xfleet=_flag("legacy_xfleet", raw.get("legacy_xfleet")),
        cpu=parse_cpu(raw["cpu"]) if raw.get("cpu") is not None else None,
        mem=parse_mem(raw["mem"]) if raw.get("mem") is not None else None,
        restart=_choice("restart", _restart(raw.get("restart")), RESTART_VALUES, DEFAULT_RESTART),
        timeout_start=_timeout(raw.get("timeout_start")),
        docker_run=_docker_run(raw.get("docker_run")),
        engine=_choice("engine", raw.get("engine"), ENGINES, "docker"),
    )
    _check_xfleet(spec)
    return spec


# --------------------------------------------------------------------------- rendering


def systemd_quote(arg: str) -> str:
    """Quote one argument for ExecStart= so systemd passes it through unchanged.

    ``%`` becomes ``%%`` (specifiers) and ``$`` becomes ``$$`` (variable
    expansion) everywhere. Words of safe characters stay bare; others are
    double-quoted with ``\\`` and ``"`` escaped and control characters as C
    escapes (systemd unquotes with C unescaping). A quoted ``";"`` is a plain
    argument, not systemd's command separator.
    """
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _SAFE_WORD_RE.match(arg):
        return escaped
    out = []
    for char in escaped:
        if char in '\\"':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif _CONTROL_RE.match(char):
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _format_percent(cpu: float) -> str:
    """``CPUQuota`` percent: ``50%``, ``150%``, ``12.5%``."""
    return f"{round(cpu * 100, 2):g}%"


def _format_bytes(size: int, *, docker: bool) -> str:
    """Largest exact binary unit: ``512M`` (systemd) or ``512m`` (docker)."""
    for suffix, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size % factor == 0:
            text = f"{size // factor}{suffix}"
            return text.lower() if docker else text
    return str(size)


def docker_run_argv(spec: ServiceSpec) -> list[str]:
    """The ExecStart argv: docker-run, its options, the image and the command."""
    argv = [spec.docker_run]
    if spec.engine != "docker":
        argv += ["--engine", spec.engine]
    argv += ["--name", spec.name]
    for key, value in spec.env:
        argv += ["-e", f"{key}={value}"]
    for port in spec.ports:
        argv += ["-p", str(port)]
    for volume in spec.volumes:
        argv += ["-v", str(volume)]
    for link in spec.links:
        argv += ["--link", f"{link.name}:{link.alias}"]
    if spec.cpu is not None:
        argv.append(f"--cpus={spec.cpu:g}")
    if spec.mem is not None:
        argv.append(f"--memory={_format_bytes(spec.mem, docker=True)}")
    return [*argv, spec.image, *spec.command]


def _exec_start_lines(spec: ServiceSpec) -> list[str]:
    """ExecStart words, one option per line (the template joins them with a backslash).

    The program comes first, then each option with its value, then one line
    with the image and the command.
    """
    words = [systemd_quote(w) for w in docker_run_argv(spec)]
    tail = len(spec.command) + 1
    options, rest = words[1:-tail], words[-tail:]
    lines = [words[0]]
    i = 0
    while i < len(options):
        takes_value = "=" not in options[i] and i + 1 < len(options)
        lines.append(" ".join(options[i : i + 2]) if takes_value else options[i])
        i += 2 if takes_value else 1
    return [*lines, " ".join(rest)]


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _x_fleet_lines(spec: ServiceSpec) -> list[str]:
    """The [X-Fleet] lines: MachineOf (links first-come), Conflicts, metadata, Global."""
    peers = _dedupe([*spec.machine_of, *(lk.unit for lk in spec.links)])
    legacy = spec.legacy_xfleet
    lines = [f"{'X-ConditionMachineOf' if legacy else 'MachineOf'}={u}" for u in peers]
    lines += [f"{'X-Conflicts' if legacy else 'Conflicts'}={u}" for u in spec.conflicts]
    lines += [f"{'X-ConditionMachineMetadata' if legacy else 'MachineMetadata'}={k}={v}"
              for k, v in spec.metadata]
    if spec.global_:
        lines.append("Global=true")
    return lines


def render_context(spec: ServiceSpec) -> dict[str, t.Any]:
    """The variables ``service.j2`` renders; every value is already escaped."""
    return {
        "name": spec.name,
        "description": spec.description.replace("%", "%%"),
        "after": _dedupe(["docker.service", *spec.after, *(lk.unit for lk in spec.links)]),
        "requires": _dedupe(["docker.service", *spec.requires]),
        "timeout_start": spec.timeout_start,
        "restart": spec.restart,
        "cpu_quota": _format_percent(spec.cpu) if spec.cpu is not None else None,
        "memory_max": _format_bytes(spec.mem, docker=False) if spec.mem is not None else None,
        "exec_start": _exec_start_lines(spec),
        "exec_stop": " ".join(
            systemd_quote(w) for w in ("/usr/bin/env", spec.engine, "stop", spec.name)
        ),
        "x_fleet": _x_fleet_lines(spec),
    }


@functools.cache
def _environment() -> jinja2.Environment:
    """The sandboxed Jinja environment loading ``unitctl/templates``."""
    return jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.PackageLoader("unitctl", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def render_service(spec: ServiceSpec) -> str:
    """Render the ``.service`` unit text of ``spec`` (ends with a newline)."""
    return _environment().get_template("service.j2").render(render_context(spec))


def generate_units(spec: ServiceSpec | Mapping[str, t.Any]) -> dict[str, str]:
    """Return ``{unit file name: unit text}`` for a spec (validated if a mapping).

    Raises the errors of :func:`parse_spec`; performs no I/O besides loading
    the template.
    """
    parsed = spec if isinstance(spec, ServiceSpec) else parse_spec(spec)
    return {parsed.unit_name: render_service(parsed)}
