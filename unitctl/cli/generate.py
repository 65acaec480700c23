"""``unitctl generate``: write fleet units that run a container through docker-run.

The command reads a spec file (``--spec``: YAML, TOML or a Quadlet
``.container`` file) and/or flags; a flag
that is given replaces the file's value for that key (a repeatable flag
replaces the whole list). Units are printed to stdout, or written atomically
into ``--output-dir`` (:func:`unitctl.atomicfile.atomic_write`), refusing to overwrite a
different existing file unless ``--force``. A bad spec writes nothing.

Errors are :class:`~unitctl.errors.UnitctlError` subclasses. Inside the main
CLI group they propagate for the group to map; when this command runs on its
own (no parent click context, e.g. under ``CliRunner``) :func:`unitctl_errors`
turns them into a one-line ``Error: ...`` and the error's exit code, through
the one mapping :func:`unitctl.errors.report`.
"""

from __future__ import annotations

import functools
import re
import typing as t
from pathlib import Path

import click

from unitctl.atomicfile import atomic_write
from unitctl.errors import UnitctlError, UsageError, report

F = t.TypeVar("F", bound=t.Callable[..., t.Any])


class _CliError(click.ClickException):
    """A UnitctlError shown by click as ``Error: MESSAGE`` with the error's exit code."""

    def __init__(self, error: UnitctlError) -> None:
        message, code = report(error)
        super().__init__(message)
        self.exit_code = code


def unitctl_errors(func: F) -> F:
    """Decorate a click callback: standalone, a UnitctlError becomes ``Error: ...``.

    With a parent context (registered in a group) the error is re-raised
    unchanged so the group's own mapping applies.
    """

    @functools.wraps(func)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return func(*args, **kwargs)
        except UnitctlError as exc:
            ctx = click.get_current_context(silent=True)
            if ctx is not None and ctx.parent is not None:
                raise
            raise _CliError(exc) from exc

    return t.cast(F, wrapper)


