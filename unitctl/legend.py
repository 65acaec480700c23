"""How unitctl names a machine and a placement reason to a user (pure).

Shared by the client's messages (waiting, explanations) and the CLI's tables:
fleet's short machine id (``113f16a7...``), its machine legend (``id/ip``) and
the engine's reasons, one line per machine.
"""

from __future__ import annotations

from collections.abc import Mapping

from unitctl.model import Machine

__all__ = ["format_reasons", "machine_legend", "short_id", "short_reason"]


def short_id(machine_id: str) -> str:
    """``113f16a7...``; keys that are not machine ids are kept as they are."""
    if len(machine_id) > 8 and all(c in "0123456789abcdef" for c in machine_id.lower()):
        return machine_id[:8] + "..."
    return machine_id


def machine_legend(machine_id: str, machine: Machine | None, full: bool = False) -> str:
    """fleet's ``machineFullLegend``: the id (short unless ``full``) and ``/<ip>`` when known."""
    legend = machine_id if full else short_id(machine_id)
    if machine is not None and machine.public_ip:
        legend += f"/{machine.public_ip}"
    return legend


def format_reasons(reasons: Mapping[str, str]) -> list[str]:
    """One ``<short id>: <reason>`` per machine, sorted by machine id."""
    if not reasons:
        return ["no machine is available"]
    return [f"{short_id(m)}: {reasons[m]}" for m in sorted(reasons)]


def short_reason(reasons: Mapping[str, str]) -> str:
    """The distinct reasons of an explanation, joined (list-unit-files' REASON)."""
    if not reasons:
        return "no machine is available"
    return "; ".join(sorted(set(reasons.values())))
