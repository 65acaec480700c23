"""``unitctl resolve NAME``: where a service answers, from the agents' service records.

NAME is a unit (``testdb``, ``testdb.service``, ``web@1``) or a template
(``web``: every instance). One line per running instance: the unit, its
machine, the machine's address and the host ports allocated to it; with
``--json`` a list of objects. A name without records (not running, not
healthy, or its machine lost) exits 3, as an unknown unit does
(docs/reference.md "Service discovery").
"""

from __future__ import annotations

import json

import click

from unitctl.cli.output import render_table
from unitctl.cli.session import Session, pass_session
from unitctl.client.facade import Client
from unitctl.errors import NotFoundError
from unitctl.legend import machine_legend
from unitctl.registry.services import ServiceRecord

FIELDS = ["unit", "machine", "address", "ports", "dns"]


def _ports(record: ServiceRecord) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(record.ports.items())) or "-"


def _dns_name(service: str) -> str:
    template, at, instance = service.lower().partition("@")
    return f"{instance}.{template}" if at else template


@click.command("resolve")
@click.argument("name")
@click.option("--full", is_flag=True, help="Do not shorten machine ids.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_session
def resolve(sess: Session, name: str, full: bool, as_json: bool) -> None:
    """Print where a service answers: machine address and allocated host ports."""
    async def read(c: Client) -> list[ServiceRecord]:
        return await c.registry.services.lookup(name)
    records = sess.read(read)
    if not records:
        raise NotFoundError(f"no running instance of {name} publishes a service record")
    if as_json:
        click.echo(json.dumps([{"unit": r.unit, "machine": r.machine, "address": r.address,
                                "ports": dict(sorted(r.ports.items())),
                                "dns": _dns_name(r.service)} for r in records], indent=2))
        return
    rows: list[dict[str, str | None]] = [
        {"unit": r.unit, "machine": machine_legend(r.machine, None, full), "address": r.address,
         "ports": _ports(r), "dns": _dns_name(r.service)} for r in records]
    click.echo(render_table(FIELDS, rows), nl=False)
