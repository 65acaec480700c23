"""``unitctl template submit|destroy``, ``unitctl templates`` and ``unitctl data``.

A template resource file is TOML with one ``[template]`` table, the shape of
confd's template resources (``src``, ``dest``, ``keys``, ``check_cmd``,
``reload_cmd`` ...; docs/templates.md); ``src`` is read relative to the file
and stored with the resource, so every machine renders the same text. The
listing shows each machine's last render. ``data`` writes the keys templates
read, under ``<prefix>data/`` (``etcdctl put <prefix>data/...`` does the same).
"""

from __future__ import annotations

import os

import click

from unitctl.cli.output import iso_time, render_json, render_table
from unitctl.cli.session import Session, pass_session
from unitctl.client.facade import Client
from unitctl.errors import NotFoundError, UsageError
from unitctl.legend import machine_legend

LIST_FIELDS = ["template", "dest", "machine", "result", "revision", "time", "detail"]


@click.group("template")
def template() -> None:
    """Submit or destroy a config template rendered on the machines (docs/templates.md)."""


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") \
            from exc


@template.command("submit")
@click.argument("path", metavar="FILE")
@pass_session
def template_submit(sess: Session, path: str) -> None:
    """Store the template resource of FILE (TOML, one [template] table)."""
    from unitctl.templating.render import check_syntax  # jinja2: only for this verb
    from unitctl.templating.resource import from_toml

    base = os.path.dirname(os.path.abspath(path))
    res = from_toml(_read(path), lambda src: _read(os.path.join(base, src)))
    problem = check_syntax(res.template)
    if problem:
        raise UsageError(f"template {res.name}: {problem}")
    what = sess.run(lambda c: c.registry.templates.submit(res))
    click.echo(f"Template {res.name} {what} ({res.dest})")


@template.command("destroy")
@click.argument("name")
@pass_session
def template_destroy(sess: Session, name: str) -> None:
    """Remove a template resource (rendered files stay on the machines)."""
    if not sess.run(lambda c: c.registry.templates.destroy(name)):
        raise NotFoundError(f"template {name} not found")
    click.echo(f"Destroyed template {name}")


@click.command("templates")
@click.option("--full", is_flag=True, help="Do not shorten machine ids.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_session
def templates(sess: Session, full: bool, as_json: bool) -> None:
    """List config templates and each machine's last render (ok, check failed ...)."""
    async def read(c: Client) -> list[dict[str, str | None]]:
        store = c.registry.templates
        resources, statuses = await store.all(), await store.statuses()
        machines = {m.id: m for m in await c.registry.list_machines()}
        rows: list[dict[str, str | None]] = []
        for res in sorted(resources, key=lambda r: r.name):
            per = statuses.get(res.name, {})
            for mid in sorted(per) or [""]:
                st = per.get(mid)
                rows.append({"template": res.name, "dest": res.dest,
                             "machine": machine_legend(mid, machines.get(mid), full)
                             if mid else None,
                             "result": st.result if st else None,
                             "revision": str(st.revision) if st else None,
                             "time": iso_time(st.time) if st else None,
                             "detail": st.detail if st else None})
        return rows
    rows = sess.read(read)
    click.echo(render_json(LIST_FIELDS, rows) if as_json else
               render_table(LIST_FIELDS, rows), nl=as_json)


@click.group("data")
def data() -> None:
    """Set, get, list and remove the data keys templates read (<prefix>data/...)."""


@data.command("set")
@click.argument("key")
@click.argument("value")
@pass_session
def data_set(sess: Session, key: str, value: str) -> None:
    """Set KEY (a path like /hosts/zk1) to VALUE."""
    sess.run(lambda c: c.registry.templates.set_data(key, value))


@data.command("get")
@click.argument("key")
@pass_session
def data_get(sess: Session, key: str) -> None:
    """Print the value of KEY."""
    value = sess.read(lambda c: c.registry.templates.get_data(key))
    if value is None:
        raise NotFoundError(f"data key {key} not found")
    click.echo(value)


@data.command("ls")
@click.argument("prefix", default="/")
@pass_session
def data_ls(sess: Session, prefix: str) -> None:
    """List the keys under PREFIX with their values (KEY<tab>VALUE)."""
    values = sess.read(lambda c: c.registry.templates.list_data(prefix))
    for key in sorted(values):
        click.echo(f"{key}\t{values[key]}")


@data.command("rm")
@click.argument("key")
@click.option("--recursive", "-r", is_flag=True, help="Remove every key under KEY too.")
@pass_session
def data_rm(sess: Session, key: str, recursive: bool) -> None:
    """Remove KEY (with -r, every key under it)."""
    async def go(c: Client) -> int:
        store = c.registry.templates
        return await store.delete_data(key) + \
            (await store.delete_data(key, prefix=True) if recursive else 0)
    if not sess.run(go):
        raise NotFoundError(f"data key {key} not found")


COMMANDS = (template, templates, data)
