"""YAML documents whose mappings and lists remember where each value was written (pure).

:func:`load_documents` reads a multi-document YAML text with PyYAML's safe
loader; every mapping becomes a :class:`LocatedMap` and every list a
:class:`LocatedList`, which carry the :class:`Place` (file, line, column, 1-based)
of themselves, of each key and of each value. A Clusterfile's errors name
their place with them (``Clusterfile.yaml:12:7: ...``), as a compiler does.

Contract: a YAML syntax error, a duplicate key (which PyYAML would silently
keep the last of) or a non-string key raise :class:`~unitctl.errors.UsageError`
with the place; nothing else is refused here.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from unitctl.errors import UsageError


@dataclass(frozen=True, slots=True)
class Place:
    """Where something is written: a file name, a line and a column (1-based; 0 when
    unknown, and then not shown)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}" if self.column else \
            f"{self.file}:{self.line}"

    def refuse(self, message: str) -> UsageError:
        """The error for ``message`` at this place (raise it)."""
        return UsageError(f"{self}: {message}")


class LocatedMap(dict[str, t.Any]):
    """A mapping with the place of itself, of each key and of each value."""

    place: Place
    key_places: dict[str, Place]
    value_places: dict[str, Place]

    def key_place(self, key: str) -> Place:
        return self.key_places.get(key, self.place)

    def value_place(self, key: str) -> Place:
        return self.value_places.get(key, self.place)


class LocatedList(list[t.Any]):
    """A list with the place of itself and of each item."""

    place: Place
    item_places: list[Place]

    def item_place(self, index: int) -> Place:
        return self.item_places[index] if index < len(self.item_places) else self.place


def _place(file: str, node: yaml.Node) -> Place:
    mark = node.start_mark
    return Place(file, mark.line + 1, mark.column + 1)


class _Loader(yaml.SafeLoader):
    """The safe loader, building located mappings and lists."""

    filename = "<string>"


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[LocatedMap]:
    data = LocatedMap()
    data.place = _place(loader.filename, node)
    data.key_places, data.value_places = {}, {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        where = _place(loader.filename, key_node)
        if not isinstance(key, str):
            raise where.refuse(f"keys must be strings, not {key!r}")
        if key in data:
            raise where.refuse(f"duplicate key {key!r} (first at line "
                               f"{data.key_places[key].line})")
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_places[key] = where
        data.value_places[key] = _place(loader.filename, value_node)


def _construct_list(loader: _Loader, node: yaml.SequenceNode) -> Iterator[LocatedList]:
    data = LocatedList()
    data.place = _place(loader.filename, node)
    data.item_places = [_place(loader.filename, child) for child in node.value]
    yield data
    data.extend(loader.construct_object(child, deep=True) for child in node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_list)
# timestamps stay strings: a unit's env value "2024-01-01" is text, not a date


def _construct_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)


def load_documents(text: str, filename: str) -> list[tuple[Place, t.Any]]:
    """Every non-empty document of ``text`` with the place it starts at.

    Raises:
        UsageError: a YAML error, a duplicate or non-string key, at its place.
    """
    loader = _Loader(text)
    loader.filename = filename
    docs: list[tuple[Place, t.Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                docs.append((_place(filename, node), loader.construct_document(node)))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Place(filename, mark.line + 1, mark.column + 1) if mark else Place(filename)
        raise where.refuse(f"YAML error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise Place(filename).refuse(f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    return docs
