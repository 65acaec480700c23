"""etcd client URLs as gRPC targets (pure): what :class:`~unitctl.registry.etcd.EtcdKV`
dials (kept out of that module: it is the one that imports aetcd)."""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Sequence

from unitctl.errors import ConfigError

__all__ = ["grpc_target", "parse_endpoint"]


def grpc_target(endpoints: Sequence[str]) -> tuple[str, int, bool]:
    """Turn ``http(s)://host:port`` URLs into aetcd's ``(host, port)`` and a TLS flag.

    Several IP endpoints become one ``ipv4:`` / ``ipv6:`` target, which gRPC
    balances and fails over; hostnames allow a single endpoint.
    """
    parsed = [parse_endpoint(e) for e in endpoints if e.strip()]
    if not parsed:
        raise ConfigError("no etcd endpoint given")
    tls = parsed[0][0] == "https"
    if any((p[0] == "https") != tls for p in parsed):
        raise ConfigError("etcd endpoints mix http and https")
    if len(parsed) == 1:
        return parsed[0][1], parsed[0][2], tls
    family = _family(parsed)
    addrs = [f"[{h}]:{p}" if family == "ipv6" else f"{h}:{p}" for _, h, p in parsed[:-1]]
    last_host = parsed[-1][1]
    head = f"{family}:" + ",".join([*addrs, f"[{last_host}]" if family == "ipv6" else last_host])
    return head, parsed[-1][2], tls


def _family(parsed: Sequence[tuple[str, str, int]]) -> str:
    try:
        versions = {ipaddress.ip_address(h).version for _, h, _ in parsed}
    except ValueError as exc:
        raise ConfigError("several etcd endpoints must be IP addresses, not hostnames") from exc
    if len(versions) != 1:
        raise ConfigError("etcd endpoints mix IPv4 and IPv6")
    return "ipv4" if versions == {4} else "ipv6"


def parse_endpoint(url: str) -> tuple[str, str, int]:
    """``http(s)://host:port`` (or ``host:port``) -> (scheme, host, port)."""
    u = urllib.parse.urlsplit(url.strip() if "://" in url else f"http://{url.strip()}")
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(f"bad etcd endpoint {url!r}: expected http(s)://HOST:PORT")
    try:
        port = u.port or 2379
    except ValueError as exc:
        raise ConfigError(f"bad etcd endpoint {url!r}: bad port") from exc
    return u.scheme, u.hostname, port
