"""fleetctl scripts keep working: legacy global flag forms."""

from __future__ import annotations

from click.testing import CliRunner

from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry


def _run(*args: str) -> tuple[int, str, Session]:
    sess = Session(registry=Registry(MemoryKV()))
    r = CliRunner().invoke(cli, list(args), obj=sess)
    return r.exit_code, r.output, sess


def test_driver_etcd_is_accepted_and_api_means_the_api_server() -> None:
    code, out, _ = _run("--driver=etcd", "list-machines")
    assert code == 0 and "MACHINE" in out
    # fleetctl's --driver=API: --endpoint is unitctl's API server (issue 16)
    code, out, _ = _run("--driver=API", "--endpoint=http://127.0.0.1:1", "list-machines")
    assert code == 5 and "cannot reach the API at http://127.0.0.1:1" in out
    code, out, _ = _run("--endpoint=http://127.0.0.1:1/api", "ssh", "x")
    assert code == 2 and "ssh is not available through the API endpoint" in out


def test_strict_host_key_checking_false_form() -> None:
    for args in (["--strict-host-key-checking=false"], ["--no-strict-host-key-checking"]):
        code, _, sess = _run(*args, "list-units")
        assert code == 0 and sess.ssh.strict_host_key_checking is False
    code, _, sess = _run("list-units")
    assert sess.ssh.strict_host_key_checking is True


def test_explain_json() -> None:
    import json
    from pathlib import Path
    from tempfile import TemporaryDirectory

    with TemporaryDirectory() as d:
        unit = Path(d) / "x.service"
        unit.write_text("[Service]\nExecStart=/bin/true\n[X-Fleet]\nMachineMetadata=a=b\n")
        sess = Session(registry=Registry(MemoryKV()))
        runner = CliRunner()
        assert runner.invoke(cli, ["submit", str(unit)], obj=sess).exit_code == 0
        r = runner.invoke(cli, ["explain", "--json", "x.service"], obj=sess)
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["unit"] == "x.service" and data["desired"] == "inactive"
    assert data["requirements"] == "MachineMetadata=a=b" and data["machine"] is None
