"""Shell completion of unit and machine arguments.

The callbacks read the registry through the same :meth:`Session.run` as the
commands (a session built from the global flags typed so far, or the injected
one), bounded by the request timeout; they are best effort and silent on any
error: a completion never prints a traceback into the user's shell.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import click

from unitctl.cli.session import Session
from unitctl.client.connect import config_from_params
from unitctl.client.facade import Client
from unitctl.registry.registry import Registry


def _session(ctx: click.Context) -> Session:
    """The session the command line typed so far describes."""
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, Session):
        obj = Session(registry=obj if isinstance(obj, Registry) else None)
    return dataclasses.replace(obj, config=config_from_params(root.params))


def _complete(ctx: click.Context, fetch: Callable[[Client], Awaitable[list[str]]],
              incomplete: str) -> list[str]:
    sess = _session(ctx)
    try:
        found = sess.read(fetch)
    except Exception:  # completion is best effort, never a traceback
        return []
    return [n for n in found if n.startswith(incomplete)]


async def _unit_names(client: Client) -> list[str]:
    return [u.name for u in await client.registry.list_units()]


async def _machines_and_units(client: Client) -> list[str]:
    return [m.id for m in await client.list_machines()] + await _unit_names(client)


def complete_units(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Unit names in the registry starting with ``incomplete`` (best effort)."""
    return _complete(ctx, _unit_names, incomplete)


def complete_machines(ctx: click.Context, param: click.Parameter,
                      incomplete: str) -> list[str]:
    """Machine ids (and unit names) starting with ``incomplete`` (best effort)."""
    return _complete(ctx, _machines_and_units, incomplete)
