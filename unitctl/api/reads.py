"""unitctl's read-only API: what list-units, list-unit-files, list-machines, cat and
explain show, as JSON; plus ``whoami``, the audit log and the OpenAPI document.

The JSON of a model object is made by :mod:`unitctl.api.wire` (the CLI's API
client decodes with the same module).
"""

from __future__ import annotations

import importlib.resources
import json

from aiohttp import web

from unitctl import names as unames
from unitctl.api import wire
from unitctl.api.context import client_for, ctx, principal_of
from unitctl.api.jsonbody import bounded_int
from unitctl.api.routes import ADMIN, READ, Route
from unitctl.cli.describe import explain_json
from unitctl.client import explain as explaining
from unitctl.client import views
from unitctl.registry.dynmeta import merged


def _name(request: web.Request) -> str:
    name = unames.mangle(request.match_info["name"])
    unames.validate_name(name)
    return name


async def list_unit_files(request: web.Request) -> web.Response:
    c = client_for(request)
    snap = await c.snapshot()
    rows = await views.unit_file_rows(c.registry, c.bodies, snap)
    return web.json_response({"units": [wire.unit_file_json(r) for r in rows],
                              "invalid": dict(snap.invalid)})


async def get_unit(request: web.Request) -> web.Response:
    name = _name(request)
    c = client_for(request)
    text = await c.cat(name)
    rows = [r for r in await c.list_unit_files() if r.name == name]
    out = wire.unit_file_json(rows[0]) if rows else {"name": name}
    return web.json_response({**out, "text": text})


async def explain(request: web.Request) -> web.Response:
    c = client_for(request)
    return web.json_response(explain_json(await explaining.explain(c.registry, c.bodies,
                                                                  _name(request))))


async def list_states(request: web.Request) -> web.Response:
    snap = await client_for(request).snapshot()
    return web.json_response({"states": [wire.state_json(s)
                                         for s in views.reported_states(snap)],
                              "invalid": dict(snap.invalid)})


async def list_machines(request: web.Request) -> web.Response:
    registry = ctx(request).registry
    machines = merged(await client_for(request).list_machines(),
                      await registry.metadata.all())
    return web.json_response({"machines": [wire.machine_json(m) for m in machines]})


async def whoami(request: web.Request) -> web.Response:
    who = principal_of(request)
    return web.json_response({"who": who.who, "role": who.role})


async def audit(request: web.Request) -> web.Response:
    limit = bounded_int(request.query.get("limit", "100"), "limit", 1, 10000)
    entries = await ctx(request).registry.audit.recent(limit)
    return web.json_response({"entries": [
        {"time": e.time, "who": e.who, "role": e.role, "method": e.method, "path": e.path,
         "status": e.status} for e in entries]})


def openapi_document() -> dict[str, object]:
    """The OpenAPI document shipped with the package (``unitctl/api/openapi.json``)."""
    text = importlib.resources.files("unitctl.api").joinpath("openapi.json").read_text()
    doc = json.loads(text)
    assert isinstance(doc, dict)
    return doc


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


ROUTES = (
    Route("GET", "/openapi.json", None, openapi),
    Route("GET", "/unitctl/v1/whoami", READ, whoami),
    Route("GET", "/unitctl/v1/units", READ, list_unit_files),
    Route("GET", "/unitctl/v1/units/{name}", READ, get_unit),
    Route("GET", "/unitctl/v1/units/{name}/explain", READ, explain),
    Route("GET", "/unitctl/v1/states", READ, list_states),
    Route("GET", "/unitctl/v1/machines", READ, list_machines),
    Route("GET", "/unitctl/v1/audit", ADMIN, audit),
)
