"""The collector during ``unitctl``'s start-up: off while modules load, then frozen.

Loading click and a verb's modules allocates tens of thousands of objects that
live as long as the process (functions, classes, code); the cyclic collector
would scan them again and again (a few dozen collections) and find nothing.
:func:`pause` (the launcher, first thing) turns it off; :func:`resume` (once
the verb's module is loaded) moves everything alive into the permanent
generation (:func:`gc.freeze`) and turns it back on, so the verb's own garbage
is collected as usual and never rescans the modules. :func:`resume` does
nothing unless :func:`pause` turned the collector off (a test calling the
group in-process keeps its collector as it is).
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Turn the collector off for the start-up (only if it is on)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Freeze what start-up loaded and turn the collector back on (if paused)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
