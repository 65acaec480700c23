"""The client facade behind ``unitctl``'s verbs (no click here).

:class:`Client` wraps a :class:`~unitctl.registry.registry.Registry` with what
fleetctl did on the client side: resolving command-line arguments into unit
files (local file, template instance, or the registry's copy), validating them
all before anything is written, changing desired states, and waiting (with
registry watches) until the cluster reports the state asked for.

Vocabulary: *desired* state (``DSTATE``) is what a user asked for; *current*
state (``STATE``) is derived like fleet's ``determineJobState``: a unit is
``loaded`` when it is placed on a machine and that machine's agent reports a
systemd state for it, ``launched`` when that state is also running, else
``inactive``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from unitctl import names as unames
from unitctl import xfleet
from unitctl.errors import (
    InvalidUnitError,
    NotFoundError,
    RegistryUnavailable,
    SystemdError,
    UnitctlError,
    UnschedulableError,
    UsageError,
    WaitTimeout,
)
from unitctl.model import Machine, Requirements, TargetState, UnitRecord, UnitState
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile

DEFAULT_ENDPOINT = "http://127.0.0.1:2379"
DEFAULT_PREFIX = "/unitctl/"

#: systemd active states that mean "started" (fleet's ``launched``).
RUNNING_STATES = frozenset({"active", "activating", "reloading"})

#: systemd load states that mean the unit file could not be loaded.
BAD_LOAD_STATES = frozenset({"error", "bad-setting", "not-found", "masked"})

#: fleet's checkReplaceUnitState: the desired states a command may replace a unit in.
REPLACE_ALLOWED: Mapping[str, frozenset[TargetState]] = {
    "submit": frozenset({TargetState.INACTIVE}),
    "load": frozenset({TargetState.INACTIVE, TargetState.LOADED}),
    "start": frozenset({TargetState.INACTIVE, TargetState.LOADED, TargetState.LAUNCHED}),
}


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How the client reaches etcd (the global flags of ``unitctl``)."""

    endpoint: str = DEFAULT_ENDPOINT
    prefix: str = DEFAULT_PREFIX
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password: str = ""
    request_timeout: float = 3.0

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The comma-separated ``endpoint`` split into URLs."""
        return tuple(e.strip() for e in self.endpoint.split(",") if e.strip())


def config_from_params(params: Mapping[str, Any]) -> ClientConfig:
    """Build a config from click's parameter dict (missing keys take defaults)."""

    def text(key: str, default: str = "") -> str:
        value = params.get(key)
        return default if value is None else str(value)

    timeout = params.get("request_timeout")
    return ClientConfig(
        endpoint=text("endpoint", DEFAULT_ENDPOINT),
        prefix=text("etcd_key_prefix", DEFAULT_PREFIX),
        ca_file=text("ca_file"), cert_file=text("cert_file"), key_file=text("key_file"),
        username=text("username"), password=text("password"),
        request_timeout=3.0 if timeout is None else float(timeout),
    )


async def open_registry(cfg: ClientConfig) -> Registry:
    """Connect to etcd and check (or write) the schema version.

    Raises:
        RegistryUnavailable: ``cannot reach etcd at <endpoint>: <why>``.
        ConfigError: bad endpoint or TLS files.
    """
    from unitctl.registry.etcd import EtcdConfig, EtcdKV  # aetcd only when needed

    kv = await EtcdKV.connect(EtcdConfig(
        endpoints=cfg.endpoints, ca_file=cfg.ca_file, cert_file=cfg.cert_file,
        key_file=cfg.key_file, username=cfg.username, password=cfg.password,
        timeout=cfg.request_timeout))
    registry = Registry(kv, cfg.prefix)
    try:
        await registry.ensure_schema()
    except RegistryUnavailable as exc:
        await kv.close()
        why = str(exc).removeprefix("etcd unreachable: ") or "no answer"
        raise RegistryUnavailable(f"cannot reach etcd at {cfg.endpoint}: {why}") from exc
    except BaseException:
        await kv.close()
        raise
    return registry