def read_spec_file(path: Path) -> dict[str, t.Any]:
    """Read and parse a YAML/TOML spec file; I/O errors become UsageError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read spec file {path}: {exc}") from None
    from unitctl.generate import parse_spec_text  # yaml, jinja2: only for this verb

    return parse_spec_text(text, path.name)


#: A comma that starts the next ``KEY=`` of an ``--env`` value (the seed's format).
_ENV_SPLIT = re.compile(r",\s*(?=[A-Za-z_][A-Za-z0-9_]*=)")


def seed_flags(flags: dict[str, t.Any]) -> dict[str, t.Any]:
    """The seed's flag formats (``mgmt service``): ``--mem 512`` is 512 MiB, and one
    ``--env "A=1, B=@PORT"`` holds several pairs, split at each comma that starts
    the next ``KEY=``."""
    out = dict(flags)
    mem = out.get("mem")
    if isinstance(mem, str) and mem.strip().isdigit():
        out["mem"] = f"{mem.strip()}m"
    env = out.get("env")
    if env:
        out["env"] = tuple(pair.strip() for value in env for pair in _ENV_SPLIT.split(value))
    return out


def merge_flags(spec: dict[str, t.Any], flags: dict[str, t.Any]) -> dict[str, t.Any]:
    """Overlay the given flags on the spec: None, ``()`` and False mean "not given"."""
    merged = dict(spec)
    for key, value in flags.items():
        if value is None or value == () or value is False:
            continue
        merged[key] = list(value) if isinstance(value, tuple) else value
    return merged


def _check_target(path: Path, text: str, force: bool) -> bool:
    """True when ``path`` needs writing; raise UsageError on a different file without force."""
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return True
    except (OSError, UnicodeDecodeError) as exc:
        if force:
            return True
        raise UsageError(f"cannot read existing {path}: {exc}; use --force to replace it") from None
    if current == text:
        return False
    if not force:
        raise UsageError(f"{path} exists with different content; use --force to overwrite it")
    return True


def write_units(units: dict[str, str], output_dir: Path, force: bool) -> list[tuple[Path, bool]]:
    """Write every unit into ``output_dir``; return ``(path, written)`` pairs.

    All targets are checked before any is written, so a refusal writes
    nothing. Identical existing files are left alone (``written`` False).
    """
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output directory {output_dir}: {exc}") from None
    plan = [(output_dir / name, text) for name, text in sorted(units.items())]
    needed = [(path, text, _check_target(path, text, force)) for path, text in plan]
    for path, text, write in needed:
        if write:
            try:
                atomic_write(path, text, mode=0o644)
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc}") from None
    return [(path, write) for path, _, write in needed]


@click.command("generate")
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML (.yaml/.yml), TOML (.toml) or Quadlet (.container) spec file.",
)
@click.option("--name", help="Unit and container name.")
@click.option("--image", help="Container image (pulled as --pull says).")
@click.option("--pull", help="Pull policy: missing (default), always, never, newer.")
@click.option("--ephemeral", is_flag=True, default=False,
              help="Remove the container when the unit stops (docker rm -f).")
@click.option("--health-cmd", "health_cmd", help="Health check command (READY waits for healthy).")
@click.option("--command", help="Command, split like a shell.")
@click.option(
    "--env", "-e", multiple=True,
    help='KEY=VAL, or "K1=V1, K2=V2"; @PORT is the allocated host port (repeatable).',
)
@click.option(
    "--port", "-p", "ports", multiple=True,
    help="[IP:]HOST:CONTAINER[/tcp|/udp]; HOST @PORT[_NAME] is allocated (repeatable).",
)
@click.option("--volume", "-v", "volumes", multiple=True, help="HOST:CONTAINER[:ro] (repeatable).")
@click.option(
    "--brick", "bricks", multiple=True,
    help="[NAME:]SIZE:PATH, SIZE in MiB or 128M/1G: a local volume at PATH (repeatable).",
)
@click.option("--after", multiple=True, help="Order after this unit (repeatable).")
@click.option("--requires", multiple=True, help="Require this unit (repeatable).")
@click.option(
    "--link", multiple=True, help="NAME[:ALIAS]: docker link + After= + MachineOf= (repeatable)."
)
@click.option("--machine-of", multiple=True, help="[X-Fleet] MachineOf (repeatable).")
@click.option("--conflicts", multiple=True, help="[X-Fleet] Conflicts (repeatable).")
@click.option("--metadata", multiple=True, help="[X-Fleet] MachineMetadata k=v (repeatable).")
@click.option("--global", "global_", is_flag=True, default=False, help="[X-Fleet] Global=true.")
@click.option("--cpu", help="CPU cores, e.g. 0.5 (CPUQuota= and docker --cpus).")
@click.option(
    "--mem", help="Memory: 512 (MiB), 512m or 1g (MemoryMax= and docker --memory)."
)
@click.option("--restart", help="systemd Restart= value (default always).")
@click.option("--timeout-start", help="systemd TimeoutStartSec= (default 0).")
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write unit files here instead of printing them.",
)
@click.option(
    "--force", is_flag=True, default=False, help="Overwrite existing files with different content."
)
@unitctl_errors
def generate(spec_file: Path | None, output_dir: Path | None, force: bool, **flags: t.Any) -> None:
    """Generate fleet service units running a container via docker-run."""
    spec = read_spec_file(spec_file) if spec_file is not None else {}
    flags["global"] = flags.pop("global_")
    from unitctl.generate import generate_units  # yaml, jinja2: only for this verb

    units = generate_units(merge_flags(spec, seed_flags(flags)))
    if output_dir is None:
        click.echo("".join(units[name] for name in sorted(units)), nl=False)
        return
    for path, written in write_units(units, output_dir, force):
        click.echo(f"{'wrote' if written else 'unchanged'} {path}")
