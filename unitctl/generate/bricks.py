"""The seed's storage, ``--brick SIZE:PATH``, as a local volume of the generated unit.

Pure (no I/O). A brick is ``SIZE:PATH`` (the seed's ``mgmt service --brick
131072:/var/lib/pgsql/9.6/data/``) or ``NAME:SIZE:PATH``. Contract:

* SIZE is a bare number of **MiB** (the seed's unit, as for ``--mem``:
  131072 is 128 GiB) or a size with a ``K``/``M``/``G``/``T`` suffix;
* PATH is the absolute path inside the container; a trailing ``/`` is dropped;
* NAME, the cluster-wide volume name, defaults to the unit's name for the first
  brick and ``NAME-2``, ``NAME-3``… for the next ones;
* each brick becomes ``[X-Fleet] Volume=NAME:SIZE:PATH`` (the agent makes the
  directory once on the machine the unit lands on, records it and keeps the
  unit there: :mod:`unitctl.volumes`) and ``-v <that directory>:PATH`` for the
  container, so the container's data lives in the unit's volume;
* the result is checked with :func:`unitctl.volumes.parse_volumes` (names,
  sizes, paths, nothing given twice); problems are
  :class:`~unitctl.errors.UsageError` naming the spec key ``bricks``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from unitctl.errors import UsageError
from unitctl.volumes import Volume, format_size, parse_volumes, volume_dir

__all__ = ["brick_mount", "brick_option", "parse_bricks"]

_BARE_MIB = re.compile(r"[0-9]+")


def _size(text: str) -> str:
    """A bare number is MiB (the seed's unit); a suffixed size is kept."""
    return f"{text}M" if _BARE_MIB.fullmatch(text) else text.upper()


def _volume_value(item: str, index: int, unit_name: str) -> str:
    """One brick as ``NAME:SIZE:PATH`` (the default name from the unit's name)."""
    parts = item.strip().split(":")
    if len(parts) == 2:
        parts.insert(0, unit_name if index == 0 else f"{unit_name}-{index + 1}")
    if len(parts) != 3:
        raise UsageError(f"spec key 'bricks': expected SIZE:PATH or NAME:SIZE:PATH (got {item!r})")
    name, size, path = parts
    if len(path) > 1:
        path = path.rstrip("/")
    return f"{name}:{_size(size)}:{path}"


def parse_bricks(items: Iterable[str], unit_name: str) -> tuple[Volume, ...]:
    """The bricks as local volumes; UsageError naming the problem."""
    values = [_volume_value(item, i, unit_name) for i, item in enumerate(items)]
    try:
        return parse_volumes(values)
    except ValueError as exc:
        hint = " (give NAME:SIZE:PATH)" if "name" in str(exc) else ""
        raise UsageError(f"spec key 'bricks': {exc}{hint}") from None


def brick_option(volume: Volume) -> str:
    """The ``[X-Fleet]`` line of a brick."""
    return f"Volume={volume.name}:{format_size(volume.size)}:{volume.path}"


def brick_mount(volume: Volume) -> str:
    """docker's ``-v`` for a brick: the volume's directory on its machine at PATH."""
    return f"{volume_dir(volume.name)}:{volume.path}"
