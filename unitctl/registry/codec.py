"""Model objects to and from the bytes stored in etcd (pure, JSON).

Decoding never trusts the store: a malformed value raises ``RegistryError``
naming the key, instead of a KeyError or a JSON traceback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from unitctl.errors import RegistryError
from unitctl.model import (
    DEFAULT_PORT_RANGE,
    UNLIMITED,
    Capacity,
    DesiredState,
    Machine,
    ScheduleEntry,
    UnitRecord,
    UnitState,
)

if TYPE_CHECKING:  # imported where decoded: the failure policy's module is not on the read path
    from unitctl.failover import FailureRecord, MoveRecord


def _dump(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _load(key: str, data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"corrupt value at {key}: {exc}") from exc
    if not isinstance(obj, dict):
        raise RegistryError(f"corrupt value at {key}: not an object")
    return obj


def _str(key: str, obj: Mapping[str, Any], field: str, default: str | None = None) -> str:
    value = obj.get(field, default)
    if not isinstance(value, str):
        raise RegistryError(f"corrupt value at {key}: field {field!r} missing or not a string")
    return value


def _desired(key: str, obj: Mapping[str, Any]) -> DesiredState:
    try:
        return DesiredState(_str(key, obj, "desired"))
    except ValueError as exc:
        raise RegistryError(f"corrupt value at {key}: bad desired state") from exc


def encode_unit(rec: UnitRecord) -> bytes:
    return _dump({"hash": rec.hash, "desired": rec.desired.value})


def decode_unit(key: str, name: str, data: bytes) -> UnitRecord:
    obj = _load(key, data)
    return UnitRecord(name, _str(key, obj, "hash"), _desired(key, obj))


def encode_entry(entry: ScheduleEntry) -> bytes:
    """An entry without ports has exactly the fields of old engines."""
    obj: dict[str, Any] = {"hash": entry.hash, "desired": entry.desired.value}
    if entry.ports:
        obj["ports"] = dict(entry.ports)
    return _dump(obj)


def _port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 65535


def decode_entry(key: str, name: str, data: bytes) -> ScheduleEntry:
    obj = _load(key, data)
    ports = obj.get("ports", {})
    if not isinstance(ports, dict) or not all(
            isinstance(k, str) and _port(v) for k, v in ports.items()):
        raise RegistryError(f"corrupt value at {key}: bad ports")
    return ScheduleEntry(name, _str(key, obj, "hash"), _desired(key, obj),
                         tuple(sorted(ports.items())))


def encode_machine(m: Machine) -> bytes:
    """A machine with :data:`UNLIMITED` capacity has exactly the fields of old agents."""
    obj: dict[str, Any] = {"id": m.id, "public_ip": m.public_ip, "metadata": dict(m.metadata),
                           "version": m.version}
    if m.capacity != UNLIMITED:
        cap = m.capacity
        obj["capacity"] = {"cpu_milli": cap.cpu_milli, "mem_bytes": cap.mem_bytes,
                           "ports": list(cap.port_range)}
    return _dump(obj)


def _size(key: str, obj: Mapping[str, Any], field: str) -> int | None:
    value = obj.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RegistryError(f"corrupt value at {key}: capacity {field!r} is not a count")
    return value


def _capacity(key: str, obj: Mapping[str, Any]) -> Capacity:
    """A record without ``capacity`` (an old agent) is unlimited."""
    raw = obj.get("capacity")
    if raw is None:
        return UNLIMITED
    if not isinstance(raw, dict):
        raise RegistryError(f"corrupt value at {key}: bad capacity")
    ports = raw.get("ports", list(DEFAULT_PORT_RANGE))
    if not (isinstance(ports, list) and len(ports) == 2 and all(_port(p) for p in ports)
            and ports[0] <= ports[1]):
        raise RegistryError(f"corrupt value at {key}: bad port range")
    return Capacity(_size(key, raw, "cpu_milli"), _size(key, raw, "mem_bytes"),
                    (ports[0], ports[1]))


def decode_machine(key: str, data: bytes) -> Machine:
    obj = _load(key, data)
    meta = obj.get("metadata", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise RegistryError(f"corrupt value at {key}: bad metadata")
    return Machine(_str(key, obj, "id"), _str(key, obj, "public_ip", ""), dict(meta),
                   _str(key, obj, "version", ""), _capacity(key, obj))


def encode_state(s: UnitState) -> bytes:
    """A healthy unit's record has exactly the fields of old agents; ``error`` and
    ``retry_at`` are written only with a failure."""
    obj: dict[str, Any] = {"load": s.load, "active": s.active, "sub": s.sub, "hash": s.hash}
    if s.error:
        obj.update(error=s.error, retry_at=s.retry_at)
    if s.waiting:
        obj.update(waiting=s.waiting)
    if s.health:
        obj.update(health=s.health)
    return _dump(obj)


def decode_state(key: str, name: str, machine: str, data: bytes) -> UnitState:
    """Records without ``error``/``retry_at`` (old agents, healthy units) decode as healthy."""
    obj = _load(key, data)
    retry_at = obj.get("retry_at", 0.0)
    if isinstance(retry_at, bool) or not isinstance(retry_at, int | float):
        raise RegistryError(f"corrupt value at {key}: field 'retry_at' is not a number")
    return UnitState(name, machine, _str(key, obj, "load", ""), _str(key, obj, "active", ""),
                     _str(key, obj, "sub", ""), _str(key, obj, "hash", ""),
                     _str(key, obj, "error", ""), float(retry_at), _str(key, obj, "waiting", ""),
                     _str(key, obj, "health", ""))


def encode_explanation(reasons: Mapping[str, str]) -> bytes:
    return _dump({"reasons": dict(sorted(reasons.items()))})


def decode_explanation(key: str, data: bytes) -> dict[str, str]:
    obj = _load(key, data)
    reasons = obj.get("reasons", {})
    if not isinstance(reasons, dict):
        raise RegistryError(f"corrupt value at {key}: bad reasons")
    return {str(k): str(v) for k, v in reasons.items()}


def _num(key: str, obj: Mapping[str, Any], field: str) -> float:
    value = obj.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RegistryError(f"corrupt value at {key}: field {field!r} missing or not a number")
    return float(value)


def encode_failure(rec: FailureRecord) -> bytes:
    return _dump({"count": rec.count, "first": rec.first, "last": rec.last, "why": rec.why})


def decode_failure(key: str, unit: str, machine: str, data: bytes) -> FailureRecord:
    from unitctl.failover import FailureRecord  # only failure records need it (start-up cost)

    obj = _load(key, data)
    return FailureRecord(unit, machine, int(_num(key, obj, "count")), _num(key, obj, "first"),
                         _num(key, obj, "last"), _str(key, obj, "why", ""))


def encode_moves(history: tuple[MoveRecord, ...]) -> bytes:
    return _dump({"moves": [{"from": m.source, "at": m.at, "why": m.why} for m in history]})


def decode_moves(key: str, data: bytes) -> tuple[MoveRecord, ...]:
    from unitctl.failover import MoveRecord  # only move records need it (start-up cost)

    moves = _load(key, data).get("moves")
    if not isinstance(moves, list) or not all(isinstance(m, dict) for m in moves):
        raise RegistryError(f"corrupt value at {key}: field 'moves' is not a list of objects")
    return tuple(MoveRecord(_str(key, m, "from"), _num(key, m, "at"), _str(key, m, "why", ""))
                 for m in moves)


def unit_hash_or_empty(data: bytes) -> str:
    """The body hash an undecodable unit value names, or "" (to clean up after it)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return ""
    sha = obj.get("hash") if isinstance(obj, dict) else None
    return sha if isinstance(sha, str) and sha.isalnum() else ""
