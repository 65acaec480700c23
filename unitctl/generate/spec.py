"""The spec of a container service unit: its schema, read and validated.

Pure (no I/O). A spec (a mapping, as read from YAML/TOML by
:func:`parse_spec_text` or built from CLI flags) is validated by
:func:`parse_spec` into a :class:`ServiceSpec`, one value at a time with the
validators of :mod:`unitctl.generate.values`.

Spec keys (all but ``name`` and ``image`` optional)::

    name          unit and container name (".service" is stripped)
    description   [Unit] Description (default "NAME container (IMAGE)")
    image         container image reference
    command       string (split like a shell) or list of arguments
    env           list of "KEY=VAL" or a mapping
    ports         list of "[IP:]HOST:CONTAINER[/tcp|/udp|/sctp]"
    volumes       list of "HOST:CONTAINER[:ro|:rw]" (HOST: absolute path or volume name)
    bricks        list of "SIZE:PATH" or "NAME:SIZE:PATH" (the seed's --brick; SIZE a bare
                  number of MiB or 128M/1G): a local volume of the unit, mounted at PATH
                  (:mod:`unitctl.generate.bricks`)
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
    stop_timeout  docker stop -t N, whole seconds (default and maximum: what the
                  fence margin of agent_ttl allows, 1 s for 10 s); TimeoutStopSec=N+1
    agent_ttl     the cluster's agent_ttl the unit is for (default 10s): sets the
                  maximum stop_timeout (:mod:`unitctl.generate.stoptime`)
    pull          docker-run --pull: missing (default), always, never, newer
    notify        Type=notify, READY once the container runs or is healthy (default
                  true); false: Type=simple, active as soon as docker-run runs
    ephemeral     docker-run --ephemeral and ExecStopPost= docker rm -f: the container
                  is removed when the unit stops and made anew at each start
    health_cmd    docker --health-cmd (run by the container's shell); with
    health_interval, health_timeout, health_start_period (durations: 30s, 1m30s)
                  and health_retries (whole number)
    unit, service, install
                  extra Key=Value lines for [Unit], [Service], [Install] (a list or
                  a mapping); the keys generate writes itself are refused by name

Bad specs raise :class:`~unitctl.errors.UsageError` (or
:class:`~unitctl.errors.InvalidUnitNameError` for a bad name,
:class:`~unitctl.errors.InvalidOptionsError` for contradicting [X-Fleet]
options) naming the key and the value.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing as t
from collections.abc import Mapping

import yaml

from unitctl.docker.argv import (
    DEFAULT_ENGINE,
    DEFAULT_PULL,
    PULL_POLICIES,
    SUPPORTED_ENGINES,
    PortMapping,
)
from unitctl.errors import InvalidOptionsError, UsageError
from unitctl.generate.bricks import parse_bricks
from unitctl.generate.quadlet import container_spec
from unitctl.generate.stoptime import parse_agent_ttl, parse_stop_timeout
from unitctl.generate.values import (
    DEFAULT_DOCKER_RUN,
    DEFAULT_TIMEOUT_START,
    HEALTH_FLAGS,
    Link,
    Volume,
    parse_choice,
    parse_command,
    parse_cpu,
    parse_docker_run,
    parse_env,
    parse_flag,
    parse_health,
    parse_image,
    parse_items,
    parse_link,
    parse_mem,
    parse_metadata,
    parse_name,
    parse_ports,
    parse_text,
    parse_timeout,
    parse_unit_lines,
    parse_unit_ref,
    parse_volume,
)
from unitctl.volumes import Volume as LocalVolume

__all__ = [
    "DEFAULT_RESTART", "ENGINES", "RESTART_VALUES", "SPEC_KEYS", "ServiceSpec", "parse_spec",
    "parse_spec_text",
]  # fmt: skip

DEFAULT_RESTART = "always"
RESTART_VALUES = (
    "no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always",
)  # fmt: skip
ENGINES = SUPPORTED_ENGINES
SPEC_KEYS = (
    "name", "description", "image", "command", "env", "ports", "volumes", "bricks", "after",
    "requires", "link", "machine_of", "conflicts", "metadata", "global", "cpu", "mem",
    "restart", "timeout_start", "docker_run", "engine", "legacy_xfleet", "stop_timeout",
    "agent_ttl", "pull", "notify", "ephemeral", *(key for key, _ in HEALTH_FLAGS),
    "unit", "service", "install",
)  # fmt: skip

#: The keys of each section that generate writes itself, and the spec key that sets them.
OWNED_KEYS: dict[str, dict[str, str]] = {
    "unit": {"Description": "description", "After": "after", "Requires": "requires"},
    "service": {
        "Type": "notify", "NotifyAccess": "notify", "ExecStart": "image and command",
        "ExecStop": "stop_timeout", "ExecStopPost": "ephemeral", "TimeoutStopSec": "stop_timeout",
        "Restart": "restart", "TimeoutStartSec": "timeout_start", "CPUQuota": "cpu",
        "MemoryMax": "mem",
    },
    "install": {},
}


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
    #: the seed's bricks: local volumes (``[X-Fleet] Volume=``) mounted into the container
    bricks: tuple[LocalVolume, ...] = ()
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
    engine: str = DEFAULT_ENGINE
    #: docker stop -t (seconds), inside the fence margin of the cluster's agent_ttl
    stop_timeout: int = 1
    pull: str = DEFAULT_PULL
    notify: bool = True
    ephemeral: bool = False
    #: ``(docker flag, value)`` of the health check, ``--health-cmd`` first
    health: tuple[tuple[str, str], ...] = ()
    #: extra ``(key, value)`` lines of [Unit], [Service] and [Install]
    unit_lines: tuple[tuple[str, str], ...] = ()
    service_lines: tuple[tuple[str, str], ...] = ()
    install_lines: tuple[tuple[str, str], ...] = ()

    @property
    def unit_name(self) -> str:
        """The file name of the generated unit."""
        return f"{self.name}.service"


def parse_spec_text(text: str, filename: str) -> dict[str, t.Any]:
    """Parse spec file text: YAML for ``.yaml``/``.yml``, TOML for ``.toml``, and
    Quadlet's unit syntax for ``.container`` (:mod:`unitctl.generate.quadlet`).

    Raises UsageError for another extension, a syntax error or a document
    that is not a mapping.
    """
    if filename.endswith(".container"):
        return container_spec(text, filename)
    try:
        if filename.endswith((".yaml", ".yml")):
            data = yaml.safe_load(text)
        elif filename.endswith(".toml"):
            data = tomllib.loads(text)
        else:
            raise UsageError(
                f"spec file {filename}: use a .yaml, .yml, .toml or (Quadlet) .container file")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"spec file {filename}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise UsageError(f"spec file {filename}: expected a mapping of spec keys")
    return data


def _check_keys(raw: Mapping[str, t.Any]) -> None:
    """Refuse a key outside SPEC_KEYS (the first one, sorted)."""
    unknown = sorted(str(k) for k in raw if k not in SPEC_KEYS)
    if unknown:
        raise UsageError(f"unknown spec key {unknown[0]!r} (known keys: {', '.join(SPEC_KEYS)})")


def _check_xfleet(spec: ServiceSpec) -> None:
    """fleet refuses Global units with MachineOf, and MachineOf itself."""
    if spec.global_ and (spec.machine_of or spec.links):
        raise InvalidOptionsError(
            "spec key 'global': a global unit cannot use machine_of or link "
            "(fleet allows metadata and conflicts with Global)"
        )
    if spec.unit_name in spec.machine_of or any(lk.name == spec.name for lk in spec.links):
        raise InvalidOptionsError(f"spec: unit {spec.unit_name} cannot be MachineOf itself")
    if spec.global_ and spec.bricks:
        raise InvalidOptionsError(
            "spec key 'global': a global unit cannot have bricks (a local volume lives on "
            "one machine)")
    targets = [v.target for v in spec.volumes]
    for brick in spec.bricks:
        if brick.path in targets:
            raise UsageError(f"spec key 'bricks': {brick.path} is also a target of 'volumes'")


def _restart(value: object) -> str:
    """Restart=; YAML 1.1 reads an unquoted ``restart: no`` as False: take it as ``no``."""
    return parse_choice("restart", "no" if value is False else value, RESTART_VALUES,
                        DEFAULT_RESTART)


def _description(value: object, name: str, image: str) -> str:
    """The given description, or ``NAME container (IMAGE)``."""
    return parse_text("description", value) if value is not None else f"{name} container ({image})"


def _unit_refs(raw: Mapping[str, t.Any], key: str, *, glob: bool = False) -> tuple[str, ...]:
    """The unit names of list key ``key``, ``.service`` added where no suffix is given."""
    return tuple(parse_unit_ref(key, u, glob=glob) for u in parse_items(key, raw.get(key)))


def _section_lines(raw: Mapping[str, t.Any], key: str) -> tuple[tuple[str, str], ...]:
    """The passthrough lines of spec key ``key``; a key generate writes is refused by name."""
    lines = parse_unit_lines(key, raw.get(key))
    for name, _ in lines:
        owner = OWNED_KEYS[key].get(name)
        if owner is not None:
            raise UsageError(
                f"spec key {key!r}: {name}= is written by unitctl generate; "
                f"set it with the spec key {owner!r}")
    return lines


def _container_fields(raw: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The ServiceSpec fields of pull, notify, ephemeral, health and passthrough keys."""
    notify = raw.get("notify")
    return {
        "pull": parse_choice("pull", raw.get("pull"), PULL_POLICIES, DEFAULT_PULL),
        "notify": True if notify is None else parse_flag("notify", notify),
        "ephemeral": parse_flag("ephemeral", raw.get("ephemeral")),
        "health": parse_health(raw),
        "unit_lines": _section_lines(raw, "unit"),
        "service_lines": _section_lines(raw, "service"),
        "install_lines": _section_lines(raw, "install"),
    }


