"""fleet's v1 API against a real server over a real etcd and real agents.

Ports of fleet's API functional tests (functional/machines_test.go:
TestMachinesList, TestMachinesListBadNextPageToken, TestMachinesPatchAddModify,
TestMachinesPatchDelete, TestMachinesPatchBad) plus unit CRUD.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.integration.apiharness import Api, api_cluster, snapshot
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import eventually

pytestmark = pytest.mark.etcd
SERVICE = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep infinity"}]


def run(etcd: EtcdCluster, prefix: str, body: Callable[[Api], Awaitable[None]],
        machines: int = 2, metadata: list[dict[str, str]] | None = None) -> None:
    async def go() -> None:
        async with api_cluster(etcd, prefix, machines, metadata) as api:
            await body(api)
    asyncio.run(asyncio.wait_for(go(), 60))


def hostnames(api: Api) -> list[dict[str, str]]:
    return [{"hostname": f"smoke{mid}"} for mid in api.sim.machines]


def test_machines_list(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        status, ctype, data = await api.call("GET", "/fleet/v1/machines", "read")
        assert status == 200 and ctype.startswith("application/json")
        assert sorted(m["id"] for m in data["machines"]) == sorted(api.sim.machines)
        assert all(m["primaryIP"].startswith("10.0.0.") for m in data["machines"])
        assert "nextPageToken" not in data
    run(etcd, key_prefix, body)


def test_machines_list_bad_next_page_token(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        status, ctype, data = await api.call("GET", "/fleet/v1/machines?nextPageToken=EwBMLg==",
                                             "read")
        assert status == 400 and ctype.startswith("application/json")
        assert data == {"error": {"code": 400, "message": "token limit must be 100"}}
        status, _, data = await api.call("GET", "/fleet/v1/units?nextPageToken=%%%", "read")
        assert status == 400 and "page token" in data["error"]["message"]
    run(etcd, key_prefix, body, machines=1)


def _op(op: str, machine: str, key: str, value: str = "") -> dict[str, object]:
    return {"op": op, "path": f"/{machine}/metadata/{key}", "Value": {"value": value}}


def test_machines_patch_add_modify(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        m0, m1 = sorted(api.sim.machines)
        ops = [_op("add", m0, "foo", "bar"), _op("replace", m1, "ping", "splat")]
        status, ctype, _ = await api.call("PATCH", "/fleet/v1/machines", body=ops)
        assert status == 204 and ctype.startswith("application/json")
        _, _, page = await api.call("GET", "/fleet/v1/machines", "read")
        got = {m["id"]: m for m in page["machines"]}
        assert got[m0]["metadata"] == {"foo": "bar", "hostname": f"smoke{m0}"}
        assert got[m1]["metadata"] == {"ping": "splat", "hostname": f"smoke{m1}"}
        assert got[m0]["primaryIP"] == api.sim.machines[m0].machine.public_ip
        # modify: replace an existing value
        await api.call("PATCH", "/fleet/v1/machines", body=[_op("replace", m0, "foo", "baz")])
        _, _, page = await api.call("GET", "/fleet/v1/machines", "read")
        assert {m["id"]: m for m in page["machines"]}[m0]["metadata"]["foo"] == "baz"
    run(etcd, key_prefix, body, metadata=[{"hostname": f"smoke{i:08x}" + "0" * 24}
                                          for i in (1, 2)])


def test_machines_patch_delete(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        m0, m1 = sorted(api.sim.machines)
        await api.call("PATCH", "/fleet/v1/machines",
                       body=[_op("add", m0, "foo", "bar"), _op("add", m1, "ping", "splat")])
        status, ctype, _ = await api.call("PATCH", "/fleet/v1/machines",
                                          body=[_op("remove", m0, "foo"),
                                                _op("remove", m1, "ping")])
        assert status == 204 and ctype.startswith("application/json")
        _, _, page = await api.call("GET", "/fleet/v1/machines", "read")
        got = {m["id"]: m["metadata"] for m in page["machines"]}
        assert got == {m0: {"hostname": f"smoke{m0}"}, m1: {"hostname": f"smoke{m1}"}}
    run(etcd, key_prefix, body, metadata=[{"hostname": f"smoke{i:08x}" + "0" * 24}
                                          for i in (1, 2)])


def test_machines_patch_bad(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        (m0,) = api.sim.machines
        before = await snapshot(api.registry)
        cases: dict[str, list[dict[str, object]]] = {
            "invalid op: expect add, remove, or replace": [_op("noop", m0, "foo", "bar")],
            "machine metadata path invalid": [{"op": "add", "path": f"/{m0}/foo",
                                               "Value": {"value": "bar"}}],
            "invalid value: add and replace require a value": [_op("add", m0, "foo")],
        }
        for message, bad in cases.items():
            # a good op first: nothing is applied when any op is bad
            status, ctype, data = await api.call(
                "PATCH", "/fleet/v1/machines", body=[_op("add", m0, "ok", "1"), *bad])
            assert status == 400 and ctype.startswith("application/json")
            assert data["error"] == {"code": 400, "message": message}
        status, _, data = await api.call("PATCH", "/fleet/v1/machines", raw=b"{not json")
        assert status == 400 and "unable to decode body" in data["error"]["message"]
        assert await snapshot(api.registry) == before
    run(etcd, key_prefix, body, machines=1)


def test_unit_crud(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        path = "/fleet/v1/units/hello.service"
        status, _, _ = await api.call("PUT", path, body={"desiredState": "launched",
                                                         "options": SERVICE})
        assert status == 201
        status, _, unit = await api.call("GET", path, "read")
        assert status == 200
        assert unit["name"] == "hello.service" and unit["desiredState"] == "launched"
        assert unit["options"] == SERVICE

        async def launched() -> bool:
            _, _, u = await api.call("GET", path, "read")
            return bool(u.get("currentState") == "launched" and u.get("machineID"))
        await eventually(launched)
        assert any("hello.service" in units for units in [api.sim.running()])
        status, _, _ = await api.call("PUT", path, "operate", body={"desiredState": "loaded"})
        assert status == 204
        rec = await api.registry.get_unit("hello.service")
        assert rec is not None and rec.desired.value == "loaded"
        _, _, page = await api.call("GET", "/fleet/v1/units", "read")
        assert [u["name"] for u in page["units"]] == ["hello.service"]
        _, _, states = await api.call("GET", "/fleet/v1/state?unitName=hello.service", "read")
        assert all(s["name"] == "hello.service" for s in states.get("states", []))
        status, _, _ = await api.call("DELETE", path)
        assert status == 204
        status, _, data = await api.call("GET", path, "read")
        assert status == 404 and data["error"]["message"] == "unit does not exist"
        status, _, _ = await api.call("DELETE", path)
        assert status == 404
    run(etcd, key_prefix, body)


def test_unit_put_bad_input_changes_nothing(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        await api.call("PUT", "/fleet/v1/units/a.service", body={"options": SERVICE})
        before = await snapshot(api.registry)
        cases = [
            ("/fleet/v1/units/b.service", {"desiredState": "launched"}, 409,
             "unit does not exist and options field empty"),
            ("/fleet/v1/units/a.service", {}, 409,
             "must provide DesiredState to update existing unit"),
            ("/fleet/v1/units/a.service", {"desiredState": "running"}, 400,
             "invalid desiredState 'running': expected inactive, loaded or launched"),
            ("/fleet/v1/units/a.service", {"name": "c.service", "desiredState": "loaded"}, 400,
             "name in URL 'a.service' differs from unit name in request body 'c.service'"),
            ("/fleet/v1/units/x@.service", {"desiredState": "launched", "options": SERVICE},
             400, "cannot activate template 'x@.service'"),
            ("/fleet/v1/units/bad", {"options": SERVICE}, 400, None),
            ("/fleet/v1/units/d.service", {"options": [{"section": "Service"}]}, 400,
             "options[0] must be an object with string section, name and value"),
        ]
        for path, req, code, message in cases:
            status, _, data = await api.call("PUT", path, body=req)
            assert (status, data["error"]["code"]) == (code, code), (path, req, data)
            if message is not None:
                assert data["error"]["message"] == message
        status, _, data = await api.call("PUT", "/fleet/v1/units/a.service", raw=b"{}",
                                         headers={"Content-Type": "text/plain"})
        assert status == 415
        assert await snapshot(api.registry) == before
    run(etcd, key_prefix, body, machines=1)


def test_roles_and_audit(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        path = "/fleet/v1/units/r.service"
        assert (await api.call("GET", "/fleet/v1/units", None))[0] == 401
        bad = {"Authorization": "Bearer uct_forged"}
        assert (await api.call("GET", "/fleet/v1/units", None, headers=bad))[0] == 401
        before = await snapshot(api.registry)
        create = {"desiredState": "loaded", "options": SERVICE}
        status, _, data = await api.call("PUT", path, "read", body=create)
        assert status == 403 and "needs the operate role" in data["error"]["message"]
        status, _, data = await api.call("PUT", path, "operate", body=create)
        assert status == 403 and "needs the admin role" in data["error"]["message"]
        assert await snapshot(api.registry) == before
        assert await api.registry.audit.recent() == []
        assert (await api.call("PUT", path, "admin", body=create))[0] == 201
        assert (await api.call("PUT", path, "operate", body={"desiredState": "inactive"}))[0] \
            == 204
        entries = await api.registry.audit.recent()
        assert [(e.role, e.method, e.path, e.status) for e in entries] == [
            ("admin", "PUT", path, 201), ("operate", "PUT", path, 204)]
        assert entries[0].who.startswith("token:") and "test-admin" in entries[0].who
        # a revoked token is refused at once
        admin = (await api.registry.tokens.list())[-1]
        await api.registry.tokens.revoke(admin.id)
        assert (await api.call("GET", "/fleet/v1/units", "admin"))[0] == 401
    run(etcd, key_prefix, body, machines=1)
