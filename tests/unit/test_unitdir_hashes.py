"""The owned unit directory hashes each file once, not on every state signal (audit R7)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unitctl.agent.ports import content_hash
from unitctl.systemd import unitdir
from unitctl.systemd.unitdir import UnitDirectory

BODY = "[Service]\nExecStart=/bin/true\n"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]

    def counting(data: bytes | str) -> str:
        calls[0] += 1
        return content_hash(data)
    monkeypatch.setattr(unitdir, "content_hash", counting)
    return calls


def test_present_hashes_each_file_once_across_many_calls(tmp_path: Path,
                                                         counted: list[int]) -> None:
    d = UnitDirectory(str(tmp_path))
    for i in range(50):
        d.write(f"u{i}.service", BODY + f"# {i}\nDescription=u{i}\n")
    first = d.present()
    assert len(first) == 50 and counted[0] == 50
    for _ in range(20):  # twenty state signals
        assert d.present() == first
    assert counted[0] == 50


def test_a_rewritten_or_removed_file_is_seen(tmp_path: Path, counted: list[int]) -> None:
    d = UnitDirectory(str(tmp_path))
    d.write("a.service", BODY)
    d.write("b.service", BODY)
    before = d.present()
    d.write("a.service", BODY + "[Unit]\nDescription=changed\n")
    d.remove("b.service")
    after = d.present()
    assert set(after) == {"a.service"}
    assert after["a.service"] != before["a.service"]
    assert after["a.service"] == content_hash((tmp_path / "a.service").read_bytes())


def test_a_file_changed_behind_our_back_is_rehashed(tmp_path: Path) -> None:
    d = UnitDirectory(str(tmp_path))
    d.write("a.service", BODY)
    old = d.present()["a.service"]
    path = tmp_path / "a.service"
    path.write_text(BODY + "[Unit]\nDescription=edited by hand\n")
    os.utime(path, ns=(1, 1))  # even a forged mtime: size and ctime still differ
    assert d.present()["a.service"] != old
