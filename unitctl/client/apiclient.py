"""The CLI's client of unitctl's HTTP API (``--endpoint`` an API URL): requests and streams.

:class:`ApiClient` sends one request per call over :mod:`http.client`
(imported when the first request is made, never on the CLI's import path),
with ``Authorization: Bearer <token>`` and, for https, the global
``--ca-file`` (server verification) and ``--cert-file``/``--key-file`` (a
client certificate, the alternative to a token). An error answer (fleet's
``{"error": {"code", "message"}}``) becomes the unitctl error of its status,
so the CLI prints it and exits as it would have talking to etcd.
:meth:`ApiClient.stream` reads a streamed answer (NDJSON, see
:mod:`unitctl.api.streams`) line by line as it comes.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from unitctl.client.connect import ApiEndpoint
from unitctl.errors import (
    ConfigError,
    NotFoundError,
    RegistryUnavailable,
    RemoteCommandError,
    UnitctlError,
    UsageError,
)


def error_for(status: int, message: str) -> UnitctlError:
    """The unitctl error of an API error answer."""
    if status == 404:
        return NotFoundError(message)
    if status in (400, 415):
        return UsageError(message)
    if status in (401, 403):
        return ConfigError(f"API refused the request ({status}): {message}")
    if status in (502, 503, 504):
        return RegistryUnavailable(message) if status == 503 else RemoteCommandError(message)
    return UnitctlError(message)


class ApiClient:
    """Requests to one API endpoint."""

    def __init__(self, endpoint: ApiEndpoint) -> None:
        self.endpoint = endpoint
        url = urllib.parse.urlsplit(endpoint.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"bad API endpoint {endpoint.url!r}: expected "
                              "http(s)://HOST:PORT[/PATH]")
        self.tls = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.tls else 80)
        self.base = url.path.rstrip("/")

    def _connection(self, streamed: bool) -> Any:
        import http.client

        # a streamed answer may be silent for long (a wait, journal -f): no read timeout
        timeout = None if streamed else self.endpoint.timeout
        if not self.tls:
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        import ssl

        context = ssl.create_default_context(cafile=self.endpoint.ca_file or None)
        if self.endpoint.cert_file:
            context.load_cert_chain(self.endpoint.cert_file, self.endpoint.key_file or None)
        return http.client.HTTPSConnection(self.host, self.port, context=context,
                                           timeout=timeout)

    def _send(self, method: str, path: str, body: Any = None,
              query: Mapping[str, str] | None = None, streamed: bool = False) -> Any:
        conn = self._connection(streamed)
        headers = {"Accept": "application/json"}
        if self.endpoint.token:
            headers["Authorization"] = f"Bearer {self.endpoint.token}"
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        target = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        try:
            conn.request(method, target, body=data, headers=headers)
            resp = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise RegistryUnavailable(f"cannot reach the API at {self.endpoint.url}: "
                                      f"{exc}") from exc
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            raise error_for(resp.status, _message(raw, resp.status))
        return conn, resp

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """The JSON answer of a GET."""
        conn, resp = self._send("GET", path, query=query)
        try:
            return json.loads(resp.read())
        finally:
            conn.close()

    def stream(self, method: str, path: str, body: Any = None,
               query: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """The objects of a streamed (NDJSON) answer, as they come."""
        conn, resp = self._send(method, path, body, query, streamed=True)
        try:
            for line in resp:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


def _message(raw: bytes, status: int) -> str:
    try:
        message = json.loads(raw)["error"]["message"]
        return str(message) or f"HTTP {status}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"
