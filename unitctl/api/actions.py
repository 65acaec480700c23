"""unitctl's verbs that write: submit, load, start, stop, unload, destroy, restart.

``POST /unitctl/v1/<verb>`` with ``{"units": [...], "noBlock": false,
"blockAttempts": 10, "replace": false}``; a unit is a name (a stored unit, or
an instance of a stored template) or ``{"name", "text"}`` (a unit file's text,
as the CLI sends a local file). The steps are the CLI's (cli/units.py), over
the same client layer, with the same messages; the answer streams them
(:mod:`unitctl.api.streams`). Everything is resolved and checked before
anything is written: bad input is a 4xx JSON error, and nothing changes.

Roles: load, start, stop, unload and restart need ``operate``; giving a unit's
text (a new or replaced unit), submit and destroy need ``admin``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from unitctl import names as unames
from unitctl.api.auth import require
from unitctl.api.context import client_for, ctx, principal_of
from unitctl.api.errors import ApiError
from unitctl.api.jsonbody import as_object, bounded_int, only_keys, optional_bool, read_json
from unitctl.api.routes import ADMIN, OPERATE, Route
from unitctl.api.streams import Lines, stream
from unitctl.client.activate import set_and_wait
from unitctl.client.agents import AgentChannel
from unitctl.client.facade import Client
from unitctl.client.resolve import LocalUnit, existing, refuse_template, validate
from unitctl.client.views import Snapshot
from unitctl.errors import RemoteCommandError, UnitctlError
from unitctl.model import DesiredState, UnitRecord
from unitctl.unitfile import UnitFile

MAX_UNITS = 1000
MAX_ATTEMPTS = 3600


@dataclass(frozen=True, slots=True)
class Ask:
    """A verb's request: the units (name, text or None) and how to wait."""

    units: tuple[tuple[str, str | None], ...]
    no_block: bool
    block_attempts: int
    replace: bool

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys(unames.mangle(name) for name, _ in self.units))


def _entry(i: int, entry: Any) -> tuple[str, str | None]:
    name: Any
    text: Any
    if isinstance(entry, str):
        name, text = entry, None
    elif isinstance(entry, dict):
        only_keys(entry, {"name", "text"}, f"units[{i}]")
        name, text = entry.get("name"), entry.get("text")
        if not isinstance(name, str) or not (text is None or isinstance(text, str)):
            raise ApiError(400, f"units[{i}] needs a string name and an optional string text")
    else:
        raise ApiError(400, f"units[{i}] must be a unit name or {{name, text}}")
    if not name or "/" in name or name.startswith(".") or "\x00" in name:
        raise ApiError(400, f"bad unit name {name!r} in units[{i}]: give a unit name, "
                            "not a path")
    unames.validate_name(unames.mangle(name))
    return name, text


async def read_ask(request: web.Request) -> Ask:
    """The verb's body, checked."""
    body = as_object(await read_json(request, require_type=False))
    only_keys(body, {"units", "noBlock", "blockAttempts", "replace"})
    units = body.get("units")
    if not isinstance(units, list) or not units or len(units) > MAX_UNITS:
        raise ApiError(400, f"units must be a list of 1 to {MAX_UNITS} units")
    ask = Ask(tuple(_entry(i, e) for i, e in enumerate(units)),
              optional_bool(body, "noBlock"),
              bounded_int(body.get("blockAttempts", 10), "blockAttempts", 0, MAX_ATTEMPTS),
              optional_bool(body, "replace"))
    if any(text is not None for _, text in ask.units):
        require(principal_of(request), ADMIN)
    return ask


async def resolve(c: Client, ask: Ask, verb: str) -> list[LocalUnit]:
    """The units of ``ask`` resolved like the CLI's arguments (texts in place of files)."""
    plain = [name for name, text in ask.units if text is None]
    by_name = {lu.name: lu for lu in await c.resolve(plain, verb)} if plain else {}
    out = []
    for arg, text in ask.units:
        name = unames.mangle(arg)
        if text is None:
            out.append(by_name[name])
            continue
        if verb in ("load", "start"):
            refuse_template(name, verb)
        unit = UnitFile.parse(text)
        warnings = validate(name, unit, f"units[{name}]")
        out.append(LocalUnit(name, unit, f"request:{name}", "file", tuple(warnings),
                             await c.registry.get_unit(name)))
    return out


Job = Callable[[Client], Coroutine[Any, Any, int]]
Plan = Callable[[Client, Ask], Awaitable[Job]]


def _verb(plan: Plan) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        ask = await read_ask(request)
        lines = Lines()
        client = client_for(request, lines.out, lines.err)
        job = await plan(client, ask)  # checks: raises before anything is written
        return await stream(request, lines, client, job)
    return handler


