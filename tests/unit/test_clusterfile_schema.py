"""docs/clusterfile.schema.json against the loader: every example in the docs and
examples/ validates and loads, and both refuse an unknown key at every level.

The check is test-side (the subset of JSON Schema 2020-12 the schema uses), so
the schema needs no new dependency.
"""

from __future__ import annotations

import json
import re
import typing as t
from pathlib import Path

import pytest

from unitctl.bundle import spec as bspec
from unitctl.bundle.load import load_clusterfile
from unitctl.bundle.located import load_documents
from unitctl.errors import UsageError
from unitctl.templating import resource

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "clusterfile.schema.json").read_text())
TYPES: dict[str, t.Callable[[t.Any], bool]] = {
    "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _resolve(schema: dict[str, t.Any]) -> dict[str, t.Any]:
    while "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rpartition("/")[2]]
    return schema


def _object_ok(s: dict[str, t.Any], v: dict[str, t.Any]) -> bool:
    props = s.get("properties", {})
    extra = s.get("additionalProperties", True)
    names = s.get("propertyNames")
    return (all(k in v for k in s.get("required", []))
            and all(valid(props[k], x) if k in props else
                    (extra if isinstance(extra, bool) else valid(extra, x))
                    for k, x in v.items())
            and (names is None or all(valid(names, k) for k in v)))


def _string_ok(s: dict[str, t.Any], v: str) -> bool:
    return (len(v) >= s.get("minLength", 0)
            and ("pattern" not in s or re.search(s["pattern"], v) is not None))


def valid(schema: dict[str, t.Any], v: t.Any) -> bool:
    """Whether ``v`` validates against ``schema`` (the subset the schema uses)."""
    s = _resolve(schema)
    types = s.get("type")
    checks = [
        types is None or any(TYPES[x](v) for x in ([types] if isinstance(types, str)
                                                   else types)),
        "const" not in s or v == s["const"],
        "enum" not in s or v in s["enum"],
        "oneOf" not in s or sum(valid(x, v) for x in s["oneOf"]) == 1,
        "anyOf" not in s or any(valid(x, v) for x in s["anyOf"]),
        "not" not in s or not valid(s["not"], v),
        not isinstance(v, dict) or _object_ok(s, v),
        not isinstance(v, str) or _string_ok(s, v),
        not isinstance(v, list) or (s.get("minItems", 0) <= len(v) <= s.get("maxItems", 1 << 30)
                                    and all(valid(s.get("items", {}), x) for x in v)),
    ]
    return all(checks)


def _plain(v: t.Any) -> t.Any:
    """A located YAML value as plain JSON-like data."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _doc_examples() -> list[str]:
    text = (ROOT / "docs" / "clusterfile.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return [b for b in blocks if "apiVersion: unitctl.io/v1" in b]


EXAMPLES = [*_doc_examples(), (ROOT / "examples" / "Clusterfile.yaml").read_text()]


def test_the_docs_have_examples() -> None:
    assert len(_doc_examples()) >= 2


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_example_validates_against_the_schema_and_loads(text: str) -> None:
    for _, doc in load_documents(text, "example.yaml"):
        assert valid(SCHEMA, _plain(doc)), doc
    if "kind: Bundle" in text:
        bspec.parse_bundle(text, "example.yaml")


def test_the_example_clusterfile_renders() -> None:
    rendered = load_clusterfile(str(ROOT / "examples" / "Clusterfile.yaml"))
    assert {u.name for u in rendered.desired.units} >= {"web@1.service", "mongo.service"}


def test_the_schema_and_the_loader_allow_the_same_keys() -> None:
    defs = SCHEMA["$defs"]
    bundle = defs["bundle"]["properties"]
    assert set(bundle) == bspec.DOCUMENT_KEYS == set(defs["config"]["properties"])
    assert set(defs["metadata"]["properties"]) == bspec.METADATA_KEYS
    assert set(bundle["spec"]["properties"]) == bspec.BUNDLE_SPEC_KEYS
    assert set(defs["unit"]["properties"]) == bspec.UNIT_KEYS
    assert set(defs["template"]["properties"]) == resource.FIELDS | {"src"}
    assert set(defs["config"]["properties"]["spec"]["properties"]) == bspec.CONFIG_SPEC_KEYS
    assert defs["unit"]["properties"]["state"]["enum"] == ["inactive", "loaded", "launched"]
    assert defs["config"]["properties"]["spec"]["properties"]["strategy"]["enum"] == \
        list(bspec.STRATEGIES)


SAMPLE = """\
apiVersion: unitctl.io/v1
kind: Bundle
metadata:
  name: web
spec:
  env: {a: 1}
  units:
    - name: a.service
      body: "[Service]\\nExecStart=/bin/true\\n"
---
apiVersion: unitctl.io/v1
kind: Config
metadata:
  name: c
spec:
  unit: a.service
  data: "[Service]\\nExecStart=/bin/false\\n"
"""
#: (line after which an unknown key is inserted, its indentation)
LEVELS = [(1, ""), (3, "  "), (5, "  "), (8, "      "), (13, "  "), (15, "  ")]


@pytest.mark.parametrize(("after", "indent"), LEVELS)
def test_both_refuse_an_unknown_key_at_every_level(after: int, indent: str) -> None:
    lines = SAMPLE.splitlines(keepends=True)
    bad = "".join([*lines[:after], f"{indent}bogus: 1\n", *lines[after:]])
    docs = [_plain(d) for _, d in load_documents(bad, "bad.yaml")]
    assert not all(valid(SCHEMA, d) for d in docs)
    with pytest.raises(UsageError, match=rf"bad.yaml:{after + 1}:\d+: unknown key 'bogus'"):
        bspec.parse_bundle(bad, "bad.yaml")


def test_the_sample_itself_is_valid() -> None:
    assert all(valid(SCHEMA, _plain(d)) for _, d in load_documents(SAMPLE, "s.yaml"))
    bspec.parse_bundle(SAMPLE, "s.yaml")
