"""Health checks: the [X-Health] section, the probe schedule and the state machine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.errors import InvalidUnitError
from unitctl.health import (
    Health,
    HealthCheck,
    begin,
    is_failure,
    next_probe_at,
    observe,
    parse_check,
    parse_span,
)
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile


def _unit(section: str, service: str = "") -> UnitFile:
    return UnitFile.parse(f"[Service]\nExecStart=/bin/true\n{service}\n[X-Health]\n{section}\n")


def test_http_check_with_defaults() -> None:
    check = parse_check(_unit("HTTP=http://127.0.0.1:8080/healthz"))
    assert check == HealthCheck("http", host="127.0.0.1", port=8080, path="/healthz")
    assert (check.interval, check.timeout, check.retries, check.start_period) == (10, 5, 3, 0)


def test_http_default_port_and_path_and_ipv6() -> None:
    assert parse_check(_unit("HTTP=http://web.local")) == HealthCheck(
        "http", host="web.local", port=80, path="/")
    check = parse_check(_unit("HTTP=http://[::1]:81/x?y=1"))
    assert check is not None and (check.host, check.port, check.path) == ("::1", 81, "/x?y=1")


def test_tcp_and_command_checks() -> None:
    assert parse_check(_unit("TCP=10.0.0.1:6379\nInterval=2s\nRetries=5")) == HealthCheck(
        "tcp", interval=2.0, retries=5, host="10.0.0.1", port=6379)
    check = parse_check(_unit("Cmd=/usr/bin/redis-cli -p 'a b' ping\nTimeout=500ms\n"
                              "StartPeriod=1min\nOnFailure=none", "User=redis"))
    assert check == HealthCheck("cmd", timeout=0.5, start_period=60.0, on_failure="none",
                                argv=("/usr/bin/redis-cli", "-p", "a b", "ping"), user="redis")


def test_probe_takes_the_instance_of_its_unit() -> None:
    unit = _unit("HTTP=http://127.0.0.1:%i/%p")
    check = parse_check(unit, "web@8080.service")
    assert check is not None and (check.port, check.path) == (8080, "/web")
    cmd = parse_check(_unit("Cmd=/usr/bin/check --name %n"), "db@a.service")
    assert cmd is not None and cmd.argv == ("/usr/bin/check", "--name", "db@a.service")
    template = parse_check(unit, "web@.service")  # a template is checked with instance 1
    assert template is not None and template.port == 1
    with pytest.raises(InvalidUnitError, match="not host:port"):
        parse_check(unit)  # without a name nothing is expanded
    with pytest.raises(InvalidUnitError, match="not host:port"):
        parse_check(unit, "web@x.service")  # the instance is no port


def test_no_section_no_check() -> None:
    assert parse_check(UnitFile.parse("[Service]\nExecStart=/bin/true\n")) is None


@pytest.mark.parametrize(("section", "named"), [
    ("Interval=1s", "exactly one of HTTP=, TCP=, Cmd="),
    ("HTTP=http://a:1/\nTCP=a:1", "found HTTP, TCP"),
    ("HTTP=https://a/", "only http://"),
    ("TCP=localhost", "is not host:port"),
    ("TCP=a:70000", "is not host:port"),
    ("Cmd=redis-cli ping", "absolute path"),
    ("Cmd=/bin/x 'unclosed", "Cmd="),
    ("TCP=a:1\nInterval=soon", "Interval='soon' is not a time span"),
    ("TCP=a:1\nInterval=0", "more than 0"),
    ("TCP=a:1\nRetries=0", "Retries='0'"),
    ("TCP=a:1\nOnFailure=kill", "OnFailure='kill'"),
    ("TCP=a:1\nHealthCmd=/bin/true", "unknown key HealthCmd="),
])
def test_bad_sections_are_refused_by_name(section: str, named: str) -> None:
    with pytest.raises(InvalidUnitError, match="X-Health") as err:
        parse_check(_unit(section))
    assert named in str(err.value)


def test_spans() -> None:
    assert [parse_span(t, "K") for t in ("3", "500ms", "2s", "5min", "1h")] == [
        3.0, 0.5, 2.0, 300.0, 3600.0]


CHECK = st.builds(HealthCheck, kind=st.just("tcp"),
                  interval=st.floats(0.1, 60), retries=st.integers(1, 5),
                  start_period=st.floats(0, 30))
RESULTS = st.lists(st.booleans(), max_size=40)


def _run(check: HealthCheck, results: list[bool]) -> list[tuple[float, Health, int]]:
    """Feed probe results at their scheduled times; return (time, status, failures)."""
    progress = begin(100.0)
    out = []
    for passed in results:
        at = next_probe_at(progress, check)
        assert at > (progress.last_probe if progress.last_probe is not None else 99.0)
        progress = observe(progress, check, passed, at)
        out.append((at, progress.status, progress.failures))
    return out


@given(CHECK, RESULTS)
def test_any_pass_makes_healthy_and_resets(check: HealthCheck, results: list[bool]) -> None:
    for passed, (_, status, failures) in zip(results, _run(check, results), strict=True):
        if passed:
            assert (status, failures) == (Health.HEALTHY, 0)


@given(CHECK, RESULTS)
def test_unhealthy_only_after_retries_failures_in_a_row(check: HealthCheck,
                                                        results: list[bool]) -> None:
    for i, (_, status, _) in enumerate(_run(check, results)):
        if status is Health.UNHEALTHY:
            tail = results[max(0, i - check.retries + 1):i + 1]
            assert len(tail) == check.retries and not any(tail)


@given(CHECK, RESULTS)
def test_start_period_failures_never_make_unhealthy(check: HealthCheck,
                                                    results: list[bool]) -> None:
    passed_once = False
    for passed, (at, status, failures) in zip(results, _run(check, results), strict=True):
        passed_once |= passed
        if not passed_once and at - 100.0 < check.start_period:
            assert (status, failures) == (Health.STARTING, 0)


@given(CHECK, st.integers(0, 10))
def test_retries_failures_after_the_start_period_make_unhealthy(check: HealthCheck,
                                                                 extra: int) -> None:
    progress = begin(0.0)
    at = check.start_period
    for _ in range(check.retries + extra):
        progress = observe(progress, check, False, at)
        at += check.interval
    assert progress.status is Health.UNHEALTHY


def test_schedule_first_probe_soon_then_every_interval() -> None:
    check = HealthCheck("tcp", interval=10.0)
    p = begin(50.0)
    assert next_probe_at(p, check) == 51.0
    p = observe(p, check, True, 51.0)
    assert next_probe_at(p, check) == 61.0
    quick = HealthCheck("tcp", interval=0.2)
    assert next_probe_at(begin(0.0), quick) == 0.2


def test_failures_of_an_unhealthy_unit_count_every_retries_probes() -> None:
    check = HealthCheck("tcp", interval=1.0, retries=2)
    p, failures = begin(0.0), 0
    for i in range(7):
        new = observe(p, check, False, float(i))
        failures += is_failure(p, new, check)
        p = new
    assert failures == 3  # unhealthy at the 2nd failed probe, then at the 4th and the 6th
    assert not is_failure(p, observe(p, check, True, 9.0), check)


def test_submit_checks_each_instance_of_a_template_probe(tmp_path: Path) -> None:
    """The template is accepted; an instance whose name makes no port is refused
    at submit with the problem named, and nothing of it is stored."""
    reg = Registry(MemoryKV())
    (tmp_path / "web@.service").write_text(
        "[Service]\nExecStart=/bin/true\n[X-Health]\nTCP=127.0.0.1:%i\n")

    def submit(name: str) -> Result:
        return CliRunner().invoke(cli, ["submit", str(tmp_path / name)],
                                  obj=Session(registry=reg))

    assert submit("web@.service").exit_code == 0
    (tmp_path / "web@8080.service").symlink_to(tmp_path / "web@.service")
    (tmp_path / "web@x.service").symlink_to(tmp_path / "web@.service")
    assert submit("web@8080.service").exit_code == 0
    bad = submit("web@x.service")
    assert bad.exit_code != 0 and "not host:port" in bad.output
    assert "Traceback" not in bad.output
    stored = {u.name for u in asyncio.run(reg.units.list_units())}
    assert "web@8080.service" in stored and "web@x.service" not in stored
