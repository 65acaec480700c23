"""The ``unitctl`` entry point: the top-level help without loading click.

``unitctl``, ``unitctl --help``, ``unitctl -h`` and ``unitctl help`` print the
group's help. click renders that text from :mod:`unitctl.cli.main` (~20 ms to
import click alone); :mod:`unitctl.cli.helpgen` renders it once and keeps it in
:mod:`unitctl.cli.helptext`, with a fingerprint (CRC-32) of the source files it
was rendered from. The launcher prints the kept text when

* the arguments are one of those four forms, the ``--help``/``-h`` ones
  possibly with global options around them (``unitctl --endpoint URL --help``:
  the options' names come from :mod:`unitctl.cli.helptext` too),
* the fingerprint still matches the sources (a changed flag or verb, or
  sources that are not there, fall back to click), and
* click would render at the kept width: click wraps at ``min(columns, 80) - 2``,
  so any terminal (or ``COLUMNS``) of at least 80 columns.

The common forms of ``list-units`` and ``list-unit-files`` run without click
(:mod:`unitctl.cli.leanlist`), and so do those of ``start`` and ``load``
(:mod:`unitctl.cli.leanstart`); everything else runs :func:`unitctl.cli.main.main`.
Either way the cyclic collector is off until the verb's module is loaded
(:mod:`unitctl.cli.startup`).

The process then ends with its exit code, without tearing the interpreter
down (:func:`leave`): at exit CPython would wait for threads, run the
``atexit`` callbacks, flush stdout and stderr, and then free every module,
class and object the command loaded (30-65 ms for a verb that loaded the
client), which nothing needs. :func:`leave` does the first three and ends with
:func:`os._exit`; the exit status and every byte written are those of a normal
exit. Where that cannot be promised it exits the normal way (raises
:class:`SystemExit`): a code that is not an int or None (Python prints it), a
non-daemon thread still running (Python would wait for it), or a flush that
fails (Python reports it and exits 120).
Contract: what the launcher prints is byte for byte what click prints
(tests/unit/test_cli_launch.py), and it imports neither click nor any other
unitctl module but the kept text and the collector switch
(tests/unit/test_cli_imports.py).
"""

from __future__ import annotations

import atexit
import os
import sys
import zlib

from unitctl.cli import helptext, startup

#: The arguments that print the group's help (bare ``unitctl`` does, as fleetctl);
#: global options may come with the ``--help``/``-h`` forms (:func:`asks_for_help`).
HELP_ARGS = ((), ("--help",), ("-h",), ("help",))

#: The files (relative to the package) whose text determines the help: the group's
#: flags and help, the verb table, the version and the defaults shown.
SOURCES = ("__init__.py", "cli/main.py", "cli/verbs.py", "cli/ssh.py",
           "registry/connection.py", "registry/keys.py")

#: click's help is ``min(columns, 80) - 2`` wide; the kept text is the 80-column one.
KEPT_COLUMNS = 80

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fingerprint(package_dir: str = PACKAGE_DIR) -> int | None:
    """CRC-32 of :data:`SOURCES` in order (None: one of them cannot be read)."""
    crc = 0
    for rel in SOURCES:
        try:
            with open(os.path.join(package_dir, rel), "rb") as f:
                crc = zlib.crc32(f.read(), crc)
        except OSError:
            return None
    return crc


def terminal_columns() -> int:
    """The columns :func:`shutil.get_terminal_size` reports (``COLUMNS``, else the
    terminal of stdout, else 80), without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    stdout = sys.__stdout__
    if columns <= 0 and stdout is not None:
        try:
            columns = os.get_terminal_size(stdout.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or KEPT_COLUMNS


def asks_for_help(argv: list[str]) -> bool:
    """``argv`` is bare, ``help``, or global options with ``--help``/``-h`` among them.

    The options are recognised as click parses them (``--name value``,
    ``--name=value``, flags); their values do not matter, since click prints the
    help (an eager option) before it converts any other. Anything else (a verb,
    ``--version``, an unknown option, an option missing its value) is not.
    """
    if tuple(argv) in HELP_ARGS:
        return True
    seen, i = False, 0
    while i < len(argv):
        arg = argv[i]
        name, equals, _ = arg.partition("=")
        if arg in helptext.HELP_OPTIONS:
            seen = True
        elif arg in helptext.VALUE_OPTIONS and i + 1 < len(argv):
            i += 1  # its value, whatever it looks like
        elif not (arg in helptext.FLAG_OPTIONS or (equals and name in helptext.VALUE_OPTIONS)):
            return False
        i += 1
    return seen


def kept_help(argv: list[str]) -> str | None:
    """The kept help text when it is what click would print for ``argv``, else None."""
    if not asks_for_help(argv) or terminal_columns() < KEPT_COLUMNS:
        return None
    return helptext.TEXT if fingerprint() == helptext.FINGERPRINT else None


def _print(text: str) -> None:
    """Write ``text`` to stdout as click does: nothing when there is no stdout
    (fd 1 closed), and exit 1 without a word when its reader went away (nothing
    is flushed to the closed pipe at exit)."""
    if sys.stdout is None:
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


def _threads_running() -> bool:
    """A thread other than the main one that Python would wait for at exit."""
    threading = sys.modules.get("threading")
    if threading is None:
        return False
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())


def _flushed() -> bool:
    """Flush stdout then stderr as Python does at exit (False: one of them failed)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: Python's exit reports it
            return False
    return True


def leave(code: object = None) -> None:
    """End the process with ``code`` (``SystemExit``'s: None is 0); never returns."""
    if (code is not None and not isinstance(code, int)) or _threads_running():
        raise SystemExit(code)
    atexit._run_exitfuncs()  # and clears them: a normal exit after this runs none twice
    if not _flushed():
        raise SystemExit(code)
    os._exit(0 if code is None else code & 0xFF)


def main(argv: list[str] | None = None) -> None:
    """The console-script entry point (``unitctl``, ``python -m unitctl``): runs the
    command, then ends the process with its exit code (:mod:`unitctl.cli.leave`)."""
    try:
        run(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        leave(exc.code)
    leave(0)


def run(args: list[str]) -> None:
    """Run one command line: the kept help, the lean list verbs, or click (which
    raises SystemExit with the exit code, as its standalone mode does)."""
    startup.pause()  # until the verb's module is loaded (unitctl.cli.startup)
    text = kept_help(args)
    if text is not None:
        _print(text)
        return
    from unitctl.cli import leanlist  # the list verbs' common forms, without click

    code = leanlist.run(args)
    if code is None:
        from unitctl.cli import leanstart  # start's and load's common forms, without click

        code = leanstart.run(args)
    if code is not None:
        raise SystemExit(code)
    from unitctl.cli.main import main as run_click  # click and the verb table

    run_click(args)