# ----------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class LocalUnit:
    """One resolved command-line unit argument.

    Attributes:
        name: the unit name (mangled from the argument).
        unit: the unit file to submit or compare, or None to use the registry's.
        source: where ``unit`` came from: a local path, or ``""``.
        kind: ``file`` (the argument's file), ``template-file`` (a local
            template in the argument's directory), ``registry-template`` (the
            registry's template) or ``registry`` (no local text).
        warnings: validation warnings (unknown [X-Fleet] keys ...).
    """

    name: str
    unit: UnitFile | None
    source: str = ""
    kind: str = "registry"
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredState:
    """An agent's report together with the revision it was written at."""

    state: UnitState
    mod_rev: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the client reads to describe the cluster, at one moment."""

    revision: int
    units: Mapping[str, UnitRecord]
    placements: Mapping[str, str]
    states: Mapping[str, Mapping[str, StoredState]]
    explanations: Mapping[str, Mapping[str, str]]
    machines: Mapping[str, Machine]

    def placed_state(self, name: str) -> tuple[str | None, StoredState | None]:
        """Return (placed machine, that machine's report) for a unit."""
        machine = self.placements.get(name)
        if machine is None:
            return None, None
        return machine, self.states.get(name, {}).get(machine)

    def current(self, name: str) -> TargetState:
        """fleet's derived current state of a non-global unit."""
        _, stored = self.placed_state(name)
        if stored is None:
            return TargetState.INACTIVE
        if stored.state.active in RUNNING_STATES:
            return TargetState.LAUNCHED
        return TargetState.LOADED

    def legend(self, machine_id: str, full: bool = False) -> str:
        """fleet's ``machineFullLegend``: ``113f16a7.../10.0.0.1``."""
        return machine_legend(machine_id, self.machines.get(machine_id), full)

    def unplaceable(self, name: str) -> Mapping[str, str] | None:
        """The engine's reasons when a unit wants a machine but has none."""
        rec = self.units.get(name)
        if rec is None or rec.desired is TargetState.INACTIVE or name in self.placements:
            return None
        return self.explanations.get(name)


def short_id(machine_id: str) -> str:
    """``113f16a7...``; keys that are not machine ids are kept as they are."""
    if len(machine_id) > 8 and all(c in "0123456789abcdef" for c in machine_id.lower()):
        return machine_id[:8] + "..."
    return machine_id


def machine_legend(machine_id: str, machine: Machine | None, full: bool = False) -> str:
    """Return the machine id (short unless ``full``) with ``/<ip>`` when known."""
    legend = machine_id if full else short_id(machine_id)
    if machine is not None and machine.public_ip:
        legend += f"/{machine.public_ip}"
    return legend


def format_reasons(reasons: Mapping[str, str]) -> list[str]:
    """One ``<short id>: <reason>`` per machine, sorted by machine id."""
    if not reasons:
        return ["no machine is available"]
    return [f"{short_id(m)}: {reasons[m]}" for m in sorted(reasons)]


def short_reason(reasons: Mapping[str, str]) -> str:
    """The distinct reasons of an explanation, joined (list-unit-files' REASON)."""
    if not reasons:
        return "no machine is available"
    return "; ".join(sorted(set(reasons.values())))


@dataclass(frozen=True, slots=True)
class UnitFileInfo:
    """One row of ``list-unit-files``."""

    name: str
    hash: str
    desired: TargetState
    state: TargetState | None  # None for global units
    is_global: bool
    target: str | None  # machine id of the placement
    target_machine: Machine | None
    description: str
    reason: str  # "" when placed or not wanted anywhere


@dataclass(frozen=True, slots=True)
class Explanation:
    """What ``explain`` tells about one unit."""

    record: UnitRecord
    is_global: bool
    state: TargetState | None
    placement: str | None
    placement_machine: Machine | None
    reported: tuple[UnitState, ...]
    reasons: Mapping[str, str] | None
    requirements: Requirements | None


#: A wait predicate: the message to print once the unit reached the state
#: ("" to print nothing), or None to keep waiting. It may raise a UnitctlError.
Predicate = Callable[[Snapshot, str], str | None]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _stdout(text: str) -> None:
    print(text, flush=True)


# ----------------------------------------------------------------------- client


@dataclass
class Client:
    """The operations of ``unitctl``'s verbs over one registry.

    Attributes:
        registry: the store.
        out: prints a line on stdout (progress messages).
        err: prints a line on stderr (warnings, explanations).
        attempt_seconds: the length of one ``--block-attempts`` attempt.
        cwd: the directory relative paths are resolved against (None: the process').
    """

    registry: Registry
    out: Callable[[str], None] = _stdout
    err: Callable[[str], None] = _stderr
    attempt_seconds: float = 1.0
    cwd: str | None = None
    _global_cache: dict[str, bool] = field(default_factory=dict)

    # -- resolving arguments ---------------------------------------------
    async def resolve(self, args: Sequence[str], verb: str = "submit") -> list[LocalUnit]:
        """Turn arguments into units, validating every one before returning any.

        For each argument: the unit name is ``mangle(arg)``; a local file
        ``arg`` (``.service`` implied) is read when it exists; an instance
        without a file is made from its template (the registry's, else the
        one next to the argument); otherwise the registry's copy is used.

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
        units = [await self._resolve_one(arg, name) for arg, name in zip(args, names, strict=True)]
        for lu in units:
            for w in lu.warnings:
                self.err(f"WARNING: {lu.name}: {w}")
        return units

    def _path(self, path: str) -> str:
        return path if self.cwd is None or os.path.isabs(path) else os.path.join(self.cwd, path)

    async def _resolve_one(self, arg: str, name: str) -> LocalUnit:
        base = arg.rstrip("/").rpartition("/")[2]
        file_arg = arg if name == base else os.path.join(os.path.dirname(arg), name)
        directory = os.path.dirname(file_arg)
        local: LocalUnit | None = None
        if os.path.lexists(self._path(file_arg)):
            local = LocalUnit(name, read_unit_file(self._path(file_arg), file_arg), file_arg,
                              "file")
        rec = await self.registry.get_unit(name)
        if local is None and unames.is_instance(name):
            tmpl_path = os.path.join(directory, unames.template_of(name))
            if rec is None:
                local = await self._from_registry_template(name)
            if local is None and os.path.lexists(self._path(tmpl_path)):
                local = LocalUnit(name, read_unit_file(self._path(tmpl_path), tmpl_path),
                                  tmpl_path, "template-file")
        if local is None:
            if rec is None:
                tmpl = (f", no template {unames.template_of(name)}"
                        if unames.is_instance(name) else "")
                raise NotFoundError(f"unable to find unit {name}: no local file {file_arg}"
                                    f"{tmpl} and not in the registry")
            return LocalUnit(name, None)
        assert local.unit is not None
        warnings = _validate(name, local.unit, local.source or local.kind)
        return LocalUnit(local.name, local.unit, local.source, local.kind, tuple(warnings))

    async def _from_registry_template(self, name: str) -> LocalUnit | None:
        template = unames.template_of(name)
        rec = await self.registry.get_unit(template)
        if rec is None:
            return None
        body = await self.registry.get_body(rec.hash)
        if body is None:
            return None
        try:
            unit = UnitFile.parse(body)
        except InvalidUnitError as exc:
            raise InvalidUnitError(f"template {template} in the registry: {exc}") from exc
        return LocalUnit(name, unit, f"registry:{template}", "registry-template")

    # -- submit ------------------------------------------------------------
    async def submit(self, units: Sequence[LocalUnit], replace: bool,
                     command: str = "submit") -> list[UnitRecord]:
        """Store new units; warn about (or, with ``replace``, overwrite) differing ones.

        Returns the records of the units created or replaced. Units are created
        with desired state ``inactive``; a replaced unit keeps its desired state.
        """
        written: list[UnitRecord] = []
        allowed = REPLACE_ALLOWED.get(command, REPLACE_ALLOWED["submit"])
        for lu in units:
            rec = await self.registry.get_unit(lu.name)
            if rec is None:
                if lu.unit is None:
                    raise NotFoundError(f"Unit {lu.name} not found")
                new = UnitRecord(lu.name, lu.unit.hash(), TargetState.INACTIVE)
                if await self.registry.create_unit(new, lu.unit.serialize()):
                    written.append(new)
                continue
            if lu.unit is None or lu.kind == "registry-template":
                continue
            if lu.unit.hash() == rec.hash:
                if replace:
                    self.out(f"Found same Unit({lu.name}) in Registry, nothing to do")
                continue
            if not replace:
                what = "local template unit file" if lu.kind == "template-file" else \
                    "local unit file"
                self.err(f"WARNING: Unit {lu.name} in registry differs from {what} "
                         f"{lu.source}. Add --replace to override.")
                continue
            if rec.desired not in allowed:
                self.err(f"Warning: can not replace Unit({lu.name}) in state "
                         f"'{rec.desired.value}', use the appropriate command")
                continue
            new = UnitRecord(lu.name, lu.unit.hash(), rec.desired)
            if await self.registry.create_unit(new, lu.unit.serialize(), replace=True):
                written.append(new)
        return written

    # -- desired state -------------------------------------------------------
    async def records(self, names: Sequence[str]) -> list[UnitRecord]:
        """Return the stored records of ``names``; every one must exist.

        Raises:
            NotFoundError: naming the first unknown unit.
        """
        out: list[UnitRecord] = []
        for name in names:
            rec = await self.registry.get_unit(name)
            if rec is None:
                raise NotFoundError(f"Unit {name} not found")
            out.append(rec)
        return out

    async def set_state(self, names: Sequence[str], target: TargetState) -> int:
        """Set the desired state of existing units; return the revision before.

        Every unit is checked (exists, not a template for a non-inactive
        state) before any is changed.
        """
        await self.records(names)
        if target is not TargetState.INACTIVE:
            for name in names:
                refuse_template(name, "start" if target is TargetState.LAUNCHED else "load")
        since = await self.registry.revision()
        for name in names:
            await self.registry.set_desired(name, target)
        return since

    async def destroy(self, names: Sequence[str]) -> list[str]:
        """Delete units (all must exist; checked before any is deleted)."""
        await self.records(names)
        done = []
        for name in names:
            if await self.registry.destroy_unit(name):
                done.append(name)
        return done

    async def is_global(self, rec: UnitRecord) -> bool:
        """Tell whether a stored unit has ``Global=true`` (cached by body hash)."""
        if rec.hash not in self._global_cache:
            req = await self._requirements(rec)
            self._global_cache[rec.hash] = req is not None and req.is_global
        return self._global_cache[rec.hash]

    async def _requirements(self, rec: UnitRecord) -> Requirements | None:
        body = await self.registry.get_body(rec.hash)
        unit = _parse_or_none(body)
        return None if unit is None else xfleet.requirements(rec.name, unit)

    # -- reading -------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        """Read units, placements, states, explanations and machines."""
        reg = self.registry
        units, _, revision = await reg.units_with_revs()
        states: dict[str, dict[str, StoredState]] = {}
        for mod_rev, state in await reg.states_with_revs():
            states.setdefault(state.name, {})[state.machine_id] = StoredState(state, mod_rev)
        machines = {m.id: m for m in await reg.list_machines()}
        return Snapshot(revision, units, await reg.list_placements(), states,
                        await reg.list_explanations(), machines)

    async def list_unit_files(self) -> list[UnitFileInfo]:
        """Every stored unit, sorted by name."""
        snap = await self.snapshot()
        bodies = await self.registry.get_bodies()
        rows = []
        for name in sorted(snap.units):
            rec = snap.units[name]
            unit = _parse_or_none(bodies.get(rec.hash))
            is_global = unit is not None and xfleet.requirements(name, unit).is_global
            self._global_cache[rec.hash] = is_global
            desc = (unit.value("Unit", "Description") if unit else None) or ""
            target = None if is_global else snap.placements.get(name)
            reasons = None if is_global else snap.unplaceable(name)
            rows.append(UnitFileInfo(
                name=name, hash=rec.hash, desired=rec.desired,
                state=None if is_global else snap.current(name), is_global=is_global,
                target=target, target_machine=snap.machines.get(target) if target else None,
                description=desc, reason="" if reasons is None else short_reason(reasons)))
        return rows

    async def list_units(self) -> tuple[list[UnitState], Mapping[str, Machine]]:
        """Every agent's report sorted by (unit, machine id), and the machines."""
        snap = await self.snapshot()
        rows = [s.state for per in snap.states.values() for s in per.values()]
        rows.sort(key=lambda s: (s.name, s.machine_id))
        return rows, snap.machines

    async def list_machines(self) -> list[Machine]:
        """Live machines sorted by id."""
        return sorted(await self.registry.list_machines(), key=lambda m: m.id)

    async def cat(self, name: str) -> str:
        """The stored (serialised) text of a unit."""
        rec = await self.registry.get_unit(name)
        if rec is None:
            raise NotFoundError(f"Unit {name} not found")
        body = await self.registry.get_body(rec.hash)
        if body is None:
            raise NotFoundError(f"the body of unit {name} ({rec.hash[:7]}) is missing")
        return body

    async def explain(self, name: str) -> Explanation:
        """Where a unit is placed, or why it cannot be."""
        snap = await self.snapshot()
        rec = snap.units.get(name)
        if rec is None:
            raise NotFoundError(f"Unit {name} not found")
        req = await self._requirements(rec)
        is_global = req is not None and req.is_global
        placement = None if is_global else snap.placements.get(name)
        reported = tuple(sorted((s.state for s in snap.states.get(name, {}).values()),
                                key=lambda s: s.machine_id))
        return Explanation(
            record=rec, is_global=is_global, state=None if is_global else snap.current(name),
            placement=placement,
            placement_machine=snap.machines.get(placement) if placement else None,
            reported=reported, reasons=None if is_global else snap.unplaceable(name),
            requirements=req)

    async def machine_by_prefix(self, prefix: str) -> list[Machine]:
        """Live machines whose id starts with ``prefix``."""
        return [m for m in await self.list_machines() if m.id.startswith(prefix.lower())]

    # -- waiting -------------------------------------------------------------
    def reached(self, target: TargetState, since: int = 0) -> Predicate:
        """A predicate: the unit's derived state is ``target`` (with its current body).

        Reports that failed after revision ``since`` end the wait with an error.
        """

        def check(snap: Snapshot, name: str) -> str | None:
            rec = snap.units.get(name)
            machine, stored = snap.placed_state(name)
            if target is TargetState.INACTIVE:
                return f"Unit {name} inactive" if stored is None else None
            if rec is None or machine is None or stored is None:
                return None
            st = stored.state
            if st.hash and st.hash != rec.hash:
                return None  # the agent still runs the previous body
            fresh = stored.mod_rev > since
            legend = snap.legend(machine)
            if fresh and st.load in BAD_LOAD_STATES:
                raise SystemdError(f"Unit {name} failed to load on {legend}: load={st.load}")
            if target is TargetState.LOADED:
                if st.active in RUNNING_STATES:
                    return None
                return f"Unit {name} loaded on {legend}"
            if st.active == "active":
                return f"Unit {name} launched on {legend}"
            if fresh and st.active == "failed":
                raise SystemdError(
                    f"Unit {name} failed on {legend}: active={st.active} sub={st.sub}")
            return None

        return check

    @staticmethod
    def gone(snap: Snapshot, name: str) -> str | None:
        """A predicate: no machine reports the unit any more (prints nothing)."""
        return None if snap.states.get(name) else ""

    async def wait_for(self, names: Sequence[str], predicate: Predicate, attempts: int,
                       what: str = "the requested state") -> None:
        """Wait until ``predicate`` holds for every unit, printing its messages.

        Wakes on registry watch events; one attempt lasts ``attempt_seconds``
        and ``attempts == 0`` waits for ever. While a unit waits for a machine
        and the engine explained why it cannot have one, the reasons are shown
        on stderr (again only when they change).

        Raises:
            UnschedulableError: attempts ran out and a unit has no machine.
            WaitTimeout: attempts ran out.
        """
        pending = list(dict.fromkeys(names))
        if not pending:
            return
        shown: dict[str, Mapping[str, str]] = {}
        changed = asyncio.Event()
        pump: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        attempt = 0
        try:
            while True:
                deadline = loop.time() + self.attempt_seconds
                while True:
                    snap = await self.snapshot()
                    pending = self._check(pending, snap, predicate, shown)
                    if not pending:
                        return
                    if pump is None or pump.done():
                        changed.clear()
                        pump = asyncio.create_task(self._pump(snap.revision + 1, changed))
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), remaining)
                    changed.clear()
                attempt += 1
                if attempts and attempt >= attempts:
                    raise self._timeout(pending, await self.snapshot(), what)
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump

    def _check(self, pending: list[str], snap: Snapshot, predicate: Predicate,
               shown: dict[str, Mapping[str, str]]) -> list[str]:
        left = []
        for name in pending:
            msg = predicate(snap, name)
            if msg is not None:
                if msg:
                    self.out(msg)
                continue
            left.append(name)
            reasons = snap.unplaceable(name)
            if reasons is not None and shown.get(name) != reasons:
                shown[name] = reasons
                self.err(f"Unit {name} cannot be placed:")
                for line in format_reasons(reasons):
                    self.err(f"  {line}")
        return left

    async def _pump(self, start_rev: int, changed: asyncio.Event) -> None:
        """Set ``changed`` on every registry event (ends when the watch breaks)."""
        try:
            async for _ in self.registry.watch(self.registry.keys.prefix, start_rev):
                changed.set()
        except Exception:  # a broken watch: re-read, then watch again
            await asyncio.sleep(self.attempt_seconds / 4)
            changed.set()

    def _timeout(self, pending: Sequence[str], snap: Snapshot, what: str) -> UnitctlError:
        blocked = [(n, r) for n in pending if (r := snap.unplaceable(n)) is not None]
        if blocked:
            parts = [f"Unit {n} cannot be placed: " + "; ".join(format_reasons(r))
                     for n, r in blocked]
            return UnschedulableError(". ".join(parts))
        units = ", ".join(pending)
        return WaitTimeout(f"timed out waiting for unit{'s' if len(pending) > 1 else ''} "
                             f"{units} to {what}")

    # -- convenience for verbs -----------------------------------------------
    async def split_global(self, names: Sequence[str]) -> tuple[list[str], list[str]]:
        """Split existing units into (non-global, global) keeping order."""
        local: list[str] = []
        glob: list[str] = []
        for rec in await self.records(names):
            (glob if await self.is_global(rec) else local).append(rec.name)
        return local, glob


# ----------------------------------------------------------------------- helpers


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


def _validate(name: str, unit: UnitFile, source: str) -> list[str]:
    """xfleet validation; its errors keep their class, the message names the source."""
    try:
        return list(xfleet.validate(name, unit))
    except InvalidUnitError as exc:
        msg = str(exc)
        if source and not msg.startswith(f"{source}:"):
            msg = f"{source}: {msg}"
        raise type(exc)(msg) from exc


def _parse_or_none(body: str | None) -> UnitFile | None:
    if body is None:
        return None
    try:
        return UnitFile.parse(body)
    except InvalidUnitError:
        return None

