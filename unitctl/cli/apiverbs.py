"""The verbs that work through unitctl's HTTP API, for ``--endpoint`` an API URL.

With an API endpoint (:func:`unitctl.client.connect.api_from_params`), the
group runs these commands in place of the etcd ones: list-units,
list-unit-files, list-machines, cat, explain, submit, load, start, stop,
unload, restart, destroy, status and journal. They take the same arguments
and print the same tables and messages: the server runs the verb with the
same client layer and streams its messages back; a local unit file is sent
as its text. The other verbs need etcd and say so.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import click

from unitctl import names as unames
from unitctl.api import wire
from unitctl.cli.output import parse_fields, render_json, render_table
from unitctl.client.apiclient import ApiClient
from unitctl.client.connect import api_from_params
from unitctl.errors import ConfigError, UnitctlError
from unitctl.model import Machine


@dataclass(frozen=True, slots=True)
class Tables:
    """The list verbs' columns (cli/lists.py's tables; main.py passes them in, as
    command modules import only leaves): (fields, default) per list."""

    units: tuple[Mapping[str, Any], str]
    unit_files: tuple[Mapping[str, Any], str]
    machines: tuple[Mapping[str, Any], str]

#: Verbs available through the API.
VERBS = ("list-units", "list-unit-files", "list-machines", "cat", "explain", "submit", "load",
         "start", "stop", "unload", "restart", "destroy", "status", "journal")


def client_of(ctx: click.Context) -> ApiClient:
    endpoint = api_from_params(ctx.find_root().params)
    if endpoint is None:
        raise ConfigError("no API endpoint")
    return ApiClient(endpoint)


def _finish(lines: Iterator[dict[str, Any]]) -> int:
    """Print a streamed answer; return its exit code (an error is raised, as the CLI's)."""
    for obj in lines:
        if "out" in obj:
            click.echo(obj["out"])
        elif "err" in obj:
            click.echo(obj["err"], err=True)
        elif "stdout" in obj:
            click.echo(obj["stdout"], nl=False)
        elif "stderr" in obj:
            click.echo(obj["stderr"], nl=False, err=True)
        elif "exit" in obj:
            code = int(obj["exit"])
            if obj.get("error"):
                click.echo(f"Error: {obj['error']}", err=True)
            return code
    raise UnitctlError("the API's answer ended early")


def _unit_entry(arg: str) -> str | dict[str, str]:
    """A unit argument as the API takes it: its local file's text when there is one
    (the same file the etcd path would read: ``arg``, or ``name`` next to it)."""
    name = unames.mangle(arg)
    base = arg.rstrip("/").rpartition("/")[2]
    path = arg if name == base else os.path.join(os.path.dirname(arg), name)
    if not os.path.isfile(path):
        return name
    from unitctl.client.resolve import read_unit_file

    return {"name": name, "text": read_unit_file(path).serialize()}


def _verb(name: str, target: str, texts: bool) -> click.Command:
    @click.command(name)
    @click.argument("units", nargs=-1)
    @click.option("--no-block", is_flag=True, help="Do not wait for the units' state.")
    @click.option("--block-attempts", type=click.IntRange(min=0), default=0,
                  show_default=True, help="Attempts (about 1 s each); 0 waits for ever.")
    @click.option("--replace", is_flag=True, help="Replace units that differ.")
    @click.pass_context
    def command(ctx: click.Context, units: tuple[str, ...], no_block: bool,
                block_attempts: int, replace: bool) -> None:
        if not units:
            click.echo("No units given", err=True)
            return
        entries = [_unit_entry(u) if texts else unames.mangle(u) for u in units]
        body = {"units": entries, "noBlock": no_block, "blockAttempts": block_attempts,
                "replace": replace}
        ctx.exit(_finish(client_of(ctx).stream("POST", f"/unitctl/v1/{target}", body)))
    command.help = f"{name} through the API (see unitctl {name} --help with etcd)."
    return command


Cell = Any


def _list_options(f: Any) -> Any:
    f = click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")(f)
    f = click.option("--no-legend", is_flag=True, help="Do not print the header line.")(f)
    f = click.option("--full", "-l", "full", is_flag=True, help="Do not shorten ids.")(f)
    return f


def _emit(cols: list[str], rows: list[Any], cell: Any, full: bool, no_legend: bool,
          as_json: bool) -> None:
    if as_json:
        click.echo(render_json(cols, [{f: cell(f, r, True) for f in cols} for r in rows]))
    else:
        click.echo(render_table(cols, [{f: cell(f, r, full) for f in cols} for r in rows],
                                not no_legend), nl=False)


def _machines(api: ApiClient) -> dict[str, Machine]:
    return {m.id: m for m in (wire.machine_from(o)
                              for o in api.get("/unitctl/v1/machines")["machines"])}


def _list_machines(fields_of: Mapping[str, Any], default: str) -> click.Command:
    @click.command("list-machines")
    @click.option("--fields", default=default, show_default=True)
    @_list_options
    @click.pass_context
    def list_machines(ctx: click.Context, fields: str, full: bool, no_legend: bool,
                      as_json: bool) -> None:
        """List the live machines of the cluster (through the API)."""
        cols = parse_fields(fields, list(fields_of))
        rows = sorted(_machines(client_of(ctx)).values(), key=lambda m: m.id)
        _emit(cols, rows, lambda f, m, full: fields_of[f](m, full), full, no_legend, as_json)
    return list_machines


def _list_units(fields_of: Mapping[str, Any], default: str) -> click.Command:
    @click.command("list-units")
    @click.option("--fields", default=default, show_default=True)
    @_list_options
    @click.pass_context
    def list_units(ctx: click.Context, fields: str, full: bool, no_legend: bool,
                   as_json: bool) -> None:
        """List the units' systemd states as the machines report them (through the API)."""
        cols = parse_fields(fields, list(fields_of))
        api = client_of(ctx)
        machines = _machines(api)
        states = [wire.state_from(o) for o in api.get("/unitctl/v1/states")["states"]]
        if fields == default and any(s.error for s in states):
            cols.append("error")
        _emit(cols, states, lambda f, s, full: fields_of[f](s, machines, full), full,
              no_legend, as_json)
    return list_units


def _list_unit_files(fields_of: Mapping[str, Any], default: str) -> click.Command:
    @click.command("list-unit-files")
    @click.option("--fields", default=default, show_default=True)
    @_list_options
    @click.pass_context
    def list_unit_files(ctx: click.Context, fields: str, full: bool, no_legend: bool,
                        as_json: bool) -> None:
        """List the units in the registry (through the API)."""
        cols = parse_fields(fields, list(fields_of))
        api = client_of(ctx)
        machines = _machines(api)
        rows = [wire.unit_file_from(o, machines)
                for o in api.get("/unitctl/v1/units")["units"]]
        _emit(cols, rows, lambda f, u, full: fields_of[f](u, full), full, no_legend, as_json)
    return list_unit_files


@click.command("cat")
@click.argument("unit")
@click.pass_context
def cat(ctx: click.Context, unit: str) -> None:
    """Print the unit file stored in the registry (through the API)."""
    name = urllib.parse.quote(unames.mangle(unit), safe="@")
    click.echo(client_of(ctx).get(f"/unitctl/v1/units/{name}")["text"], nl=False)


@click.command("explain")
@click.argument("unit")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def explain(ctx: click.Context, unit: str, as_json: bool) -> None:
    """Tell where a unit is placed, or why it cannot be (through the API)."""
    name = urllib.parse.quote(unames.mangle(unit), safe="@")
    click.echo(json.dumps(client_of(ctx).get(f"/unitctl/v1/units/{name}/explain"), indent=2,
                          sort_keys=True))
    _ = as_json  # the API's explanation is the JSON form


@click.command("status")
@click.argument("units", nargs=-1, required=True)
@click.pass_context
def status(ctx: click.Context, units: tuple[str, ...]) -> None:
    """Show `systemctl status -l UNIT` from each unit's machine (through the API)."""
    api = client_of(ctx)
    for i, unit in enumerate(units):
        if i:
            click.echo("")
        name = urllib.parse.quote(unames.mangle(unit), safe="@")
        code = _finish(api.stream("GET", f"/unitctl/v1/units/{name}/status"))
        if code:
            ctx.exit(code)


@click.command("journal")
@click.argument("unit")
@click.option("--lines", "-n", type=click.IntRange(0, 10000), default=10, show_default=True)
@click.option("--follow", "-f", is_flag=True)
@click.option("--output", "-o", default="short", show_default=True)
@click.pass_context
def journal(ctx: click.Context, unit: str, lines: int, follow: bool, output: str) -> None:
    """Show the journal of a unit from its machine (through the API)."""
    name = urllib.parse.quote(unames.mangle(unit), safe="@")
    query = {"lines": str(lines), "follow": "true" if follow else "false", "output": output}
    ctx.exit(_finish(client_of(ctx).stream("GET", f"/unitctl/v1/units/{name}/journal",
                                           query=query)))


def commands(tables: Tables) -> dict[str, click.Command]:
    """Every verb the API offers, by name."""
    return {
        "list-units": _list_units(*tables.units),
        "list-unit-files": _list_unit_files(*tables.unit_files),
        "list-machines": _list_machines(*tables.machines), "cat": cat, "explain": explain,
        "status": status,
        "journal": journal,
        **{verb: _verb(verb, verb, verb in ("submit", "load", "start"))
           for verb in ("submit", "load", "start", "stop", "unload", "restart", "destroy")},
    }


def needs_etcd(name: str) -> click.Command:
    """A stand-in for a verb the API does not offer."""
    @click.command(name, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise ConfigError(f"{name} is not available through the API endpoint: give etcd's "
                          f"--endpoint (the API offers {', '.join(VERBS)})")
    return command
