"""Quadlet's ``.container`` files, read as a ``unitctl generate`` spec.

Pure (no I/O). :func:`container_spec` parses the text of ``NAME.container``
(systemd unit syntax, :class:`~unitctl.unitfile.UnitFile`) into the raw spec
mapping that :func:`~unitctl.generate.spec.parse_spec` validates, as Quadlet
turns it into ``NAME.service``:

* the unit and container are named after the file (``web.container`` ->
  ``web.service``, container ``web``);
* ``[Container]``: ``Image=``, ``Exec=`` (split like a command line),
  ``PublishPort=``, ``Volume=``, ``Environment=`` (``K=V`` words, quoted as
  systemd quotes them), ``HealthCmd=``, ``HealthInterval=``,
  ``HealthTimeout=``, ``HealthStartPeriod=``, ``HealthRetries=``, ``Pull=``,
  ``StopTimeout=`` and ``Notify=`` (``false``, Quadlet's default: READY once
  the container runs; ``healthy``: once it is healthy, which docker-run does
  whenever there is a health check; ``true``, the container's own sd_notify, is
  refused: docker cannot hand it the notify socket). An empty assignment
  resets a list key, as in systemd. Every other key is refused by name:
  Quadlet's own keys with the reason, unknown keys as unknown -- never skipped;
* ``[Unit]``, ``[Service]``, ``[Install]`` pass through (``Description=``,
  ``After=``, ``Requires=``, ``Restart=`` and ``TimeoutStartSec=`` go to their
  spec keys); ``[X-Fleet]`` takes ``MachineOf=``, ``Conflicts=``,
  ``MachineMetadata=`` and ``Global=``;
* as Quadlet's ``podman run --rm``, the container is ephemeral (removed when
  the unit stops), and, as Quadlet, ``Restart=`` is systemd's ``no`` unless
  ``[Service]`` says otherwise.
"""

from __future__ import annotations

import shlex
import typing as t

from unitctl.errors import InvalidUnitError, UsageError
from unitctl.unitfile import UnitFile

__all__ = ["CONTAINER_KEYS", "QUADLET_UNSUPPORTED", "container_spec"]

#: ``[Container]`` key -> (spec key, is a list).
CONTAINER_KEYS: dict[str, tuple[str, bool]] = {
    "Image": ("image", False), "Exec": ("command", False), "PublishPort": ("ports", True),
    "Volume": ("volumes", True), "Environment": ("env", True), "HealthCmd": ("health_cmd", False),
    "HealthInterval": ("health_interval", False), "HealthTimeout": ("health_timeout", False),
    "HealthStartPeriod": ("health_start_period", False),
    "HealthRetries": ("health_retries", False), "Pull": ("pull", False),
    "StopTimeout": ("stop_timeout", False), "Notify": ("notify", False),
}  # fmt: skip

#: Quadlet keys refused, and why (the rest of Quadlet's keys are refused as unknown).
QUADLET_UNSUPPORTED: dict[str, str] = {
    "ContainerName": "unitctl names the container after its unit (the file name)",
    "HealthOnFailure": "podman's action on an unhealthy container; docker has none",
    "HealthStartupCmd": "podman's startup health check; docker has none",
    "HealthLogDestination": "podman's health log; docker keeps its own",
    "AutoUpdate": "podman auto-update; use pull and a rollout",
}
for _key in ("HealthStartupInterval", "HealthStartupRetries", "HealthStartupSuccess",
             "HealthStartupTimeout"):
    QUADLET_UNSUPPORTED[_key] = QUADLET_UNSUPPORTED["HealthStartupCmd"]

_UNIT_KEYS = {"Description": ("description", False), "After": ("after", True),
              "Requires": ("requires", True)}  # fmt: skip
_SERVICE_KEYS = {"Restart": ("restart", False), "TimeoutStartSec": ("timeout_start", False)}
_XFLEET_KEYS = {"MachineOf": ("machine_of", True), "Conflicts": ("conflicts", True),
                "MachineMetadata": ("metadata", True), "Global": ("global", False)}  # fmt: skip
