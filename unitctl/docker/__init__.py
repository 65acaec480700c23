"""docker-run: run one named container in the foreground under systemd, idempotently.

This package backs ``bin/docker-run``::

    docker-run [--engine docker|podman] [docker run options] IMAGE [CMD...]

One concept per module:

* :mod:`~unitctl.docker.argv` (pure): the argv parsed into a ``RunRequest``,
  the ``-p`` syntax (``PortMapping``, ``parse_port``);
* :mod:`~unitctl.docker.spec` (pure): the desired ``ContainerSpec``, its
  ``spec_hash`` and the labels docker-run stamps;
* :mod:`~unitctl.docker.runtime`: the ``ContainerRuntime`` port and its CLI
  adapter ``CliContainerRuntime``, the only code that spawns the engine;
* :mod:`~unitctl.docker.fake`: ``FakeContainerRuntime``, the in-memory engine
  held to the same contract suite;
* :mod:`~unitctl.docker.run`: the flow -- flock, ``ensure_container``, attach
  with signal forwarding, the ``--link`` wait, ``main``.

The pure names are imported here at once. The others load on first access
(PEP 562 ``__getattr__``), so that ``import unitctl.docker.argv`` -- which
``unitctl.generate`` does -- stays pure and never loads the runtime or the
flow. An import error in those modules is raised, never hidden. The flow's
``run`` function is not re-exported: ``unitctl.docker.run`` names the module.
"""

from __future__ import annotations

import importlib
import typing as t

from unitctl.docker.argv import (
    DEFAULT_ENGINE,
    ENGINE_ENV,
    SUPPORTED_ENGINES,
    USAGE,
    PortMapping,
    RunRequest,
    link_targets,
    parse_port,
    parse_run_argv,
    stop_timeout,
    validate_name,
)
from unitctl.docker.spec import (
    HASH_LABEL,
    MACHINE_LABEL,
    RESERVED_LABELS,
    ContainerSpec,
    spec_hash,
)

if t.TYPE_CHECKING:
    from unitctl.docker.fake import FakeContainerRuntime
    from unitctl.docker.run import (
        CREATE_ATTEMPTS,
        LINK_WAIT,
        LOCK_DIR,
        MACHINE_ENV,
        MACHINE_ID_FILE,
        START_GRACE,
        attach,
        ensure_container,
        machine_identity,
        main,
        name_lock,
        wait_for_links,
    )
    from unitctl.docker.runtime import (
        AttachedClient,
        CliContainerRuntime,
        ContainerRuntime,
        ContainerState,
        NameInUse,
        resolve_engine,
    )

#: Name -> module of the names loaded on first access.
_LAZY: dict[str, str] = {
    **dict.fromkeys(["FakeContainerRuntime"], "unitctl.docker.fake"),
    **dict.fromkeys(
        [
            "CREATE_ATTEMPTS", "LINK_WAIT", "LOCK_DIR", "MACHINE_ENV", "MACHINE_ID_FILE",
            "START_GRACE", "attach", "ensure_container", "machine_identity", "main",
            "name_lock", "wait_for_links",
        ],
        "unitctl.docker.run",
    ),
    **dict.fromkeys(
        [
            "AttachedClient", "CliContainerRuntime", "ContainerRuntime", "ContainerState",
            "NameInUse", "resolve_engine",
        ],
        "unitctl.docker.runtime",
    ),
}  # fmt: skip

__all__ = [
    "CREATE_ATTEMPTS", "DEFAULT_ENGINE", "ENGINE_ENV", "HASH_LABEL", "LINK_WAIT", "LOCK_DIR",
    "MACHINE_ENV", "MACHINE_ID_FILE", "MACHINE_LABEL", "RESERVED_LABELS", "START_GRACE",
    "SUPPORTED_ENGINES", "USAGE", "AttachedClient", "CliContainerRuntime", "ContainerRuntime",
    "ContainerSpec", "ContainerState", "FakeContainerRuntime", "NameInUse", "PortMapping",
    "RunRequest", "attach", "ensure_container", "link_targets", "machine_identity", "main",
    "name_lock", "parse_port", "parse_run_argv", "resolve_engine", "spec_hash",
    "stop_timeout", "validate_name", "wait_for_links",
]  # fmt: skip


def __getattr__(name: str) -> object:
    """Load a name of the runtime, fake or run module on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
