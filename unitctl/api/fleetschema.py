"""fleet's v1 JSON schema and page tokens (pure): unitctl's model to fleet's wire format.

fleet's ``schema/v1-json.go``: a Unit is ``{"name", "options": [{"section",
"name", "value"}], "desiredState", "currentState", "machineID"}``; a Machine
``{"id", "primaryIP", "metadata"}``; a UnitState ``{"name", "hash",
"machineID", "systemdLoadState", "systemdActiveState", "systemdSubState"}``.
Lists come in pages ``{"units"|"machines"|"states": [...], "nextPageToken"}``;
a page token is fleet's: base64 (URL alphabet) of two little-endian uint16,
the page size then the page number (from 1). Empty fields are left out, as
Go's ``omitempty`` does.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from unitctl.errors import UsageError
from unitctl.model import Machine, UnitState
from unitctl.unitfile import UnitFile

#: fleet's default ``--token-limit`` (items per page).
PAGE_LIMIT = 100
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageToken:
    """Which page of a list: size and number (from 1)."""

    limit: int
    page: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(struct.pack("<HH", self.limit, self.page)).decode()

    def next(self) -> PageToken:
        return PageToken(self.limit, self.page + 1)


def decode_token(values: Sequence[str], limit: int = PAGE_LIMIT) -> PageToken:
    """The token of a request's ``nextPageToken`` values (none: the first page).

    Raises:
        UsageError: fleet's messages (several values, undecodable, wrong limit, page 0).
    """
    if len(values) > 1:
        raise UsageError("too many values for page token")
    if not values:
        return PageToken(limit, 1)
    try:
        raw = base64.urlsafe_b64decode(values[0].encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise UsageError(f"bad page token: {exc}") from exc
    if len(raw) < 4:
        raise UsageError("bad page token: unexpected EOF")
    tok_limit, page = struct.unpack("<HH", raw[:4])
    if tok_limit != limit:
        raise UsageError(f"token limit must be {limit}")
    if page == 0:
        raise UsageError("token page must be greater than zero")
    return PageToken(tok_limit, page)


def page(items: Sequence[T], tok: PageToken) -> tuple[list[T], str]:
    """The items of one page and the next page's token ("" on the last page)."""
    start, stop = (tok.page - 1) * tok.limit, tok.page * tok.limit
    if start >= len(items):
        return [], ""
    return list(items[start:stop]), tok.next().encode() if stop < len(items) else ""


def options_of(unit: UnitFile) -> list[dict[str, str]]:
    """A unit's options as fleet's UnitOption list."""
    return [{"section": o.section, "name": o.name, "value": o.value} for o in unit.options]


def unit_from_options(options: Any) -> UnitFile:
    """A unit built from a request's ``options`` (fleet's UnitOption list).

    Raises:
        UsageError: not a list of objects with string section, name and value.
        InvalidUnitError: an option that cannot be written out (from UnitFile).
    """
    if not isinstance(options, list) or not options:
        raise UsageError("options must be a non-empty list of {section, name, value}")
    triples = []
    for i, opt in enumerate(options):
        if not isinstance(opt, dict) or not all(
                isinstance(opt.get(k), str) for k in ("section", "name", "value")):
            raise UsageError(f"options[{i}] must be an object with string section, name "
                             "and value")
        triples.append((opt["section"], opt["name"], opt["value"]))
    return UnitFile.from_options(triples)


def omit_empty(obj: dict[str, Any]) -> dict[str, Any]:
    """Go's ``omitempty``: leave out empty strings, lists and maps."""
    return {k: v for k, v in obj.items() if v not in ("", [], {}, None)}


def machine_json(m: Machine) -> dict[str, Any]:
    return omit_empty({"id": m.id, "primaryIP": m.public_ip, "metadata": dict(m.metadata)})


def state_json(s: UnitState) -> dict[str, Any]:
    return omit_empty({"name": s.name, "hash": s.hash, "machineID": s.machine_id,
                       "systemdLoadState": s.load, "systemdActiveState": s.active,
                       "systemdSubState": s.sub})


def unit_json(name: str, unit: UnitFile | None, desired: str, current: str,
              machine: str) -> dict[str, Any]:
    """fleet's Unit; ``options`` is always present (an empty list without a body)."""
    out = omit_empty({"name": name, "desiredState": desired, "currentState": current,
                      "machineID": machine})
    out["options"] = [] if unit is None else options_of(unit)
    return out
