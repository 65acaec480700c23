"""A checked Clusterfile rendered into the bundle's desired units (pure).

For each entry of ``spec.units`` (:mod:`.spec`): its source is read (inline
body, a file through the injected ``read``, or a generate spec), the
``Config`` overlays that target it are applied in document order
(``overwrite`` replaces the source; ``merge`` deep-merges a YAML mapping into
a generate spec: mappings merge key by key, anything else is replaced), the
env is rendered into it with the sandboxed jinja2 of
:mod:`unitctl.generate.render` (StrictUndefined: an unknown name is an error),
a template is expanded into its instances (each rendered with ``instance``),
and every unit is parsed and validated like ``unitctl submit`` does
(names, unit file syntax, ``[X-Fleet]``). The first problem is refused with
its place in the Clusterfile; nothing here writes anything.

Each entry of ``spec.templates`` becomes a config template resource: its
``src`` file is read into its ``template`` text (not rendered here: the agents
render it from etcd's data) and the resource is validated as ``unitctl
template submit`` does.

Render context: the env values (bundle's, then the unit's, then ``-e``
overrides), ``bundle`` (the bundle's name), ``unit`` (the unit's name) and,
for an instance, ``instance``.
"""

from __future__ import annotations

import posixpath
import typing as t
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jinja2

from unitctl import names as unames
from unitctl import xfleet
from unitctl.bundle.located import Place, load_documents
from unitctl.bundle.plan import Desired, DesiredUnit
from unitctl.bundle.spec import BundleSpec, ConfigDoc, EnvValue, TemplateEntry, UnitEntry
from unitctl.errors import UnitctlError
from unitctl.generate.render import generate_units, sandboxed_environment
from unitctl.generate.spec import parse_spec
from unitctl.model import DesiredState
from unitctl.templating.resource import TemplateResource, from_mapping
from unitctl.unitfile import UnitFile

#: Reads a file named relative to the Clusterfile (raises UnitctlError naming the problem).
Reader = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Rendered:
    """The desired bundle, and the validation warnings (unit name, warning)."""

    desired: Desired
    warnings: tuple[tuple[str, str], ...]


def deep_merge(base: t.Any, overlay: t.Any) -> t.Any:
    """``overlay`` merged into ``base``: mappings key by key, anything else replaced."""
    if isinstance(base, Mapping) and isinstance(overlay, Mapping):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return overlay


def _template_line(exc: BaseException) -> int:
    """The line of the template a render error was raised at (0: unknown)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.lineno
    line = 0
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def line_place(where: Place | None, text: str, line: int, fallback: Place) -> Place:
    """The place of line ``line`` (1-based) of a source written at ``where``: a file's
    lines are its own (``where.line`` 0), a YAML block scalar's start on the line
    after its ``|`` (no column); unknown (None, or line 0): ``fallback``."""
    if where is None or not line:
        return fallback
    if where.line == 0:
        return Place(where.file, line)
    if "\n" not in text.rstrip("\n"):
        return where
    return Place(where.file, where.line + line)


def _render(text: str, context: Mapping[str, t.Any], where: Place, what: str,
            origin: Place | None = None) -> str:
    try:
        return sandboxed_environment().from_string(text).render(context)
    except jinja2.TemplateError as exc:
        message = exc.message if isinstance(exc, jinja2.TemplateSyntaxError) else \
            f"{type(exc).__name__}: {exc.message or exc}"
        at = line_place(origin, text, _template_line(exc), where)
        raise at.refuse(f"{what}: {message}") from None


def _render_strings(value: t.Any, context: Mapping[str, t.Any], where: Place,
                    what: str) -> t.Any:
    """Every string inside a generate spec, rendered."""
    if isinstance(value, str):
        return _render(value, context, where, what)
    if isinstance(value, Mapping):
        return {k: _render_strings(v, context, where, what) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_strings(v, context, where, what) for v in value]
    return value


def _yaml_mapping(text: str, source: str, where: Place) -> dict[str, t.Any]:
    docs = load_documents(text, source)
    if len(docs) != 1 or not isinstance(docs[0][1], Mapping):
        raise where.refuse(f"{source} must hold one YAML mapping (a generate spec)")
    return dict(docs[0][1])


@dataclass
class _Source:
    """One entry's source while overlays apply: unit text, or a generate spec."""

    text: str | None
    spec: dict[str, t.Any] | None
    #: where the text's lines are (a file named by path:, or the Clusterfile)
    origin: Place | None = None


