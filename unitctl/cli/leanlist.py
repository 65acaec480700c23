"""The launcher's lean path for ``list-units`` and ``list-unit-files``: their arguments.

click and the group's modules cost about a fifth of a list verb's run. For the
common forms of the two list verbs, :func:`run` (called by
:mod:`unitctl.cli.launch`) reads the arguments itself and hands them to
:mod:`unitctl.cli.leanread`, which reads etcd and prints as the click command
does. It takes only argument lists it understands completely, and returns None
(before doing anything: nothing read, nothing printed) for everything else,
which click then runs, with click's own messages:

* global options before the verb, each as click parses it (``--name value`` or
  ``--name=value``): the etcd ones, ``--token`` (with an etcd endpoint it is
  not used) and the ssh ones that take any text; not ``--debug``, ``--driver``,
  ``--help``, ``--version``, the ssh timeout or host key flags; an option value
  that starts with ``-`` is left to click too;
* ``UNITCTL_<PARAM>`` variables of those same options (used when the flag is
  absent, an empty one ignored, as click does); a non-empty variable of the
  group's other options (``UNITCTL_DEBUG``, ``UNITCTL_HELP`` ...) or of the
  verb's (``UNITCTL_LIST_UNITS_FIELDS`` ...) leaves the run to click;
* the verb by its whole name, then only ``--fields X``, ``--full`` (``-l`` for
  ``list-units``), ``--no-legend`` and ``--json``, fields that
  :func:`~unitctl.cli.output.parse_fields` accepts, an endpoint that is etcd's
  (not unitctl's API), a ``--request-timeout`` that is a number, and a stdout
  whose encoding click would keep.

Contract: for what it takes, stdout, stderr and the exit code are those of the
click command (tests/integration/test_cli_lean.py runs both against etcd).
"""

from __future__ import annotations

import os
from collections.abc import Container, Mapping, Sequence
from typing import Any

#: The group's options the lean path takes (flag -> parameter name); any other
#: option (``--debug``, ``--driver``, ``--help`` ...) leaves the run to click.
GLOBAL_OPTIONS = {
    "--endpoint": "endpoint", "--token": "token", "--etcd-key-prefix": "etcd_key_prefix",
    "--ca-file": "ca_file", "--cert-file": "cert_file", "--key-file": "key_file",
    "--username": "username", "--password": "password",
    "--request-timeout": "request_timeout", "--tunnel": "tunnel",
    "--ssh-username": "ssh_username", "--known-hosts-file": "known_hosts_file",
}

#: The group's parameters the lean path leaves to click (``UNITCTL_DEBUG=1`` ...):
#: flags click converts, ``--help`` and ``--version`` (eager: click acts on them first).
CLICK_ONLY_PARAMS = frozenset({"debug", "ssh_timeout", "strict_host_key_checking", "no_strict",
                               "driver", "version", "help"})

#: Each list verb's flags (flag -> parameter name); ``--fields`` takes a value.
VERB_FLAGS = {
    "list-units": {"--full": "full", "-l": "full", "--no-legend": "no_legend",
                   "--json": "as_json"},
    "list-unit-files": {"--full": "full", "--no-legend": "no_legend", "--json": "as_json"},
}

ENV_PREFIX = "UNITCTL_"


def _option(args: Sequence[str], i: int, known: Mapping[str, str],
            ) -> tuple[str, str, int] | None:
    """(parameter, value, next index) of the value option at ``args[i]``, or None."""
    name, equals, value = args[i].partition("=")
    if name not in known:
        return None
    if not equals:
        if i + 1 >= len(args):
            return None
        value = args[i + 1]
        i += 1
    if value.startswith("-"):
        return None  # click may read it otherwise; let it say so
    return known[name], value, i + 1


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The parameters of a list verb's run (``verb`` among them), or None: click's."""
    found = global_options(argv, environ, VERB_FLAGS)
    if found is None:
        return None
    params, i = found
    verb = argv[i]
    params.update(verb=verb, fields=None, full=False, no_legend=False, as_json=False)
    flags = VERB_FLAGS[verb]
    i += 1
    while i < len(argv):
        if argv[i] in flags:
            params[flags[argv[i]]] = True
            i += 1
            continue
        got = _option(argv, i, {"--fields": "fields"})
        if got is None:
            return None
        params["fields"], i = got[1], got[2]
    return params


def global_options(argv: Sequence[str], environ: Mapping[str, str], verbs: Container[str],
                   ) -> tuple[dict[str, Any], int] | None:
    """The group's options before the verb (filled from ``UNITCTL_*`` as click does)
    and the verb's index in ``argv``; None: no verb of ``verbs``, or a form for click."""
    params: dict[str, Any] = {}
    i = 0
    while i < len(argv) and argv[i] not in verbs:
        got = _option(argv, i, GLOBAL_OPTIONS)
        if got is None:
            return None
        params[got[0]] = got[1]
        i = got[2]
    if i >= len(argv) or not _environment(params, environ, argv[i]):
        return None
    return params, i


def _environment(params: dict[str, Any], environ: Mapping[str, str], verb: str) -> bool:
    """Fill the group's absent options from ``UNITCTL_<PARAM>`` as click does (an empty
    value is none). False: a variable click would read and the lean path does not take
    is set (one of :data:`CLICK_ONLY_PARAMS`, or any of the verb's own,
    ``UNITCTL_LIST_UNITS_*``); other ``UNITCTL_*`` variables are no option's."""
    verb_prefix = f"{ENV_PREFIX}{verb.upper().replace('-', '_')}_"
    clicks = {f"{ENV_PREFIX}{param.upper()}" for param in CLICK_ONLY_PARAMS}
    if any(value and (key in clicks or key.startswith(verb_prefix))
           for key, value in environ.items()):
        return False
    for param in GLOBAL_OPTIONS.values():
        value = environ.get(f"{ENV_PREFIX}{param.upper()}")
        if value:
            params.setdefault(param, value)
    return True


def run(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int | None:
    """Run a list verb without click and return its exit code; None: not taken (click's)."""
    params = parse(argv, os.environ if environ is None else environ)
    if params is None:
        return None
    from unitctl.cli import leanread  # the reading and printing, loaded once taken

    return leanread.run(params)
