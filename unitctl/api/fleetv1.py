"""fleet's v1 API, wire-compatible: ``/fleet/v1/units``, ``/machines``, ``/state``.

A port of fleet's api/units.go, machines.go and state.go over the client
layer: the same paths, JSON schema (:mod:`unitctl.api.fleetschema`), paging,
status codes and messages, so fleet's ``client`` package or a curl script
works unchanged. ``PUT /fleet/v1/units/<name>`` creates a unit from its
options (201) or sets its desiredState (204); creating or replacing needs the
``admin`` role, setting a desired state ``operate``. ``PATCH /fleet/v1/machines``
takes fleet's JSON-patch list (``add``/``replace``/``remove`` of
``/<machine>/metadata/<key>``), all checked before any is applied.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from unitctl import names as unames
from unitctl.api import fleetschema as fs
from unitctl.api.auth import require
from unitctl.api.context import client_for, ctx, principal_of
from unitctl.api.errors import ApiError
from unitctl.api.jsonbody import as_object, read_json
from unitctl.api.routes import ADMIN, OPERATE, READ, Route
from unitctl.client.facade import Client
from unitctl.client.resolve import LocalUnit, validate
from unitctl.client.views import parse_or_none
from unitctl.model import DesiredState, UnitRecord
from unitctl.registry.dynmeta import check, merged

METADATA_PATH = re.compile(r"^/([^/]+)/metadata/([A-Za-z0-9_.-]+)$")
STATES = {s.value for s in DesiredState}


def _token(request: web.Request) -> fs.PageToken:
    """The request's page (a bad token is fleet's 400, through UsageError)."""
    return fs.decode_token(request.query.getall("nextPageToken", []))


async def _units(c: Client) -> list[dict[str, Any]]:
    snap = await c.snapshot()
    rows = await c.list_unit_files() if snap.units else []
    texts = await c.registry.get_bodies_by_hash(r.hash for r in rows)
    return [fs.unit_json(r.name, parse_or_none(texts.get(r.hash)), r.desired.value,
                         (r.state or DesiredState.INACTIVE).value, r.target or "")
            for r in rows]


async def list_units(request: web.Request) -> web.Response:
    tok = _token(request)
    items, nxt = fs.page(await _units(client_for(request)), tok)
    return web.json_response(fs.omit_empty({"units": items, "nextPageToken": nxt}))


async def get_unit(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    found = [u for u in await _units(client_for(request)) if u["name"] == name]
    if not found:
        raise ApiError(404, "unit does not exist")
    return web.json_response(found[0])


def _desired(body: dict[str, Any]) -> DesiredState | None:
    value = body.get("desiredState", "")
    if not isinstance(value, str) or (value and value not in STATES):
        raise ApiError(400, f"invalid desiredState {value!r}: expected inactive, loaded or "
                            "launched")
    return DesiredState(value) if value else None


def _unit_body(request: web.Request, body: dict[str, Any]) -> tuple[str, DesiredState | None]:
    item = request.match_info["name"]
    name = body.get("name") or item
    if not isinstance(name, str):
        raise ApiError(400, "name must be a string")
    if name != item:
        raise ApiError(400, f"name in URL {item!r} differs from unit name in request body "
                            f"{name!r}")
    unames.validate_name(name)
    return name, _desired(body)


async def set_unit(request: web.Request) -> web.Response:
    body = dict(as_object(await read_json(request)))
    name, desired = _unit_body(request, body)
    c = client_for(request)
    existing = await c.registry.get_unit(name)
    options = body.get("options") or []
    unit = fs.unit_from_options(options) if options else None
    if existing is None and unit is None:
        raise ApiError(409, "unit does not exist and options field empty")
    if unit is not None and (existing is None or unit.hash() != existing.hash):
        require(principal_of(request), ADMIN)
        warnings = validate(name, unit, "options")
        lu = LocalUnit(name, unit, "options", "file", tuple(warnings), existing)
        target = desired or (existing.desired if existing else DesiredState.INACTIVE)
        _refuse_template(name, target)
        written = await c.submit([lu], True, "start")
        records = await c.submitted([lu], written)
        if target is not DesiredState.INACTIVE:
            await c.set_states(records, target)
        return web.Response(status=201)
    if desired is None:
        raise ApiError(409, "must provide DesiredState to update existing unit")
    _refuse_template(name, desired)
    assert existing is not None
    await c.set_states([existing], desired)
    return web.Response(status=204)


def _refuse_template(name: str, desired: DesiredState) -> None:
    if unames.is_template(name) and desired is not DesiredState.INACTIVE:
        raise ApiError(400, f"cannot activate template {name!r}")


async def destroy_unit(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    c = client_for(request)
    rec: UnitRecord | None = await c.registry.get_unit(name)
    if rec is None:
        raise ApiError(404, "unit does not exist")
    await c.destroy([name])
    return web.Response(status=204)


async def list_machines(request: web.Request) -> web.Response:
    tok = _token(request)
    machines = merged(await client_for(request).list_machines(),
                      await ctx(request).registry.metadata.all())
    items, nxt = fs.page([fs.machine_json(m) for m in machines], tok)
    return web.json_response(fs.omit_empty({"machines": items, "nextPageToken": nxt}))


def _patch_ops(ops: Any) -> list[tuple[str, str, str, str]]:
    """fleet's checks of every op, before any is applied: (op, machine, key, value)."""
    if not isinstance(ops, list):
        raise ApiError(400, "expected a JSON list of {op, path, value} objects")
    checked = []
    for op in ops:
        if not isinstance(op, dict):
            raise ApiError(400, "expected a JSON list of {op, path, value} objects")
        kind, path, value = op.get("op"), op.get("path"), op.get("Value", op.get("value"))
        if kind not in ("add", "remove", "replace"):
            raise ApiError(400, "invalid op: expect add, remove, or replace")
        match = METADATA_PATH.match(path) if isinstance(path, str) else None
        if match is None:
            raise ApiError(400, "machine metadata path invalid")
        text = value.get("value", "") if isinstance(value, dict) else ""
        if kind != "remove" and (not isinstance(text, str) or not text):
            raise ApiError(400, "invalid value: add and replace require a value")
        checked.append((kind, match.group(1), match.group(2), str(text)))
    return checked


