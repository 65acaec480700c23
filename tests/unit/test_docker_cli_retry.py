"""docker-run's CLI calls that the unit's stop signal ended are run again
(``CliContainerRuntime._run``, :data:`unitctl.docker.runtime.CLI_ATTEMPTS`).

The engine is a stand-in ``docker`` script that answers from a list of canned
results, one per call, and counts its calls: what is checked is how often the
adapter runs it and what it makes of the answers. The real CLI's behaviour under
SIGTERM (exit 143, or exit 1 "error during connect") is reproduced against the
real dockerd in tests/integration/test_docker_run.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from unitctl.docker.runtime import CLI_ATTEMPTS, CliContainerRuntime, interrupted
from unitctl.errors import ContainerError

INSPECT = json.dumps([{"Id": "c1", "State": {"Running": False, "ExitCode": 3},
                       "Config": {"Labels": {}}}])
CANCELLED = (1, 'error during connect: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.41/": ')
MISSING = (1, "Error response from daemon: No such container: web")


def engine(tmp_path: Path, answers: list[tuple[int, str]]) -> tuple[str, Path]:
    """A ``docker`` script giving ``answers`` in turn (code, stderr; stdout INSPECT
    on code 0); return its path and the file counting its calls."""
    calls = tmp_path / "calls"
    calls.write_text("")
    lines = [f'  {i}) echo "{err}" >&2; exit {code};;' if code else
             f"  {i}) cat <<'EOF'\n{INSPECT}\nEOF\n  exit 0;;"
             for i, (code, err) in enumerate(answers, 1)]
    script = tmp_path / "docker"
    script.write_text("#!/bin/sh\n" f'echo x >> "{calls}"\n'
                      f'n=$(wc -l < "{calls}")\n' 'case $n in\n' + "\n".join(lines) +
                      "\n  *) exit 99;;\nesac\n")
    script.chmod(0o755)
    return str(script), calls


def runs(calls: Path) -> int:
    return len(calls.read_text().splitlines())


@pytest.mark.parametrize("code", [143, 130, -15, -2])
def test_interrupted_codes(code: int) -> None:
    assert interrupted(code)
    assert not interrupted(1) and not interrupted(137) and not interrupted(0)


@pytest.mark.parametrize("ended", [(143, ""), (130, "")])
def test_a_call_the_signal_ended_is_run_again(tmp_path: Path,
                                              ended: tuple[int, str]) -> None:
    path, calls = engine(tmp_path, [ended, (0, "")])
    state = CliContainerRuntime(path).inspect("web")
    assert state is not None and state.exit_code == 3
    assert runs(calls) == 2


def test_a_cancelled_request_is_run_again_once_stopping(tmp_path: Path) -> None:
    path, calls = engine(tmp_path, [CANCELLED, (0, "")])
    stopping = threading.Event()
    stopping.set()
    state = CliContainerRuntime(path, stopping).inspect("web")
    assert state is not None and runs(calls) == 2


def test_a_failure_before_any_stop_signal_is_an_engine_failure(tmp_path: Path) -> None:
    path, calls = engine(tmp_path, [CANCELLED, (0, "")])
    with pytest.raises(ContainerError, match="inspect failed: error during connect"):
        CliContainerRuntime(path).inspect("web")
    assert runs(calls) == 1


def test_no_such_container_is_not_run_again_while_stopping(tmp_path: Path) -> None:
    path, calls = engine(tmp_path, [MISSING, (0, "")])
    stopping = threading.Event()
    stopping.set()
    assert CliContainerRuntime(path, stopping).inspect("web") is None
    assert runs(calls) == 1


def test_at_most_cli_attempts_runs(tmp_path: Path) -> None:
    path, calls = engine(tmp_path, [(143, "")] * (CLI_ATTEMPTS + 2))
    with pytest.raises(ContainerError, match="inspect failed"):
        CliContainerRuntime(path).inspect("web")
    assert runs(calls) == CLI_ATTEMPTS
