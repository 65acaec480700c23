"""Argument resolution: command-line arguments to unit files, as fleetctl did it.

For each argument the unit name is ``mangle(arg)``; a local file ``arg``
(``.service`` implied) is read when it exists; an instance without a file is
made from its template (the registry's, else the one next to the argument);
otherwise the registry's copy is used. Every argument is validated before any
is returned, so bad input never reaches a write.

Each unit's stored record (``units/<name>``) is read once here and carried in
:attr:`LocalUnit.record`, for the writes that follow; a template stored in
the registry is read once per command, however many instances use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from unitctl import failover, health, xfleet
from unitctl import names as unames
from unitctl.errors import InvalidUnitError, NotFoundError, UsageError
from unitctl.model import UnitRecord
from unitctl.record import Frozen, init
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile

#: Above this many names, the records are read with one prefix read, not one read each.
BATCH_READ = 8


class LocalUnit(Frozen):
    """One resolved command-line unit argument.

    Attributes:
        name: the unit name (mangled from the argument).
        unit: the unit file to submit or compare, or None to use the registry's.
        source: where ``unit`` came from: a local path, or ``""``.
        kind: ``file`` (the argument's file), ``template-file`` (a local
            template in the argument's directory), ``registry-template`` (the
            registry's template) or ``registry`` (no local text).
        warnings: validation warnings (unknown [X-Fleet] keys ...).
        record: the unit's stored record when it was resolved (None: not stored).
    """

    __slots__ = ("kind", "name", "record", "source", "unit", "warnings")
    name: str
    unit: UnitFile | None
    source: str
    kind: str
    warnings: tuple[str, ...]
    record: UnitRecord | None

    def __init__(self, name: str, unit: UnitFile | None, source: str = "",
                 kind: str = "registry", warnings: tuple[str, ...] = (),
                 record: UnitRecord | None = None) -> None:
        init(self, name, unit, source, kind, warnings, record)


async def read_records(registry: Registry,
                       names: Sequence[str]) -> dict[str, UnitRecord | None]:
    """The stored record of each name (None when absent): one read per unit key.

    Many names are read with a single read of the units prefix instead.
    """
    wanted = list(dict.fromkeys(names))
    if len(wanted) > BATCH_READ:
        units, _, _ = await registry.units_with_revs()
        return {name: units.get(name) for name in wanted}
    return {name: await registry.get_unit(name) for name in wanted}


async def require_records(registry: Registry, names: Sequence[str]) -> list[UnitRecord]:
    """The stored records of ``names``; every one must exist.

    Raises:
        NotFoundError: naming the first unknown unit.
    """
    found = await read_records(registry, names)
    return [existing(found, name) for name in names]


def existing(records: Mapping[str, UnitRecord | None], name: str) -> UnitRecord:
    """``records[name]``, or NotFoundError ``Unit <name> not found``."""
    rec = records.get(name)
    if rec is None:
        raise NotFoundError(f"Unit {name} not found")
    return rec


def refuse_template(name: str, verb: str) -> None:
    """Raise UsageError when ``verb`` (load/start) is asked of a template."""
    if unames.is_template(name):
        example = f"{unames.unit_prefix(name)}@1.{unames.unit_suffix(name)}"
        raise UsageError(f"cannot {verb} template {name}: {verb} an instance such as {example}")


def read_unit_file(path: str, shown: str | None = None) -> UnitFile:
    """Read and parse a local unit file.

    Raises:
        InvalidUnitError: unreadable or malformed; the message names the file.
    """
    label = shown or path
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InvalidUnitError(f"cannot read unit file {label}: {exc.strerror or exc}") from exc
    try:
        return UnitFile.parse_bytes(data)
    except InvalidUnitError as exc:
        raise InvalidUnitError(f"unit file {label}: {exc}") from exc


def validate(name: str, unit: UnitFile, source: str) -> list[str]:
    """xfleet, [X-Health] and [X-Failover] validation; its errors keep their class,
    the message names the source."""
    try:
        health.parse_check(unit, name), failover.parse_policy(unit)
        return list(xfleet.validate(name, unit))
    except InvalidUnitError as exc:
        msg = str(exc)
        if source and not msg.startswith(f"{source}:"):
            msg = f"{source}: {msg}"
        raise type(exc)(msg) from exc


#: the sections whose checks (:func:`validate`) read the unit's name, through its
#: specifiers (%i, %n ...) or MachineOf= (a unit may not name itself)
_NAMED_SECTIONS = frozenset({xfleet.SECTION, health.SECTION, failover.SECTION})
_SELF_NAMING = frozenset({"MachineOf", *(k for k, v in xfleet.LEGACY.items() if v == "MachineOf")})


def checks_ignore_name(unit: UnitFile) -> bool:
    """True when :func:`validate` gives every name the same answer for ``unit``:
    no option of the checked sections holds a specifier or names a peer unit."""
    return not any(o.section in _NAMED_SECTIONS and ("%" in o.value or o.name in _SELF_NAMING)
                   for o in unit.options)


class Resolver:
    """Resolves the arguments of one command (see the module docstring).

    Attributes:
        registry: where stored units and templates are read.
        cwd: the directory relative paths are resolved against (None: the process').
    """

    def __init__(self, registry: Registry, cwd: str | None = None) -> None:
        self.registry = registry
        self.cwd = cwd
        self._templates: dict[str, UnitFile | None] = {}
        #: local template files, read and parsed once per command (path -> unit)
        self._template_files: dict[str, UnitFile] = {}
        #: id(unit) -> (unit, its warnings): units validated once for all their
        #: instances (:func:`checks_ignore_name`); the unit is kept so its id stays its own
        self._checked: dict[int, tuple[UnitFile, list[str]]] = {}

    async def resolve(self, args: Sequence[str], verb: str = "submit") -> list[LocalUnit]:
        """Turn arguments into units, validating every one before returning any.

        Raises:
            InvalidUnitNameError, InvalidUnitError, InvalidOptionsError,
            NotFoundError, UsageError (a template given to load/start).
        """
        names = [unames.mangle(a) for a in args]
        for name in names:
            unames.validate_name(name)
        if verb in ("load", "start"):
            for name in names:
                refuse_template(name, verb)
        locals_ = [self._local_file(arg, name) for arg, name in zip(args, names, strict=True)]
        records = await read_records(self.registry, names)
        return [await self._resolve_one(arg, name, local, records[name])
                for arg, name, local in zip(args, names, locals_, strict=True)]

    def _path(self, path: str) -> str:
        return path if self.cwd is None or os.path.isabs(path) else os.path.join(self.cwd, path)

    @staticmethod
    def _file_arg(arg: str, name: str) -> str:
        base = arg.rstrip("/").rpartition("/")[2]
        return arg if name == base else os.path.join(os.path.dirname(arg), name)

    def _local_file(self, arg: str, name: str) -> LocalUnit | None:
        file_arg = self._file_arg(arg, name)
        if not os.path.lexists(self._path(file_arg)):
            return None
        return LocalUnit(name, read_unit_file(self._path(file_arg), file_arg), file_arg, "file")

    async def _resolve_one(self, arg: str, name: str, local: LocalUnit | None,
                           rec: UnitRecord | None) -> LocalUnit:
        file_arg = self._file_arg(arg, name)
        if local is None and unames.is_instance(name):
            tmpl_path = os.path.join(os.path.dirname(file_arg), unames.template_of(name))
            if rec is None:
                local = await self._from_registry_template(name)
            if local is None and os.path.lexists(self._path(tmpl_path)):
                local = LocalUnit(name, self._template_file(tmpl_path), tmpl_path,
                                  "template-file")
        if local is None:
            if rec is None:
                tmpl = (f", no template {unames.template_of(name)}"
                        if unames.is_instance(name) else "")
                raise NotFoundError(f"unable to find unit {name}: no local file {file_arg}"
                                    f"{tmpl} and not in the registry")
            return LocalUnit(name, None, record=rec)
        assert local.unit is not None
        warnings = self._validated(name, local.unit, local.source or local.kind)
        return LocalUnit(local.name, local.unit, local.source, local.kind, tuple(warnings), rec)

    def _template_file(self, path: str) -> UnitFile:
        """A local template file, read and parsed once per command."""
        if path not in self._template_files:
            self._template_files[path] = read_unit_file(self._path(path), path)
        return self._template_files[path]

    def _validated(self, name: str, unit: UnitFile, source: str) -> list[str]:
        """:func:`validate`; once for all the instances sharing a parsed template
        whose checks cannot differ by name (a failure is never kept: it raises)."""
        hit = self._checked.get(id(unit))
        if hit is not None:
            return list(hit[1])
        warnings = validate(name, unit, source)
        if checks_ignore_name(unit):
            self._checked[id(unit)] = (unit, warnings)
        return list(warnings)

    async def _from_registry_template(self, name: str) -> LocalUnit | None:
        template = unames.template_of(name)
        unit = await self._template(template)
        return None if unit is None else \
            LocalUnit(name, unit, f"registry:{template}", "registry-template")

    async def _template(self, template: str) -> UnitFile | None:
        """The registry's template, read and parsed once per command."""
        if template not in self._templates:
            self._templates[template] = await self._read_template(template)
        return self._templates[template]

    async def _read_template(self, template: str) -> UnitFile | None:
        rec = await self.registry.get_unit(template)
        if rec is None:
            return None
        body = await self.registry.get_body(rec.hash)
        if body is None:
            return None
        try:
            return UnitFile.parse(body)
        except InvalidUnitError as exc:
            raise InvalidUnitError(f"template {template} in the registry: {exc}") from exc
