"""Request bodies and query values: read, type-checked, bad input named (ApiError 400/415).

Every check happens before a handler writes anything, so bad input never
changes what is stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from unitctl.api.errors import ApiError


async def read_json(request: web.Request, require_type: bool = True) -> Any:
    """The request's JSON body (fleet insists on ``Content-Type: application/json``)."""
    if require_type:
        values = request.headers.getall("Content-Type", [])
        if len(values) != 1:
            raise ApiError(415, f"expected 1 Content-Type, got {len(values)}")
        if values[0].split(";", 1)[0].strip() != "application/json":
            raise ApiError(415, "only acceptable Content-Type is application/json")
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"unable to decode body: {exc}") from exc


def as_object(value: Any, what: str = "body") -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, f"{what} must be a JSON object")
    return value


def optional_str(obj: Mapping[str, Any], key: str, default: str = "") -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    return value


def optional_bool(obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"{key} must be true or false")
    return value


def bounded_int(value: Any, key: str, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (query strings too: ``"12"``)."""
    if isinstance(value, str):
        try:
            value = int(value, 10)
        except ValueError:
            raise ApiError(400, f"{key} must be an integer") from None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{key} must be an integer from {low} to {high}")
    return value


def query_bool(request: web.Request, key: str) -> bool:
    value = request.query.get(key, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise ApiError(400, f"{key} must be true or false")
    return value in ("true", "1")


def only_keys(obj: Mapping[str, Any], allowed: set[str], what: str = "body") -> None:
    """Refuse unknown fields (a typo must not be silently ignored)."""
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field(s) in {what}: {', '.join(unknown)}")
