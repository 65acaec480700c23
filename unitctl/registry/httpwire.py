"""HTTP/1.1 on the wire, without I/O: the requests the gateway adapter sends and
an incremental parser of the replies it reads.

Why not :mod:`http.client`: importing it costs ~18 ms (it loads the email
package and ssl), a third of a read-only command's budget; the etcd gateway
needs one verb (POST), one body framing on the way out (Content-Length) and
two on the way back (Content-Length, chunked), which fit here.

Contract: :func:`post` builds a complete request; :class:`ResponseParser`
takes the reply's bytes in pieces of any size (:meth:`ResponseParser.feed`)
and returns the body bytes that became complete, in order; ``done`` is set
after the last chunk (or the Content-Length-th byte). A malformed reply raises
:class:`WireError`.
"""

from __future__ import annotations

MAX_HEAD = 64 * 1024


class WireError(ValueError):
    """The peer's bytes are not an HTTP/1.1 reply this parser accepts."""


def post(host: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A complete ``POST`` request with a JSON body (connection kept alive)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ResponseParser:
    """One HTTP/1.1 reply, parsed as its bytes arrive."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = "head"
        self._remaining = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.done = False

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this reply."""
        return self.done and self.headers.get("connection", "").lower() != "close"

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes read from the peer; return the body pieces now complete."""
        self._buf += data
        out: list[bytes] = []
        while not self.done and self._step(out):
            pass
        return out

    def _step(self, out: list[bytes]) -> bool:
        """Advance one state; False when more bytes are needed."""
        if self._state == "head":
            return self._head()
        if self._state in ("length", "chunk"):
            return self._take(out)
        line = self._line()
        if line is None:
            return False
        if self._state == "size":
            self._chunk_size(line)
        elif self._state == "chunk-end":
            if line:
                raise WireError("chunk not followed by CRLF")
            self._state = "size"
        elif not line:  # trailer section ends with an empty line
            self.done = True
        return True

    def _line(self) -> bytes | None:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise WireError("line too long")
            return None
        line = bytes(self._buf[:end])
        del self._buf[:end + 2]
        return line

    def _head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise WireError("reply head too long")
            return False
        head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[:end + 4]
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise WireError(f"bad status line {head[0][:80]!r}")
        self.status = int(parts[1])
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise WireError(f"bad header line {line[:80]!r}")
            self.headers[name.strip().lower()] = value.strip()
        self._framing()
        return True

    def _framing(self) -> None:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._state = "size"
            return
        length = self.headers.get("content-length", "0")
        if not length.isdigit():
            raise WireError(f"bad Content-Length {length[:20]!r}")
        self._state, self._remaining = "length", int(length)
        self.done = self._remaining == 0

    def _chunk_size(self, line: bytes) -> None:
        text = line.split(b";", 1)[0].strip()
        try:
            size = int(text, 16)
        except ValueError as exc:
            raise WireError(f"bad chunk size {text[:20]!r}") from exc
        self._state, self._remaining = ("trailer", 0) if size == 0 else ("chunk", size)

    def _take(self, out: list[bytes]) -> bool:
        if not self._buf:
            return False
        n = min(self._remaining, len(self._buf))
        out.append(bytes(self._buf[:n]))
        del self._buf[:n]
        self._remaining -= n
        if self._remaining == 0:
            if self._state == "length":
                self.done = True
            else:
                self._state = "chunk-end"
        return True
