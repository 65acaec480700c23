"""Go's ``path.Match`` glob syntax, as fleet matches Conflicts and Replaces (pure).

``*`` matches any run of characters but ``/``, ``?`` one such character,
``[...]`` a class (``^`` negates, ``a-z`` ranges, ``\\`` escapes), and ``\\``
escapes any other character. A malformed pattern (a dangling escape, an
unclosed or empty class, a bad range) matches nothing, as in Go, where it is
an error. Patterns are translated to regexes once and cached.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["compile_glob", "matches_glob"]

#: One translated piece of a pattern and the index just after it; None if malformed.
_Step = tuple[str, int] | None


def _class_regex(ranges: list[tuple[str, str]], negated: bool) -> str:
    parts = [
        re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}"
        for lo, hi in ranges
        if lo <= hi
    ]
    if not parts:
        return r"[\s\S]" if negated else "(?!)"
    return f"[{'^' if negated else ''}{''.join(parts)}]"


def _class_char(pattern: str, i: int) -> _Step:
    """Go's getEsc: one (possibly escaped) class character; None if malformed."""
    if i >= len(pattern) or pattern[i] in "-]":
        return None
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            return None
    char, i = pattern[i], i + 1
    if i >= len(pattern):
        return None
    return char, i


def _class_range(pattern: str, i: int) -> tuple[str, str, int] | None:
    """One class item, ``c`` or ``lo-hi``: (lo, hi, next index); None if malformed."""
    got = _class_char(pattern, i)
    if got is None:
        return None
    lo, i = got
    if pattern[i] != "-":
        return lo, lo, i
    got = _class_char(pattern, i + 1)
    if got is None:
        return None
    hi, i = got
    return lo, hi, i


def _char_class(pattern: str, i: int) -> _Step:
    """A class whose ``[`` is just before ``i``, up to and including its ``]``."""
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[tuple[str, str]] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            return _class_regex(ranges, negated), i + 1
        got = _class_range(pattern, i)
        if got is None:
            return None
        lo, hi, i = got
        ranges.append((lo, hi))


def _step(pattern: str, i: int) -> _Step:
    """The regex for the pattern element that starts at ``i``."""
    char = pattern[i]
    if char == "*":
        return "[^/]*", i + 1
    if char == "?":
        return "[^/]", i + 1
    if char == "\\":
        if i + 1 >= len(pattern):
            return None
        return re.escape(pattern[i + 1]), i + 2
    if char == "[":
        return _char_class(pattern, i + 1)
    return re.escape(char), i + 1


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str] | None:
    """Translate a Go ``path.Match`` pattern to a regex; None if malformed."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        got = _step(pattern, i)
        if got is None:
            return None
        regex, i = got
        out.append(regex)
    return re.compile("".join(out), re.DOTALL)


def matches_glob(pattern: str, name: str) -> bool:
    """Go ``path.Match(pattern, name)``; a malformed pattern matches nothing."""
    regex = compile_glob(pattern)
    return regex is not None and regex.fullmatch(name) is not None
