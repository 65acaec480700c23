"""The chaos soak (issue 10): load + random faults, promises checked from systemd.

Fails on any violation of: never active on two machines at once; never down
longer than TTL + 2 s after the fault that stopped it ended; never stopped by an
etcd outage shorter than the TTL. The report (faults by kind, violations, worst
recovery per kind) is written as JSON and its path printed.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.real import require_nspawn
from unitctl_testing.chaos.soak import SoakConfig, run_soak

SECONDS = float(os.environ.get("UNITCTL_CHAOS_SECONDS", "180"))
TTL = float(os.environ.get("UNITCTL_CHAOS_TTL", "5"))


@pytest.mark.timeout(int(SECONDS) + 600)
def test_chaos_soak() -> None:
    require_nspawn("the chaos soak's machines")
    seed = int(os.environ.get("UNITCTL_CHAOS_SEED") or time.time())
    path = os.environ.get("UNITCTL_CHAOS_REPORT") or os.path.join(
        "/tmp/unitctl-chaos", f"chaos-{time.strftime('%Y%m%d-%H%M%S')}.json")
    report = run_soak(SoakConfig(duration=SECONDS, seed=seed, ttl=TTL), path)
    print(f"chaos report: {path} (seed {seed})")
    print(json.dumps({k: report[k] for k in ("faults_by_kind", "worst_by_kind",
                                             "violations_by_invariant")}, indent=1))
    assert report["faults_by_kind"], "no fault was injected"
    assert not report["violations"], (
        f"{len(report['violations'])} violations (seed {seed}, report {path}):\n"
        + json.dumps(report["violations"][:10], indent=1))
