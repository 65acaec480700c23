"""The test harness's per-machine bind mounts (``Cluster(binds=...)``): checked when the
machine is made, passed to systemd-nspawn as ``--bind=``, kept in the state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from unitctl_testing.host import ClusterError
from unitctl_testing.machine import Machine, check_binds
from unitctl_testing.nspawn import nspawn_argv


def _machine(binds: list[str]) -> Machine:
    return Machine(name="m1", full_name="m1", idx=1, ip="10.0.0.11", netns="n", veth="v",
                   cgroup="c", dir="/tmp/x", binds=binds)


def test_binds_reach_nspawn_and_the_state_file(tmp_path: Path) -> None:
    binds = check_binds([f"{tmp_path}:/mnt/shared"])
    argv = nspawn_argv(_machine(binds), with_docker=False)
    assert f"--bind={tmp_path}:/mnt/shared" in argv
    assert Machine(**_machine(binds).to_state()).binds == binds
    assert not any(a.startswith("--bind=") for a in nspawn_argv(_machine([]), False))


@pytest.mark.parametrize("bind", ["/nonexistent-dir:/mnt", "relative:/mnt", "{tmp}",
                                  "{tmp}:relative", "{tmp}:/a:/b"])
def test_a_bad_bind_is_refused(tmp_path: Path, bind: str) -> None:
    with pytest.raises(ClusterError, match="is not /existing/host/dir:/machine/path"):
        check_binds([bind.replace("{tmp}", str(tmp_path))])
