"""Pure part of unitctl.docker: argv parsing, refusals, ports, spec hash, create decisions."""

from __future__ import annotations

import dataclasses
import re
import socket
from pathlib import Path

import pytest

from unitctl.docker.argv import PortMapping, RunRequest, parse_port, parse_run_argv, stop_timeout
from unitctl.docker.fake import FakeContainerRuntime
from unitctl.docker.run import ensure_container, machine_identity
from unitctl.docker.runtime import ContainerState, resolve_engine
from unitctl.docker.spec import HASH_LABEL, ContainerSpec, spec_hash
from unitctl.errors import ContainerError, UsageError

# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("argv", "options", "image", "command"),
    [
        (["--name", "web", "img"], (), "img", ()),
        (["--name=web", "img", "sh", "-c", "exit 7"], (), "img", ("sh", "-c", "exit 7")),
        (["--name", "web", "-e", "A=1", "img"], ("--env=A=1",), "img", ()),
        (["--name", "web", "--env=A=1", "img"], ("--env=A=1",), "img", ()),
        (["--name", "web", "-eA=1", "img"], ("--env=A=1",), "img", ()),
        (["--name", "web", "-p", "8080:80", "img"], ("--publish=8080:80",), "img", ()),
        (["--name", "web", "-p=8080:80", "img"], ("--publish=8080:80",), "img", ()),
        (["--name", "web", "-v", "/a:/b:ro", "img"], ("--volume=/a:/b:ro",), "img", ()),
        (["--name", "web", "-it", "img"], ("--interactive", "--tty"), "img", ()),
        (["--name", "web", "-ip", "80:80", "img"], ("--interactive", "--publish=80:80"), "img", ()),
        (["--name", "web", "--init", "img", "-x"], ("--init",), "img", ("-x",)),
        (["--name", "web", "--sig-proxy=false", "img"], ("--sig-proxy=false",), "img", ()),
        (["--name", "web", "--", "img", "--help"], (), "img", ("--help",)),
        (
            ["--link", "mongo:db", "--name", "web", "-l", "a=b", "--cpus", "0.5", "-m", "64m",
             "--restart", "no", "-w", "/w", "-u", "1000", "--network", "host",
             "--entrypoint", "/bin/sh", "-h", "box", "--env-file", "/e", "--add-host", "a:1.2.3.4",
             "--mount", "type=tmpfs,dst=/t", "--cpu-shares", "512", "--device", "/dev/null",
             "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--log-driver", "none",
             "--log-opt", "a=b", "--stop-signal", "SIGINT", "--stop-timeout", "3",
             "--user", "0", "--workdir", "/x", "--memory", "1g", "--publish", "1:1",
             "--volume", "v:/v", "--label", "c=d", "--hostname", "h", "img", "cmd"],
            (
                "--link=mongo:db", "--label=a=b", "--cpus=0.5", "--memory=64m", "--restart=no",
                "--workdir=/w", "--user=1000", "--network=host", "--entrypoint=/bin/sh",
                "--hostname=box", "--env-file=/e", "--add-host=a:1.2.3.4",
                "--mount=type=tmpfs,dst=/t", "--cpu-shares=512", "--device=/dev/null",
                "--cap-add=NET_ADMIN", "--cap-drop=ALL", "--log-driver=none", "--log-opt=a=b",
                "--stop-signal=SIGINT", "--stop-timeout=3", "--user=0", "--workdir=/x",
                "--memory=1g", "--publish=1:1", "--volume=v:/v", "--label=c=d", "--hostname=h",
            ),
            "img",
            ("cmd",),
        ),
    ],
)  # fmt: skip
def test_parse_run_argv(
    argv: list[str], options: tuple[str, ...], image: str, command: tuple[str, ...]
) -> None:
    request = parse_run_argv(argv)
    assert request == RunRequest("web", image, options, command, None)


def test_value_of_a_flag_is_not_the_image() -> None:
    request = parse_run_argv(["--name", "web", "-e", "img", "real", "arg"])
    assert (request.options, request.image, request.command) == (("--env=img",), "real", ("arg",))


