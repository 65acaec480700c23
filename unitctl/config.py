"""unitctl-agent configuration, with fleet.conf's option names.

Sources, later ones winning: built-in defaults, ``/etc/unitctl/unitctl.conf``
(one ``key = value`` a line, ``#`` comments), environment ``UNITCTL_<KEY>``,
command-line flags. Everything is validated once, here; a bad value raises
:class:`ConfigError` naming the option and its source.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from unitctl.errors import ConfigError
from unitctl.model import DEFAULT_PORT_RANGE
from unitctl.registry.connection import EtcdConfig
from unitctl.resources import parse_size
from unitctl.xfleet import parse_metadata

DEFAULT_CONFIG_FILE = "/etc/unitctl/unitctl.conf"

DEFAULTS: dict[str, str] = {
    "etcd_servers": "http://127.0.0.1:2379",
    "etcd_key_prefix": "/unitctl/",
    "etcd_cafile": "",
    "etcd_certfile": "",
    "etcd_keyfile": "",
    "etcd_username": "",
    "etcd_password": "",
    "etcd_request_timeout": "3",
    "public_ip": "",
    "metadata": "",
    "agent_ttl": "10s",
    "units_directory": "/run/unitctl/units",
    "peer_port": "7947",
    "engine_resync": "60s",
    "stop_budget": "30s",
    "disable_engine": "false",
    "verbosity": "0",
    "reserved_cpu": "0",
    "reserved_memory": "0",
    "port_range": f"{DEFAULT_PORT_RANGE[0]}-{DEFAULT_PORT_RANGE[1]}",
    "metrics_address": "127.0.0.1:9479",
    "template_dirs": "",
    "dns_address": "127.0.0.2:53",
    "dns_domain": "unitctl",
}

_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_DOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, option: str) -> float:
    """``10``, ``3s``, ``500ms``, ``1m`` → seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ConfigError(f"{option}: {text!r} is not a duration (examples: 10, 3s, 500ms)")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def parse_bool(text: str, option: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on", "t"):
        return True
    if low in ("0", "false", "no", "off", "f", ""):
        return False
    raise ConfigError(f"{option}: {text!r} is not a boolean")


def parse_address(text: str, option: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` -> (host, port); ``off`` or empty -> None."""
    text = text.strip()
    if text.lower() in ("", "off", "none", "false"):
        return None
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{option}: {text!r} is not host:port (or 'off')")
    return host, int(port)


def read_config_file(path: str) -> dict[str, str]:
    """Parse ``key = value`` lines; a missing file is an empty config."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    out: dict[str, str] = {}
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key not in DEFAULTS:
            what = "no '='" if not sep else f"unknown option {key!r}"
            raise ConfigError(f"{path}:{no}: {what}")
        out[key] = value.strip().strip('"')
    return out


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The validated agent configuration."""

    etcd_servers: tuple[str, ...]
    etcd_key_prefix: str
    etcd_cafile: str
    etcd_certfile: str
    etcd_keyfile: str
    etcd_username: str
    etcd_password: str
    etcd_request_timeout: float
    public_ip: str
    metadata: Mapping[str, str]
    agent_ttl: float
    units_directory: str
    peer_port: int
    engine_resync: float
    stop_budget: float
    disable_engine: bool
    verbosity: int
    #: where /metrics is served (host, port), or None: off
    metrics_address: tuple[str, int] | None = ("127.0.0.1", 9479)
    template_dirs: tuple[str, ...] = ()
    #: where the cluster domain's DNS is served (host, port), or None: off
    dns_address: tuple[str, int] | None = ("127.0.0.2", 53)
    #: the cluster domain, lower case, without the trailing dot
    dns_domain: str = "unitctl"
    sources: Mapping[str, str] = field(default_factory=dict)
    #: thousandths of a CPU kept back from units (``reserved_cpu``, in CPUs)
    reserved_cpu_milli: int = 0
    #: bytes of memory kept back from units (``reserved_memory``: 512M, 1G...)
    reserved_memory: int = 0
    #: the inclusive range dynamic host ports are allocated from (``port_range``)
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE

    @property
    def ttl_seconds(self) -> int:
        """The lease TTL in whole seconds (etcd leases are whole seconds), at least 1."""
        return max(1, round(self.agent_ttl))

    @property
    def etcd(self) -> EtcdConfig:
        """How the agent reaches etcd: the one translation of the ``etcd_*`` options.

        A request waits at most ``etcd_request_timeout``, and never longer than a
        quarter of the TTL (at least 0.5 s): a hung request must not outlast the
        keepalives that keep the lease.
        """
        return EtcdConfig(
            endpoints=self.etcd_servers, ca_file=self.etcd_cafile, cert_file=self.etcd_certfile,
            key_file=self.etcd_keyfile, username=self.etcd_username,
            password=self.etcd_password,
            timeout=min(self.etcd_request_timeout, max(0.5, self.agent_ttl / 4)))


def load_config(path: str = DEFAULT_CONFIG_FILE, env: Mapping[str, str] | None = None,
                flags: Mapping[str, str | None] | None = None) -> AgentConfig:
    """Merge defaults, file, environment and flags, then validate."""
    env = os.environ if env is None else env
    raw, sources = dict(DEFAULTS), dict.fromkeys(DEFAULTS, "default")
    from_env = {k: env[f"UNITCTL_{k.upper()}"] for k in DEFAULTS
                if f"UNITCTL_{k.upper()}" in env}
    layers = [(read_config_file(path), path), (from_env, "environment"),
              ({k: v for k, v in (flags or {}).items() if v is not None}, "flag")]
    for values, source in layers:
        for k, v in values.items():
            if k not in DEFAULTS:
                raise ConfigError(f"unknown option {k!r} ({source})")
            raw[k], sources[k] = v, source
    return _validate(raw, sources)


def _validate(raw: dict[str, str], sources: dict[str, str]) -> AgentConfig:
    def where(k: str) -> str:
        return f"{k} (from {sources[k]})"
    servers = tuple(s.strip() for s in raw["etcd_servers"].split(",") if s.strip())
    if not servers:
        raise ConfigError(f"{where('etcd_servers')}: no etcd server given")
    ttl = parse_duration(raw["agent_ttl"], where("agent_ttl"))
    if ttl < 1:
        raise ConfigError(f"{where('agent_ttl')}: must be at least 1s")
    try:
        port = int(raw["peer_port"])
        verbosity = int(raw["verbosity"])
    except ValueError as exc:
        raise ConfigError(f"peer_port and verbosity must be integers: {exc}") from exc
    units_dir = raw["units_directory"]
    if not os.path.isabs(units_dir) or ".." in units_dir.split("/"):
        raise ConfigError(f"{where('units_directory')}: must be an absolute path without '..'")
    stop_budget = parse_duration(raw["stop_budget"], where("stop_budget"))
    if stop_budget <= 0:
        raise ConfigError(f"{where('stop_budget')}: must be more than 0s")
    template_dirs = _template_dirs(raw["template_dirs"], where("template_dirs"))
    return AgentConfig(
        etcd_servers=servers, etcd_key_prefix=raw["etcd_key_prefix"],
        etcd_cafile=raw["etcd_cafile"], etcd_certfile=raw["etcd_certfile"],
        etcd_keyfile=raw["etcd_keyfile"], etcd_username=raw["etcd_username"],
        etcd_password=raw["etcd_password"],
        etcd_request_timeout=parse_duration(raw["etcd_request_timeout"],
                                            where("etcd_request_timeout")),
        public_ip=raw["public_ip"], metadata=parse_metadata(raw["metadata"]),
        agent_ttl=ttl, units_directory=units_dir, peer_port=port,
        engine_resync=parse_duration(raw["engine_resync"], where("engine_resync")),
        stop_budget=stop_budget,
        disable_engine=parse_bool(raw["disable_engine"], where("disable_engine")),
        verbosity=verbosity,
        metrics_address=parse_address(raw["metrics_address"], where("metrics_address")),
        template_dirs=template_dirs, sources=sources, **_resource_options(raw, where),
        **_dns_options(raw, where))


def _dns_options(raw: Mapping[str, str], where: Callable[[str], str]) -> dict[str, Any]:
    """``dns_address`` (``off`` disables) and ``dns_domain`` (DNS labels), validated."""
    domain = raw["dns_domain"].strip().strip(".").lower()
    if not _DOMAIN.match(domain):
        raise ConfigError(f"{where('dns_domain')}: {raw['dns_domain']!r} is not a DNS domain "
                          f"such as unitctl or cluster.example")
    return {"dns_address": parse_address(raw["dns_address"], where("dns_address")),
            "dns_domain": domain}


def _resource_options(raw: Mapping[str, str], where: Callable[[str], str]
                      ) -> dict[str, Any]:
    """``reserved_cpu``, ``reserved_memory`` and ``port_range``, validated."""
    try:
        cpu = float(raw["reserved_cpu"])
    except ValueError:
        cpu = -1.0
    if not 0 <= cpu < 1e6:
        raise ConfigError(f"{where('reserved_cpu')}: expected a number of CPUs such as 0.5")
    memory = parse_size(raw["reserved_memory"])
    if memory is None:
        raise ConfigError(f"{where('reserved_memory')}: expected a size such as 512M or 1G")
    low, sep, high = raw["port_range"].strip().partition("-")
    if not (sep and low.isdigit() and high.isdigit() and 0 < int(low) <= int(high) <= 65535):
        raise ConfigError(f"{where('port_range')}: expected LOW-HIGH within 1-65535, "
                          f"such as 31000-31999")
    return {"reserved_cpu_milli": round(cpu * 1000), "reserved_memory": memory,
            "port_range": (int(low), int(high))}


def _template_dirs(text: str, option: str) -> tuple[str, ...]:
    """Comma-separated absolute directories without '..' (empty: templates disabled)."""
    dirs = tuple(d.strip().rstrip("/") or "/" for d in text.split(",") if d.strip())
    for d in dirs:
        if not os.path.isabs(d) or ".." in d.split("/"):
            raise ConfigError(f"{option}: {d!r} must be an absolute path without '..'")
    return dirs
