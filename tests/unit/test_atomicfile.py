"""unitctl.atomicfile: the new content or the old, never a torn file, and no
temporary file left behind by a success or a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unitctl import atomicfile
from unitctl.atomicfile import atomic_write


def test_writes_text_or_bytes_with_the_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.conf"
    atomic_write(target, "one\n", mode=0o640)
    assert target.read_text() == "one\n" and target.stat().st_mode & 0o777 == 0o640
    atomic_write(target, b"two\n", durable=False)
    assert target.read_bytes() == b"two\n" and target.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["a.conf"]


def test_a_failed_rename_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("in the way")
    with pytest.raises(OSError):
        atomic_write(tmp_path / "d", "new")  # a non-empty directory cannot be replaced
    assert sorted(os.listdir(tmp_path)) == ["d"]
    assert (tmp_path / "d" / "x").read_text() == "in the way"


def test_make_dirs_and_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no" / "f", "x")
    atomic_write(tmp_path / "no" / "f", "x", make_dirs=True)
    assert (tmp_path / "no" / "f").read_text() == "x"


def test_temporary_files_are_exclusive_and_owner_only(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fd, name = atomicfile._temp_file(str(tmp_path))
    os.close(fd)
    assert os.path.basename(name).startswith(".tmp-") and name.endswith("~")
    assert os.stat(name).st_mode & 0o777 == 0o600
    taken = os.path.basename(name)[5:-1]
    draws = iter([bytes.fromhex(taken), b"\x01" * 6])
    monkeypatch.setattr(os, "urandom", lambda n: next(draws))
    fd, other = atomicfile._temp_file(str(tmp_path))  # the taken name is skipped
    os.close(fd)
    assert other.endswith(".tmp-010101010101~") and other != name
    link = tmp_path / ".tmp-020202020202~"
    link.symlink_to(tmp_path / "elsewhere")
    draws = iter([b"\x02" * 6, b"\x03" * 6])
    fd, third = atomicfile._temp_file(str(tmp_path))  # never through a planted symlink
    os.close(fd)
    assert third.endswith(".tmp-030303030303~") and not (tmp_path / "elsewhere").exists()
