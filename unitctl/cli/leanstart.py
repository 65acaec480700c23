"""The launcher's lean path for ``start`` and ``load``: their arguments and their run.

click, the group and the session cost about a third of a ``start`` (imports
before the first request). For the common form, ``[GLOBAL OPTIONS] start|load
[--no-block] [--block-attempts N] [--replace] UNITS...`` (options and units in
any order after the verb, as click takes them), :func:`run` (called by
:mod:`unitctl.cli.launch`) reads the arguments itself and runs
:func:`unitctl.client.activate.activate`, the coroutine the click command runs,
with a client over the registry opened here. It takes only argument lists it
understands completely and returns None, before anything is read or printed,
for everything else, which click then runs with its own messages:

* the global options and ``UNITCTL_*`` variables as :mod:`unitctl.cli.leanlist`
  takes them (a non-empty ``UNITCTL_START_*`` / ``UNITCTL_LOAD_*`` is click's);
* the verb by its whole name; ``--block-attempts`` with a value of digits only;
  any other argument that starts with ``-`` (``--``, ``-h``, ``--help`` ...)
  is click's, and so is a command line without units (click says so);
* what :func:`unitctl.cli.leanio.usable` accepts (a numeric timeout, an etcd
  endpoint, a stdout encoding click keeps).

Contract: for what it takes, stdout, stderr and the exit code are those of the
click command (tests/integration/test_cli_lean_start.py runs both against etcd).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from unitctl.cli.leanlist import _option, global_options

#: The verbs taken, and the desired state each sets (a ``DesiredState`` value).
VERBS = {"start": "launched", "load": "loaded"}

#: The verbs' flags (flag -> parameter name); ``--block-attempts`` takes a value.
FLAGS = {"--no-block": "no_block", "--replace": "replace"}


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The parameters of a ``start``/``load`` run (``verb``, ``target``, the desired
    state's value, and ``units`` among them), or None: click's to run."""
    found = global_options(argv, environ, VERBS)
    if found is None:
        return None
    params, i = found
    params.update(verb=argv[i], target=VERBS[argv[i]], no_block=False, replace=False,
                  block_attempts=0)
    units = _verb_args(argv[i + 1:], params)
    if not units:
        return None
    params["units"] = units
    return params


def _verb_args(args: Sequence[str], params: dict[str, Any]) -> list[str] | None:
    """The units among the verb's ``args``, its flags set in ``params``; None: click's."""
    units: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in FLAGS:
            params[FLAGS[arg]] = True
            i += 1
            continue
        if not arg.startswith("-"):
            units.append(arg)
            i += 1
            continue
        got = _option(args, i, {"--block-attempts": "block_attempts"})
        if got is None or not _digits(got[1]):
            return None
        params["block_attempts"], i = int(got[1]), got[2]
    return units


def _digits(text: str) -> bool:
    """ASCII digits only: a count click's ``IntRange(min=0)`` takes as it is."""
    return bool(text) and all(ch in "0123456789" for ch in text)


def run(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int | None:
    """Run ``start``/``load`` without click and return its exit code; None: not taken."""
    params = parse(argv, os.environ if environ is None else environ)
    if params is None:
        return None
    from unitctl.cli import leanio  # the checks, the writing, the group's errors

    if not leanio.usable(params):
        return None
    from unitctl.cli import leanactivate  # the client and asyncio, loaded once taken

    return leanio.guarded(lambda: leanactivate.activate(params))
