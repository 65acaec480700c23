"""The ``--link`` wait: the containers a container links to must run here first.

See :func:`wait_for_links`. Talks to the engine only through the
:class:`~unitctl.docker.runtime.ContainerRuntime` port.
"""

from __future__ import annotations

import time
import typing as t
from collections.abc import Sequence

from unitctl.docker.runtime import ContainerRuntime, ContainerState
from unitctl.docker.spec import MACHINE_LABEL
from unitctl.errors import ContainerError

__all__ = ["LINK_WAIT", "wait_for_links"]

#: Seconds docker-run waits for the containers named by ``--link`` to run.
LINK_WAIT = 30.0
def _link_ready(state: ContainerState | None, machine: str) -> t.TypeGuard[ContainerState]:
    """True when a link target runs and was not left here by another machine."""
    return (
        state is not None
        and state.running
        and state.labels.get(MACHINE_LABEL, machine) == machine
    )


def _not_ready_reason(state: ContainerState | None) -> str:
    """Why a link target does not count as running: missing, stopped, or foreign."""
    if state is None:
        return "missing"
    if not state.running:
        return "not running"
    return f"left by machine {state.labels.get(MACHINE_LABEL)}"


def _wait_for_link(
    runtime: ContainerRuntime, target: str, machine: str, timeout: float
) -> str:
    """Wait until ``target`` is ready (see :func:`wait_for_links`); return its id."""
    deadline = time.monotonic() + timeout
    state = runtime.inspect(target)
    while not _link_ready(state, machine):
        if time.monotonic() >= deadline:
            why = _not_ready_reason(state)
            raise ContainerError(f"linked container {target} is {why} after {timeout:g}s")
        time.sleep(0.2)
        state = runtime.inspect(target)
    return state.id


def wait_for_links(
    runtime: ContainerRuntime, targets: Sequence[str], machine: str, timeout: float = LINK_WAIT
) -> tuple[str, ...]:
    """Wait until every ``--link`` target container runs here; return their ids.

    Why: a unit ordered ``After=`` its linked unit starts once that unit's
    docker-run has started, not once its container runs, and docker refuses to
    start a container whose link target does not run. And docker binds a link
    to the target's container id: a linking container made before its target
    was recreated (e.g. a unit that moved machines) can never start again
    ("Cannot link to a non running container"). The ids go into the spec hash,
    so such a container is recreated instead.

    A target labelled ``unitctl.machine`` with another machine than ``machine``
    is a leftover of that machine on a shared engine, about to be recreated by
    the target's own docker-run here: it does not count as running.
    Raises ContainerError when a target still does not run after ``timeout``
    seconds (each target gets its own ``timeout``).
    """
    return tuple(_wait_for_link(runtime, target, machine, timeout) for target in targets)
