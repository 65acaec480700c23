"""What the handlers of one server share, and how a handler finds it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from unitctl.api import routes as routing
from unitctl.api.auth import AuthSettings, Principal
from unitctl.client.facade import Client
from unitctl.registry.registry import Registry

Say = Callable[[str], None]


@dataclass
class ServerContext:
    """What every handler shares."""

    registry: Registry
    auth: AuthSettings = field(default_factory=AuthSettings)
    #: directory served at /ui/ (the dashboard's files), or "" for none
    static_dir: str = ""
    #: seconds a client's agent request may wait for the machine's agent
    agent_timeout: float = 10.0
    routes: dict[int, routing.Route] = field(default_factory=dict)
    #: an empty directory: the clients' working directory, so that resolving a
    #: unit name never finds a file of the server's
    empty_dir: str = ""


CONTEXT = web.AppKey("unitctl", ServerContext)
PRINCIPAL = web.RequestKey("unitctl.principal", Principal)


def ctx(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]


def principal_of(request: web.Request) -> Principal:
    """The caller the auth middleware let through."""
    return request[PRINCIPAL]


def _discard(_text: str) -> None:
    return None


def client_for(request: web.Request, out: Say = _discard, err: Say = _discard) -> Client:
    """A client over the server's registry, its messages going to ``out``/``err``."""
    return Client(ctx(request).registry, out=out, err=err, cwd=ctx(request).empty_dir)
