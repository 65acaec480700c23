"""``apply``, ``diff``, ``rollback``, ``bundles`` and ``history``: a whole bundle of
units from one Clusterfile (docs/clusterfile.md).

The Clusterfile is read, checked and rendered before the registry is opened,
so bad input writes nothing. ``diff`` exits like diff(1): 0 without changes,
1 with changes, 2 on an error. The bundle modules (yaml, jinja2) are imported
inside the verbs that read a Clusterfile, keeping the CLI's import path lean.
"""

from __future__ import annotations

import time

import click

from unitctl.cli.output import iso_time, render_json, render_table
from unitctl.cli.session import Session, pass_session, session_of
from unitctl.client.facade import Client
from unitctl.errors import NotFoundError, UnitctlError, report
from unitctl.registry.revisions import Revision, describe


def _file_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("-e", "--env", "env", multiple=True, metavar="KEY=VALUE",
                     help="Set an env value over the Clusterfile's (repeatable).")(f)
    f = click.option("--adopt", is_flag=True,
                     help="Take over existing units that no bundle owns.")(f)
    f = click.option("--prune", is_flag=True,
                     help="Remove units the bundle owns but no longer names.")(f)
    f = click.option("-f", "--file", "path", required=True,
                     type=click.Path(dir_okay=False), help="The Clusterfile.")(f)
    return f


def _warn(warnings: tuple[tuple[str, str], ...]) -> None:
    for name, warning in warnings:
        click.echo(f"WARNING: {name}: {warning}", err=True)


def _report(c: Client, bundle: str, rev: Revision | None, lines: list[str]) -> None:
    if rev is None:
        c.out(f"bundle {bundle}: no changes")
        return
    for line in lines:
        c.out(line)
    c.out(f"bundle {bundle}: revision {rev.number} ({rev.note})")


@click.command("apply")
@_file_options
@pass_session
def apply(sess: Session, path: str, prune: bool, adopt: bool, env: tuple[str, ...]) -> None:
    """Create, change (and with --prune remove) units so the cluster holds a Clusterfile."""
    from unitctl.bundle.load import load_clusterfile, parse_env

    rendered = load_clusterfile(path, parse_env(env))
    _warn(rendered.warnings)
    desired = rendered.desired

    async def go(c: Client) -> None:
        from unitctl.bundle import apply as applying
        from unitctl.bundle.diff import action_lines
        from unitctl.bundle.plan import plan

        read = await applying.read_stored(c.registry, desired)
        todo = plan(desired, read.stored, prune, adopt)
        rev = await applying.execute(c.registry, desired, read, todo, "apply", path,
                                     time.time(), c.err)
        _report(c, desired.bundle, rev, action_lines(todo))

    sess.run(go)


@click.command("diff")
@_file_options
@click.pass_context
def diff(ctx: click.Context, path: str, prune: bool, adopt: bool,
         env: tuple[str, ...]) -> None:
    """Show what apply would change (exit 1 when it would change something, 0 when not)."""
    sess = session_of(ctx)
    try:
        text = _diff_text(sess, path, prune, adopt, env)
    except UnitctlError as exc:
        click.echo(f"Error: {report(exc)[0]}", err=True)
        ctx.exit(2)
    click.echo(text, nl=False)
    ctx.exit(1 if text else 0)


def _diff_text(sess: Session, path: str, prune: bool, adopt: bool,
               env: tuple[str, ...]) -> str:
    from unitctl.bundle.load import load_clusterfile, parse_env

    rendered = load_clusterfile(path, parse_env(env))
    _warn(rendered.warnings)
    desired = rendered.desired

    async def go(c: Client) -> str:
        from unitctl.bundle import apply as applying
        from unitctl.bundle.diff import diff_text
        from unitctl.bundle.plan import plan

        todo = plan(desired, (await applying.read_stored(c.registry, desired)).stored,
                    prune, adopt)
        return diff_text(todo, await applying.stored_bodies(c.registry, todo))

    result: str = sess.read(go)
    return result


@click.command("rollback")
@click.argument("bundle")
@click.option("--to", "number", type=click.IntRange(min=1), default=None,
              help="The revision to go back to (default: the one before the newest).")
@click.option("--prune", is_flag=True,
              help="Remove units the bundle owns that the revision does not name.")
@pass_session
def rollback(sess: Session, bundle: str, number: int | None, prune: bool) -> None:
    """Apply a recorded revision of a bundle again, as a new revision."""

    async def go(c: Client) -> None:
        from unitctl.bundle import apply as applying
        from unitctl.bundle.diff import action_lines
        from unitctl.bundle.plan import plan

        desired, old = await applying.load_revision(c.registry, bundle, number)
        read = await applying.read_stored(c.registry, desired)
        todo = plan(desired, read.stored, prune, adopt=False)
        rev = await applying.execute(c.registry, desired, read, todo,
                                     f"rollback to {old.number}", old.source, time.time(),
                                     c.err)
        _report(c, bundle, rev, action_lines(todo))

    sess.run(go)


_JSON = click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")


def _rows(revs: list[Revision]) -> list[dict[str, str | None]]:
    return [{k: (iso_time(v) if k == "time" else str(v)) for k, v in describe(r).items()}
            for r in revs]


@click.command("bundles")
@_JSON
@pass_session
def bundles(sess: Session, as_json: bool) -> None:
    """List the bundles applied, with their newest revision."""
    every = sess.read(lambda c: c.registry.bundles.all_revisions())
    rows = _rows([revs[-1] for _, revs in sorted(every.items())])
    fields = ["bundle", "revision", "units", "time", "note", "source"]
    click.echo(render_json(fields, rows) if as_json else render_table(fields, rows),
               nl=as_json)


@click.command("history")
@click.argument("bundle")
@_JSON
@pass_session
def history(sess: Session, bundle: str, as_json: bool) -> None:
    """List the kept revisions of a bundle, oldest first."""
    revs = sess.read(lambda c: c.registry.bundles.revisions(bundle))
    if not revs:
        raise NotFoundError(f"bundle {bundle} has no recorded revision")
    fields = ["revision", "time", "units", "note", "source"]
    rows = _rows(revs)
    click.echo(render_json(fields, rows) if as_json else render_table(fields, rows),
               nl=as_json)


COMMANDS = (apply, diff, rollback, bundles, history)
