"""API errors: one exception, fleet's error body, and the mapping from unitctl's errors (pure).

Every error answer, of both APIs, has fleet's body
``{"error": {"code": N, "message": "..."}}`` (fleet's ``sendError``).
"""

from __future__ import annotations

import json

from unitctl.errors import (
    ConfigError,
    ConflictError,
    InvalidUnitError,
    NotFoundError,
    RegistryError,
    RegistryUnavailable,
    RemoteCommandError,
    UnitctlError,
    UsageError,
    WaitTimeout,
    one_line,
)


class ApiError(Exception):
    """An answer other than success: an HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(status: int, message: str) -> bytes:
    """fleet's error entity, as JSON bytes."""
    return json.dumps({"error": {"code": status, "message": message}}).encode()


def status_of(exc: UnitctlError) -> int:
    """The HTTP status of a unitctl error."""
    table: tuple[tuple[type[UnitctlError], int], ...] = (
        (NotFoundError, 404), (InvalidUnitError, 400), (UsageError, 400),
        (ConfigError, 400), (ConflictError, 409), (RegistryUnavailable, 503),
        (RegistryError, 500), (WaitTimeout, 504), (RemoteCommandError, 502))
    for kind, status in table:
        if isinstance(exc, kind):
            return status
    return 409  # a verb refused in the unit's current state ("Unable to stop ...")


def from_unitctl(exc: UnitctlError) -> ApiError:
    """The API error of a unitctl error (its message, on one line)."""
    return ApiError(status_of(exc), one_line(str(exc)))
