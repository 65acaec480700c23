"""asyncio helpers shared by the long-running loops."""

from __future__ import annotations

import asyncio


def checkpoint() -> None:
    """Raise CancelledError if this task was asked to stop but the request got lost.

    In Python 3.11, ``asyncio.wait_for`` returns the inner result when the
    inner call finishes at the moment the outer task is cancelled, and the
    cancellation is gone; a ``while True`` loop would then run forever and
    a TaskGroup waiting for it would hang. Loops call this on every turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()
