"""The web dashboard: its files, served from the package (``unitctl/api/ui/``).

``GET /`` redirects to ``/dashboard/``, which is ``index.html``; ``GET
/dashboard/{asset}`` serves the few files named in :data:`ASSETS` and nothing
else (no directory walk, nothing from the network). The files hold no data and
need no token: the page asks for one, keeps it in ``sessionStorage`` and sends
it as a bearer header on every API call, the event stream included (read with
``fetch``, since ``EventSource`` cannot send headers). No cookie is ever set,
so another site cannot make the browser act with the user's rights (no CSRF).
A strict Content-Security-Policy allows only the page's own scripts, styles
and API. :data:`ROUTES` also holds the scale verb (:mod:`unitctl.api.scale`).
"""

from __future__ import annotations

import importlib.resources

from aiohttp import web

from unitctl.api import scale
from unitctl.api.errors import ApiError
from unitctl.api.routes import Route

ASSETS = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def asset(name: str) -> bytes:
    """The bytes of one dashboard file (KeyError for a name not in :data:`ASSETS`)."""
    if name not in ASSETS:
        raise KeyError(name)
    return importlib.resources.files("unitctl.api").joinpath("ui", name).read_bytes()


def _file(name: str) -> web.Response:
    return web.Response(body=asset(name), content_type=ASSETS[name], charset="utf-8",
                        headers=HEADERS)


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard/")


async def index(request: web.Request) -> web.Response:
    return _file("index.html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in ASSETS:
        raise ApiError(404, f"no dashboard file {name!r}")
    return _file(name)


ROUTES = (
    Route("GET", "/", None, root),
    Route("GET", "/dashboard/", None, index),
    Route("GET", "/dashboard/{asset}", None, static),
    *scale.ROUTES,
)