@pytest.mark.parametrize(
    ("argv", "engine"),
    [
        (["--engine", "podman", "--name", "a", "img"], "podman"),
        (["--engine=docker", "--name", "a", "img"], "docker"),
    ],
)
def test_engine_flag(argv: list[str], engine: str) -> None:
    request = parse_run_argv(argv)
    assert (request.engine, request.image) == (engine, "img")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["img"], "--name is required"),
        (["-e", "A=1", "img", "sh"], "--name is required"),
        (["--name", "a"], "missing IMAGE"),
        (["--name", "a", "--name", "b", "img"], "more than once"),
        (["--name", "a", "-d", "img"], "foreground"),
        (["--name", "a", "--detach", "img"], "foreground"),
        (["--name", "a", "-itd", "img"], "foreground"),
        (["--name", "a", "--rm", "img"], "idempotent restart"),
        (["--name", "a", "--frobnicate", "img"], "unknown docker run option '--frobnicate'"),
        (["--name", "a", "-Z", "img"], "unknown docker run option '-Z'"),
        (["--name", "a", "-e"], "needs a value"),
        (["--name", "a", "-p", "99999:80", "img"], "out of range"),
        (["--name", "a", "-p", "http:80", "img"], "bad port"),
        (["--name", "a", "-p", "80:80/icmp", "img"], "protocol"),
        (["--name", "bad name", "img"], "invalid container name"),
        (["--name", "-x", "img"], "invalid container name"),
        (["--name", "a", "--label", f"{HASH_LABEL}=x", "img"], "reserved"),
        (["--engine"], "needs a value"),
    ],
)
def test_refusals(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_run_argv(argv)


def test_refusal_messages_explain_why() -> None:
    with pytest.raises(UsageError) as detach:
        parse_run_argv(["--name", "a", "-d", "img"])
    assert "systemd" in str(detach.value)
    with pytest.raises(UsageError) as rm:
        parse_run_argv(["--name", "a", "--rm", "img"])
    assert "--rm" in str(rm.value)


def test_stop_timeout() -> None:
    assert stop_timeout(parse_run_argv(["--name", "a", "img"])) is None
    assert stop_timeout(parse_run_argv(["--name", "a", "--stop-timeout", "4", "img"])) == 4
    with pytest.raises(UsageError, match="integer"):
        stop_timeout(parse_run_argv(["--name", "a", "--stop-timeout=x", "img"]))


# --------------------------------------------------------------------------- ports


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("80", PortMapping("80")),
        ("8080:80", PortMapping("80", "8080")),
        ("8080:80/udp", PortMapping("80", "8080", proto="udp")),
        ("127.0.0.1:8080:80", PortMapping("80", "8080", "127.0.0.1")),
        ("127.0.0.1::80", PortMapping("80", None, "127.0.0.1")),
        ("[::1]:8080:80/tcp", PortMapping("80", "8080", "::1")),
        ("8000-8010:80-90", PortMapping("80-90", "8000-8010")),
    ],
)
def test_parse_port(value: str, expected: PortMapping) -> None:
    assert parse_port(value) == expected
    assert parse_port(str(expected)) == expected


@pytest.mark.parametrize(
    "value", ["", "0:80", "80:0", "1:2:3:4", "x:80", "300.1.1.1:80:80", "80:", "[::1:80:80", "9-1"]
)
def test_bad_ports(value: str) -> None:
    with pytest.raises(UsageError, match="bad port"):
        parse_port(value)


# --------------------------------------------------------------------------- engine


def test_resolve_engine() -> None:
    assert resolve_engine(None, {}) == "docker"
    assert resolve_engine(None, {"UNITCTL_CONTAINER_ENGINE": "podman"}) == "podman"
    assert resolve_engine("docker", {"UNITCTL_CONTAINER_ENGINE": "podman"}) == "docker"
    assert resolve_engine("/usr/bin/podman", {}) == "/usr/bin/podman"
    with pytest.raises(UsageError, match="unsupported container engine"):
        resolve_engine("rkt", {})


# --------------------------------------------------------------------------- hash

BASE = ContainerSpec("web", "img:1", "sha256:aaa", ("--env=A=1",), ("sh",))


