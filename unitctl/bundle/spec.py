"""The Clusterfile's schema: YAML documents read and checked into a :class:`BundleSpec` (pure).

A Clusterfile holds one ``kind: Bundle`` document and any number of
``kind: Config`` documents (sealer's overlays), each with ``apiVersion:
unitctl.io/v1``, ``metadata.name`` and ``spec``. The keys allowed at each
level are the tables below (``docs/clusterfile.schema.json`` says the same;
a test holds them equal). Every refusal names its place in the file
(:mod:`.located`). Sources are not read or rendered here: that is
:mod:`.render`'s work, so this module needs neither files nor jinja2.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

from unitctl.bundle.located import LocatedList, LocatedMap, Place, load_documents
from unitctl.model import DesiredState

API_VERSION = "unitctl.io/v1"
KINDS = ("Bundle", "Config")
DOCUMENT_KEYS = frozenset({"apiVersion", "kind", "metadata", "spec"})
METADATA_KEYS = frozenset({"name"})
BUNDLE_SPEC_KEYS = frozenset({"env", "units", "templates"})
UNIT_KEYS = frozenset({"name", "body", "path", "generate", "instances", "state", "env",
                       "render"})
SOURCE_KEYS = ("body", "path", "generate")
CONFIG_SPEC_KEYS = frozenset({"unit", "path", "strategy", "data"})
STRATEGIES = ("overwrite", "merge")
#: Names the renderer sets itself; an env value may not take them.
RESERVED_ENV = frozenset({"bundle", "instance", "unit"})
#: The most units one bundle may hold (its revision record stays far under etcd's limit).
MAX_UNITS = 2000
#: The most config template resources one bundle may hold.
MAX_TEMPLATES = 200

BUNDLE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INSTANCE_RE = re.compile(r"^[A-Za-z0-9:._\\-]+$")

EnvValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class UnitEntry:
    """One item of ``spec.units``.

    Attributes:
        name: the unit (or template) name; None for a path (its file name) or a
            generate spec (the spec's name).
        source: ``body``, ``path`` or ``generate``.
        text: the inline body, or the path (relative to the Clusterfile).
        spec: an inline generate spec (None when the spec is a path or absent).
        instances: a template's instances (None: not a template expansion).
        state: the desired state (default ``launched``).
        env: values over the bundle's env, for this unit only.
        render: render the source with jinja2 (default true).
        place: where the entry starts.
        source_place: where its body, path or generate spec is written.
    """

    name: str | None
    source: str
    text: str
    spec: LocatedMap | None
    instances: tuple[str, ...] | None
    state: DesiredState
    env: dict[str, EnvValue]
    render: bool
    place: Place
    source_place: Place


@dataclass(frozen=True, slots=True)
class ConfigDoc:
    """A ``kind: Config`` document: replace or merge into one unit's source."""

    name: str
    unit: str | None
    path: str | None
    strategy: str
    data: str
    place: Place


@dataclass(frozen=True, slots=True)
class TemplateEntry:
    """One item of ``spec.templates``: a config template resource
    (:mod:`unitctl.templating.resource`'s fields), its text inline (``template``)
    or in a file named relative to the Clusterfile (``src``, confd's key).

    ``fields`` are the item's keys but ``src``, as plain values; the renderer
    validates them with :func:`~unitctl.templating.resource.from_mapping`.
    """

    fields: dict[str, t.Any]
    src: str | None
    place: Place
    source_place: Place


@dataclass(frozen=True, slots=True)
class BundleSpec:
    """A checked Clusterfile: the bundle's name, env, unit entries, overlays and
    config template resources."""

    name: str
    env: dict[str, EnvValue]
    units: tuple[UnitEntry, ...]
    configs: tuple[ConfigDoc, ...]
    file: str
    templates: tuple[TemplateEntry, ...] = ()


def _keys(m: LocatedMap, allowed: frozenset[str], what: str) -> None:
    for key in m:
        if key not in allowed:
            raise m.key_place(key).refuse(
                f"unknown key {key!r} in {what} (allowed: {', '.join(sorted(allowed))})")


def _map(value: t.Any, place: Place, what: str) -> LocatedMap:
    if not isinstance(value, LocatedMap):
        raise place.refuse(f"{what} must be a mapping")
    return value


def _text(m: LocatedMap, key: str, what: str, required: bool = False) -> str | None:
    if key not in m:
        if required:
            raise m.place.refuse(f"{what}: missing required key {key!r}")
        return None
    value = m[key]
    if not isinstance(value, str) or not value:
        raise m.value_place(key).refuse(f"{what}.{key} must be a non-empty string")
    return value


def _env(m: LocatedMap, key: str, what: str) -> dict[str, EnvValue]:
    if key not in m:
        return {}
    env = _map(m[key], m.value_place(key), f"{what}.{key}")
    for name, value in env.items():
        if not _ENV_NAME_RE.match(name) or name in RESERVED_ENV:
            raise env.key_place(name).refuse(
                f"env name {name!r} must be an identifier other than "
                f"{', '.join(sorted(RESERVED_ENV))}")
        if not isinstance(value, str | int | float | bool):
            raise env.value_place(name).refuse(f"env {name} must be a string, number or bool")
    return dict(env)


def _state(m: LocatedMap, what: str) -> DesiredState:
    value = m.get("state", DesiredState.LAUNCHED.value)
    names = [s.value for s in DesiredState]
    if value not in names:
        raise m.value_place("state").refuse(f"{what}.state must be one of {', '.join(names)}")
    return DesiredState(value)


def _instances(m: LocatedMap, what: str) -> tuple[str, ...] | None:
    if "instances" not in m:
        return None
    items = m["instances"]
    if not isinstance(items, LocatedList) or not items:
        raise m.value_place("instances").refuse(f"{what}.instances must be a non-empty list")
    out: list[str] = []
    for i, item in enumerate(items):
        text = str(item) if isinstance(item, str | int) and not isinstance(item, bool) else ""
        if not _INSTANCE_RE.match(text):
            raise items.item_place(i).refuse(f"{what}.instances[{i}]: {item!r} is not a "
                                             "valid instance name")
        out.append(text)
    return tuple(out)


def _source(m: LocatedMap, what: str) -> tuple[str, str, LocatedMap | None]:
    given = [k for k in SOURCE_KEYS if k in m]
    if len(given) != 1:
        raise m.place.refuse(f"{what} needs exactly one of body, path, generate "
                             f"(found {', '.join(given) or 'none'})")
    kind = given[0]
    if kind == "generate" and isinstance(m[kind], LocatedMap):
        return kind, "", m[kind]
    text = m[kind]
    if not isinstance(text, str) or not text:
        expected = "a spec mapping or a spec file path" if kind == "generate" else \
            "a non-empty string"
        raise m.value_place(kind).refuse(f"{what}.{kind} must be {expected}")
    return kind, text, None


def parse_unit(raw: t.Any, place: Place, index: int) -> UnitEntry:
    """Check one ``spec.units`` item."""
    what = f"units[{index}]"
    m = _map(raw, place, what)
    _keys(m, UNIT_KEYS, what)
    kind, text, spec = _source(m, what)
    name = _text(m, "name", what, required=kind == "body")
    if kind == "generate" and name is not None:
        raise m.key_place("name").refuse(f"{what}: a generate spec names its unit itself "
                                         "(its 'name' key)")
    render = m.get("render", True)
    if not isinstance(render, bool):
        raise m.value_place("render").refuse(f"{what}.render must be true or false")
    return UnitEntry(name, kind, text, spec, _instances(m, what), _state(m, what),
                     _env(m, "env", what), render, m.place, m.value_place(kind))


def _units(spec: LocatedMap) -> tuple[UnitEntry, ...]:
    if "units" not in spec:
        raise spec.place.refuse("spec: missing required key 'units'")
    items = spec["units"]
    if not isinstance(items, LocatedList):
        raise spec.value_place("units").refuse("spec.units must be a list")
    if len(items) > MAX_UNITS:
        raise spec.value_place("units").refuse(f"a bundle holds at most {MAX_UNITS} entries")
    return tuple(parse_unit(item, items.item_place(i), i) for i, item in enumerate(items))


def _plain(value: t.Any) -> t.Any:
    """A located YAML value as plain dicts and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def parse_template(raw: t.Any, place: Place, index: int) -> TemplateEntry:
    """Check one ``spec.templates`` item's shape (its fields are checked at render)."""
    what = f"templates[{index}]"
    m = _map(raw, place, what)
    given = [k for k in ("src", "template") if k in m]
    if len(given) != 1:
        raise m.place.refuse(f"{what} needs exactly one of src (a file next to the "
                             f"Clusterfile) or template (inline text) (found "
                             f"{', '.join(given) or 'none'})")
    src = _text(m, "src", what)
    fields = {k: _plain(v) for k, v in m.items() if k != "src"}
    return TemplateEntry(fields, src, m.place, m.value_place(given[0]))


def _templates(spec: LocatedMap) -> tuple[TemplateEntry, ...]:
    if "templates" not in spec:
        return ()
    items = spec["templates"]
    if not isinstance(items, LocatedList):
        raise spec.value_place("templates").refuse("spec.templates must be a list")
    if len(items) > MAX_TEMPLATES:
        raise spec.value_place("templates").refuse(
            f"a bundle holds at most {MAX_TEMPLATES} templates")
    return tuple(parse_template(item, items.item_place(i), i) for i, item in enumerate(items))


def _config(name: str, spec: LocatedMap) -> ConfigDoc:
    what = f"Config {name}"
    _keys(spec, CONFIG_SPEC_KEYS, f"{what} spec")
    unit, path = _text(spec, "unit", what), _text(spec, "path", what)
    if (unit is None) == (path is None):
        raise spec.place.refuse(f"{what} needs exactly one of unit, path")
    strategy = spec.get("strategy", "overwrite")
    if strategy not in STRATEGIES:
        raise spec.value_place("strategy").refuse(
            f"{what}: strategy must be one of {', '.join(STRATEGIES)}")
    data = spec.get("data")
    if not isinstance(data, str):
        where = spec.value_place("data") if "data" in spec else spec.place
        raise where.refuse(f"{what}: data must be a string (a YAML block: data: |)")
    return ConfigDoc(name, unit, path, strategy, data, spec.place)


def _document(place: Place, raw: t.Any) -> tuple[str, str, LocatedMap, Place]:
    """(kind, metadata.name, spec) of one document, its envelope checked."""
    doc = _map(raw, place, "a Clusterfile document")
    _keys(doc, DOCUMENT_KEYS, "the document")
    for key in ("apiVersion", "kind", "metadata", "spec"):
        if key not in doc:
            raise doc.place.refuse(f"missing required key {key!r}")
    if doc["apiVersion"] != API_VERSION:
        raise doc.value_place("apiVersion").refuse(f"apiVersion must be {API_VERSION}")
    if doc["kind"] not in KINDS:
        raise doc.value_place("kind").refuse(f"kind must be one of {', '.join(KINDS)}")
    meta = _map(doc["metadata"], doc.value_place("metadata"), "metadata")
    _keys(meta, METADATA_KEYS, "metadata")
    name = _text(meta, "name", "metadata", required=True)
    assert name is not None
    if not BUNDLE_NAME_RE.match(name):
        raise meta.value_place("name").refuse(
            f"name {name!r}: letters, digits, '.', '_' and '-', at most 63")
    return doc["kind"], name, _map(doc["spec"], doc.value_place("spec"), "spec"), doc.place


def parse_bundle(text: str, filename: str) -> BundleSpec:
    """Read a Clusterfile's text into a checked :class:`BundleSpec`.

    Raises:
        UsageError: naming the place of the first problem.
    """
    bundle: tuple[str, LocatedMap, Place] | None = None
    configs: list[ConfigDoc] = []
    for place, raw in load_documents(text, filename):
        kind, name, spec, where = _document(place, raw)
        if kind == "Config":
            configs.append(_config(name, spec))
            continue
        if bundle is not None:
            raise where.refuse(f"a second Bundle document (the first, {bundle[0]}, is at "
                               f"line {bundle[2].line}): one bundle per file")
        bundle = (name, spec, where)
    if bundle is None:
        raise Place(filename).refuse("no 'kind: Bundle' document")
    name, spec, _ = bundle
    _keys(spec, BUNDLE_SPEC_KEYS, "Bundle spec")
    return BundleSpec(name, _env(spec, "env", "spec"), _units(spec), tuple(configs), filename,
                      _templates(spec))
