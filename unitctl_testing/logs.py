"""Diagnostics of a cluster: every machine's journal and console log, etcd's logs, the state.

Best effort by design: a failing test calls this to show why, so nothing in
here may raise for a machine that is dead, half-made or gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.machine import Machine
from unitctl_testing.state import write_json


def collect_logs(dest_dir: str, machines: Sequence[Machine], etcd: EtcdCluster | None,
                 state: dict[str, Any]) -> str:
    """Write the logs and ``state`` (as state.json) into ``dest_dir``; return it."""
    os.makedirs(dest_dir, exist_ok=True)
    for m in machines:
        try:
            text = m.journal()
        except Exception as e:  # best effort diagnostics
            text = f"journal unavailable: {e}\n"
        Path(dest_dir, f"{m.name}.journal.txt").write_text(text)
        with contextlib.suppress(OSError):
            shutil.copyfile(m.console_log, os.path.join(dest_dir, f"{m.name}.console.log"))
    if etcd is not None:
        for em in etcd.members:
            with contextlib.suppress(OSError):
                shutil.copyfile(em.log_path, os.path.join(dest_dir, f"etcd-{em.name}.log"))
    write_json(os.path.join(dest_dir, "state.json"), state)
    return dest_dir
