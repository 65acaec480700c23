"""Machine metadata as text: ``k=v,k=v`` (pure).

A machine's ``metadata`` option and what ``list-machines`` shows. Keys and
values are trimmed; a pair needs ``=`` and a non-empty key and value.
:func:`format_metadata` is the inverse of :func:`parse_metadata` and refuses a
mapping that would not read back the same.
"""

from __future__ import annotations

from collections.abc import Mapping

from unitctl.errors import ConfigError

__all__ = ["format_metadata", "parse_metadata"]


def parse_metadata(text: str) -> dict[str, str]:
    """Parse ``k=v,k=v`` (a machine's ``metadata`` option).

    Raises:
        ConfigError: a pair without ``=``, or with an empty key or value.
    """
    result: dict[str, str] = {}
    for raw in text.split(","):
        pair = raw.strip()
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"invalid metadata pair {pair!r}: expected key=value")
        result[key] = value
    return result


def format_metadata(mapping: Mapping[str, str]) -> str:
    """``k=v,k=v`` sorted by key -- the inverse of :func:`parse_metadata`.

    Raises:
        ConfigError: a pair that :func:`parse_metadata` could not read back.
    """
    pairs: list[str] = []
    for key in sorted(mapping):
        pair = f"{key}={mapping[key]}"
        if not _reads_back(pair, key, mapping[key]):
            raise ConfigError(f"metadata pair {pair!r} cannot be written as key=value")
        pairs.append(pair)
    return ",".join(pairs)


def _reads_back(pair: str, key: str, value: str) -> bool:
    if "," in pair or "=" in key:
        return False
    try:
        return parse_metadata(pair) == {key: value}
    except ConfigError:
        return False
