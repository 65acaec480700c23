"""unitctl's own API objects as JSON, and back (no I/O): shared by the server and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unitctl.client.views import UnitFileInfo
from unitctl.model import DesiredState, Machine, UnitState


def unit_file_json(u: UnitFileInfo) -> dict[str, Any]:
    return {"name": u.name, "hash": u.hash, "desired": u.desired.value,
            "state": None if u.state is None else u.state.value, "global": u.is_global,
            "target": u.target, "description": u.description, "reason": u.reason}


def unit_file_from(obj: Mapping[str, Any], machines: Mapping[str, Machine]) -> UnitFileInfo:
    target = obj.get("target")
    state = obj.get("state")
    return UnitFileInfo(str(obj["name"]), str(obj["hash"]), DesiredState(obj["desired"]),
                        None if state is None else DesiredState(state), bool(obj["global"]),
                        target, machines.get(target) if target else None,
                        str(obj.get("description", "")), str(obj.get("reason", "")))


def state_json(s: UnitState) -> dict[str, Any]:
    return {"name": s.name, "machine": s.machine_id, "load": s.load, "active": s.active,
            "sub": s.sub, "hash": s.hash, "error": s.error, "retryAt": s.retry_at,
            "waiting": s.waiting}


def state_from(obj: Mapping[str, Any]) -> UnitState:
    return UnitState(str(obj["name"]), str(obj["machine"]), str(obj["load"]),
                     str(obj["active"]), str(obj["sub"]), str(obj["hash"]),
                     str(obj.get("error", "")), float(obj.get("retryAt", 0.0)),
                     str(obj.get("waiting", "")))


def machine_json(m: Machine) -> dict[str, Any]:
    return {"id": m.id, "publicIP": m.public_ip, "metadata": dict(m.metadata),
            "version": m.version}


def machine_from(obj: Mapping[str, Any]) -> Machine:
    return Machine(str(obj["id"]), str(obj.get("publicIP", "")),
                   {str(k): str(v) for k, v in dict(obj.get("metadata", {})).items()},
                   str(obj.get("version", "")))
