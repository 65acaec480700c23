"""The route table: every route of the server, with the role it needs, in one place.

A :class:`Route` names its method, its path (aiohttp's ``{name}`` syntax,
which is also OpenAPI's), the role a caller needs (None: anybody, even
unauthenticated) and its handler. :func:`build` collects the tables of the
handler modules; :mod:`unitctl.api.app` adds them to the application, and the
OpenAPI test checks the document against :func:`build`'s list. A later part
(the dashboard, metrics) adds its own table the same way: a tuple of Routes
passed to :func:`unitctl.api.app.make_app`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Roles, least first; None in a route means no authentication.
READ, OPERATE, ADMIN = "read", "operate", "admin"


@dataclass(frozen=True, slots=True)
class Route:
    """One route: ``method path`` needs ``role`` and is answered by ``handler``."""

    method: str
    path: str
    role: str | None
    handler: Handler

    @property
    def name(self) -> str:
        """``METHOD path``: unique in a server."""
        return f"{self.method} {self.path}"


def build(*tables: Iterable[Route]) -> list[Route]:
    """Every route of ``tables``, refusing a method and path given twice."""
    routes: list[Route] = []
    seen: set[str] = set()
    for table in tables:
        for route in table:
            if route.name in seen:
                raise ValueError(f"route {route.name} is defined twice")
            seen.add(route.name)
            routes.append(route)
    return routes


def add_all(app: web.Application, routes: Iterable[Route]) -> dict[int, Route]:
    """Add ``routes`` to ``app``; return them by the id of aiohttp's route object
    (what ``request.match_info.route`` is)."""
    by_id = {}
    for route in routes:
        added = app.router.add_route(route.method, route.path, route.handler)
        by_id[id(added)] = route
    return by_id
