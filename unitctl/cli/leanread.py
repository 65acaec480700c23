"""The lean path's run of ``list-units`` and ``list-unit-files``: read etcd, print, no click.

:mod:`unitctl.cli.leanlist` takes the arguments; :func:`run` checks what is
left to check (a number for ``--request-timeout``, an etcd endpoint, fields
that :func:`~unitctl.cli.output.parse_fields` accepts, a stdout encoding click
keeps) and returns None, with nothing read or printed, when click must run
instead. Then it does what the click command does: opens the registry
(:func:`~unitctl.client.connect.open_registry`), reads the snapshot (and for
``list-unit-files`` the bodies) without an event loop, and prints through the
same row builders (:mod:`unitctl.cli.listfields`), written the way
``click.echo`` writes (flushed; ANSI sequences stripped when the stream is no
terminal). An error is the group's ``Error: <message>`` with the exit code of
:func:`unitctl.errors.report`; an interrupt is click's ``Aborted!``, exit 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unitctl.cli import listfields as lf
from unitctl.cli import startup
from unitctl.cli.leanio import echo, guarded, usable
from unitctl.cli.output import parse_fields, render_json, render_table
from unitctl.client.connect import ClientConfig, config_from_params, open_registry
from unitctl.client.snapshot import Snapshot, UnitFileInfo, read_snapshot, reported_states
from unitctl.errors import UsageError
from unitctl.registry import blocking


def run(params: dict[str, Any]) -> int | None:
    """Run the list verb of ``params`` (see :func:`unitctl.cli.leanlist.parse`) and
    return its exit code; None, before anything is read or printed: click's to run."""
    if not usable(params):
        return None
    unit_files = params["verb"] == "list-unit-files"
    fields: Mapping[str, object] = lf.UNIT_FILE_FIELDS if unit_files else lf.UNIT_FIELDS
    if params["fields"] is None:
        params["fields"] = lf.UNIT_FILE_DEFAULT if unit_files else lf.UNIT_DEFAULT
    try:
        cols = parse_fields(params["fields"], list(fields))
    except UsageError:
        return None  # click's command says it
    startup.resume()  # the modules are loaded (unitctl.cli.startup)
    if unit_files:
        return guarded(lambda: _list_unit_files(params, cols))
    return guarded(lambda: _list_units(params, cols))


def _list_units(params: Mapping[str, Any], cols: list[str]) -> None:
    snap = blocking.run_blocking(_snapshot(config_from_params(params)))
    _warn_invalid(snap.invalid)
    states = reported_states(snap)
    cols = lf.unit_columns(params["fields"], cols, states)
    _emit(params, cols, lf.rows(cols, states, lf.unit_cell(snap.machines), params["full"]))


def _list_unit_files(params: Mapping[str, Any], cols: list[str]) -> None:
    if "tmachine" in cols:
        echo(lf.TMACHINE_WARNING, err=True)
    infos, snap = blocking.run_blocking(_unit_files(config_from_params(params)))
    _warn_invalid(snap.invalid)
    _emit(params, cols, lf.rows(cols, infos, lf.unit_file_cell, params["full"]))


def _warn_invalid(invalid: Mapping[str, str]) -> None:
    for line in lf.invalid_warnings(invalid):
        echo(line, err=True)


def _emit(params: Mapping[str, Any], cols: list[str],
          rows: tuple[list[dict[str, lf.Cell]], list[dict[str, lf.Cell]]]) -> None:
    table, js = rows
    if params["as_json"]:
        echo(render_json(cols, js))
    else:
        echo(render_table(cols, table, not params["no_legend"]), nl=False)


async def _snapshot(cfg: ClientConfig) -> Snapshot:
    """The snapshot, over a registry opened and closed here (as the session does)."""
    registry = await open_registry(cfg)
    try:
        return await read_snapshot(registry)
    finally:
        await registry.close()


async def _unit_files(cfg: ClientConfig) -> tuple[list[UnitFileInfo], Snapshot]:
    """``list-unit-files``' rows and the snapshot they come from."""
    from unitctl.client import views  # parses unit texts: this verb's modules only

    registry = await open_registry(cfg)
    try:
        snap = await read_snapshot(registry)
        return await views.unit_file_rows(registry, views.Bodies(registry), snap), snap
    finally:
        await registry.close()
