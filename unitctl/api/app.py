"""The aiohttp application: the route table, behind three middlewares.

1. errors: every failure answers fleet's JSON error body
   (:mod:`unitctl.api.errors`): our ApiError, a unitctl error mapped to its
   status, aiohttp's own 404/405/413, and anything else as a logged 500;
2. auth: the caller (:mod:`unitctl.api.auth`) must have the route's role;
3. audit: every write (a method other than GET/HEAD) is logged on stderr with
   who made it and the answer's status, and one that succeeded is stored in
   the audit log in etcd (:mod:`unitctl.registry.audit`); a refused write
   changes nothing stored, its log line says who tried.

Handlers find the shared objects with :func:`unitctl.api.context.ctx`.
Static files are served from ``ServerContext.static_dir`` at ``/ui/`` when set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from aiohttp import web

from unitctl.api import actions, events, fleetv1, reads, streams
from unitctl.api import routes as routing
from unitctl.api.auth import authenticate, require
from unitctl.api.context import CONTEXT, PRINCIPAL, ServerContext, ctx, principal_of
from unitctl.api.errors import ApiError, error_body, from_unitctl
from unitctl.errors import UnitctlError
from unitctl.registry.audit import AuditEntry

log = logging.getLogger("unitctl.api")
MAX_BODY = 2 * 1024 * 1024


def json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=error_body(status, message),
                        content_type="application/json")


@web.middleware
async def errors_middleware(request: web.Request, handler: routing.Handler
                            ) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.message)
    except UnitctlError as exc:
        err = from_unitctl(exc)
        return json_error(err.status, err.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason)


@web.middleware
async def auth_middleware(request: web.Request, handler: routing.Handler) -> web.StreamResponse:
    route = ctx(request).routes.get(id(request.match_info.route))
    if route is None or route.role is None:  # aiohttp's 404/405, public routes
        return await handler(request)
    found = await authenticate(request, ctx(request).registry, ctx(request).auth)
    if request.method not in ("GET", "HEAD"):
        try:
            request[PRINCIPAL] = require(found, route.role)
        except ApiError as exc:
            _log_write(request, found.who if found else "anonymous",
                       found.role if found else "-", exc.status)
            raise
        return await _audited(request, handler)
    request[PRINCIPAL] = require(found, route.role)
    return await handler(request)


def _log_write(request: web.Request, who: str, role: str, status: int) -> AuditEntry:
    entry = AuditEntry(time.time(), who, role, request.method, request.path_qs, status)
    log.warning("%s", entry.line())
    return entry


async def _audited(request: web.Request, handler: routing.Handler) -> web.StreamResponse:
    """Run a write; log it, and store it in the audit log when it succeeded."""
    who = principal_of(request)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except ApiError as exc:
        status = exc.status
        raise
    except UnitctlError as exc:
        status = from_unitctl(exc).status
        raise
    finally:
        entry = _log_write(request, who.who, who.role, status)
        if status < 400:
            await ctx(request).registry.audit.append(entry)


def make_app(context: ServerContext, *tables: Iterable[routing.Route]) -> web.Application:
    """The application over ``context``: unitctl's route tables plus ``tables``."""
    app = web.Application(middlewares=[errors_middleware, auth_middleware],
                          client_max_size=MAX_BODY)
    app[CONTEXT] = context
    every = routing.build(fleetv1.ROUTES, reads.ROUTES, actions.ROUTES, streams.ROUTES,
                          events.ROUTES, *tables)
    context.routes.update(routing.add_all(app, every))
    if context.static_dir:
        app.router.add_static("/ui/", context.static_dir, show_index=False,
                              follow_symlinks=False)
    return app
