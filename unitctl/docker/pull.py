"""The pull policy: whether docker-run pulls the image before it makes the container.

=========  ==================================================================
``missing``  (the default, as ``docker run``) pull only when the image is not
             present locally
``always``   pull every start; a failed pull fails the start
``never``    never pull; a missing image fails the start
``newer``    pull every start (the engine fetches only layers that changed,
             so the image is replaced when the registry's digest differs, as
             podman's ``newer``); a failed pull falls back to the local image
             when there is one
=========  ==================================================================

:func:`ensure_image` applies a policy through the
:class:`~unitctl.docker.runtime.ContainerRuntime` port and returns the image id
the container is made from. The pull's progress goes to docker-run's stderr
(the unit's journal); while it runs the start timeout is extended
(:func:`~unitctl.docker.notify.extending_start_timeout`), so a slow pull does
not count against ``TimeoutStartSec=``.
"""

from __future__ import annotations

import sys

from unitctl.docker.notify import Notifier, extending_start_timeout
from unitctl.docker.runtime import ContainerRuntime, ImageNotFound
from unitctl.errors import ContainerError

__all__ = ["ensure_image"]


def _pull(runtime: ContainerRuntime, image: str, notifier: Notifier) -> None:
    """Pull ``image`` with the start timeout extended (the engine's progress on stderr)."""
    with extending_start_timeout(notifier, f"pulling {image}"):
        runtime.pull(image)


def ensure_image(runtime: ContainerRuntime, image: str, policy: str, notifier: Notifier) -> str:
    """Apply pull ``policy`` to ``image``; return its local image id.

    Raises ImageNotFound when the image is missing under ``never``, and
    ContainerError naming the image when a needed pull fails (under
    ``missing`` the message says both: not found locally, and the pull's error).
    """
    if policy == "never":
        return runtime.image_id(image)
    if policy == "missing":
        try:
            return runtime.image_id(image)
        except ImageNotFound as missing:
            try:
                _pull(runtime, image, notifier)
            except ContainerError as exc:
                raise ContainerError(f"{missing}; {exc}") from exc
            return runtime.image_id(image)
    try:
        _pull(runtime, image, notifier)
    except ContainerError as exc:
        if policy != "newer":
            raise
        try:
            local = runtime.image_id(image)
        except ImageNotFound as missing:  # nothing to fall back to
            raise ContainerError(f"{missing}; {exc}") from exc
        print(f"docker-run: {exc}; using the local image", file=sys.stderr, flush=True)
        return local
    return runtime.image_id(image)
