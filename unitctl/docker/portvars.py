"""``@PORT`` in docker-run's argv: the host ports the engine allocated, substituted (pure).

A unit asks for dynamic host ports by writing ``@PORT`` (or ``@PORT_NAME``) in
its command line (``-p @PORT:5432``, ``-e DBPORT=@PORT``); the engine allocates
them and the agent passes each in as an environment variable of that name
(:mod:`unitctl.agent.portenv`). :func:`substitute_ports` replaces every
``@PORT…`` token by that variable's value before the argv is parsed; a name
without its variable is an error naming it (the unit did not get its port).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from unitctl.errors import UsageError

_PORT_NAME = re.compile(r"@(PORT(?:_[A-Z0-9]+)*)(?![A-Za-z0-9_])")


def substitute_ports(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """``argv`` with each ``@PORT…`` replaced by ``environ``'s value of that name."""

    def value(match: re.Match[str]) -> str:
        name = match[1]
        port = environ.get(name, "")
        if not port.isdigit():
            raise UsageError(f"{match[0]} needs ${name}, the host port the engine allocated; "
                             f"it is not set (is the unit started by unitctl?)")
        return port

    return [_PORT_NAME.sub(value, arg) for arg in argv]
