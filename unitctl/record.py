"""Frozen records that cost nothing to define: :class:`Frozen`, for the CLI's read path.

``@dataclass(frozen=True, slots=True)`` compiles each class's ``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__`` ... with ``exec`` when
its module is imported (about 0.8 ms a class, a fifth of a list verb's
start-up over the 30 of its path). A :class:`Frozen` subclass behaves as such
a dataclass does, and its definition costs what a plain class costs:

* it annotates its fields (their order is the annotations' order, as a
  dataclass's) and names them in ``__slots__`` (any order); its ``__init__``
  (written out, so type checkers read its signature) sets them with
  :func:`init`, the values in field order;
* ``==`` holds between two records of the same class with equal fields (a
  record of another class is ``NotImplemented``); the hash is that of the
  fields (a class may define its own ``__hash__``, as a dataclass may);
* ``repr`` is the dataclass one, ``Name(field=value, ...)``;
* assigning or deleting a field raises :class:`FrozenInstanceError` (an
  ``AttributeError``, as dataclasses' own is);
* it pickles and copies (``__getstate__``/``__setstate__``).

:func:`replace` is ``dataclasses.replace`` for them. What a dataclass has and
a :class:`Frozen` has not: ``dataclasses.fields`` and ``asdict`` (the classes
that need them stay dataclasses), and the ``__init__`` checks of a
``__post_init__``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Frozen")


class FrozenInstanceError(AttributeError):
    """A field of a :class:`Frozen` record was assigned or deleted."""


class Frozen:
    """The base of a frozen record (see the module docstring)."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    #: the fields' values of a record as a tuple (an ``operator.attrgetter``)
    _key: ClassVar[Callable[[Any], tuple[Any, ...]]]
    #: each field's slot setter, in order (they bypass ``__setattr__``)
    _setters: ClassVar[tuple[Callable[[Any, Any], None], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = tuple(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063 (no inspect)
        if set(fields) != set(cls.__dict__.get("__slots__", ())):
            raise TypeError(f"{cls.__qualname__}: __slots__ must name the annotated fields")
        cls._fields = fields
        cls._setters = tuple(cls.__dict__[name].__set__ for name in fields)
        key: Callable[[Any], tuple[Any, ...]]
        if len(fields) > 1:
            key = operator.attrgetter(*fields)
        elif fields:
            name = fields[0]
            key = lambda record: (getattr(record, name),)  # noqa: E731
        else:
            key = lambda record: ()  # noqa: E731
        cls._key = staticmethod(key)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(values(self))

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self.__class__.__qualname__}({body})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self) -> tuple[Any, ...]:
        return values(self)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        init(self, *state)


def init(record: Frozen, *values: object) -> None:
    """Set ``record``'s fields to ``values``, in field order (its ``__init__``)."""
    for set_field, value in zip(record._setters, values, strict=False):
        set_field(record, value)


def replace(record: R, **changes: Any) -> R:
    """A copy of ``record`` with the fields of ``changes`` changed (``dataclasses.replace``)."""
    copy = object.__new__(type(record))
    init(copy, *(changes.pop(name) if name in changes else getattr(record, name)
                 for name in record._fields))
    if changes:
        raise TypeError(f"{type(record).__qualname__} has no field {sorted(changes)[0]!r}")
    return copy


def values(record: Frozen) -> tuple[Any, ...]:
    """``record``'s fields' values, in field order."""
    return type(record)._key(record)
