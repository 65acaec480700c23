"""Many instances of one template: the template file is read and parsed once per
command, and validated once when its checks cannot depend on the instance's name;
a check that does (a specifier, MachineOf=) still runs for every instance."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from unitctl.client import resolve
from unitctl.client.resolve import Resolver, checks_ignore_name
from unitctl.errors import InvalidOptionsError
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile

PLAIN = "[Unit]\nDescription=svc %i\n\n[Service]\nExecStart=/bin/echo %i\n\n" \
        "[X-Fleet]\nMachineMetadata=role=web\nConflicts=svc@*.service\n"


def _resolve(tmp_path: Path, text: str, names: list[str]) -> list[resolve.LocalUnit]:
    (tmp_path / "svc@.service").write_text(text)
    return asyncio.run(Resolver(Registry(MemoryKV(), "/t/"), str(tmp_path)).resolve(names, "start"))


def test_a_template_file_is_read_parsed_and_validated_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    checks: list[str] = []
    real_read, real_validate = resolve.read_unit_file, resolve.validate

    def counted_read(path: str, shown: str | None = None) -> UnitFile:
        reads.append(path)
        return real_read(path, shown)

    def counted_validate(name: str, unit: UnitFile, source: str) -> list[str]:
        checks.append(name)
        return real_validate(name, unit, source)
    monkeypatch.setattr(resolve, "read_unit_file", counted_read)
    monkeypatch.setattr(resolve, "validate", counted_validate)
    names = [f"svc@{i}.service" for i in range(50)]
    units = _resolve(tmp_path, PLAIN + "Frobnicate=1\n", names)
    assert [u.name for u in units] == names
    assert len(reads) == 1 and checks == ["svc@0.service"]
    assert all(u.kind == "template-file" and u.unit is units[0].unit for u in units)
    # each instance still carries the template's warnings (the unknown key)
    assert all(any("Frobnicate" in w for w in u.warnings) for u in units)


@pytest.mark.parametrize("fleet, bad", [
    ("MachineOf=svc@7.service\n", "svc@7.service: MachineOf 'svc@7.service' names the unit itself"),
    ("MachineID=%i\n", "svc@7.service: MachineID '7' is not a machine id"),
])
def test_a_check_that_reads_the_name_runs_for_every_instance(
        tmp_path: Path, fleet: str, bad: str) -> None:
    text = "[Service]\nExecStart=/bin/true\n\n[X-Fleet]\n" + fleet
    if "%i" in fleet:
        # the other instances are valid machine ids; the seventh is not
        names = ["svc@" + "a" * 32 + ".service", "svc@7.service"]
    else:
        names = ["svc@1.service", "svc@7.service"]
    with pytest.raises(InvalidOptionsError, match=bad.replace(".", r"\.")):
        _resolve(tmp_path, text, names)


def test_checks_ignore_name() -> None:
    assert checks_ignore_name(UnitFile.parse(PLAIN))  # %i outside the checked sections
    assert not checks_ignore_name(UnitFile.parse(PLAIN + "MachineOf=db.service\n"))
    assert not checks_ignore_name(UnitFile.parse(PLAIN + "X-ConditionMachineOf=db.service\n"))
    assert not checks_ignore_name(UnitFile.parse(PLAIN + "MachineMetadata=zone=%i\n"))
    assert not checks_ignore_name(UnitFile.parse(
        "[Service]\nExecStart=/bin/true\n\n[X-Health]\nCmd=/bin/check %i\n"))
