"""The gateway's connect: an IP address without the resolver, a name through it,
and a refused port as OSError (which the adapter reports as etcd unreachable)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from unitctl.registry.gatewaystream import connect


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s


def test_an_ip_address_is_connected_to_without_getaddrinfo(
        listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_resolver(*_a: object, **_k: object) -> None:
        raise AssertionError("getaddrinfo was asked for an IP address")
    monkeypatch.setattr(socket, "create_connection", no_resolver)
    port = listener.getsockname()[1]
    with connect("127.0.0.1", port, 2) as sock:
        assert sock.getpeername() == ("127.0.0.1", port)
        assert sock.gettimeout() == 2


def test_a_name_goes_through_the_resolver(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with connect("localhost", port, 2) as sock:
        assert sock.getpeername()[1] == port


def test_a_refused_port_raises_oserror(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(OSError):
        connect("127.0.0.1", port, 2)
