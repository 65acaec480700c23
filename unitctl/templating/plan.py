"""Where a template applies, which destinations a machine allows, and the status
each machine reports (pure).

* :func:`applies`: every machine, unless the resource names machine metadata
  (``on_metadata``: every key must hold one of its values) or a unit glob
  (``on_unit``: some unit scheduled on this machine matches);
* :func:`allowed`: a destination whose *resolved* directory lies inside one
  of the agent's ``template_dirs`` (also resolved); the caller resolves
  symlinks, so a link pointing out of the allowed tree is refused;
* :class:`Status`: one machine's last outcome for one template, stored as
  compact JSON under ``template-status/<name>/<machine>`` with the machine's
  lease: ``ok``, ``check failed``, ``reload failed``, ``render failed``,
  ``held back``, ``refused``, ``write failed``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from unitctl.glob import matches_glob
from unitctl.templating.resource import TemplateResource


class Result(enum.Enum):
    OK = "ok"
    CHECK_FAILED = "check failed"
    RELOAD_FAILED = "reload failed"
    RENDER_FAILED = "render failed"
    HELD_BACK = "held back"
    REFUSED = "refused"
    WRITE_FAILED = "write failed"


@dataclass(frozen=True, slots=True)
class Status:
    """One machine's last render of one template."""

    result: str
    detail: str = ""
    revision: int = 0
    time: float = 0.0
    digest: str = ""

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> Status:
        raw = json.loads(data)
        if not isinstance(raw, dict) or not isinstance(raw.get("result"), str):
            raise ValueError("not a template status")
        return cls(str(raw["result"]), str(raw.get("detail", "")), int(raw.get("revision", 0)),
                   float(raw.get("time", 0.0)), str(raw.get("digest", "")))


def applies(res: TemplateResource, metadata: Mapping[str, str],
            scheduled: Iterable[str]) -> bool:
    """Whether ``res`` is rendered on a machine with ``metadata`` and ``scheduled`` units."""
    for key, values in res.on_metadata.items():
        if metadata.get(key) not in values:
            return False
    if res.on_unit:
        return any(matches_glob(res.on_unit, name) for name in scheduled)
    return True


def allowed(real_dir: str, allowed_dirs: Iterable[str]) -> bool:
    """Whether the resolved directory ``real_dir`` is one of ``allowed_dirs`` or under one."""
    for base in allowed_dirs:
        base = base.rstrip("/") or "/"
        if real_dir == base or real_dir.startswith(base.rstrip("/") + "/"):
            return True
    return False
