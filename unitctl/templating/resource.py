"""A config template resource: what to render, where, and how to check and reload it (pure).

A resource is a plain data record, so a Clusterfile bundle can carry it as well
as ``unitctl template submit FILE`` (a TOML file shaped like confd's
``[template]`` table). :func:`from_mapping` is the one validator: every field
is checked here, and bad input raises :class:`~unitctl.errors.UsageError`
naming the field. :func:`encode`/:func:`decode` are the stored form (compact
JSON under ``templates/<name>``).

Fields:

* ``name``: ``[A-Za-z0-9_.-]{1,64}``;
* ``template``: the jinja2 source text (the CLI reads confd's ``src`` file into it);
* ``dest``: absolute path, no ``..``; the agent also checks it against its
  ``template_dirs`` (the *machine* decides what may be written, not the submitter);
* ``mode`` (octal text, default ``0644``), ``owner`` and ``group`` (names, default root);
* ``keys``: the data prefixes read, confd style (``/hosts`` reads
  ``<prefix>data/hosts``); ``units``: unit globs read by ``units()``;
* ``check_cmd``: argv (split with shlex, never a shell) run on the staged file,
  ``{{src}}`` standing for its path; ``reload_cmd``: argv run after the write;
* ``min_entries``: list read → least number of entries (``"/hosts/*" = 3``,
  ``"web@*.service" = 1``); a read that returns fewer holds the render back;
* ``on_metadata`` (key → value or list of values) and ``on_unit`` (a unit glob):
  where it applies; neither means every machine that allows its ``dest``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from unitctl.errors import UsageError

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ACCOUNT = re.compile(r"[a-z_][a-z0-9_.-]{0,31}|[0-9]{1,10}")
DATA_KEY = re.compile(r"(/[A-Za-z0-9_.:@=+-]+)+/?|/")
UNIT_GLOB = re.compile(r"[A-Za-z0-9_.:@\\*?\[\]!^-]{1,255}")
SRC = "{{src}}"
MAX_TEMPLATE = 256 * 1024
FIELDS = {"name", "template", "dest", "mode", "owner", "group", "keys", "units",
          "check_cmd", "reload_cmd", "min_entries", "on_metadata", "on_unit"}


@dataclass(frozen=True, slots=True)
class TemplateResource:
    """One validated template resource (see the module docstring)."""

    name: str
    template: str
    dest: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    keys: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    check_cmd: str = ""
    reload_cmd: str = ""
    min_entries: Mapping[str, int] = field(default_factory=dict)
    on_metadata: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    on_unit: str = ""

    def check_argv(self, staged: str) -> list[str]:
        """check_cmd's argv with ``{{src}}`` replaced by the staged file ([] when unset)."""
        return [arg.replace(SRC, staged) for arg in shlex.split(self.check_cmd)]

    def reload_argv(self) -> list[str]:
        return shlex.split(self.reload_cmd)


def _text(raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if value is None:
        raise UsageError(f"template: {key} is required")
    if not isinstance(value, str):
        raise UsageError(f"template: {key} must be a string")
    return value


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"template: {key} must be a list of strings")
    return tuple(value)


def _dest(text: str) -> str:
    if not text.startswith("/") or ".." in text.split("/") or text.endswith("/") \
            or "\0" in text or "//" in text:
        raise UsageError(f"template: dest {text!r} must be an absolute file path without '..'")
    return text


def _mode(value: object) -> int:
    try:
        mode = int(value, 8) if isinstance(value, str) else -1
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise UsageError(f"template: mode {value!r} must be octal text like \"0644\"")
    return mode


def _argv(raw: Mapping[str, Any], key: str) -> str:
    text = _text(raw, key, "")
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"template: {key}: {exc}") from exc
    if text and (not argv or not argv[0].startswith("/")):
        raise UsageError(f"template: {key} must start with an absolute program path "
                         "(it runs without a shell)")
    if key == "reload_cmd" and SRC in text:
        raise UsageError("template: {{src}} belongs in check_cmd, not reload_cmd")
    return text


def _guards(raw: Mapping[str, Any]) -> dict[str, int]:
    value = raw.get("min_entries", {})
    if not isinstance(value, Mapping):
        raise UsageError("template: min_entries must be a table of read → count")
    out: dict[str, int] = {}
    for read, count in value.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise UsageError(f"template: min_entries[{read!r}] must be a whole number")
        if not (str(read).startswith("/") or UNIT_GLOB.fullmatch(str(read))):
            raise UsageError(f"template: min_entries key {read!r} is neither a data key "
                             "pattern (/...) nor a unit glob")
        out[str(read)] = count
    return out