class _Renderer:
    """Renders one bundle spec (see the module docstring)."""

    def __init__(self, bundle: BundleSpec, read: Reader, env: Mapping[str, EnvValue]) -> None:
        self.bundle = bundle
        self.read = read
        self.env = dict(env)
        self.used: set[int] = set()

    def _read(self, path: str, where: Place) -> str:
        try:
            return self.read(path)
        except UnitctlError as exc:
            raise where.refuse(str(exc)) from None

    def _source(self, entry: UnitEntry) -> _Source:
        where = entry.source_place
        if entry.source == "body":
            return _Source(entry.text, None, where)
        if entry.source == "path":
            return _Source(self._read(entry.text, where), None, Place(entry.text))
        if entry.spec is not None:
            return _Source(None, dict(entry.spec))
        return _Source(None, _yaml_mapping(self._read(entry.text, where), entry.text, where))

    def _target_name(self, entry: UnitEntry, source: _Source) -> str:
        if entry.name is not None:
            return entry.name
        if source.spec is not None:
            name = str(source.spec.get("name", ""))
            return name if name.endswith(".service") else f"{name}.service"
        return posixpath.basename(entry.text)

    def _overlay(self, entry: UnitEntry, source: _Source) -> _Source:
        name = self._target_name(entry, source)
        for i, config in enumerate(self.bundle.configs):
            hit = config.unit == name if config.unit is not None else \
                entry.source != "body" and not entry.spec and config.path == entry.text
            if hit:
                self.used.add(i)
                source = self._apply_config(config, source)
        return source

    @staticmethod
    def _apply_config(config: ConfigDoc, source: _Source) -> _Source:
        what = f"Config {config.name}"
        if source.spec is None:
            if config.strategy == "merge":
                raise config.place.refuse(f"{what}: strategy merge needs a YAML source (a "
                                          "generate spec); a unit file can only be "
                                          "overwritten")
            return _Source(config.data, None)
        data = _yaml_mapping(config.data, what, config.place)
        return _Source(None, deep_merge(source.spec, data) if config.strategy == "merge"
                       else data)

    def entry_units(self, entry: UnitEntry, index: int) -> list[tuple[str, str, Place]]:
        """(name, rendered text, place) of each unit the entry makes."""
        source = self._overlay(entry, self._source(entry))
        what = f"units[{index}]"
        context = {**self.bundle.env, **entry.env, **self.env, "bundle": self.bundle.name}
        if source.spec is not None:
            spec = _render_strings(source.spec, context, entry.source_place, what) \
                if entry.render else source.spec
            try:
                made = generate_units(parse_spec(spec))
            except UnitctlError as exc:
                raise entry.source_place.refuse(f"{what}: generate: {exc}") from None
            return [(n, text, entry.place) for n, text in made.items()]
        assert source.text is not None
        return self._expand(entry, self._target_name(entry, source), source, context, what)

    def _expand(self, entry: UnitEntry, name: str, source: _Source,
                context: dict[str, t.Any], what: str) -> list[tuple[str, str, Place]]:
        text = source.text or ""
        if entry.instances is None:
            if unames.is_template(name) and entry.state is not DesiredState.INACTIVE:
                raise entry.place.refuse(f"{what}: template {name} needs instances (or "
                                         "state: inactive to store the template itself)")
            body = _render(text, {**context, "unit": name}, entry.source_place, what,
                           source.origin) if entry.render else text
            return [(name, body, entry.place)]
        if not unames.is_template(name):
            raise entry.place.refuse(f"{what}: instances need a template name such as "
                                     f"{unames.unit_prefix(name)}@.{unames.unit_suffix(name)}")
        out = []
        for inst in entry.instances:
            full = f"{unames.unit_prefix(name)}@{inst}.{unames.unit_suffix(name)}"
            body = _render(text, {**context, "unit": full, "instance": inst},
                           entry.source_place, what, source.origin) if entry.render else text
            out.append((full, body, entry.place))
        return out


def _desired_unit(name: str, text: str, state: DesiredState, where: Place,
                  warnings: list[tuple[str, str]]) -> DesiredUnit:
    try:
        unames.validate_name(name)
        unit = UnitFile.parse(text)
        warnings += [(name, w) for w in xfleet.validate(name, unit)]
    except UnitctlError as exc:
        text = str(exc)
        raise where.refuse(text if text.startswith(f"{name}:") else f"unit {name}: {text}") \
            from None
    return DesiredUnit(name, unit.serialize(), unit.hash(), state)


def render_bundle(bundle: BundleSpec, read: Reader,
                  env: Mapping[str, EnvValue] | None = None) -> Rendered:
    """The desired units of ``bundle``, validated (see the module docstring).

    Raises:
        UsageError: naming the place of the first problem (a duplicate unit,
            an overlay that targets nothing, a render or validation error).
    """
    renderer = _Renderer(bundle, read, env or {})
    units: dict[str, DesiredUnit] = {}
    warnings: list[tuple[str, str]] = []
    for index, entry in enumerate(bundle.units):
        for name, text, where in renderer.entry_units(entry, index):
            if name in units:
                raise where.refuse(f"unit {name} is named twice in bundle {bundle.name}")
            units[name] = _desired_unit(name, text, entry.state, where, warnings)
    for i, config in enumerate(bundle.configs):
        if i not in renderer.used:
            target = f"unit {config.unit}" if config.unit else f"path {config.path}"
            raise config.place.refuse(f"Config {config.name}: no entry of bundle "
                                      f"{bundle.name} has the {target}")
    ordered = tuple(units[n] for n in sorted(units))
    templates = _desired_templates(bundle, read)
    return Rendered(Desired(bundle.name, ordered, templates), tuple(warnings))


def _template(entry: TemplateEntry, index: int, read: Reader) -> TemplateResource:
    what = f"templates[{index}]"
    fields = dict(entry.fields)
    if isinstance(fields.get("mode"), int) and not isinstance(fields["mode"], bool):
        raise entry.place.refuse(f"{what}.mode must be quoted octal text (mode: \"0644\"): "
                                 "YAML reads 0644 as a number")
    if entry.src is not None:
        try:
            fields["template"] = read(entry.src)
        except UnitctlError as exc:
            raise entry.source_place.refuse(str(exc)) from None
    try:
        return from_mapping(fields)
    except UnitctlError as exc:
        raise entry.place.refuse(f"{what}: {exc}") from None


def _desired_templates(bundle: BundleSpec, read: Reader) -> tuple[TemplateResource, ...]:
    """The bundle's config template resources, validated, sorted by name."""
    out: dict[str, TemplateResource] = {}
    for index, entry in enumerate(bundle.templates):
        res = _template(entry, index, read)
        if res.name in out:
            raise entry.place.refuse(f"template {res.name} is named twice in bundle "
                                     f"{bundle.name}")
        out[res.name] = res
    return tuple(out[n] for n in sorted(out))
