"""``POST /unitctl/v1/scale``: run N instances of a stored template (the dashboard's scale).

Body ``{"template": "web@.service", "instances": N}`` (0 to :data:`MAX_INSTANCES`).
Instances are numbered: after the call ``web@1.service`` … ``web@N.service``
are desired ``launched`` (created from the stored template when missing, as
``unitctl start web@3.service`` does) and every other numbered instance of
the template that is not ``inactive`` is set ``inactive`` (its record stays,
so scaling up again reuses it). Instances with other names are left alone.
It does not wait for the machines: the answer is ``{"started": [...],
"stopped": [...]}`` and the event stream shows the rest. Needs ``operate``
(no unit text is given: the template is already stored).
"""

from __future__ import annotations

from aiohttp import web

from unitctl import names as unames
from unitctl.api.context import client_for
from unitctl.api.errors import ApiError
from unitctl.api.jsonbody import as_object, bounded_int, only_keys, read_json
from unitctl.api.routes import OPERATE, Route
from unitctl.client.facade import Client
from unitctl.model import DesiredState

MAX_INSTANCES = 1000


def _instance_number(name: str, template: str) -> int | None:
    if not unames.is_instance(name) or unames.template_of(name) != template:
        return None
    instance = unames.unit_instance(name)
    return int(instance) if instance.isdigit() and not instance.startswith("0") else None


async def _read(request: web.Request) -> tuple[str, int]:
    body = as_object(await read_json(request, require_type=False))
    only_keys(body, {"template", "instances"})
    template = body.get("template")
    if not isinstance(template, str) or not unames.is_template(template):
        raise ApiError(400, "template must be a template unit name such as web@.service")
    unames.validate_name(template)
    return template, bounded_int(body.get("instances"), "instances", 0, MAX_INSTANCES)


async def _scale(c: Client, template: str, count: int) -> tuple[list[str], list[str]]:
    snap = await c.snapshot()
    if template not in snap.units:
        raise ApiError(404, f"template {template} is not stored: submit it first")
    numbered = {name: n for name in snap.units
                if (n := _instance_number(name, template)) is not None}
    prefix, suffix = unames.unit_prefix(template), unames.unit_suffix(template)
    wanted = [f"{prefix}@{i}.{suffix}" for i in range(1, count + 1)]
    excess = sorted((n for n, i in numbered.items() if i > count
                     and snap.units[n].desired is not DesiredState.INACTIVE),
                    key=numbered.__getitem__)
    start = [name for name in wanted if name not in snap.units
             or snap.units[name].desired is not DesiredState.LAUNCHED]
    if start:
        resolved = await c.resolve(start, "start")
        records = await c.submitted(resolved, await c.submit(resolved, False, "start"))
        await c.set_states(records, DesiredState.LAUNCHED)
    if excess:
        await c.set_states([snap.units[n] for n in excess], DesiredState.INACTIVE)
    return start, excess


async def scale(request: web.Request) -> web.Response:
    template, count = await _read(request)
    started, stopped = await _scale(client_for(request), template, count)
    return web.json_response({"template": template, "instances": count,
                              "started": started, "stopped": stopped})


ROUTES = (Route("POST", "/unitctl/v1/scale", OPERATE, scale),)
