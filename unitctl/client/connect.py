"""How a client reaches the registry: its configuration and the one way to open it.

:class:`ClientConfig` is what the global flags of ``unitctl`` say: the key
prefix plus the one etcd connection setting,
:class:`~unitctl.registry.connection.EtcdConfig`. :func:`config_from_params`
is the one translator from click's parameters (the command callback and the
shell completion both use it). :func:`open_registry` connects and checks the
schema over :class:`~unitctl.registry.gateway.GatewayKV`, etcd's JSON gateway
on plain sockets: the client's one etcd adapter (aetcd + grpc cost ~90 ms to
import, more than a whole read-only command; the agent keeps them). Under
:func:`unitctl.registry.blocking.run_blocking` it needs no event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unitctl.errors import RegistryUnavailable
from unitctl.record import Frozen, init
from unitctl.registry.connection import DEFAULT_ENDPOINT, EtcdConfig
from unitctl.registry.gateway import GatewayKV
from unitctl.registry.keys import DEFAULT_PREFIX
from unitctl.registry.registry import Registry

DEFAULT_TIMEOUT = 3.0

__all__ = ["DEFAULT_ENDPOINT", "DEFAULT_PREFIX", "ApiEndpoint", "ClientConfig",
           "api_from_params", "config_from_params", "open_registry"]


class ClientConfig(Frozen):
    """How the client reaches etcd (the global flags of ``unitctl``)."""

    __slots__ = ("etcd", "prefix")
    prefix: str
    etcd: EtcdConfig

    def __init__(self, prefix: str = DEFAULT_PREFIX, etcd: EtcdConfig | None = None) -> None:
        init(self, prefix, EtcdConfig(endpoints=(DEFAULT_ENDPOINT,)) if etcd is None else etcd)

    @property
    def endpoint(self) -> str:
        """The endpoints as the user wrote them (comma-separated)."""
        return ",".join(self.etcd.endpoints)

    @property
    def request_timeout(self) -> float:
        """Seconds to wait for an answer from etcd."""
        return self.etcd.timeout


def split_endpoints(text: str) -> tuple[str, ...]:
    """The comma-separated ``--endpoint`` value split into URLs."""
    return tuple(e.strip() for e in text.split(",") if e.strip())


def config_from_params(params: Mapping[str, Any]) -> ClientConfig:
    """Build a config from click's parameter dict (missing keys take defaults)."""

    def text(key: str, default: str = "") -> str:
        value = params.get(key)
        return default if value is None else str(value)

    timeout = params.get("request_timeout")
    return ClientConfig(
        prefix=text("etcd_key_prefix", DEFAULT_PREFIX),
        etcd=EtcdConfig(
            endpoints=split_endpoints(text("endpoint", DEFAULT_ENDPOINT)),
            ca_file=text("ca_file"), cert_file=text("cert_file"), key_file=text("key_file"),
            username=text("username"), password=text("password"),
            timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout)))


class ApiEndpoint(Frozen):
    """unitctl's HTTP API as the CLI reaches it (``--endpoint`` an API URL)."""

    __slots__ = ("ca_file", "cert_file", "key_file", "timeout", "token", "url")
    url: str
    token: str
    ca_file: str
    cert_file: str
    key_file: str
    timeout: float

    def __init__(self, url: str, token: str = "", ca_file: str = "", cert_file: str = "",
                 key_file: str = "", timeout: float = DEFAULT_TIMEOUT) -> None:
        init(self, url, token, ca_file, cert_file, key_file, timeout)


def is_api_url(endpoint: str) -> bool:
    """An API URL has a path (``https://host:8379/api``, ``http://host:8379/``); etcd's none."""
    url = endpoint.split(",")[0].strip()
    scheme, sep, rest = url.partition("://")
    return bool(sep) and scheme in ("http", "https") and "/" in rest


def api_from_params(params: Mapping[str, Any]) -> ApiEndpoint | None:
    """The API endpoint the global flags name, or None when they name etcd.

    The API is used with ``--driver=API`` (fleetctl's flag) or an endpoint
    URL with a path; the token comes from ``--token`` (``UNITCTL_TOKEN``).
    """
    endpoint = str(params.get("endpoint") or DEFAULT_ENDPOINT)
    driver = str(params.get("driver") or "etcd").lower()
    if driver != "api" and not is_api_url(endpoint):
        return None
    timeout = params.get("request_timeout")
    return ApiEndpoint(endpoint.split(",")[0].strip(), str(params.get("token") or ""),
                       str(params.get("ca_file") or ""), str(params.get("cert_file") or ""),
                       str(params.get("key_file") or ""),
                       DEFAULT_TIMEOUT if timeout is None else float(timeout))


async def open_registry(cfg: ClientConfig) -> Registry:
    """Connect to etcd and check (or write) the schema version.

    Raises:
        RegistryUnavailable: ``cannot reach etcd at <endpoint>: <why>``.
        ConfigError: bad endpoint or TLS files.
    """
    kv = await GatewayKV.connect(cfg.etcd)
    registry = Registry(kv, cfg.prefix)
    try:
        await registry.ensure_schema()
    except RegistryUnavailable as exc:
        await registry.close()
        why = str(exc).removeprefix("etcd unreachable: ") or "no answer"
        raise RegistryUnavailable(f"cannot reach etcd at {cfg.endpoint}: {why}") from exc
    except BaseException:
        await registry.close()
        raise
    return registry
