"""The lean path's run of ``start`` and ``load``: the click command's coroutine, no click.

:mod:`unitctl.cli.leanstart` takes the arguments; :func:`activate` opens the
registry as :class:`~unitctl.cli.session.Session` does
(:func:`~unitctl.client.connect.open_registry`, closed at the end), runs
:func:`unitctl.client.activate.activate` with a client that writes as
``click.echo`` does (:func:`unitctl.cli.leanio.echo`), and one
``--block-attempts`` attempt of a second, as the group's session.

It runs without an event loop (:func:`unitctl.registry.blocking.run_blocking`):
the gateway's requests are blocking round trips and the wait's watches
blocking sockets (:mod:`unitctl.client.blockwatch`), so a ``start`` never
imports asyncio, which cost about as much as the rest of its imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unitctl.cli import startup
from unitctl.cli.leanio import echo
from unitctl.client.activate import activate as activate_units
from unitctl.client.connect import ClientConfig, config_from_params, open_registry
from unitctl.client.facade import Client
from unitctl.model import DesiredState
from unitctl.registry.blocking import run_blocking

#: The length of one ``--block-attempts`` attempt (the session's default).
ATTEMPT_SECONDS = 1.0


def _err(text: str) -> None:
    echo(text, err=True)


def activate(params: Mapping[str, Any]) -> None:
    """Run the verb of ``params`` (:func:`unitctl.cli.leanstart.parse`); errors raise."""
    startup.resume()  # the modules are loaded (unitctl.cli.startup)
    target = DesiredState(params["target"])
    run_blocking(_run(config_from_params(params), params, target))


async def _run(cfg: ClientConfig, params: Mapping[str, Any], target: DesiredState) -> None:
    registry = await open_registry(cfg)
    try:
        client = Client(registry, out=echo, err=_err, attempt_seconds=ATTEMPT_SECONDS)
        await activate_units(client, params["units"], target, params["verb"],
                             params["no_block"], params["block_attempts"], params["replace"])
    finally:
        await registry.close()
