"""Parse and serialise systemd unit files the way systemd reads them (pure, no I/O).

A :class:`UnitFile` is an ordered tuple of :class:`UnitOption` -- comments,
blank lines and the whitespace around keys and values are not part of it, so two
texts that systemd reads the same way have the same :meth:`UnitFile.hash`.

Syntax (``systemd.syntax(7)``):

* ``[Name]`` starts a section (``[ Name ]`` is refused: systemd would keep the
  padding as part of the name);
* ``Key=Value`` assigns; whitespace around the key and the value is dropped;
  repeated keys are all kept, in order;
* lines starting with ``#`` or ``;`` and blank lines are ignored;
* a line ending in an odd number of backslashes continues on the next line;
  that backslash becomes a space; comment lines inside a continuation are
  skipped; an empty line or the end of the file ends it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from unitctl.errors import InvalidUnitError
from unitctl.record import Frozen, init

__all__ = ["MAX_UNIT_SIZE", "UnitFile", "UnitOption"]

#: The largest unit file accepted, in bytes (systemd's own line limit).
MAX_UNIT_SIZE = 1024 * 1024

_COMMENTS = ("#", ";")
_BLANK = " \t"
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_FORBIDDEN = ("\n", "\r", "\0")


def _odd_trailing_backslashes(text: str) -> bool:
    return (len(text) - len(text.rstrip("\\"))) % 2 == 1


def _check_text(what: str, text: str) -> None:
    for char in _FORBIDDEN:
        if char in text:
            raise InvalidUnitError(f"{what} {text!r} contains {char!r}")


class UnitOption(Frozen):
    """One ``Key=Value`` assignment in a section.

    Raises:
        InvalidUnitError: the option could not be written out and read back
            unchanged.
    """

    __slots__ = ("name", "section", "value")
    section: str
    name: str
    value: str

    def __init__(self, section: str, name: str, value: str) -> None:
        _check_option(section, name, value)
        init(self, section, name, value)


def _check_option(section: str, name: str, value: str) -> None:
    """Raise InvalidUnitError unless ``[section] name=value`` writes out and reads back."""
    _check_text("section", section)
    if not section:
        raise InvalidUnitError("empty section name")
    if section != section.strip(_BLANK):
        raise InvalidUnitError(f"section name {section!r} has leading or trailing blanks")
    _check_text("key", name)
    if not name:
        raise InvalidUnitError(f"empty key in section [{section}]")
    if name != name.strip(_BLANK):
        raise InvalidUnitError(f"key {name!r} has leading or trailing blanks")
    if "=" in name:
        raise InvalidUnitError(f"key {name!r} contains '='")
    if name[0] in "#;[":
        raise InvalidUnitError(f"key {name!r} starts with {name[0]!r}")
    _check_text(f"value of {name}", value)
    if value != value.strip(_BLANK):
        raise InvalidUnitError(f"value of {name} {value!r} has leading or trailing blanks")
    if _odd_trailing_backslashes(value):
        raise InvalidUnitError(
            f"value of {name} {value!r} ends in an unescaped backslash"
        )


class UnitFile(Frozen):
    """A parsed unit file: its options in file order."""

    __slots__ = ("options",)
    options: tuple[UnitOption, ...]

    # -- construction -----------------------------------------------------

    def __init__(self, options: tuple[UnitOption, ...]) -> None:
        init(self, options)

    @classmethod
    def parse(cls, text: str) -> UnitFile:
        """Parse unit-file text.

        Raises:
            InvalidUnitError: naming the (starting) line of the first problem.
        """
        options = _parse_lines(_split_lines(text))
        if not options:
            raise InvalidUnitError("unit file is empty: it has no options")
        return cls(tuple(options))

    @classmethod
    def parse_bytes(cls, data: bytes) -> UnitFile:
        """Parse unit-file bytes, which must be UTF-8."""
        if len(data) > MAX_UNIT_SIZE:
            raise InvalidUnitError(f"unit file exceeds {MAX_UNIT_SIZE} bytes (1 MiB)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise InvalidUnitError(f"line {line}: unit file is not valid UTF-8") from exc
        return cls.parse(text)

    @classmethod
    def from_options(cls, options: Iterable[tuple[str, str, str]]) -> UnitFile:
        """Build a unit from ``(section, name, value)`` triples, in order."""
        return cls(tuple(UnitOption(s, n, v) for s, n, v in options))

    def with_option(self, section: str, name: str, value: str) -> UnitFile:
        """A copy with one more option appended."""
        return UnitFile((*self.options, UnitOption(section, name, value)))

    def without_section(self, section: str) -> UnitFile:
        """A copy without any option of ``section``."""
        return UnitFile(tuple(o for o in self.options if o.section != section))

    # -- queries ----------------------------------------------------------

    def sections(self) -> list[str]:
        """Section names in order of first appearance."""
        return list(dict.fromkeys(o.section for o in self.options))

    def has_section(self, name: str) -> bool:
        """Whether any option belongs to section ``name``."""
        return any(o.section == name for o in self.options)

    def values(self, section: str, key: str) -> list[str]:
        """The values of ``key`` in ``section`` after the last empty assignment."""
        result: list[str] = []
        for option in self.options:
            if option.section == section and option.name == key:
                if option.value == "":
                    result.clear()
                else:
                    result.append(option.value)
        return result

    def value(self, section: str, key: str) -> str | None:
        """The last of :meth:`values`, or None."""
        found = self.values(section, key)
        return found[-1] if found else None

    # -- identity ---------------------------------------------------------

    def serialize(self) -> str:
        """Normalised text: sections in first-appearance order, options grouped."""
        grouped: dict[str, list[UnitOption]] = {}
        for option in self.options:
            grouped.setdefault(option.section, []).append(option)
        blocks = [
            "".join([f"[{section}]\n", *(f"{o.name}={o.value}\n" for o in opts)])
            for section, opts in grouped.items()
        ]
        return "\n".join(blocks)

    def hash(self) -> str:
        """SHA-1 hex of :meth:`serialize` -- comments and layout do not count."""
        return hashlib.sha1(self.serialize().encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def short_hash(self) -> str:
        """The first 7 characters of :meth:`hash`."""
        return self.hash()[:7]



def _split_lines(text: str) -> list[str]:
    """The lines of unit-file text (size, BOM and NUL checked; no final empty line)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_UNIT_SIZE:
        raise InvalidUnitError(f"unit file exceeds {MAX_UNIT_SIZE} bytes (1 MiB)")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE_SPLIT.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if "\0" in line:
            raise InvalidUnitError(f"line {number}: NUL byte in unit file")
    return lines


