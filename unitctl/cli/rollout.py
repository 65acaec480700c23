"""``unitctl rollout``: rolling updates (start, ``status``, ``undo``, ``resume``).

``unitctl rollout web@.service`` (or ``rollout --body FILE web@1.service
web@2.service``) stores a rollout request and follows it while the engine
leader replaces the instances one batch at a time (docs/reference.md,
"Rolling updates"). ``status`` reads without an event loop; the verbs that
write and wait run through :meth:`Session.run`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import click

from unitctl.cli.output import iso_time, render_table
from unitctl.cli.session import Session, pass_session
from unitctl.client import rollouts as requests
from unitctl.client.facade import Client
from unitctl.errors import SystemdError
from unitctl.rollout import DEFAULT_DEADLINE, Phase, Rollout, resume, undo
from unitctl.rolloutcodec import encode

_SUBCOMMANDS = ("start", "status", "undo", "resume")


class _RolloutGroup(click.Group):
    """``rollout UNIT...`` is ``rollout start UNIT...``; the other words are verbs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in _SUBCOMMANDS and args[0] not in ("--help", "-h"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


@click.group("rollout", cls=_RolloutGroup)
def rollout() -> None:
    """Replace the instances of a template (or units) with a new body, one batch at a time.

    \b
    unitctl rollout web@.service [--max-unavailable N] [--canary N] [--pause] [--yes]
    unitctl rollout --body FILE web@1.service web@2.service
    unitctl rollout status [NAME] | undo NAME | resume NAME
    """


def _ask(r: Rollout) -> bool:
    return click.confirm(f"rollout {r.name}: {r.reason}. Go on?", default=False)


def _confirm_at_pause(yes: bool) -> Callable[[Rollout], bool] | None:
    """Ask at a pause when stdin is a terminal (None: do not ask, stop following)."""
    return None if yes or not sys.stdin.isatty() else _ask


def _ended(c: Client, r: Rollout, undoing: bool = False) -> None:
    """Exit like the rollout ended: 0 done (or reverted on request), 8 otherwise."""
    if r.phase is Phase.PAUSED:
        c.out(f"paused: `unitctl rollout resume {r.name}` goes on, "
              f"`unitctl rollout undo {r.name}` reverts")
    elif r.phase is Phase.FAILED or (r.phase is Phase.REVERTED and not undoing):
        raise SystemdError(f"rollout {r.name} {r.phase.value}: {r.reason}")


@rollout.command("start", hidden=True)
@click.argument("units", nargs=-1)
@click.option("--body", type=click.Path(dir_okay=False),
              help="The new unit file (default: the template file given).")
@click.option("--max-unavailable", type=click.IntRange(min=1), default=1, show_default=True,
              help="At most this many instances down at once.")
@click.option("--canary", type=click.IntRange(min=0), default=0, show_default=True,
              help="Replace this many first, then pause for confirmation.")
@click.option("--pause", "pause_each", is_flag=True, help="Pause after every batch.")
@click.option("--yes", is_flag=True, help="Do not pause after the canary.")
@click.option("--batch-timeout", type=click.FloatRange(min=1), default=DEFAULT_DEADLINE,
              show_default=True, help="Seconds a batch may take to be active and healthy; "
              "after that the rollout reverts.")
@click.option("--no-block", is_flag=True, help="Store the request and return at once.")
@pass_session
def start(sess: Session, units: tuple[str, ...], body: str | None, max_unavailable: int,
          canary: int, pause_each: bool, yes: bool, batch_timeout: float,
          no_block: bool) -> None:
    """Start a rollout (``unitctl rollout UNIT...``)."""
    want = requests.target(units, body)  # bad input fails before etcd is opened
    opts = requests.Options(max_unavailable, canary, pause_each, yes, batch_timeout)

    async def go(c: Client) -> None:
        made = await requests.create(c.registry, want, opts, time.time(), c.out)
        if made is None or no_block:
            return
        c.out(f"(leaving does not stop it: `unitctl rollout status {made.name}`)")
        _ended(c, await requests.follow(c.registry, made.name, c.out,
                                        _confirm_at_pause(yes)))

    sess.run(go)


_FIELDS = ["name", "phase", "target", "done", "batch", "updated", "reason"]
_INSTANCE_FIELDS = ["instance", "previous", "body", "machine", "active", "health"]


def _row(r: Rollout) -> dict[str, str | None]:
    done = r.reverted if r.phase in (Phase.REVERTING, Phase.REVERTED) else r.replaced
    return {"name": r.name, "phase": r.phase.value, "target": r.target[:7],
            "done": f"{len(done)}/{len(r.previous)}", "batch": ",".join(r.batch),
            "updated": iso_time(r.updated), "reason": r.reason}


@rollout.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@pass_session
def status(sess: Session, name: str | None, as_json: bool) -> None:
    """Show the rollouts (or one, with each instance's state)."""

    async def go(c: Client) -> None:
        if name is None:
            found = [s.rollout for s in (await c.registry.rollouts.read_all())[0]]
        else:
            found = [(await requests.stored(c.registry, name)).rollout]
        if as_json:
            c.out(json.dumps([json.loads(encode(r)) for r in found], indent=2))
            return
        c.out(render_table(_FIELDS, [_row(r) for r in found]).rstrip("\n"))
        if name is not None:
            await _instances(c, found[0])

    sess.read(go)


async def _instances(c: Client, r: Rollout) -> None:
    seen = await c.registry.rollouts.instances(r.order)
    rows: list[dict[str, str | None]] = []
    for inst, prev in r.previous.items():
        o = seen[inst].observed()
        rows.append({"instance": inst, "previous": prev[:7], "body": o.unit_hash[:7],
                     "machine": seen[inst].machine[:8], "active": o.active,
                     "health": o.health})
    c.out("")
    c.out(render_table(_INSTANCE_FIELDS, rows).rstrip("\n"))


@rollout.command("undo")
@click.argument("name")
@click.option("--no-block", is_flag=True, help="Store the request and return at once.")
@pass_session
def undo_cmd(sess: Session, name: str, no_block: bool) -> None:
    """Revert a rollout (in progress or done): every replaced instance to its previous body."""

    async def go(c: Client) -> None:
        await requests.change(c.registry, name, undo)
        if not no_block:
            _ended(c, await requests.follow(c.registry, name, c.out), undoing=True)

    sess.run(go)


@rollout.command("resume")
@click.argument("name")
@click.option("--no-block", is_flag=True, help="Store the request and return at once.")
@pass_session
def resume_cmd(sess: Session, name: str, no_block: bool) -> None:
    """Go on with a paused rollout (after its canary, or a batch with --pause)."""

    async def go(c: Client) -> None:
        await requests.change(c.registry, name, resume)
        if not no_block:
            _ended(c, await requests.follow(c.registry, name, c.out))

    sess.run(go)


COMMANDS = [rollout]