async def patch_machines(request: web.Request) -> web.Response:
    ops = _patch_ops(await read_json(request, require_type=False))
    store = ctx(request).registry.metadata
    for kind, machine, key, value in ops:
        check(machine, key, None if kind == "remove" else value)
    for kind, machine, key, value in ops:
        if kind == "remove":
            await store.delete(machine, key)
        else:
            await store.set(machine, key, value)
    return web.Response(status=204, content_type="application/json")


async def list_state(request: web.Request) -> web.Response:
    tok = _token(request)
    machine = request.query.get("machineID", "")
    unit = request.query.get("unitName", "")
    snap = await client_for(request).snapshot()
    states = [fs.state_json(s.state) for per in snap.states.values() for s in per.values()
              if (not machine or s.state.machine_id == machine)
              and (not unit or s.state.name == unit)]
    states.sort(key=lambda s: (s.get("name", ""), s.get("machineID", "")))
    items, nxt = fs.page(states, tok)
    return web.json_response(fs.omit_empty({"states": items, "nextPageToken": nxt}))


ROUTES = (
    Route("GET", "/fleet/v1/units", READ, list_units),
    Route("GET", "/fleet/v1/units/{name}", READ, get_unit),
    Route("PUT", "/fleet/v1/units/{name}", OPERATE, set_unit),
    Route("DELETE", "/fleet/v1/units/{name}", ADMIN, destroy_unit),
    Route("GET", "/fleet/v1/machines", READ, list_machines),
    Route("PATCH", "/fleet/v1/machines", ADMIN, patch_machines),
    Route("GET", "/fleet/v1/state", READ, list_state),
)
