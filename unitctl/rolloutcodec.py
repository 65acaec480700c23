"""A rollout record to and from the bytes of ``rollouts/<name>`` (pure).

The value is compact JSON::

    {"name": "web@.service", "target": "<sha1>",
     "previous": [["web@1.service", "<sha1>"], ...],      # rollout order
     "checked": {"<sha1>": true}, "max_unavailable": 1, "canary": 0,
     "pause_each": false, "confirmed": false, "deadline": 300.0,
     "phase": "rolling", "batch": [...], "since": 1700000000.0,
     "replaced": [...], "reverted": [...], "reason": "",
     "created": 1700000000.0, "updated": 1700000000.0}

Contract: :func:`decode` raises ``RegistryError`` naming the key for a value
that is not such a record (callers skip it: a bad key never stops the
cluster); :func:`encode` of a decoded record gives back the same record.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from unitctl.errors import RegistryError
from unitctl.rollout import Phase, Rollout

T = TypeVar("T")


def encode(r: Rollout) -> bytes:
    """The stored form of ``r``."""
    doc = {"name": r.name, "target": r.target, "previous": [[i, h] for i, h in
                                                            r.previous.items()],
           "checked": dict(r.checked), "max_unavailable": r.max_unavailable,
           "canary": r.canary, "pause_each": r.pause_each, "confirmed": r.confirmed,
           "deadline": r.deadline, "phase": r.phase.value, "batch": list(r.batch),
           "since": r.since, "replaced": list(r.replaced), "reverted": list(r.reverted),
           "reason": r.reason, "created": r.created, "updated": r.updated}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _get(doc: dict[str, Any], name: str, kind: type[T] | tuple[type, ...],
         default: Any = None) -> Any:
    value = doc.get(name, default)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise ValueError(f"{name} is not {getattr(kind, '__name__', kind)}")
    return value


def _names(doc: dict[str, Any], name: str, known: dict[str, str]) -> tuple[str, ...]:
    items = _get(doc, name, list, [])
    if not all(isinstance(i, str) and i in known for i in items):
        raise ValueError(f"{name} names an instance outside the rollout")
    return tuple(items)


def _previous(doc: dict[str, Any]) -> dict[str, str]:
    pairs = _get(doc, "previous", list)
    if not pairs or not all(isinstance(p, list) and len(p) == 2 and all(
            isinstance(x, str) and x for x in p) for p in pairs):
        raise ValueError("previous is not a list of [instance, hash]")
    return {i: h for i, h in pairs}


def _checked(doc: dict[str, Any]) -> dict[str, bool]:
    checked = _get(doc, "checked", dict, {})
    if not all(isinstance(k, str) and isinstance(v, bool) for k, v in checked.items()):
        raise ValueError("checked is not a map of hash to bool")
    return dict(checked)


def _number(doc: dict[str, Any], name: str, default: float = 0.0) -> float:
    return float(_get(doc, name, (int, float), default))


def _count(doc: dict[str, Any], name: str) -> int:
    return int(_get(doc, name, int, 0))


def _record(doc: dict[str, Any]) -> Rollout:
    previous = _previous(doc)
    return Rollout(
        name=_get(doc, "name", str), target=_get(doc, "target", str), previous=previous,
        checked=_checked(doc), max_unavailable=max(1, _count(doc, "max_unavailable")),
        canary=max(0, _count(doc, "canary")), pause_each=_get(doc, "pause_each", bool, False),
        confirmed=_get(doc, "confirmed", bool, False),
        deadline=_number(doc, "deadline", 300.0), phase=Phase(_get(doc, "phase", str)),
        batch=_names(doc, "batch", previous), since=_number(doc, "since"),
        replaced=_names(doc, "replaced", previous), reverted=_names(doc, "reverted", previous),
        reason=_get(doc, "reason", str, ""), created=_number(doc, "created"),
        updated=_number(doc, "updated"))


def decode(key: str, data: bytes) -> Rollout:
    """The record stored at ``key``; RegistryError naming the key when it is not one."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return _record(doc)
    except (ValueError, TypeError) as exc:
        raise RegistryError(f"invalid rollout record at {key}: {exc}") from None
