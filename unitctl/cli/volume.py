"""``unitctl volume ls`` and ``unitctl volume rm NAME``: the cluster's volumes.

``ls`` prints each volume record (:mod:`unitctl.volumes`): its name, where it
lives (the machine of a local volume, the shared store of a shared one; the
other column is ``-``), its directory there, its recorded size and the unit it
belongs to (``--json``: a list of objects, ``machine`` or ``store`` null).
``rm NAME`` removes the record only: a unit with a local volume is then free
to run on another machine (with a new, empty volume there) and the old
directory, with its data, stays where it was until removed by hand
(docs/reference.md "Local volumes", "Shared volumes"). An unknown NAME exits 3.
"""

from __future__ import annotations

import json

import click

from unitctl.cli.output import render_table
from unitctl.cli.session import Session, pass_session
from unitctl.errors import NotFoundError, UsageError
from unitctl.legend import machine_legend
from unitctl.volumes import format_size, valid_name

FIELDS = ["volume", "machine", "store", "path", "size", "unit"]


@click.group("volume")
def volume() -> None:
    """List volumes (local or on a shared store), or remove a volume's record (the data
    stays)."""


@volume.command("ls")
@click.option("--full", is_flag=True, help="Do not shorten machine ids.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_session
def volume_ls(sess: Session, full: bool, as_json: bool) -> None:
    """List the volumes: where each lives (machine or shared store), its size and unit."""
    records = sess.read(lambda c: c.registry.volumes.all())
    if as_json:
        click.echo(json.dumps([{"volume": r.name, "machine": r.machine or None,
                                "store": r.store or None, "path": r.path, "size": r.size,
                                "unit": r.unit} for r in records.values()], indent=2))
        return
    rows: list[dict[str, str | None]] = [
        {"volume": r.name, "machine": machine_legend(r.machine, None, full) if r.machine else "-",
         "store": r.store or "-", "path": r.path, "size": format_size(r.size), "unit": r.unit}
        for r in records.values()]
    click.echo(render_table(FIELDS, rows), nl=False)


@volume.command("rm")
@click.argument("name")
@pass_session
def volume_rm(sess: Session, name: str) -> None:
    """Remove the record of volume NAME: its unit may then move (the data stays behind)."""
    if not valid_name(name):
        raise UsageError(f"bad volume name {name!r}")
    if not sess.run(lambda c: c.registry.volumes.remove(name)):
        raise NotFoundError(f"volume {name} not found")
    click.echo(f"Removed the record of volume {name}; its directory and data stay on "
               "the machine (or shared store)")
