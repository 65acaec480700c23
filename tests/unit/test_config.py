"""unitctl-agent configuration: fleet.conf names, file < env < flag, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from unitctl.config import load_config, parse_duration
from unitctl.errors import ConfigError
from unitctl.registry.connection import EtcdConfig


def test_defaults_then_file_then_env_then_flag(tmp_path: Path) -> None:
    conf = tmp_path / "unitctl.conf"
    conf.write_text("# comment\netcd_servers = http://10.0.0.1:2379,http://10.0.0.2:2379\n"
                    "metadata = region=eu, disk=ssd\nagent_ttl = 3s\npublic_ip = 10.0.0.9\n")
    cfg = load_config(str(conf), env={"UNITCTL_AGENT_TTL": "5"}, flags={"public_ip": "1.2.3.4"})
    assert cfg.etcd_servers == ("http://10.0.0.1:2379", "http://10.0.0.2:2379")
    assert dict(cfg.metadata) == {"region": "eu", "disk": "ssd"}
    assert cfg.agent_ttl == 5.0 and cfg.sources["agent_ttl"] == "environment"
    assert cfg.public_ip == "1.2.3.4" and cfg.sources["public_ip"] == "flag"
    assert cfg.units_directory == "/run/unitctl/units" and cfg.ttl_seconds == 5


@pytest.mark.parametrize("text,expected", [("10", 10.0), ("3s", 3.0), ("500ms", 0.5),
                                           ("1m", 60.0)])
def test_durations(text: str, expected: float) -> None:
    assert parse_duration(text, "agent_ttl") == expected


@pytest.mark.parametrize("line,needle", [
    ("agent_ttl = soon", "agent_ttl"),
    ("agent_ttl = 0.5s", "at least 1s"),
    ("no_such_option = 1", "no_such_option"),
    ("just words", "no '='"),
    ("metadata = region", "region"),
    ("units_directory = ../x", "absolute"),
    ("peer_port = many", "integers"),
])
def test_bad_values_name_the_option(tmp_path: Path, line: str, needle: str) -> None:
    conf = tmp_path / "unitctl.conf"
    conf.write_text(line + "\n")
    with pytest.raises(ConfigError, match=needle):
        load_config(str(conf), env={})


def test_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    cfg = load_config(str(tmp_path / "absent.conf"), env={})
    assert cfg.etcd_servers == ("http://127.0.0.1:2379",) and cfg.agent_ttl == 10.0


@pytest.mark.parametrize("ttl,timeout,expected", [("10s", "3", 2.5), ("60s", "3", 3.0),
                                                  ("1s", "3", 0.5)])
def test_etcd_settings_come_from_one_translation(ttl: str, timeout: str,
                                                 expected: float) -> None:
    cfg = load_config("/nonexistent", env={}, flags={
        "agent_ttl": ttl, "etcd_servers": "https://e1:2379,https://e2:2379",
        "etcd_cafile": "/ca.pem", "etcd_username": "root"})
    cfg = dataclasses.replace(cfg, etcd_request_timeout=float(timeout))
    etcd = cfg.etcd
    assert etcd == EtcdConfig(endpoints=("https://e1:2379", "https://e2:2379"),
                              ca_file="/ca.pem", username="root", timeout=expected)