def _parse_lines(lines: list[str]) -> list[UnitOption]:
    """The options of the lines, joining continued lines (a trailing backslash)."""
    options: list[UnitOption] = []
    section: str | None = None
    pending: str | None = None  # a continued line, trailing backslash already a space
    pending_start = 0
    for number, raw in enumerate(lines, 1):
        if pending is not None:
            stripped = raw.strip(_BLANK)
            if not stripped:
                section = _parse_line(pending, pending_start, section, options)
                pending = None
                continue
            if stripped.startswith(_COMMENTS):
                continue
            joined, start = pending + raw, pending_start
            pending = None
        else:
            joined, start = raw, number
        if _odd_trailing_backslashes(joined):
            pending, pending_start = joined[:-1] + " ", start
            continue
        section = _parse_line(joined, start, section, options)
    if pending is not None:
        _parse_line(pending, pending_start, section, options)
    return options

def _parse_line(
    line: str, number: int, section: str | None, options: list[UnitOption]
) -> str | None:
    """Parse one logical line; return the section in effect after it."""
    text = line.strip(_BLANK)
    if not text or text.startswith(_COMMENTS):
        return section
    if text.startswith("["):
        if not text.endswith("]") or len(text) < 2:
            raise InvalidUnitError(f"line {number}: unterminated section header {text!r}")
        name = text[1:-1]
        if not name:
            raise InvalidUnitError(f"line {number}: empty section name")
        if name != name.strip(_BLANK):
            raise InvalidUnitError(
                f"line {number}: section name {name!r} has leading or trailing blanks"
            )
        return name
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidUnitError(f"line {number}: missing '=' in {text!r}")
    key = key.strip(_BLANK)
    if section is None:
        raise InvalidUnitError(f"line {number}: key {key!r} outside any section")
    try:
        options.append(UnitOption(section, key, value.strip(_BLANK)))
    except InvalidUnitError as exc:
        raise InvalidUnitError(f"line {number}: {exc}") from exc
    return section
