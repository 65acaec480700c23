"""docs/benchmarks.md's goals table is bench/report.py's output over the results files."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report


def test_the_docs_goals_table_is_the_one_the_results_files_give() -> None:
    """Fails when a results file changed and the docs were not regenerated
    (``python -m bench --report --write``), or the table was edited by hand."""
    text = report.DOCS.read_text()
    assert report.docs_block(text) == report.block(report.load()), \
        "docs/benchmarks.md is out of date: run python -m bench --report --write"


def _doc(path: Path, name: str, result: dict[str, object], commit: str = "abc1234def") -> None:
    path.write_text(json.dumps({"name": name, "commit": commit, "result": result}))


def test_kept_copies_are_not_read_and_a_missing_file_is_named(tmp_path: Path) -> None:
    rollouts = [{"placements_per_s": n, "start_to_all_active_s": 5.0} for n in (2100, 2050)]
    _doc(tmp_path / "e2e.json", "e2e", {"rollout": rollouts[0], "rollouts": rollouts,
                                        "agents": 1000})
    _doc(tmp_path / "e2e-0000000.json", "e2e", {"rollout": {"placements_per_s": 1}})
    res = report.load(tmp_path)
    assert list(res) == ["e2e"]
    table = report.render(res)
    assert "2,100 (2,100 / 2,050)" in table and "`e2e.json` @ `abc1234`" in table
    assert "`cli.json` (missing)" in table


def test_a_rollout_under_the_goal_is_marked_unmet(tmp_path: Path) -> None:
    rollouts = [{"placements_per_s": n, "start_to_all_active_s": 5.0} for n in (2300, 1990)]
    _doc(tmp_path / "e2e.json", "e2e", {"rollout": rollouts[0], "rollouts": rollouts},
         commit="abc1234def+dirty")
    row = next(line for line in report.render(report.load(tmp_path)).splitlines()
               if "placements/s" in line)
    assert "| ✗ |" in row and "abc1234+dirty" in row
