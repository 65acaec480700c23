"""Health checks: the ``[X-Health]`` section of a unit, the probe schedule and the
health state machine (pure, no I/O, no clock: every time is passed in).

A unit declares at most one probe::

    [X-Health]
    HTTP=http://127.0.0.1:8080/healthz   # healthy on a 2xx or 3xx reply
    # or TCP=127.0.0.1:6379              # healthy when a connection opens
    # or Cmd=/usr/bin/redis-cli ping     # healthy on exit status 0 (argv, no shell)
    Interval=10s
    Timeout=5s
    Retries=3
    StartPeriod=0
    OnFailure=restart                    # or none

Quadlet's ``HealthCmd=``, ``HealthInterval=``, ``HealthTimeout=``,
``HealthRetries=``, ``HealthStartPeriod=`` and ``HealthOnFailure=`` map to
``Cmd=``, ``Interval=``, ... of this section.

The probe's value takes the unit-name specifiers (``%n %N %p %P %i %I %f %j
%J %%``, :mod:`unitctl.specifiers`), expanded for the unit's name, so one
template checks each instance: ``TCP=127.0.0.1:%i`` in ``web@.service``
probes port 8080 for ``web@8080.service``. A template itself is checked with
the sample instance ``1``.

State machine (Docker's rules): a unit that becomes active is ``starting``;
one passing probe makes it ``healthy`` and resets the count of failures in a
row; ``Retries`` failures in a row make it ``unhealthy``; failures during the
start period do not count while the unit is still ``starting``. The first
probe runs ``min(Interval, 1 s)`` after the unit became active, each later one
``Interval`` after the previous one started.
"""

from __future__ import annotations

import enum
import re
import shlex

from unitctl.errors import InvalidUnitError
from unitctl.names import is_template
from unitctl.record import Frozen, init
from unitctl.specifiers import expand
from unitctl.unitfile import UnitFile

SECTION = "X-Health"
PROBE_KEYS = ("HTTP", "TCP", "Cmd")
KEYS = (*PROBE_KEYS, "Interval", "Timeout", "Retries", "StartPeriod", "OnFailure")

DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 3
DEFAULT_START_PERIOD = 0.0
#: The first probe runs at most this long after the unit became active.
FIRST_PROBE = 1.0
ON_FAILURE = ("restart", "none")

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|hr)?$")
_SPAN_SECONDS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                 "hr": 3600.0, None: 1.0}
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)$")


class Health(enum.Enum):
    """What the agent reports for a unit's check ("" when it has none)."""

    NONE = ""
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class HealthCheck(Frozen):
    """One unit's probe and its timing.

    Attributes:
        kind: ``http``, ``tcp`` or ``cmd``.
        host, port, path: the HTTP or TCP target (path only for HTTP).
        argv: the command (``cmd``), run without a shell.
        user: the unit's ``[Service] User=``, which the command runs as ("" = the agent's).
    """

    __slots__ = ("argv", "host", "interval", "kind", "on_failure", "path", "port", "retries",
                 "start_period", "timeout", "user")
    kind: str
    interval: float
    timeout: float
    retries: int
    start_period: float
    on_failure: str
    host: str
    port: int
    path: str
    argv: tuple[str, ...]
    user: str

    def __init__(self, kind: str, interval: float = DEFAULT_INTERVAL,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 start_period: float = DEFAULT_START_PERIOD, on_failure: str = "restart",
                 host: str = "", port: int = 0, path: str = "/", argv: tuple[str, ...] = (),
                 user: str = "") -> None:
        init(self, kind, interval, timeout, retries, start_period, on_failure, host, port,
             path, argv, user)


def parse_span(text: str, key: str, section: str = SECTION) -> float:
    """A systemd-style time span (``500ms``, ``10s``, ``5min``, ``1h``, bare seconds)."""
    m = _SPAN.match(text.strip())
    if not m:
        raise InvalidUnitError(f"[{section}] {key}={text!r} is not a time span "
                               "(examples: 10s, 500ms, 5min)")
    return float(m.group(1)) * _SPAN_SECONDS[m.group(2)]


