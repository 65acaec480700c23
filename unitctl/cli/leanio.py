"""What the launcher's lean paths share: the checks, the writing and the group's errors.

:func:`usable` says whether click would accept the global parameters as they are
for etcd (a numeric ``--request-timeout``, an etcd endpoint, a stdout encoding
click keeps); :func:`echo` writes as ``click.echo`` does; :func:`guarded` turns
an error into the group's ``Error: <message>`` and exit code, an interrupt into
click's ``Aborted!``. Used by :mod:`unitctl.cli.leanread` (the list verbs) and
:mod:`unitctl.cli.leanstart` (``start``, ``load``), without the list verbs'
table and field modules.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Callable, Mapping
from typing import Any

from unitctl.client.connect import is_api_url
from unitctl.errors import report
from unitctl.registry.connection import DEFAULT_ENDPOINT

#: click.echo's ANSI escape sequence (stripped when writing to no terminal).
ANSI = r"\033\[[;?0-9]*[a-zA-Z]"


def usable(params: Mapping[str, Any]) -> bool:
    """The parameters are ones click would accept as they are, for etcd."""
    timeout = params.get("request_timeout")
    if timeout is not None:
        try:
            float(timeout)
        except ValueError:
            return False
    stdout = sys.stdout
    if stdout is not None and _is_ascii(getattr(stdout, "encoding", None)):
        return False  # click writes through a UTF-8 wrapper then
    return not is_api_url(str(params.get("endpoint") or DEFAULT_ENDPOINT))


def _is_ascii(encoding: str | None) -> bool:
    try:
        return encoding is not None and codecs.lookup(encoding).name == "ascii"
    except LookupError:
        return False


def echo(text: str, err: bool = False, nl: bool = True) -> None:
    """Write as ``click.echo`` does: flushed, ANSI stripped when not a terminal."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    out = text + "\n" if nl else text
    if not out:
        stream.flush()
        return
    if "\x1b" in out and not _isatty(stream):
        import re  # only for text that holds an escape character

        out = re.sub(ANSI, "", out)
    stream.write(out)
    stream.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:  # click's isatty: any failure is "no terminal"
        return False


def guarded(body: Callable[[], None]) -> int:
    """Run ``body`` as the group runs a command: an error is ``Error: <message>`` and
    its exit code (:func:`unitctl.errors.report`), an interrupt ``Aborted!``, exit 1."""
    try:
        body()
    except KeyboardInterrupt:
        echo("", err=True)
        echo("Aborted!", err=True)
        return 1
    except Exception as exc:  # the group's one place errors become exit codes
        message, code = report(exc)
        echo(f"Error: {message}", err=True)
        return code
    return 0
