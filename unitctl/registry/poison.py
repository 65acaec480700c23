"""Poison keys: stored values that do not decode, reported once and then skipped.

A value written by a newer client (an unknown desired state), an etcdctl
typo or a corrupt write must never stop a reader: every reader of a prefix
(the engine's mirror, an agent's schedule, the peer watch, the list commands)
skips a key whose value does not decode, and logs it once per key and mod
revision (a key rewritten is reported again). The client shows invalid
``units/`` keys, and ``unitctl destroy NAME`` removes them.

Contract: :func:`decode_each` never raises for a bad value; it returns the
decoded values and the :class:`InvalidKey` of each key it skipped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TypeVar

from unitctl.errors import RegistryError
from unitctl.record import Frozen, init
from unitctl.registry.kv import KeyValue

#: The logger the reports go to (logging is imported at the first report: start-up cost).
LOGGER = "unitctl.registry"

T = TypeVar("T")

#: How many (key, revision) pairs are remembered as already reported.
_REMEMBERED = 4096
_reported: OrderedDict[tuple[str, int], None] = OrderedDict()

#: What a decoder raises for a value it cannot read.
DECODE_ERRORS = (RegistryError, ValueError, TypeError)


class InvalidKey(Frozen):
    """A key whose value does not decode, and why."""

    __slots__ = ("key", "mod_rev", "reason")
    key: str
    mod_rev: int
    reason: str

    def __init__(self, key: str, mod_rev: int, reason: str) -> None:
        init(self, key, mod_rev, reason)


def report(bad: InvalidKey) -> None:
    """Log ``bad`` once per (key, mod revision)."""
    mark = (bad.key, bad.mod_rev)
    if mark in _reported:
        return
    _reported[mark] = None
    while len(_reported) > _REMEMBERED:
        _reported.popitem(last=False)
    import logging

    logging.getLogger(LOGGER).warning("skipping invalid key %s (rev %d): %s", bad.key,
                                      bad.mod_rev, bad.reason)


def invalid(key: str, mod_rev: int, exc: BaseException) -> InvalidKey:
    """The :class:`InvalidKey` for a decode error, reported (once)."""
    prefix = f"corrupt value at {key}: "
    text = str(exc)
    bad = InvalidKey(key, mod_rev, text[len(prefix):] if text.startswith(prefix) else text)
    report(bad)
    return bad


def decode_each(kvs: Iterable[KeyValue], decode: Callable[[KeyValue], T],
                ) -> tuple[list[T], list[InvalidKey]]:
    """Decode every key; skip (and report once) those that do not decode."""
    good: list[T] = []
    bad: list[InvalidKey] = []
    for kv in kvs:
        try:
            good.append(decode(kv))
        except DECODE_ERRORS as exc:
            bad.append(invalid(kv.key, kv.mod_rev, exc))
    return good, bad