def test_hash_is_stable_hex_sha256() -> None:
    digest = spec_hash(BASE)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert spec_hash(dataclasses.replace(BASE)) == digest


@pytest.mark.parametrize(
    "change",
    [
        {"image_id": "sha256:bbb"},
        {"options": ("--env=A=2",)},
        {"options": ()},
        {"command": ("sh", "-c")},
        {"command": ()},
        # the boundary between options and command matters
        {"options": ("--env=A=1", "sh"), "command": ()},
    ],
)
def test_hash_changes_with_the_spec(change: dict[str, object]) -> None:
    changed = dataclasses.replace(BASE, **change)  # type: ignore[arg-type]
    assert spec_hash(changed) != spec_hash(BASE)


def test_hash_ignores_name_and_image_reference() -> None:
    other = dataclasses.replace(BASE, name="other", image="alias:latest")
    assert spec_hash(other) == spec_hash(BASE)


def test_equivalent_spellings_normalize_the_same() -> None:
    short = parse_run_argv(["--name", "a", "-e", "A=1", "-p", "80:80", "img"])
    long = parse_run_argv(["--name=a", "--env=A=1", "--publish", "80:80", "img"])
    assert short.options == long.options


# --------------------------------------------------------------------------- create decisions


class FakeRuntime(FakeContainerRuntime):
    """The fake engine with one container ("web"); ``steal`` makes the next creates race."""

    def __init__(self, state: ContainerState | None = None, steal: int = 0) -> None:
        super().__init__({"img:1": "sha256:aaa"}, new_id=lambda: "new")
        self.steal = steal
        self.calls: list[str] = []
        if state is not None:
            self.add_container(BASE.name, state)

    def inspect(self, name: str) -> ContainerState | None:
        self.calls.append("inspect")
        return super().inspect(name)

    def remove(self, name: str) -> None:
        self.calls.append("rm")
        super().remove(name)

    def create(self, spec: ContainerSpec, digest: str) -> str:
        self.calls.append("create")
        if self.steal:  # another process takes the name first: create raises NameInUse
            self.steal -= 1
            self.add_container(spec.name, ContainerState("thief", False, 0, {}))
        return super().create(spec, digest)


def test_ensure_creates_when_absent() -> None:
    runtime = FakeRuntime()
    assert ensure_container(runtime, BASE) == "new"
    assert runtime.calls == ["inspect", "create"]


def test_ensure_keeps_a_matching_container() -> None:
    runtime = FakeRuntime(ContainerState("old", True, 0, {HASH_LABEL: spec_hash(BASE)}))
    assert ensure_container(runtime, BASE) == "old"
    assert runtime.calls == ["inspect"]


@pytest.mark.parametrize("labels", [{HASH_LABEL: "stale"}, {}])
def test_ensure_recreates_on_drift(labels: dict[str, str]) -> None:
    runtime = FakeRuntime(ContainerState("old", False, 0, labels))
    assert ensure_container(runtime, BASE) == "new"
    assert runtime.calls == ["inspect", "rm", "create"]


def test_ensure_retries_after_losing_a_name_race() -> None:
    runtime = FakeRuntime(steal=2)
    assert ensure_container(runtime, BASE) == "new"
    assert runtime.calls == [
        "inspect",
        "create",
        "inspect",
        "rm",
        "create",
        "inspect",
        "rm",
        "create",
    ]


def test_ensure_gives_up_eventually() -> None:
    with pytest.raises(ContainerError, match="gave up"):
        ensure_container(FakeRuntime(steal=100), BASE)


# --------------------------------------------------------------------------- machine identity


def test_machine_identity_override_machine_id_and_hostname(tmp_path: Path) -> None:
    mid_file = tmp_path / "machine-id"
    mid_file.write_text("0123456789abcdef0123456789abcdef\n")
    missing = tmp_path / "none"
    assert machine_identity({"UNITCTL_MACHINE": "m7"}, mid_file) == "m7"
    assert machine_identity({}, mid_file) == "0123456789abcdef0123456789abcdef"
    assert machine_identity({"UNITCTL_MACHINE": ""}, missing) == socket.gethostname()
