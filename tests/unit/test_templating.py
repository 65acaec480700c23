"""The templates' pure core: the resource and its validation, confd's functions over a
snapshot, the min_entries guard, the sandboxed render, where a template applies."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unitctl.errors import UsageError
from unitctl.templating.functions import Functions, HeldBack, Snapshot, TemplateReadError
from unitctl.templating.plan import Status, allowed, applies
from unitctl.templating.render import check_syntax, render
from unitctl.templating.resource import TemplateResource, decode, encode, from_mapping, from_toml

segment = st.text("abcxyz0129-_.", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
paths = st.lists(segment, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p))
datasets = st.dictionaries(paths, st.text("abc ", max_size=5), max_size=12)


def fns(data: dict[str, str], keys: tuple[str, ...] = ("/",),
        guards: dict[str, int] | None = None) -> Functions:
    return Functions(Snapshot(data), keys, (), guards or {})


def test_getv_with_and_without_a_default() -> None:
    f = fns({"/a/b": "1"})
    assert f.getv("/a/b") == "1" and f.getv("/a/b/") == "1"
    assert f.getv("/a/x", "dflt") == "dflt"
    with pytest.raises(TemplateReadError, match="key not found: /a/x"):
        f.getv("/a/x")


def test_a_key_outside_the_declared_prefixes_is_an_error_naming_it() -> None:
    with pytest.raises(TemplateReadError, match="/other is not under the template's keys"):
        fns({"/other": "1"}, keys=("/app",)).getv("/other")


def test_ls_and_lsdir_as_confd() -> None:
    f = fns({"/s/web/c1/1": "a", "/s/web/c2/1": "b", "/s/web/top": "t"})
    assert f.ls("/s/web") == ["c1", "c2", "top"]
    assert f.lsdir("/s/web") == ["c1", "c2"]
    assert f.ls("/nothing") == []


@given(datasets)
def test_getvs_is_the_values_of_the_matching_keys_in_key_order(data: dict[str, str]) -> None:
    f = fns(data)
    for head in {"/" + k.split("/")[1] for k in data}:
        got = f.gets(head + "/*")
        assert [p.key for p in got] == sorted(k for k in data
                                               if k.rpartition("/")[0] == head)
        assert f.getvs(head + "/*") == [data[p.key] for p in got]


@given(datasets, st.integers(0, 5))
def test_the_guard_holds_back_exactly_when_a_list_read_is_short(data: dict[str, str],
                                                                wanted: int) -> None:
    heads = {"/" + k.split("/")[1] for k in data} or {"/x"}
    for head in heads:
        count = len(fns(data).ls(head))
        f = fns(data, guards={head: wanted})
        if count < wanted:
            with pytest.raises(HeldBack):
                f.ls(head)
        else:
            assert len(f.ls(head)) == count


@given(st.dictionaries(st.sampled_from(["name", "dest", "mode", "keys", "on_unit", "x"]),
                       st.text(max_size=8)))
def test_bad_input_is_a_usage_error_never_another_exception(raw: dict[str, str]) -> None:
    with contextlib.suppress(UsageError):
        from_mapping({"template": "t", **raw})


def test_a_resource_round_trips_through_its_stored_form() -> None:
    res = from_mapping({"name": "lb", "template": "x", "dest": "/etc/lb/up.conf",
                        "mode": "0640", "owner": "www-data", "keys": ["/lb"],
                        "units": ["web@*.service"], "check_cmd": "/usr/sbin/nginx -t -c {{src}}",
                        "reload_cmd": "/bin/systemctl reload nginx",
                        "min_entries": {"web@*.service": 1}, "on_metadata": {"role": "lb"}})
    assert decode(encode(res)) == res
    assert res.check_argv("/etc/lb/.up.conf.unitctl-new") == [
        "/usr/sbin/nginx", "-t", "-c", "/etc/lb/.up.conf.unitctl-new"]
    assert res.reload_argv() == ["/bin/systemctl", "reload", "nginx"]


@pytest.mark.parametrize(("raw", "message"), [
    ({"dest": "etc/x"}, "absolute"), ({"dest": "/etc/../x"}, "without '..'"),
    ({"mode": "999"}, "octal"), ({"check_cmd": "nginx -t"}, "absolute program path"),
    ({"check_cmd": "/bin/x 'unclosed"}, "check_cmd"), ({"name": "a b"}, "bad name"),
    ({"reload_cmd": "/bin/x {{src}}"}, "belongs in check_cmd"),
    ({"min_entries": {"/a": -1}}, "whole number"), ({"bogus": 1}, "unknown field"),
])
def test_a_bad_field_is_named(raw: dict[str, object], message: str) -> None:
    base = {"name": "t", "template": "x", "dest": "/etc/x.conf"}
    with pytest.raises(UsageError, match=message):
        from_mapping({**base, **raw})


def test_toml_with_a_src_file_like_confd() -> None:
    res = from_toml('[template]\nname = "zoo"\nsrc = "zoo.cfg.j2"\ndest = "/etc/zk/zoo.cfg"\n'
                    'keys = ["/hosts"]\n', lambda src: f"from {src}\n")
    assert res.template == "from zoo.cfg.j2\n"
    with pytest.raises(UsageError, match="line 1"):
        from_toml("[template\n", str)
    with pytest.raises(UsageError, match="either src"):
        from_toml('[template]\nname = "a"\ndest = "/x"\n', str)


def test_render_is_sandboxed_strict_and_keeps_text_as_is() -> None:
    def res(text: str) -> TemplateResource:
        return from_mapping({"name": "t", "template": text, "dest": "/d", "keys": ["/a"]})
    snap = Snapshot({"/a/x": "<b>&"})
    assert render(res("{{ getv('/a/x') }}\n"), snap).data == b"<b>&\n"
    assert "undefined" in render(res("{{ nope }}"), snap).error
    unsafe = render(res("{{ ''.__class__.__mro__ }}"), snap)
    assert unsafe.error and not unsafe.data
    assert check_syntax("{% for %}").startswith("line 1")


def test_where_a_template_applies_and_which_directories_are_allowed() -> None:
    base = {"name": "t", "template": "x", "dest": "/etc/x"}
    assert applies(from_mapping(base), {}, [])
    on_meta = from_mapping({**base, "on_metadata": {"role": ["lb", "edge"]}})
    assert applies(on_meta, {"role": "edge"}, []) and not applies(on_meta, {}, [])
    on_unit = from_mapping({**base, "on_unit": "lb@*.service"})
    assert applies(on_unit, {}, ["lb@1.service"]) and not applies(on_unit, {}, ["x.service"])
    assert allowed("/etc/app", ["/etc/app"]) and allowed("/etc/app/sub", ["/etc/app/"])
    assert not allowed("/etc/application", ["/etc/app"]) and not allowed("/etc", [])


def test_a_status_round_trips() -> None:
    st_ = Status("check failed", "exit 1", 42, 1.5, "abc")
    assert Status.decode(st_.encode()) == st_


def test_template_dirs_option() -> None:
    from unitctl.config import load_config
    from unitctl.errors import ConfigError

    cfg = load_config("/nonexistent", env={"UNITCTL_TEMPLATE_DIRS": "/etc/zk/, /etc/lb"})
    assert cfg.template_dirs == ("/etc/zk", "/etc/lb")
    assert load_config("/nonexistent", env={}).template_dirs == ()
    with pytest.raises(ConfigError, match="template_dirs"):
        load_config("/nonexistent", env={"UNITCTL_TEMPLATE_DIRS": "etc/zk"})