async def plan_submit(c: Client, ask: Ask) -> Job:
    resolved = await resolve(c, ask, "submit")

    async def job(c: Client) -> int:
        for rec in await c.submit(resolved, ask.replace, "submit"):
            c.out(f"Unit {rec.name} {rec.desired.value}")
        return 0
    return job


def _activate(target: DesiredState, verb: str) -> Plan:
    async def plan(c: Client, ask: Ask) -> Job:
        resolved = await resolve(c, ask, verb)

        async def job(c: Client) -> int:
            written = await c.submit(resolved, ask.replace, verb)
            records = await c.submitted(resolved, written)
            texts = {lu.name: lu.unit for lu in resolved if lu.unit is not None}
            split = await c.split_global(records, texts)
            await set_and_wait(c, records, split, target, verb, ask.no_block,
                               ask.block_attempts)
            return 0
        return job
    return plan


def _must_be_active(snap: Snapshot, names: Sequence[str], verb: str) -> None:
    for name in names:
        if snap.current(name) is DesiredState.INACTIVE:
            raise UnitctlError(f"Unable to {verb} unit {name} in state inactive")


def _lower(target: DesiredState, verb: str, done: str, check: bool) -> Plan:
    async def plan(c: Client, ask: Ask) -> Job:
        snap = await c.snapshot()
        records = [existing(snap.units, name) for name in ask.names]
        local, glob = await c.split_global(records)
        if check:
            _must_be_active(snap, local, verb)

        async def job(c: Client) -> int:
            await set_and_wait(c, records, (local, glob), target, verb, ask.no_block,
                               ask.block_attempts)
            c.err(f"Successfully {done} units [{' '.join(local)}].")
            return 0
        return job
    return plan


async def plan_destroy(c: Client, ask: Ask) -> Job:
    await c.records(ask.names)  # every one must exist before any is deleted

    async def job(c: Client) -> int:
        destroyed = await c.destroy(ask.names)
        for name in destroyed:
            c.out(f"Destroyed {name}")
        if not ask.no_block:
            await c.wait_for(destroyed, Client.gone, ask.block_attempts,
                             what="be removed from its machines")
        return 0
    return job


async def _restart_global(c: Client, snap: Snapshot, name: str, timeout: float) -> bool:
    machines = sorted(snap.states.get(name, {}))
    if not machines:
        c.err(f"Global unit {name} runs on no machine: nothing to restart")
        return True
    async with AgentChannel(c.registry, timeout) as channel:
        results = await channel.restart_each(
            {m: snap.machines.get(m) is not None for m in machines}, name)
    for machine, why in zip(machines, results, strict=True):
        if why is None:
            c.out(f"Restarted global unit {name} on {machine}")
        else:
            c.err(f"Failed to restart global unit {name} on {machine}: {why}")
    return all(why is None for why in results)


def _restart(agent_timeout: float) -> Plan:
    async def plan(c: Client, ask: Ask) -> Job:
        snap = await c.snapshot()
        records = [existing(snap.units, name) for name in ask.names]
        local, glob = await c.split_global(records)
        _must_be_active(snap, local, "restart")
        by_name: Mapping[str, UnitRecord] = {rec.name: rec for rec in records}

        async def job(c: Client) -> int:
            for name in local:
                await c.restart(snap, by_name[name], ask.block_attempts)
            failed = [name for name in glob
                      if not await _restart_global(c, snap, name, agent_timeout)]
            if failed:
                raise RemoteCommandError(f"restart of global unit(s) {', '.join(failed)} "
                                         "failed on some machines")
            return 0
        return job
    return plan


async def restart(request: web.Request) -> web.StreamResponse:
    return await _verb(_restart(ctx(request).agent_timeout))(request)


ROUTES = (
    Route("POST", "/unitctl/v1/submit", ADMIN, _verb(plan_submit)),
    Route("POST", "/unitctl/v1/load", OPERATE,
          _verb(_activate(DesiredState.LOADED, "load"))),
    Route("POST", "/unitctl/v1/start", OPERATE,
          _verb(_activate(DesiredState.LAUNCHED, "start"))),
    Route("POST", "/unitctl/v1/stop", OPERATE,
          _verb(_lower(DesiredState.LOADED, "stop", "stopped", True))),
    Route("POST", "/unitctl/v1/unload", OPERATE,
          _verb(_lower(DesiredState.INACTIVE, "unload", "unloaded", False))),
    Route("POST", "/unitctl/v1/restart", OPERATE, restart),
    Route("POST", "/unitctl/v1/destroy", ADMIN, _verb(plan_destroy)),
)
