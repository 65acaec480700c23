"""The OpenAPI document matches the server, and fuzzing it finds no 5xx and no 4xx that
changes what is stored (hypothesis, requests generated from the document's schemas)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.apiharness import Api, api_cluster, snapshot
from unitctl.api import actions, dashboard, events, fleetv1, reads, streams
from unitctl.api.app import make_app
from unitctl.api.context import ServerContext
from unitctl.api.reads import openapi_document
from unitctl.api.routes import build
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl_testing.etcd import EtcdCluster

DOC = openapi_document()
METHODS = ("get", "put", "post", "delete", "patch")


def documented() -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in DOC["paths"].items()  # type: ignore[attr-defined]
            for m in item if m in METHODS}


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    table = {(r.method, r.path) for r in build(fleetv1.ROUTES, reads.ROUTES, actions.ROUTES,
                                                streams.ROUTES, events.ROUTES, dashboard.ROUTES)}
    app = make_app(ServerContext(Registry(MemoryKV())), dashboard.ROUTES)  # as `serve` runs it
    served = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    assert table == served
    assert documented() == served


def test_the_repo_copy_is_the_served_document() -> None:
    with open("docs/openapi.json", encoding="utf-8") as f:
        assert json.load(f) == DOC


# ------------------------------------------------------------------ fuzzing


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return _resolve(node)


def from_schema(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of (a subset of) JSON Schema: what the document uses, plus junk."""
    schema = _resolve(schema)
    junk = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
    if depth > 3:
        return junk
    if "enum" in schema:
        return st.one_of(st.sampled_from(schema["enum"]), junk)
    if "oneOf" in schema or "allOf" in schema:
        return st.one_of(*[from_schema(s, depth + 1)
                           for s in schema.get("oneOf", schema.get("allOf", []))])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return st.one_of(st.fixed_dictionaries(
            {}, optional={k: from_schema(v, depth + 1) for k, v in props.items()}), junk)
    if kind == "array":
        return st.one_of(st.lists(from_schema(schema.get("items", {}), depth + 1),
                                  max_size=3), junk)
    if kind == "integer":
        return st.one_of(st.integers(-5, 20000), junk)
    if kind == "boolean":
        return st.one_of(st.booleans(), junk)
    return st.one_of(st.sampled_from(["a.service", "x@.service", "x@1.service", "", "..",
                                      "/1/metadata/k", "EwBMLg==", "AQABAA=="]),
                     st.text(max_size=12), junk)


def requests() -> st.SearchStrategy[tuple[str, str, dict[str, str], Any]]:
    ops = [(m, p, op) for p, item in DOC["paths"].items()  # type: ignore[attr-defined]
           for m, op in item.items() if m in METHODS and not p.endswith("/events")
           and not p.endswith("/journal")]
    return st.sampled_from(ops).flatmap(_request)


def _request(op: tuple[str, str, dict[str, Any]]) -> st.SearchStrategy[Any]:
    method, path, spec = op
    params = spec.get("parameters", [])
    names = {p["name"]: st.text(min_size=1, max_size=10).filter(lambda s: "/" not in s)
             | st.sampled_from(["a.service", "x@.service", "x@1.service"])
             for p in params if p["in"] == "path"}
    query = {p["name"]: st.text(max_size=8) | st.sampled_from(["1", "true", "EwBMLg=="])
             for p in params if p["in"] == "query"}
    body = spec.get("requestBody", {}).get("content", {}).get("application/json", {})
    return st.tuples(st.just(method.upper()),
                     st.fixed_dictionaries(names).map(lambda v: _fill(path, v)),
                     st.fixed_dictionaries({}, optional=query),
                     from_schema(body["schema"]) if body else st.none())


def _fill(path: str, values: dict[str, str]) -> str:
    from urllib.parse import quote

    for k, v in values.items():
        path = path.replace("{" + k + "}", quote(v, safe=""))
    return path


@pytest.mark.etcd
def test_fuzz_no_5xx_and_a_4xx_changes_nothing(etcd: EtcdCluster, key_prefix: str) -> None:
    async def go() -> None:
        async with api_cluster(etcd, key_prefix, 1) as api:
            await api.call("PUT", "/fleet/v1/units/a.service", body={
                "options": [{"section": "Service", "name": "ExecStart",
                             "value": "/bin/true"}]})
            await fuzz(api)
    asyncio.run(asyncio.wait_for(go(), 300))


async def fuzz(api: Api) -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, str, int]] = []

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests(), st.sampled_from(["read", "operate", "admin", None]))
    def one(req: tuple[str, str, dict[str, str], Any], role: str | None) -> None:
        fut = asyncio.run_coroutine_threadsafe(check(api, req, role, seen), loop)
        fut.result(60)

    await loop.run_in_executor(None, one)
    assert len(seen) >= 300
    assert any(status < 300 for _, _, status in seen)


async def check(api: Api, req: tuple[str, str, dict[str, str], Any], role: str | None,
                seen: list[tuple[str, str, int]]) -> None:
    method, path, query, body = req
    before = await snapshot(api.registry)
    headers = api.auth(role)
    timeout = aiohttp.ClientTimeout(total=20)
    kwargs: dict[str, Any] = {"headers": headers, "params": query, "timeout": timeout}
    if body is not None:
        kwargs["json"] = body
    async with api.http.request(method, api.url + path, **kwargs) as resp:
        text = await resp.text()
        status = resp.status
    seen.append((method, path, status))
    assert status < 500, (method, path, query, body, status, text)
    if status >= 400:
        assert json.loads(text)["error"]["code"] == status
        assert await snapshot(api.registry) == before, (method, path, query, body, text)

