"""The HTTP/1.1 reply parser: any split of the bytes gives the same body."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unitctl.registry.httpwire import ResponseParser, WireError, post


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, i = b"", 0
    for n in sizes:
        piece = body[i:i + n]
        if not piece:
            break
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        i += n
    if i < len(body):
        out += f"{len(body) - i:x}\r\n".encode() + body[i:] + b"\r\n"
    return out + b"0\r\n\r\n"


def _parse(raw: bytes, cuts: list[int]) -> tuple[ResponseParser, bytes]:
    parser, got, last = ResponseParser(), b"", 0
    for cut in [*sorted(c % (len(raw) + 1) for c in cuts), len(raw)]:
        got += b"".join(parser.feed(raw[last:cut]))
        last = max(last, cut)
    return parser, got


@given(st.binary(max_size=3000), st.lists(st.integers(1, 700), max_size=8),
       st.lists(st.integers(0, 10_000), max_size=12), st.booleans())
def test_any_split_gives_the_whole_body(body: bytes, sizes: list[int], cuts: list[int],
                                        chunked: bool) -> None:
    head = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" if chunked else
            f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    raw = head + (_chunked(body, sizes) if chunked else body)
    parser, got = _parse(raw, cuts)
    assert parser.done and parser.status == 200 and got == body and parser.keep_alive


def test_connection_close_and_errors() -> None:
    p = ResponseParser()
    p.feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert p.done and p.status == 400 and not p.keep_alive
    with pytest.raises(WireError, match="status line"):
        ResponseParser().feed(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(WireError, match="chunk size"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")


def test_post_frames_the_body() -> None:
    req = post("127.0.0.1:2379", "/v3/kv/range", b'{"key":"YQ=="}', {"Authorization": "t"})
    head, _, body = req.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n")
    assert b"Content-Length: 14" in head and b"Authorization: t" in head
    assert body == b'{"key":"YQ=="}'
