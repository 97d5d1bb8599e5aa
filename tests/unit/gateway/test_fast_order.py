"""`place_order_fast` is the schema's order path in one pass: whenever it answers, the generic
path (`SUBMIT_ORDER.parse` then `place_order`) gives the same command; it declines (None)
everything the generic path refuses, so refusals keep their codes and wording."""

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.enums import OrderType
from gateway.backend import PlaceOrder
from gateway.commands import place_order, place_order_fast
from gateway.errors import Rejected
from gateway.requests import SUBMIT_ORDER
from tests.unit.gateway.test_decoding import INSTRUMENTS
from tests.unit.gateway.test_decoding import ORDER as decoding_order

ENVELOPE = frozenset({"type", "user_id"})
ORDER = {"type": "submit_order", **decoding_order}


def _generic(message: dict[str, Any]) -> PlaceOrder | None:
    try:
        return place_order(7, SUBMIT_ORDER.parse(message, ENVELOPE), INSTRUMENTS.get)
    except Rejected:
        return None


def _fast(message: dict[str, Any]) -> PlaceOrder | None:
    return place_order_fast(7, message, INSTRUMENTS.get, ENVELOPE)


def test_a_plain_order_takes_the_fast_path_with_the_same_result() -> None:
    command = _fast(ORDER)
    assert command is not None
    assert command == _generic(ORDER)
    assert (command.price, command.qty, command.order_type) == (19001, 2, OrderType.LIMIT)


def test_market_orders_and_every_optional_field() -> None:
    message = {
        **ORDER,
        "order_type": "MARKET",
        "time_condition": "IOC",
        "volume_condition": "ALL",
        "client_order_id": "c-1",
    }
    assert _fast(message) == _generic(message) is not None
    assert _fast({**message, "price": None}) == _generic({**message, "price": None}) is not None


def test_huge_numbers_give_the_same_command_both_ways() -> None:
    """Beyond Decimal's default precision both paths still count exactly (the backend then
    refuses the magnitude, 1008)."""
    for change in ({"volume": 1e28}, {"price": 1e30}, {"volume": 10**40}):
        command = _fast({**ORDER, **change})
        assert command is not None and command == _generic({**ORDER, **change})
        assert max(command.qty, command.price) >= 10**28


def test_what_the_fast_path_declines() -> None:
    for change in (
        {"price": 3800.25},  # off the tick: the generic path answers 4005
        {"price": 0},
        {"price": -1},
        {"price": "3800.2"},
        {"price": float("nan")},
        {"price": True},
        {"volume": 1.5},
        {"volume": 0},
        {"direction": "buy"},  # accepted, but by the generic path
        {"direction": "UP"},
        {"account_id": 0},
        {"account_id": 3.0},
        {"instrument_id": "NOPE.X1"},
        {"instrument_id": "bad id"},
        {"client_order_id": ""},
        {"client_order_id": "has space"},
        {"prise": 1},
        {"price": None},  # a LIMIT order needs a price: 1008
    ):
        assert _fast({**ORDER, **change}) is None, change


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([3800.2, 3800.4, 3800.25, 0.2, 1, 2, 1e300, 3, 2**63 - 1, 2**63]),
    st.sampled_from(
        ["BUY", "SELL", "buy", "OPEN", "CLOSE_TODAY", "CLOSETODAY", "LIMIT", "MARKET", "IOC"]
    ),
    st.sampled_from(["GTC", "GFD", "ANY", "MIN", "ALL", "CFFEX.IF2501", "SHFE.cu2501", "x y"]),
    st.text(max_size=70),
)
KEYS = st.sampled_from(
    [
        "account_id",
        "instrument_id",
        "direction",
        "offset",
        "volume",
        "price",
        "order_type",
        "time_condition",
        "volume_condition",
        "client_order_id",
        "type",
        "user_id",
        "extra",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=6), st.booleans())
def test_fast_and_generic_agree(changes: dict[str, Any], drop: bool) -> None:
    message = {**ORDER, **changes}
    if drop:
        message = {k: v for k, v in message.items() if k not in changes or v is not None}
    fast = _fast(message)
    if fast is not None:
        assert fast == _generic(message)
