"""The fast positional constructors (engine/tuples.py) build exactly what the keyword ones do.

Every `new_*` of the event and command modules is checked against its class: same type, same
fields in the same order, equal to the keyword constructor's object, pickling unchanged. A
field added, removed or reordered in a class therefore shows up here, not in a consumer.
"""

from __future__ import annotations

import pickle
from types import ModuleType

import pytest

from engine.accounts import events as account_events
from engine.matching import commands as matching_commands
from engine.matching import events as matching_events
from engine.tuples import positional

MODULES = (matching_events, account_events, matching_commands)


def _class_name(constructor_name: str) -> str:
    """`new_trade_executed` → `TradeExecuted`."""
    return "".join(part.title() for part in constructor_name.removeprefix("new_").split("_"))


def _constructors(module: ModuleType) -> list[tuple[str, object]]:
    return [(name, value) for name, value in vars(module).items() if name.startswith("new_")]


CASES = [
    pytest.param(module, name, constructor, id=f"{module.__name__}.{name}")
    for module in MODULES
    for name, constructor in _constructors(module)
]


@pytest.mark.parametrize(("module", "name", "constructor"), CASES)
def test_constructor_builds_the_keyword_object(
    module: ModuleType, name: str, constructor: object
) -> None:
    cls = getattr(module, _class_name(name))
    values = tuple(1000 + i for i in range(len(cls._fields)))
    fast = constructor(values)  # type: ignore[operator]
    keyword = cls(**dict(zip(cls._fields, values, strict=True)))
    assert type(fast) is cls
    assert fast == keyword
    assert fast._asdict() == keyword._asdict()
    assert [getattr(fast, field) for field in cls._fields] == list(values)
    assert pickle.loads(pickle.dumps(fast)) == keyword


def test_every_matching_event_has_a_constructor() -> None:
    """The matching engine builds all its events through `new_*`, so every class needs one."""
    classes = [
        name
        for name, value in vars(matching_events).items()
        if isinstance(value, type)
        and issubclass(value, tuple)
        and value.__module__ == matching_events.__name__
    ]
    names = {_class_name(name) for name, _ in _constructors(matching_events)}
    assert classes and set(classes) == names


def test_positional_is_bound_to_its_class() -> None:
    new_changed = positional(matching_events.BookChanged)
    event = new_changed((1, 2, 3, 4, 5))
    assert isinstance(event, matching_events.BookChanged)
    assert event.qty == 4
    assert event != matching_events.PhaseChanged(1, 2, 3)
