"""A bundle's revision record: what one ``unitctl apply`` made the bundle hold (pure).

``bundles/<bundle>/<n>`` holds revision ``n`` as JSON::

    {"revision": 3, "time": 1700000000.0, "note": "apply", "source": "Clusterfile.yaml",
     "units": [["hello.service", "<sha1>", "launched"], ...],
     "templates": [["zoo", "<sha1>"], ...]}

(``templates``, the bundle's config template resources, is absent when there are
none; a template's stored form is its resource's compact JSON, kept with the
unit texts under its sha1.)

The unit texts are stored apart, content-addressed, under
``bundlebodies/<bundle>/<sha1>``, once for every kept revision that names
them, so a record stays small: at most :data:`~unitctl.bundle.spec.MAX_UNITS`
units of a few hundred bytes each, far under etcd's 1.5 MiB request limit.
The last :data:`KEEP` revisions of a bundle are kept; :func:`dropped` names
the older ones and :func:`unused_bodies` the texts no kept revision names.
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from unitctl.errors import RegistryError
from unitctl.model import DesiredState

#: Revisions kept per bundle (older ones are deleted when a new one is recorded).
KEEP = 10


@dataclass(frozen=True, slots=True)
class Revision:
    """One recorded apply: its number, when, why (``apply``, ``rollback to 2``),
    the Clusterfile it came from, each unit's (name, body sha, desired state) and
    each config template's (name, sha of its stored form)."""

    bundle: str
    number: int
    time: float
    note: str
    source: str
    units: tuple[tuple[str, str, DesiredState], ...]
    templates: tuple[tuple[str, str], ...] = ()

    @property
    def shas(self) -> set[str]:
        return {sha for _, sha, _ in self.units} | {sha for _, sha in self.templates}


def encode_revision(rev: Revision) -> bytes:
    raw: dict[str, t.Any] = {"revision": rev.number, "time": rev.time, "note": rev.note,
                             "source": rev.source,
                             "units": [[n, sha, d.value] for n, sha, d in rev.units]}
    if rev.templates:
        raw["templates"] = [[n, sha] for n, sha in rev.templates]
    return json.dumps(raw, separators=(",", ":")).encode()


def decode_revision(key: str, bundle: str, data: bytes) -> Revision:
    """The record stored at ``key``; RegistryError naming the key when malformed."""
    try:
        raw = json.loads(data)
        units = tuple((str(n), str(sha), DesiredState(d)) for n, sha, d in raw["units"])
        templates = tuple((str(n), str(sha)) for n, sha in raw.get("templates", ()))
        return Revision(bundle, int(raw["revision"]), float(raw["time"]), str(raw["note"]),
                        str(raw["source"]), units, templates)
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"malformed bundle revision at {key}: {exc}") from None


def dropped(numbers: Iterable[int], keep: int = KEEP) -> list[int]:
    """The revision numbers beyond the newest ``keep``, oldest first."""
    ordered = sorted(numbers)
    return ordered[:max(0, len(ordered) - keep)]


def unused_bodies(kept: Sequence[Revision], gone: Sequence[Revision]) -> set[str]:
    """The shas that revisions ``gone`` name and no revision of ``kept`` does."""
    used: set[str] = set().union(*(r.shas for r in kept)) if kept else set()
    return set().union(*(r.shas for r in gone)) - used if gone else set()


def describe(rev: Revision) -> dict[str, t.Any]:
    """The revision as a listing's JSON row."""
    return {"bundle": rev.bundle, "revision": rev.number, "time": rev.time, "note": rev.note,
            "source": rev.source, "units": len(rev.units), "templates": len(rev.templates)}
