"""A validated spec rendered into a fleet ``.service`` unit that runs docker-run.

Pure, apart from loading the template: :func:`generate_units` renders a
:class:`~unitctl.generate.spec.ServiceSpec` with the Jinja template
``unitctl/templates/service.j2``, in a sandboxed environment with
``StrictUndefined`` (a missing variable is an error, never an empty string).
Every value reaches the template already escaped: :func:`systemd_quote` quotes
the ExecStart= words, :func:`docker_run_argv` builds the docker-run argv (the
``-p`` syntax of :mod:`unitctl.docker.argv`), and the [X-Fleet] lines are
written in fleet's current or pre-0.8 names. Writing files is the CLI's job.
"""

from __future__ import annotations

import functools
import re
import typing as t
from collections.abc import Iterable, Mapping

import jinja2
import jinja2.sandbox

from unitctl.docker.argv import DEFAULT_ENGINE, DEFAULT_PULL
from unitctl.generate.bricks import brick_mount, brick_option
from unitctl.generate.spec import ServiceSpec, parse_spec
from unitctl.generate.stoptime import timeout_stop_sec
from unitctl.generate.values import CONTROL_RE

__all__ = [
    "docker_run_argv", "generate_units", "render_context", "render_service", "systemd_quote",
]  # fmt: skip

_SAFE_WORD_RE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


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
        elif CONTROL_RE.match(char):
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
    if spec.engine != DEFAULT_ENGINE:
        argv += ["--engine", spec.engine]
    argv += ["--name", spec.name]
    if spec.pull != DEFAULT_PULL:
        argv += ["--pull", spec.pull]
    for key, value in spec.env:
        argv += ["-e", f"{key}={value}"]
    for port in spec.ports:
        argv += ["-p", str(port)]
    for volume in spec.volumes:
        argv += ["-v", str(volume)]
    for brick in spec.bricks:
        argv += ["-v", brick_mount(brick)]
    for link in spec.links:
        argv += ["--link", f"{link.name}:{link.alias}"]
    if spec.cpu is not None:
        argv.append(f"--cpus={spec.cpu:g}")
    if spec.mem is not None:
        argv.append(f"--memory={_format_bytes(spec.mem, docker=True)}")
    for flag, value in spec.health:
        argv += [flag, value]
    if spec.ephemeral:  # last: _exec_start_lines pairs a bare flag with the next word
        argv.append("--ephemeral")
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
    """The items in order, each once."""
    return list(dict.fromkeys(items))


def _x_fleet_lines(spec: ServiceSpec) -> list[str]:
    """The [X-Fleet] lines: MachineOf (links first-come), Conflicts, metadata, Global,
    the bricks' Volume= lines."""
    peers = _dedupe([*spec.machine_of, *(lk.unit for lk in spec.links)])
    legacy = spec.legacy_xfleet
    lines = [f"{'X-ConditionMachineOf' if legacy else 'MachineOf'}={u}" for u in peers]
    lines += [f"{'X-Conflicts' if legacy else 'Conflicts'}={u}" for u in spec.conflicts]
    lines += [f"{'X-ConditionMachineMetadata' if legacy else 'MachineMetadata'}={k}={v}"
              for k, v in spec.metadata]
    if spec.global_:
        lines.append("Global=true")
    lines += [brick_option(b) for b in spec.bricks]
    return lines


def _lines(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Passthrough ``Key=Value`` lines, verbatim (specifiers such as ``%n`` stay theirs)."""
    return [f"{key}={value}" for key, value in pairs]


def _engine_command(spec: ServiceSpec, *args: str) -> str:
    """``/usr/bin/env ENGINE ARGS...`` quoted for an Exec line."""
    return " ".join(systemd_quote(w) for w in ("/usr/bin/env", spec.engine, *args))


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
        "timeout_stop": timeout_stop_sec(spec.stop_timeout),
        "exec_stop": _engine_command(spec, "stop", "-t", str(spec.stop_timeout), spec.name),
        "exec_stop_post": _engine_command(spec, "rm", "-f", spec.name) if spec.ephemeral else None,
        "notify": spec.notify,
        "unit_lines": _lines(spec.unit_lines),
        "service_lines": _lines(spec.service_lines),
        "install_lines": _lines(spec.install_lines),
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


def sandboxed_environment() -> jinja2.Environment:
    """The one sandboxed jinja2 environment (StrictUndefined), for other renderers too."""
    return _environment()
