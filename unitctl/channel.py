"""The agent channel's protocol (pure): what a client asks a machine's agent, and the answers.

A client asks one machine's agent to run one of a fixed set of verbs on one
unit (:class:`Request`); the agent builds the argv itself (:func:`argv_of`):
no shell, and the only user text in it is a unit name the agent validated
(:func:`unitctl.names.validate_name`) and a ``--output`` mode from a fixed
list. The answer is a sequence of :class:`Reply` pieces: ``ack`` (the agent
took the request), ``out``/``err`` chunks of the command's stdout/stderr, as
they come, and one ``exit`` with the command's exit code, or with a
``reason`` when the agent refused or could not run it.

Both travel as small JSON values (chunks base64) through etcd; the keys are in
:mod:`unitctl.registry.keys`, the store in :mod:`unitctl.registry.requests`.
Bounds: a chunk carries at most :data:`CHUNK_BYTES` (every etcd request stays
far under its 1.5 MiB limit); an answer that ends by itself carries at most
:data:`MAX_OUTPUT_BYTES`; a verb that ends by itself is killed after its
:data:`DEADLINES` entry.

Contract: :func:`decode_request` and :func:`decode_reply` raise
``RegistryError`` naming the key for a value that does not decode.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from dataclasses import dataclass
from typing import Any

from unitctl.errors import RegistryError


class Verb(enum.Enum):
    """What an agent answers."""

    STATUS = "status"
    JOURNAL = "journal"
    RESTART = "restart"


class ReplyKind(enum.Enum):
    ACK = "ack"
    OUT = "out"
    ERR = "err"
    EXIT = "exit"


class Reason(enum.Enum):
    """Why an ``exit`` reply carries no exit code of the command ("" when it does)."""

    NONE = ""
    NOT_FOUND = "not-found"   # the unit is not one of this machine's units
    INVALID = "invalid"       # a bad unit name, line count or output mode
    BUSY = "busy"             # too many requests in flight on this agent
    TIMEOUT = "timeout"       # the command ran past its deadline and was killed
    FAILED = "failed"         # the command could not be run


#: journalctl's output modes (``--output``): the only values passed through.
JOURNAL_MODES = frozenset({
    "short", "short-full", "short-iso", "short-iso-precise", "short-precise",
    "short-monotonic", "short-delta", "short-unix", "verbose", "export", "json",
    "json-pretty", "json-sse", "json-seq", "cat", "with-unit"})

#: The most journal lines one request asks for.
MAX_LINES = 1_000_000

#: Raw output bytes per reply (base64 makes it 64 KiB: far under etcd's limit).
CHUNK_BYTES = 48 * 1024

#: The most output bytes of an answer that ends by itself (status, journal -n, restart).
MAX_OUTPUT_BYTES = 8 * 1024 * 1024

#: Seconds an agent lets a verb run before it kills it (``journal -f`` has none).
DEADLINES = {Verb.STATUS: 30.0, Verb.JOURNAL: 60.0, Verb.RESTART: 600.0}

#: TTL of the client's request lease: a client that dies leaves nothing after this.
REQUEST_TTL = 10

#: Seconds a machine's agent has to take a request (the CLI's --agent-timeout default).
ANSWER_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Request:
    """One request; ``lease`` is the client's lease (the agent answers under it)."""

    verb: Verb
    unit: str
    lease: int
    lines: int = 10
    follow: bool = False
    output: str = "short"

    @property
    def deadline(self) -> float | None:
        """Seconds the verb may run (None: until the client goes away)."""
        if self.verb is Verb.JOURNAL and self.follow:
            return None
        return DEADLINES[self.verb]


@dataclass(frozen=True, slots=True)
class Reply:
    """One piece of an answer."""

    kind: ReplyKind
    data: bytes = b""
    code: int = 0
    reason: Reason = Reason.NONE
    error: str = ""


def invalid_parameters(req: Request) -> str | None:
    """Why the verb's parameters cannot be used (None: they can); the name is checked apart."""
    if req.verb is not Verb.JOURNAL:
        return None
    if not 0 <= req.lines <= MAX_LINES:
        return f"line count {req.lines} is not between 0 and {MAX_LINES}"
    if req.output not in JOURNAL_MODES:
        return f"output mode {req.output!r} is not one of {', '.join(sorted(JOURNAL_MODES))}"
    return None


