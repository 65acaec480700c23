"""The in-memory :class:`~unitctl.agent.template_host.TemplateHost`: files in a dict,
scripted command exit codes (by program path), every step recorded."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from unitctl.agent.template_host import PREVIOUS, staged_path
from unitctl.templating.plan import allowed


@dataclass
class FakeHost:
    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    #: program → exit code (0 for any other)
    codes: dict[str, int] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    #: what a command saw at its run: (argv, bytes of the staged file or of dest)
    seen: list[tuple[list[str], bytes | None]] = field(default_factory=list)
    writes: int = 0

    def refusal(self, dest: str, dirs: Iterable[str]) -> str:
        directory = posixpath.dirname(dest)
        if directory not in self.dirs:
            return f"{directory} does not exist"
        if not allowed(directory, list(dirs)):
            return f"{dest} is outside template_dirs"
        return ""

    def read(self, dest: str) -> bytes | None:
        return self.files.get(dest)

    def stage(self, dest: str, data: bytes, mode: int, owner: str, group: str) -> str:
        staged = staged_path(dest)
        self.files[staged] = data
        self.modes[staged] = mode
        return staged

    def install(self, staged: str, dest: str) -> None:
        self.files.pop(dest + PREVIOUS, None)
        if dest in self.files:
            self.files[dest + PREVIOUS] = self.files[dest]
        self.files[dest] = self.files.pop(staged)
        self.modes[dest] = self.modes.pop(staged)
        self.writes += 1

    def restore(self, dest: str) -> None:
        if dest + PREVIOUS in self.files:
            self.files[dest] = self.files.pop(dest + PREVIOUS)
        else:
            self.files.pop(dest, None)

    def discard(self, staged: str) -> None:
        self.files.pop(staged, None)

    async def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        self.calls.append(list(argv))
        target = next((a for a in argv if a in self.files), None)
        self.seen.append((list(argv), self.files.get(target) if target else None))
        code = self.codes.get(argv[0], 0)
        return code, "" if code == 0 else f"{argv[0]} failed"
