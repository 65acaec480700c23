"""The steady load: a stream of real ``unitctl`` commands on the pool, and its record.

A thread picks a unit (of those ``by_load``) and a verb at random every
``0.5..1.5`` s: ``start --no-block`` (with the unit file, so a destroyed unit comes
back), ``stop --no-block``, ``restart`` (blocking, a few attempts) or ``destroy``.
Each command is recorded with its begin and end times and exit code. The record
yields each unit's *launched* periods: from the end of a successful start or
restart until the begin of the next command on it (while a command runs, or
after one failed, the wanted state is not known and no promise is checked).
``pause()`` waits for the command under way and holds further ones.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def unitctl(endpoint: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (a subprocess) against ``endpoint``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "unitctl", "--endpoint", endpoint,
                           "--request-timeout", "2", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO), env=env, check=False)


@dataclass(frozen=True)
class Command:
    unit: str
    verb: str
    begin: float
    end: float
    rc: int
    output: str = ""

    @property
    def launches(self) -> bool:
        return self.rc == 0 and self.verb in ("start", "restart")


VERBS = ("start", "stop", "restart", "destroy")
WEIGHTS = (0.35, 0.25, 0.2, 0.2)


@dataclass
class LoadGenerator:
    endpoint: str
    paths: dict[str, str]
    units: Sequence[str]
    rng: random.Random
    commands: list[Command] = field(default_factory=list)
    _gate: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def run(self, unit: str, verb: str) -> Command:
        args = {"start": ["start", "--no-block", self.paths[unit]],
                "stop": ["stop", "--no-block", unit],
                "restart": ["restart", "--block-attempts", "10", unit],
                "destroy": ["destroy", unit]}[verb]
        begin = time.monotonic()
        try:
            r = unitctl(self.endpoint, *args, timeout=60)
            rc, out = r.returncode, (r.stdout + r.stderr)[-300:]
        except subprocess.TimeoutExpired:
            rc, out = -1, "timeout"
        cmd = Command(unit, verb, begin, time.monotonic(), rc, out)
        self.commands.append(cmd)
        return cmd

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="chaos-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(90)

    def pause(self) -> None:
        self._gate.acquire()

    def resume(self) -> None:
        self._gate.release()

    def _loop(self) -> None:
        while not self._stop.wait(self.rng.uniform(0.5, 1.5)):
            unit = self.rng.choice(list(self.units))
            verb = self.rng.choices(VERBS, WEIGHTS)[0]
            with self._gate:
                if self._stop.is_set():
                    return
                self.run(unit, verb)

    def launched_periods(self, unit: str, t_end: float) -> list[tuple[float, float]]:
        """The periods in which ``unit`` was surely wanted running (see module doc)."""
        periods: list[tuple[float, float]] = []
        since: float | None = None
        for cmd in sorted((c for c in self.commands if c.unit == unit), key=lambda c: c.begin):
            if since is not None and cmd.begin > since:
                periods.append((since, cmd.begin))
            since = cmd.end if cmd.launches else None
        if since is not None and t_end > since:
            periods.append((since, t_end))
        return periods