#: What a request id looks like (the agent skips any other: it names a systemd unit).
REQUEST_ID = re.compile(r"[0-9a-f]{8,64}")


def follow_unit(request_id: str) -> str:
    """The transient unit a ``journal -f`` runs in (a valid :data:`REQUEST_ID`)."""
    return f"unitctl-follow-{request_id}.service"


def argv_of(req: Request, request_id: str) -> list[str]:
    """The argv the agent runs for a request (its name and parameters validated).

    ``journalctl -f`` runs in a transient unit of its own (``systemd-run --pipe``),
    outside the agent's sandbox: under the agent's ProtectKernelTunables= and
    ProtectControlGroups= mounts it prints nothing (seen on nspawn machines). The
    agent stops that unit when the request goes away (:func:`stop_argv`).
    """
    if req.verb is Verb.STATUS:
        return ["systemctl", "status", "-l", "--no-pager", "--", req.unit]
    if req.verb is Verb.RESTART:
        return ["systemctl", "restart", "--", req.unit]
    argv = ["journalctl", "--no-pager", "-n", str(req.lines), "--output", req.output]
    if not req.follow:
        return [*argv, f"--unit={req.unit}"]
    return ["systemd-run", "--quiet", "--pipe", "--wait", "--collect",
            f"--unit={follow_unit(request_id)}", "--", *argv, "-f", f"--unit={req.unit}"]


def stop_argv(request_id: str) -> list[str]:
    """Stop the transient unit of a ``journal -f`` request."""
    return ["systemctl", "stop", "--no-block", "--", follow_unit(request_id)]


def chunks(data: bytes) -> list[bytes]:
    """``data`` cut into pieces of at most :data:`CHUNK_BYTES`."""
    return [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]


# ------------------------------------------------------------------ codec


def _load(key: str, data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RegistryError(f"corrupt value at {key}: {exc}") from exc
    if not isinstance(obj, dict):
        raise RegistryError(f"corrupt value at {key}: not a JSON object")
    return obj


def _field(key: str, obj: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = obj.get(name, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RegistryError(f"corrupt value at {key}: {name} is not a {kind.__name__}")
    return value


def encode_request(req: Request) -> bytes:
    return json.dumps({"verb": req.verb.value, "unit": req.unit, "lease": req.lease,
                       "lines": req.lines, "follow": req.follow, "output": req.output},
                      sort_keys=True).encode()


def decode_request(key: str, data: bytes) -> Request:
    obj = _load(key, data)
    try:
        verb = Verb(obj.get("verb"))
    except ValueError as exc:
        raise RegistryError(f"corrupt value at {key}: unknown verb {obj.get('verb')!r}") from exc
    lease = _field(key, obj, "lease", int, 0)
    if lease <= 0:
        raise RegistryError(f"corrupt value at {key}: no lease to answer under")
    return Request(verb, _field(key, obj, "unit", str, None), lease,
                   _field(key, obj, "lines", int, 10), _field(key, obj, "follow", bool, False),
                   _field(key, obj, "output", str, "short"))


def encode_reply(reply: Reply) -> bytes:
    obj: dict[str, Any] = {"kind": reply.kind.value}
    if reply.data:
        obj["data"] = base64.b64encode(reply.data).decode()
    if reply.kind is ReplyKind.EXIT:
        obj.update(code=reply.code, reason=reply.reason.value, error=reply.error)
    return json.dumps(obj, sort_keys=True).encode()


def decode_reply(key: str, data: bytes) -> Reply:
    obj = _load(key, data)
    try:
        kind, reason = ReplyKind(obj.get("kind")), Reason(obj.get("reason", ""))
        raw = base64.b64decode(_field(key, obj, "data", str, ""), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise RegistryError(f"corrupt value at {key}: {exc}") from exc
    return Reply(kind, raw, _field(key, obj, "code", int, 0), reason,
                 _field(key, obj, "error", str, ""))
