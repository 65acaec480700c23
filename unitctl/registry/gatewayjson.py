"""The KV port's values in etcd's JSON gateway form (grpc-gateway, etcd v3.4).

etcd serves its v3 API as JSON over HTTP on the client port: ``POST
/v3/kv/range`` and friends, with the protobuf messages in proto3's JSON
mapping: bytes (keys, values) are base64, 64-bit integers are strings, fields
at their default value may be absent, enums are names. This module builds the
request bodies and reads the replies; it does no I/O.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from unitctl.errors import RegistryError, RegistryUnavailable
from unitctl.registry.kv import Compare, CompareField, Delete, Event, EventKind, KeyValue, Op, Put

Json = dict[str, Any]

#: gRPC status codes etcd's gateway puts in ``code`` that mean "try later".
UNAVAILABLE = {4, 14}
OUT_OF_RANGE = 11
NOT_FOUND = 5

_TARGET = {CompareField.VALUE: ("VALUE", "value"), CompareField.VERSION: ("VERSION", "version"),
           CompareField.CREATE: ("CREATE", "create_revision"),
           CompareField.MOD: ("MOD", "mod_revision")}
_RESULT = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(key: bytes) -> bytes:
    """The end of the range of every key starting with ``key`` (etcd's rule)."""
    end = bytearray(key)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def body(message: Json) -> bytes:
    """A request message as the bytes of its JSON body."""
    return json.dumps(message, separators=(",", ":")).encode()


def range_request(key: bytes, end: bytes | None, limit: int = 0, revision: int = 0) -> Json:
    msg: Json = {"key": b64(key), "sort_order": "ASCEND", "sort_target": "KEY"}
    if end is not None:
        msg["range_end"] = b64(end)
    if limit:
        msg["limit"] = limit
    if revision:
        msg["revision"] = revision
    return msg


def compare(c: Compare) -> Json:
    target, field = _TARGET[c.field]
    key = c.key.encode()
    operand = c.operand
    msg: Json = {"key": b64(key), "target": target, "result": _RESULT[c.op],
                 field: b64(operand) if isinstance(operand, bytes) else operand}
    if c.prefix:
        msg["range_end"] = b64(prefix_end(key))
    return msg


def request_op(op: Op) -> Json:
    key = op.key.encode()
    if isinstance(op, Put):
        put: Json = {"key": b64(key), "value": b64(op.value)}
        if op.lease:
            put["lease"] = op.lease
        return {"request_put": put}
    assert isinstance(op, Delete)
    rng: Json = {"key": b64(key)}
    if op.prefix:
        rng["range_end"] = b64(prefix_end(key))
    return {"request_delete_range": rng}


def txn_request(compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> Json:
    return {"compare": [compare(c) for c in compares],
            "success": [request_op(o) for o in success],
            "failure": [request_op(o) for o in failure]}


def watch_request(key: bytes, start_rev: int) -> Json:
    return {"create_request": {"key": b64(key), "range_end": b64(prefix_end(key)),
                               "start_revision": start_rev, "fragment": True}}


def integer(msg: Json, name: str) -> int:
    """An int64 field (a string in JSON; absent when 0)."""
    return int(msg.get(name) or 0)


def revision(reply: Json) -> int:
    return integer(reply.get("header") or {}, "revision")


def key_value(kv: Json) -> KeyValue:
    return KeyValue(unb64(kv.get("key")).decode(), unb64(kv.get("value")),
                    integer(kv, "create_revision"), integer(kv, "mod_revision"),
                    integer(kv, "version"), integer(kv, "lease"))


def events(result: Json) -> list[Event]:
    """The events of one watch reply (``type`` is absent for a PUT)."""
    out = []
    for ev in result.get("events") or ():
        kv = ev.get("kv") or {}
        kind = EventKind.DELETE if ev.get("type") == "DELETE" else EventKind.PUT
        out.append(Event(kind, unb64(kv.get("key")).decode(), unb64(kv.get("value")),
                         integer(kv, "mod_revision")))
    return out


class GatewayError(RegistryError):
    """etcd answered with an error (``code`` is the gRPC status code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class GatewayUnavailable(GatewayError, RegistryUnavailable):
    """etcd is unavailable, timed out, or compacted the revision asked for."""


def reply_error(status: int, payload: bytes) -> GatewayError:
    """The error of a reply that is not 200 OK (its JSON ``error`` and ``code``)."""
    try:
        msg = json.loads(payload)
        text, code = str(msg.get("error") or msg.get("message")), int(msg.get("code") or 2)
    except (ValueError, AttributeError):
        text, code = payload[:200].decode(errors="replace") or f"HTTP {status}", 2
    if code in UNAVAILABLE:
        return GatewayUnavailable(f"etcd unreachable: {text}", code)
    if code == OUT_OF_RANGE:
        return GatewayUnavailable(f"etcd read lost history: {text}", code)
    if code in (16, 7) or "auth" in text or "password" in text:
        return GatewayError(f"etcd refused the credentials: {text}", code)
    return GatewayError(f"etcd error: {text}", code)
