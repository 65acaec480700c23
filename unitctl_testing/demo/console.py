"""How the demo talks: its story on stdout, one-line errors on stderr, its parser.

The story (``say``) goes to stdout, the chatter of the scripts it runs to
stderr; an error is one line ``bin/demo: error: ...`` and an exit code.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

PROG = "bin/demo"


def say(msg: str) -> None:
    print(f"demo: {msg}", flush=True)


def die(msg: str, code: int = 1) -> NoReturn:
    print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (and a pointer to --help)."""

    def error(self, message: str) -> NoReturn:
        m = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if m:
            message = (f"unknown command {m.group(1)!r}: use up, status, kill, boot, journal, "
                       "cat, dig or down")
        die(f"{message} (see {PROG} --help)", 2)
