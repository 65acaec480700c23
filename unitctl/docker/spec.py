"""The container docker-run wants, its fingerprint, and the labels that carry them.

Pure (no I/O). A :class:`ContainerSpec` is the desired container as data;
:func:`spec_hash` is its fingerprint (sha256 over image id, normalized options,
command, machine and link ids). docker-run stores the hash on the container as
the label :data:`HASH_LABEL` and the machine that made it as
:data:`MACHINE_LABEL`; both are :data:`RESERVED_LABELS` a user may not set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing as t

__all__ = ["HASH_LABEL", "MACHINE_LABEL", "RESERVED_LABELS", "ContainerSpec", "spec_hash"]

#: Label carrying the spec hash on every container docker-run creates.
HASH_LABEL = "unitctl.spec-hash"

#: Label naming the machine whose docker-run created the container (part of the spec hash).
MACHINE_LABEL = "unitctl.machine"

#: Labels only docker-run sets.
RESERVED_LABELS = (HASH_LABEL, MACHINE_LABEL)


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    """The container docker-run wants: what :func:`spec_hash` fingerprints.

    ``image`` is the reference the user gave, ``image_id`` what it resolved to
    (so re-tagging an image changes the hash); ``options`` are normalized
    tokens as produced by :func:`~unitctl.docker.argv.parse_run_argv`.
    ``machine`` is the identity of the machine creating the container ("" for
    none): it becomes the ``unitctl.machine`` label and is part of the hash.
    ``link_ids`` are the ids of the ``--link`` target containers (see
    :func:`~unitctl.docker.run.wait_for_links`).
    """

    name: str
    image: str
    image_id: str
    options: tuple[str, ...]
    command: tuple[str, ...]
    machine: str = ""
    link_ids: tuple[str, ...] = ()


def spec_hash(spec: ContainerSpec) -> str:
    """Return the hex sha256 of the image id, options, command, machine and link ids.

    The name and the image reference are not part of it: the same options on
    the same image content give the same hash. Deterministic across runs.

    The machine is part of it (when not empty; an empty machine leaves the
    hash as it was before machines were hashed): where several machines share
    one engine, the container of a unit that moved here from a machine that
    died is "different" and gets recreated instead of adopted, so nothing of
    the old machine keeps running under the unit's name. With one engine per
    machine the identity is constant, so it never causes drift. The ids of
    the ``--link`` targets are part of it too (see ``wait_for_links``).
    """
    fields: dict[str, t.Any] = {
        "image_id": spec.image_id,
        "options": list(spec.options),
        "command": list(spec.command),
    }
    if spec.machine:
        fields["machine"] = spec.machine
    if spec.link_ids:
        fields["link_ids"] = list(spec.link_ids)
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
