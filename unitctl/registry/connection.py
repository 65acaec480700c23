"""How to reach etcd: the one connection setting of unitctl.

The CLI's global flags, the agent's configuration file and the tests all build
this one value; only the etcd adapters read it (:mod:`unitctl.registry.gateway`,
the CLI's and the agent's; :mod:`unitctl.registry.etcd`). Pure: importing it
does not load an etcd client library.
"""

from __future__ import annotations

from unitctl.record import Frozen, init

#: Where a client looks for etcd when no endpoint is given (etcd's own default).
DEFAULT_ENDPOINT = "http://127.0.0.1:2379"


class EtcdConfig(Frozen):
    """How to reach etcd: endpoints, TLS files, credentials, timeout in seconds."""

    __slots__ = ("ca_file", "cert_file", "endpoints", "key_file", "password", "timeout",
                 "username")
    endpoints: tuple[str, ...]
    ca_file: str
    cert_file: str
    key_file: str
    username: str
    password: str
    timeout: float

    def __init__(self, endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",),
                 ca_file: str = "", cert_file: str = "", key_file: str = "", username: str = "",
                 password: str = "", timeout: float = 3.0) -> None:
        init(self, endpoints, ca_file, cert_file, key_file, username, password, timeout)