def _positive_int(text: str, section: str, key: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise InvalidUnitError(f"[{section}] {key}={text!r} is not a whole number >= 1")
    return int(text)


def _host_port(text: str, key: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not _HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidUnitError(f"[{SECTION}] {key}={text!r} is not host:port "
                               "(examples: 127.0.0.1:8080, [::1]:80)")
    return host.strip("[]"), int(port)


def parse_http(text: str) -> tuple[str, int, str]:
    """``http://host[:port][/path]`` → (host, port, path); https is refused."""
    if not text.startswith("http://"):
        raise InvalidUnitError(f"[{SECTION}] HTTP={text!r}: only http:// URLs are supported")
    rest = text[len("http://"):]
    authority, slash, path = rest.partition("/")
    if not authority.rsplit(":", 1)[-1].isdigit() or authority.endswith("]"):
        authority += ":80"
    host, port = _host_port(authority, "HTTP")
    if any(c.isspace() for c in path):
        raise InvalidUnitError(f"[{SECTION}] HTTP={text!r}: the path has blanks")
    return host, port, slash + path if slash else "/"


def _command(text: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise InvalidUnitError(f"[{SECTION}] Cmd={text!r}: {exc}") from exc
    if not argv or not argv[0].startswith("/"):
        raise InvalidUnitError(f"[{SECTION}] Cmd={text!r}: the command must be an "
                               "absolute path (it runs without a shell)")
    return argv


#: The instance a template's probe is checked with.
SAMPLE_INSTANCE = "1"


def _expand_for(name: str, text: str) -> str:
    if not name:
        return text
    if is_template(name):
        prefix, _, suffix = name.partition("@")
        name = f"{prefix}@{SAMPLE_INSTANCE}{suffix}"
    return expand(name, text)


def _probe(unit: UnitFile, name: str) -> dict[str, object]:
    given = [k for k in PROBE_KEYS if unit.value(SECTION, k) is not None]
    if len(given) != 1:
        raise InvalidUnitError(f"[{SECTION}] needs exactly one of HTTP=, TCP=, Cmd= "
                               f"(found {', '.join(given) or 'none'})")
    kind, text = given[0], _expand_for(name, unit.value(SECTION, given[0]) or "")
    if kind == "HTTP":
        host, port, path = parse_http(text)
        return {"kind": "http", "host": host, "port": port, "path": path}
    if kind == "TCP":
        host, port = _host_port(text, "TCP")
        return {"kind": "tcp", "host": host, "port": port}
    return {"kind": "cmd", "argv": _command(text),
            "user": unit.value("Service", "User") or ""}


def _timing(unit: UnitFile) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, field in (("Interval", "interval"), ("Timeout", "timeout"),
                       ("StartPeriod", "start_period")):
        if (text := unit.value(SECTION, key)) is not None:
            out[field] = parse_span(text, key)
    if out.get("interval", 1.0) == 0 or out.get("timeout", 1.0) == 0:
        raise InvalidUnitError(f"[{SECTION}] Interval= and Timeout= must be more than 0")
    if (text := unit.value(SECTION, "Retries")) is not None:
        out["retries"] = _positive_int(text, SECTION, "Retries")
    if (text := unit.value(SECTION, "OnFailure")) is not None:
        if text not in ON_FAILURE:
            raise InvalidUnitError(f"[{SECTION}] OnFailure={text!r}: use restart or none")
        out["on_failure"] = text
    return out


def parse_check(unit: UnitFile, name: str = "") -> HealthCheck | None:
    """The unit's health check, or None without an ``[X-Health]`` section; the
    probe's specifiers are expanded for unit ``name`` (none without a name).

    Raises:
        InvalidUnitError: an unknown key, a bad value, or not exactly one probe.
    """
    if not unit.has_section(SECTION):
        return None
    for option in unit.options:
        if option.section == SECTION and option.name not in KEYS:
            raise InvalidUnitError(f"[{SECTION}] unknown key {option.name}= "
                                   f"(known: {', '.join(KEYS)})")
    fields = {**_probe(unit, name), **_timing(unit)}
    return HealthCheck(**fields)  # type: ignore[arg-type]


class Progress(Frozen):
    """One unit's health while it is active.

    Attributes:
        status: starting, healthy or unhealthy.
        failures: failed probes in a row that counted.
        since: when the unit became active (the start period runs from here).
        last_probe: when the last probe started (None before the first).
    """

    __slots__ = ("failures", "last_probe", "since", "status")
    status: Health
    failures: int
    since: float
    last_probe: float | None

    def __init__(self, status: Health, failures: int, since: float,
                 last_probe: float | None = None) -> None:
        init(self, status, failures, since, last_probe)


def begin(now: float) -> Progress:
    """A unit that just became active: starting, nothing probed yet."""
    return Progress(Health.STARTING, 0, now)


def next_probe_at(progress: Progress, check: HealthCheck) -> float:
    """When the next probe starts."""
    if progress.last_probe is None:
        return progress.since + min(check.interval, FIRST_PROBE)
    return progress.last_probe + check.interval


def observe(progress: Progress, check: HealthCheck, passed: bool, started: float) -> Progress:
    """The health after one probe that started at ``started`` and passed or not."""
    if passed:
        return Progress(Health.HEALTHY, 0, progress.since, started)
    in_start = started - progress.since < check.start_period
    if in_start and progress.status is Health.STARTING:
        return Progress(Health.STARTING, 0, progress.since, started)
    failures = progress.failures + 1
    status = Health.UNHEALTHY if failures >= check.retries else progress.status
    return Progress(status, failures, progress.since, started)


def is_failure(before: Progress, after: Progress, check: HealthCheck) -> bool:
    """Whether the probe that led from ``before`` to ``after`` is a failure of the unit."""
    if after.status is not Health.UNHEALTHY:
        return False
    return before.status is not Health.UNHEALTHY or after.failures % check.retries == 0
