"""Where the time of one ``unitctl start`` goes: a timestamped trace (root only).

Used by ``bench.nspawn --trace N``. For each traced start, three clocks of the
same host (the nspawn machines share its kernel clock) are merged:

* the CLI process: spawned (by the parent), interpreter ready (first line of
  the wrapper), every etcd request over the gateway (start, end, path), every
  watch batch received (the blocking watches of the lean path that `start` takes), exit;
* etcd: every event under ``/unitctl/`` as seen by an ``etcdctl watch`` on
  the host (the engine's and the agent's writes: placement, schedule, state);
* each machine's journal (``-o json``, ``__REALTIME_TIMESTAMP``): the agent's
  task lines (``agent: load-unit ...``, ``start-unit ...``) and PID 1's
  ``Starting``/``Started`` of the unit.

The result is a list of (ms since spawn, source, what) per start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: runs the real CLI with its gateway requests and watch batches timestamped
WRAPPER = r"""
import time
T0 = time.time()
import atexit, json, os, sys
EV = [(T0, "cli", "interpreter ready")]
import unitctl.registry.gateway as g
import unitctl.registry.gatewayblock as gb  # the lean start's watches (no asyncio)
_call = g.GatewayKV._call_now
def _traced(self, path, message):
    t = time.time()
    try:
        return _call(self, path, message)
    finally:
        EV.append((t, "cli", f"etcd {path} ({1000 * (time.time() - t):.1f} ms)"))
g.GatewayKV._call_now = _traced
_open, _created, _read = gb.BlockingWatch.__init__, gb.BlockingWatch._created, gb.BlockingWatch.read
def _opened(self, kv, prefix):
    EV.append((time.time(), "cli", f"watch open {prefix.decode()[-40:]}"))
    _open(self, kv, prefix)
def _made(self, rev):
    EV.append((time.time(), "cli", f"watch created rev {rev}"))
    _created(self, rev)
def _batches(self):
    got = _read(self)
    for batch in got:
        EV.append((time.time(), "cli", f"watch batch {[e.key[-40:] for e in batch]}"))
    return got
B = gb.BlockingWatch
B.__init__, B._created, B.read = _opened, _made, _batches
def _dump():
    EV.append((time.time(), "cli", "exit"))
    with open(os.environ["UNITCTL_TRACE_OUT"], "w") as f:
        json.dump(EV, f)
atexit.register(_dump)
sys.argv = ["unitctl", *sys.argv[1:]]
from unitctl.cli.launch import main  # the entry point `unitctl` and `python -m unitctl` run
main()
"""


class EtcdEvents:
    """``etcdctl watch --prefix`` on the host, each output line stamped on arrival."""

    def __init__(self, endpoint: str, prefix: str = "/unitctl/") -> None:
        self.lines: list[tuple[float, str]] = []
        self._proc = subprocess.Popen(
            ["etcdctl", "--endpoints", endpoint, "watch", "--prefix", prefix],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def keys(self, since: float, until: float) -> list[tuple[float, str]]:
        """The keys put or deleted between two times (values left out)."""
        out, want_key = [], False
        for t, line in self.lines:
            if line in ("PUT", "DELETE"):
                want_key = True
                kind = line
                continue
            if want_key and since <= t <= until:
                out.append((t, f"{kind} {line}"))
            want_key = False
        return out

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)


def _journal(c: Any, name: str, unit: str, since: float) -> list[tuple[float, str]]:
    """Journal lines of one machine about ``unit`` (agent tasks and PID 1), since ``since``."""
    raw = c.exec(name, "journalctl", "-o", "json", "--since", f"@{since - 1:.0f}",
                 "--no-pager", check=False).stdout
    out = []
    for line in raw.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        msg = rec.get("MESSAGE")
        if isinstance(msg, str) and unit in msg:
            out.append((int(rec["__REALTIME_TIMESTAMP"]) / 1e6, f"{name}: {msg[:120]}"))
    return out


def traced_start(c: Any, env: dict[str, str], path: str, unit: str, events: EtcdEvents,
                 tmp: str, python: str = sys.executable) -> dict[str, Any]:
    """One traced ``unitctl start`` by ``python``: its timeline in ms since the spawn."""
    out_file = os.path.join(tmp, f"trace-{unit}.json")
    spawn = time.time()
    subprocess.run([python, "-c", WRAPPER, "--endpoint", c.endpoint, "start", path],
                   check=True, capture_output=True, timeout=120,
                   env={**env, "UNITCTL_TRACE_OUT": out_file},
                   cwd=env.get("PYTHONPATH", str(Path(__file__).resolve().parents[1])))
    done = time.time()
    time.sleep(0.3)  # the etcdctl watch's last lines, the journals
    rows: list[tuple[float, str, str]] = [(spawn, "parent", "spawn")]
    rows += [(t, src, what) for t, src, what in json.loads(Path(out_file).read_text())]
    rows += [(t, "etcd", what) for t, what in events.keys(spawn, done + 0.3)]
    for name in c.names:
        rows += [(t, "journal", what) for t, what in _journal(c, name, unit, spawn)]
    rows.append((done, "parent", "returned"))
    rows.sort()
    timeline = [(round(1000 * (t - spawn), 1), src, what) for t, src, what in rows]
    return {"unit": unit, "total_ms": round(1000 * (done - spawn), 1),
            "phases_ms": phases(timeline, unit), "timeline": timeline}


def phases(timeline: list[tuple[float, str, str]], unit: str) -> dict[str, float | None]:
    """The trace cut into phases (ms): interpreter, imports until the first etcd
    request, the CLI's writes, the engine (desired state put -> placement put),
    the agent and systemd (placement -> the state reported active: the last
    state put), the CLI's wake on it, the CLI's reads until exit, the process's exit."""
    def first(pred: Any) -> float | None:
        return next((ms for ms, src, what in timeline if pred(src, what)), None)

    ready = first(lambda s, w: w == "interpreter ready")
    request = first(lambda s, w: w.startswith("etcd /v3"))
    unit_puts = [ms for ms, s, w in timeline if s == "etcd" and w.endswith(f"/units/{unit}")]
    placed = first(lambda s, w: s == "etcd" and w.endswith(f"/placements/{unit}"))
    states = [ms for ms, s, w in timeline if s == "etcd" and f"/states/{unit}/" in w]
    exited = first(lambda s, w: w == "exit")
    returned = first(lambda s, w: w == "returned")
    active = states[-1] if states else None
    woke = None if active is None else next(
        (ms for ms, _s, w in timeline if w.startswith("watch batch") and ms >= active - 0.5),
        None)

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 1)
    return {"interpreter": ready, "imports_to_first_request": span(ready, request),
            "cli_writes": span(request, unit_puts[-1] if unit_puts else None),
            "engine": span(unit_puts[-1] if unit_puts else None, placed),
            "agent_and_systemd": span(placed, active), "cli_wake": span(active, woke),
            "cli_after_wake": span(woke, exited), "process_exit": span(exited, returned)}
