"""Fast positional constructors for the engine's NamedTuple records (events and commands).

A NamedTuple's generated `__new__` is a Python function: building an event through it costs
about 4,100 CPython instructions (callgrind, 3.11, dealloc included). `tuple.__new__(cls,
fields)` is C and builds the very same object (same type, attributes, equality, pickling)
for about 2,250; bound once as a method it saves the global lookup of `cls` too (measured:
`partial(tuple.__new__, cls)` ~2,570, `cls._make` ~3,000, a plain tuple ~800). The field
order stays the class's own: a constructor takes exactly `cls._fields`, in that order, and
tests/unit/engine/test_tuples.py checks every one against the keyword constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType
from typing import Any, TypeVar

T = TypeVar("T", bound=tuple)  # type: ignore[type-arg]


def positional(cls: type[T]) -> Callable[[tuple[Any, ...]], T]:
    """`cls` built from one tuple holding its fields in `cls._fields` order (no defaults)."""
    return MethodType(tuple.__new__, cls)  # type: ignore[arg-type]