def _metadata(raw: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    value = raw.get("on_metadata", {})
    if not isinstance(value, Mapping):
        raise UsageError("template: on_metadata must be a table of key → value(s)")
    out: dict[str, tuple[str, ...]] = {}
    for key, wanted in value.items():
        values = [wanted] if isinstance(wanted, str) else wanted
        if not isinstance(values, list) or not values or \
                not all(isinstance(v, str) for v in values):
            raise UsageError(f"template: on_metadata[{key!r}] must be a string or a list")
        out[str(key)] = tuple(values)
    return out


def _checked_lists(keys: Sequence[str], units: Sequence[str]) -> None:
    for key in keys:
        if not DATA_KEY.fullmatch(key):
            raise UsageError(f"template: key {key!r} must be a path like /hosts")
    for glob in units:
        if not UNIT_GLOB.fullmatch(glob):
            raise UsageError(f"template: unit glob {glob!r} has characters a unit name "
                             "cannot have")


def from_mapping(raw: Mapping[str, Any]) -> TemplateResource:
    """Validate a resource given as a mapping (TOML's ``[template]`` table, a bundle's entry)."""
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise UsageError(f"template: unknown field(s) {', '.join(unknown)}")
    name = _text(raw, "name")
    if not NAME.fullmatch(name):
        raise UsageError(f"template: bad name {name!r}: 1-64 of letters, digits, '_', '.', '-'")
    template = _text(raw, "template")
    if len(template.encode()) > MAX_TEMPLATE:
        raise UsageError(f"template: {name}: the template is over {MAX_TEMPLATE} bytes")
    owner, group = _text(raw, "owner", "root"), _text(raw, "group", "root")
    for what, account in (("owner", owner), ("group", group)):
        if not ACCOUNT.fullmatch(account):
            raise UsageError(f"template: bad {what} {account!r}")
    keys, units = _strings(raw, "keys"), _strings(raw, "units")
    _checked_lists(keys, units)
    on_unit = _text(raw, "on_unit", "")
    if on_unit and not UNIT_GLOB.fullmatch(on_unit):
        raise UsageError(f"template: bad on_unit {on_unit!r}")
    return TemplateResource(
        name=name, template=template, dest=_dest(_text(raw, "dest")),
        mode=_mode(raw.get("mode", "0644")), owner=owner, group=group, keys=keys,
        units=units, check_cmd=_argv(raw, "check_cmd"), reload_cmd=_argv(raw, "reload_cmd"),
        min_entries=_guards(raw), on_metadata=_metadata(raw), on_unit=on_unit)


def to_mapping(res: TemplateResource) -> dict[str, Any]:
    """The inverse of :func:`from_mapping` (``from_mapping(to_mapping(r)) == r``)."""
    return {"name": res.name, "template": res.template, "dest": res.dest,
            "mode": f"{res.mode:04o}", "owner": res.owner, "group": res.group,
            "keys": list(res.keys), "units": list(res.units), "check_cmd": res.check_cmd,
            "reload_cmd": res.reload_cmd, "min_entries": dict(res.min_entries),
            "on_metadata": {k: list(v) for k, v in res.on_metadata.items()},
            "on_unit": res.on_unit}


def encode(res: TemplateResource) -> bytes:
    return json.dumps(to_mapping(res), separators=(",", ":"), sort_keys=True).encode()


def decode(data: bytes) -> TemplateResource:
    """The stored form back; UsageError (or ValueError) when it does not decode."""
    raw = json.loads(data)
    if not isinstance(raw, dict):
        raise UsageError("a stored template is not an object")
    return from_mapping(raw)


def from_toml(text: str, read_src: Callable[[str], str]) -> TemplateResource:
    """A resource file: one ``[template]`` table, confd's shape.

    ``src`` names the template file (``read_src`` reads it: the CLI resolves it
    next to the resource file); ``template`` gives the text inline instead.
    """
    import tomllib  # resource files are read by the CLI; the agent never loads tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"template file: {exc}") from exc
    table = doc.get("template")
    if set(doc) != {"template"} or not isinstance(table, dict):
        raise UsageError("template file: expected exactly one [template] table")
    if ("src" in table) == ("template" in table):
        raise UsageError("template file: give either src (a file) or template (inline text)")
    if "src" in table:
        src = table.pop("src")
        if not isinstance(src, str) or not src:
            raise UsageError("template file: src must be a file name")
        table["template"] = read_src(src)
    return from_mapping(table)
