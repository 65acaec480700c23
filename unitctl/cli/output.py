"""How unitctl prints: tables, JSON, machine legends and placement reasons (pure, no I/O).

Tables are laid out exactly like fleetctl's, which writes through Go's
``tabwriter.NewWriter(out, 0, 8, 1, '\\t', 0)``: :func:`tabwrite` is a faithful
port of that algorithm (column blocks, cell width + padding rounded up to the
tab width, padding made of tab characters, the last cell of a line unpadded).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from unitctl.errors import UsageError
from unitctl.model import UnitState

MISSING = "-"


def tabwrite(text: str, minwidth: int = 0, tabwidth: int = 8, padding: int = 1,
             padchar: str = "\t") -> str:
    """Align ``\\t``-separated cells the way Go's text/tabwriter does (flags 0).

    Args:
        text: lines separated by ``\\n``, cells by ``\\t`` (a cell is
            tab-terminated; the text after a line's last tab is not part of
            any column).
        minwidth: minimal cell width, padding included.
        tabwidth: width of a tab character.
        padding: added to the widest cell of a column.
        padchar: ``"\\t"`` pads with tabs to the next multiple of ``tabwidth``
            (fleetctl's setting); any other character pads with that character.

    Returns:
        The aligned text; a trailing newline of ``text`` is kept.
    """
    lines = [line.split("\t") if line else [] for line in text.split("\n")]
    w = _TabWriter(lines, minwidth, tabwidth, padding, padchar)
    w.format(0, len(lines))
    return "".join(w.out)


class _TabWriter:
    """Go's tabwriter.Writer.format/writeLines over already-split lines."""

    def __init__(self, lines: list[list[str]], minwidth: int, tabwidth: int, padding: int,
                 padchar: str) -> None:
        self.lines = lines
        self.minwidth = minwidth
        self.tabwidth = tabwidth
        self.padding = padding
        self.padchar = padchar
        self.widths: list[int] = []
        self.out: list[str] = []

    def format(self, line0: int, line1: int) -> None:
        column = len(self.widths)
        this = line0
        while this < line1:
            if column >= len(self.lines[this]) - 1:
                this += 1
                continue
            # a cell exists in this column: print the lines before the block
            self.write_lines(line0, this)
            line0 = this
            width = self.minwidth
            while this < line1:
                line = self.lines[this]
                if column >= len(line) - 1:
                    break
                width = max(width, len(line[column]) + self.padding)
                this += 1
            # format the columns to the right of this block, knowing its width
            self.widths.append(width)
            self.format(line0, this)
            self.widths.pop()
            line0 = this
        self.write_lines(line0, line1)

    def write_lines(self, line0: int, line1: int) -> None:
        for i in range(line0, line1):
            line = self.lines[i]
            for j, cell in enumerate(line):
                if cell:
                    self.out.append(cell)
                if j < len(self.widths):
                    self.write_padding(len(cell), self.widths[j])
            if i + 1 < len(self.lines):
                self.out.append("\n")

    def write_padding(self, textw: int, cellw: int) -> None:
        if self.padchar == "\t":
            if self.tabwidth == 0:
                return
            cellw = (cellw + self.tabwidth - 1) // self.tabwidth * self.tabwidth
            n = cellw - textw
            self.out.append("\t" * ((n + self.tabwidth - 1) // self.tabwidth))
            return
        self.out.append(self.padchar * (cellw - textw))


def parse_fields(spec: str, valid: Sequence[str]) -> list[str]:
    """Split ``--fields`` and check every name.

    Raises:
        UsageError: ``invalid field: X`` (or no field at all).
    """
    fields = [f.strip() for f in spec.split(",")]
    if not spec.strip() or not all(fields):
        raise UsageError(f"no field given in --fields {spec!r} (valid: {', '.join(valid)})")
    for f in fields:
        if f not in valid:
            raise UsageError(f"invalid field: {f}")
    return fields


def render_table(fields: Sequence[str], rows: Sequence[Mapping[str, str | None]],
                 legend: bool = True) -> str:
    """fleetctl's table: header of upper-cased field names, ``-`` for missing values.

    Returns the text with a trailing newline per line ("" for no line at all).
    """
    lines = []
    if legend:
        lines.append("\t".join(f.upper() for f in fields))
    for row in rows:
        lines.append("\t".join(_cell(row.get(f)) for f in fields))
    if not lines:
        return ""
    return tabwrite("\n".join(lines) + "\n")


def _cell(value: str | None) -> str:
    return MISSING if value is None or value == "" else value


def render_json(fields: Sequence[str], rows: Sequence[Mapping[str, str | None]]) -> str:
    """A JSON list of objects with the chosen fields (missing values are null)."""
    data = [{f: (row.get(f) or None) for f in fields} for row in rows]
    return json.dumps(data, indent=2)


# ------------------------------------------------------------------ unit failures


def failure_note(state: UnitState, now: float) -> str | None:
    """A unit's failure on its machine, for a user: ``start refused by systemd: ...;
    retry in 40 s`` (None when it has none). ``now`` is the Unix time."""
    if not state.error:
        return None
    wait = state.retry_at - now
    when = f"retry in {wait:.0f} s" if wait >= 0.5 else "retry due now"
    return f"{state.error}; {when}"


def iso_time(unix: float) -> str | None:
    """``2024-05-01T12:00:00Z`` (None for 0, no time)."""
    if not unix:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))