def parse_spec(raw: Mapping[str, t.Any]) -> ServiceSpec:
    """Validate a raw spec mapping into a ServiceSpec.

    Raises UsageError (unknown key, missing image/name, bad port, volume, env,
    mem, cpu, restart...), InvalidUnitNameError (bad unit names) or
    InvalidOptionsError (Global with MachineOf/Conflicts); messages name the
    key and the value.
    """
    _check_keys(raw)
    name = parse_name(raw.get("name"))
    image = parse_image(raw.get("image"))
    spec = ServiceSpec(
        name=name,
        image=image,
        description=_description(raw.get("description"), name, image),
        command=parse_command(raw.get("command")),
        env=parse_env(raw.get("env")),
        ports=parse_ports(raw.get("ports")),
        volumes=tuple(parse_volume(v) for v in parse_items("volumes", raw.get("volumes"))),
        bricks=parse_bricks(parse_items("bricks", raw.get("bricks")), name),
        after=_unit_refs(raw, "after"),
        requires=_unit_refs(raw, "requires"),
        links=tuple(parse_link(v) for v in parse_items("link", raw.get("link"))),
        machine_of=_unit_refs(raw, "machine_of"),
        conflicts=_unit_refs(raw, "conflicts", glob=True),
        metadata=parse_metadata(raw.get("metadata")),
        global_=parse_flag("global", raw.get("global")),
        legacy_xfleet=parse_flag("legacy_xfleet", raw.get("legacy_xfleet")),
        cpu=parse_cpu(raw["cpu"]) if raw.get("cpu") is not None else None,
        mem=parse_mem(raw["mem"]) if raw.get("mem") is not None else None,
        restart=_restart(raw.get("restart")),
        timeout_start=parse_timeout(raw.get("timeout_start")),
        docker_run=parse_docker_run(raw.get("docker_run")),
        engine=parse_choice("engine", raw.get("engine"), ENGINES, DEFAULT_ENGINE),
        stop_timeout=parse_stop_timeout(raw.get("stop_timeout"),
                                        parse_agent_ttl(raw.get("agent_ttl"))),
        **_container_fields(raw),
    )
    _check_xfleet(spec)
    return spec