_PASSTHROUGH = {"Unit": "unit", "Service": "service", "Install": "install"}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _words(where: str, value: str) -> list[str]:
    """``value`` split as systemd splits a list (quotes kept together)."""
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise UsageError(f"{where}: cannot split {value!r}: {exc}") from None


def _boolean(where: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise UsageError(f"{where}: expected true or false, got {value!r}")


def _notify(where: str, value: str) -> bool:
    """Quadlet's Notify=: false or healthy -> docker-run's READY; true is refused."""
    if value.strip().lower() == "healthy" or not _boolean(where, value):
        return True
    raise UsageError(f"{where}: Notify=true (the container's own sd_notify) is not supported "
                     "with docker, which cannot pass the notify socket into the container; "
                     "use Notify=healthy with a HealthCmd= instead")


def _value(spec_key: str, where: str, value: str) -> t.Any:
    """A Quadlet value as the spec key takes it."""
    if spec_key == "notify":
        return _notify(where, value)
    if spec_key == "global":
        return _boolean(where, value)
    if spec_key == "command":
        return _words(where, value)
    return value


def _list_items(spec_key: str, where: str, value: str) -> list[str]:
    """The list items of one assignment: words for env/after/..., the value for ports."""
    if spec_key in ("ports", "volumes"):
        return [value]
    return _words(where, value)


def _assign(raw: dict[str, t.Any], target: tuple[str, bool], where: str, value: str) -> None:
    """Store one assignment; an empty one resets a list (systemd's rule)."""
    spec_key, is_list = target
    if not is_list:
        raw[spec_key] = _value(spec_key, where, value)
    elif not value:
        raw[spec_key] = []
    else:
        raw.setdefault(spec_key, []).extend(_list_items(spec_key, where, value))


def _target(section: str, key: str, filename: str) -> tuple[str, bool] | None:
    """Where ``[section] key=`` goes: a spec key, None for passthrough; refuses the rest."""
    where = f"{filename}: [{section}] {key}="
    if section == "Container":
        if key in CONTAINER_KEYS:
            return CONTAINER_KEYS[key]
        if key in QUADLET_UNSUPPORTED:
            raise UsageError(f"{where} is not supported: {QUADLET_UNSUPPORTED[key]}")
        raise UsageError(f"{where} is unknown (known: {', '.join(CONTAINER_KEYS)})")
    tables = {"Unit": _UNIT_KEYS, "Service": _SERVICE_KEYS, "Install": {}, "X-Fleet": _XFLEET_KEYS}
    if section not in tables:
        raise UsageError(f"{filename}: section [{section}] is not supported (use [Container], "
                         "[Unit], [Service], [Install] or [X-Fleet])")
    found = tables[section].get(key)
    if found is None and section == "X-Fleet":
        raise UsageError(f"{where} is not supported (known: {', '.join(_XFLEET_KEYS)})")
    return found


def container_spec(text: str, filename: str) -> dict[str, t.Any]:
    """The raw spec of Quadlet file ``filename`` (``NAME.container``) with ``text``.

    Raises UsageError naming the file, section and key of anything refused,
    or a syntax error.
    """
    try:
        unit = UnitFile.parse(text)
    except InvalidUnitError as exc:
        raise UsageError(f"{filename}: {exc}") from None
    name = filename.rsplit("/", 1)[-1].removesuffix(".container")
    raw: dict[str, t.Any] = {"name": name, "ephemeral": True, "restart": "no"}
    for option in unit.options:
        target = _target(option.section, option.name, filename)
        where = f"{filename}: [{option.section}] {option.name}="
        if target is not None:
            _assign(raw, target, where, option.value)
        else:
            raw.setdefault(_PASSTHROUGH[option.section], []).append(
                f"{option.name}={option.value}")
    if "Container" not in unit.sections():
        raise UsageError(f"{filename}: no [Container] section")
    return raw
