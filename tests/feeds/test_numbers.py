"""Exact ticks/lots from JSON numbers without Decimal on the hot path (gateway/feeds/numbers.py,
Scale's float and int paths): awkward values must convert exactly or be refused, never rounded."""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest

from gateway.feeds.config import FeedConfig
from gateway.feeds.instruments import OffTick, Scale
from gateway.feeds.numbers import loads_exact, risky
from gateway.feeds.records import Trade
from gateway.feeds.venues import VENUES


def units_or_none(convert: Callable[[Any], int], value: object) -> int | None:
    """The units, or None where the conversion refuses the value (OffTick)."""
    try:
        return convert(value)
    except OffTick:
        return None


AWKWARD = [
    ("0.1", "0.1", 1),
    ("0.3", "0.1", 3),  # 0.1 + 0.2 != 0.3 in floats
    ("2.675", "0.001", 2675),  # rounds to 2.67 with round(x, 2)
    ("1.005", "0.001", 1005),
    ("26005.5", "0.1", 260055),
    ("0.00079595", "0.00000001", 79595),
    ("0.00000001", "0.00000001", 1),  # repr is 1e-08
    ("49100000.0", "1", 49100000),
    ("999999999.99999", "0.00001", 99999999999999),  # 14 digits: still one multiplication
    ("1e-8", "0.00000001", 1),
    ("1E+2", "1", 100),
    ("123456.123456789", "0.000000001", 123456123456789),  # 15 digits
]


@pytest.mark.parametrize(("literal", "step", "units"), AWKWARD)
def test_json_numbers_reach_exact_units(literal: str, step: str, units: int) -> None:
    value = loads_exact(f'{{"p":{literal}}}')["p"]
    assert Scale(step).units(value) == units
    assert Scale(step).units(literal) == units  # the string path agrees
    assert Scale(step).units(Decimal(literal)) == units


@pytest.mark.parametrize(
    ("literal", "step"),
    [
        ("0.15", "0.1"),
        ("26005.55", "0.1"),
        ("0.000000015", "0.00000001"),
        ("1.0000000000001", "0.01"),
        ("12345.6789012345", "0.0001"),  # 15 digits, one past the grid
    ],
)
def test_off_grid_json_numbers_are_refused(literal: str, step: str) -> None:
    value = loads_exact(f'{{"p":{literal}}}')["p"]
    with pytest.raises(OffTick):
        Scale(step).units(value)


def test_long_literals_are_parsed_as_decimal_not_float() -> None:
    """0.10000000000000001 is the double 0.1: taken as a float it would pass as 1 tick."""
    text = '{"p":0.10000000000000001,"q":12345678.123456789}'
    assert risky(text)
    message = loads_exact(text)
    assert message["p"] == Decimal("0.10000000000000001")
    assert orjson.loads(text)["p"] == 0.1  # what a plain float parse would have believed
    with pytest.raises(OffTick):
        Scale("0.1").units(message["p"])
    assert Scale("0.000000001").units(message["q"]) == 12345678123456789
    assert risky('{"p":1.234567890123456e-5}')  # a long mantissa hides in exponent form too


def test_short_frames_take_the_fast_path() -> None:
    text = '{"p":26005.5,"q":0.00079595,"id":1700000000000123,"t":"2023-11-14T22:13:20.005000Z"}'
    assert not risky(text)
    assert loads_exact(text)["p"].__class__ is float


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 5e-324, True])
def test_non_numbers_and_subnormals_are_refused(value: object) -> None:
    scale = Scale("0.00000001")
    scale.units(1.0)  # 1 == 1.0 == True as a memo key: True must still be refused
    with pytest.raises(OffTick):
        scale.units(value)  # type: ignore[arg-type]


def test_ints_scale_exactly() -> None:
    assert Scale("0.01").units(49100000) == 4910000000
    assert Scale("1").units(7) == 7
    assert Scale("10").units(120) == 12
    with pytest.raises(OffTick):
        Scale("10").units(125)


def test_random_decimals_agree_with_decimal_arithmetic() -> None:
    """Random literals of up to 15 significant digits: float path == Decimal path."""
    rng = random.Random(8)
    for _ in range(2000):
        k = rng.randint(0, 10)
        digits = rng.randint(1, 15)
        mantissa = rng.randrange(1, 10**digits)
        literal = str(Decimal(mantissa).scaleb(-rng.randint(0, digits)))
        step = Scale(f"1e-{k}")
        value = loads_exact(f'{{"p":{literal}}}')["p"]
        assert units_or_none(step.units, value) == units_or_none(step.units, Decimal(literal)), (
            literal,
            k,
        )


@pytest.mark.parametrize("venue", ["KRAKEN", "UPBIT", "BITHUMB"])
def test_number_venues_keep_exact_prices(venue: str) -> None:
    """A trade with an awkward price and a long quantity literal through the whole pipeline."""
    feed = VENUES[venue](FeedConfig(venue, [], ["trade"], buffer_rate=0))
    if venue == "KRAKEN":
        frame = (
            '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
            '"price":26005.3,"qty":12345678.12345678,"ord_type":"market","trade_id":7,'
            '"timestamp":"2023-11-14T22:13:20.005000Z"}]}'
        )
        ticks, lots = 260053, 1234567812345678
    else:
        frame = (
            '{"type":"trade","code":"KRW-BTC","timestamp":1700000000005,'
            '"trade_timestamp":1700000000005,"trade_price":49105001.0,'
            '"trade_volume":12345678.12345678,"ask_bid":"BID","sequential_id":17000000000005}'
        )
        ticks, lots = 49105001, 1234567812345678
    assert risky(frame)  # the quantity has 16 digits: the Decimal path
    assert feed.feed(frame, 1) == 1
    (trade,) = feed.take()
    assert isinstance(trade, Trade)
    assert (trade.price, trade.qty) == (ticks, lots)


@pytest.mark.parametrize(
    ("text", "step"),
    [
        ("16500.01", "0.01"),
        ("-1.25", "0.01"),
        ("1_0.5", "0.1"),  # float() and Decimal() both read underscores between digits
        (" 1.5\n", "0.1"),
        ("1.5\xa0", "0.1"),
        ("\u0661.5", "0.1"),  # an Arabic-Indic digit: both read it as 1
        ("1e-8", "0.00000001"),
        ("1.5E+2", "0.01"),
        ("0.000000015", "0.00000001"),  # off the grid
        ("16500.001", "0.01"),
        ("inf", "0.01"),
        ("nan", "0.01"),
        ("1e400", "0.01"),  # beyond a double: the Decimal path decides
        ("1e-310", "0.00000001"),  # a subnormal double
        ("999999999999999", "1"),  # 15 digits: the float path
        ("9999999999999999", "1"),  # 16 characters: not the float path
        ("0x10", "1"),
        ("", "1"),
    ],
)
def test_short_strings_agree_with_decimal(text: str, step: str) -> None:
    """Strings of ≤ 15 characters take Scale's float path: whatever it answers, the Decimal
    arithmetic of the literal answers too (units or OffTick)."""
    expected = units_or_none(Scale(step)._slow, text)
    scale = Scale(step)
    for _ in range(2):  # converted, then remembered
        assert units_or_none(scale.units, text) == expected, text


def test_random_short_strings_agree_with_decimal() -> None:
    rng = random.Random(15)
    for _ in range(3000):
        k = rng.randint(0, 9)
        literal = (
            f"{rng.randrange(10 ** rng.randint(1, 14))}.{rng.randrange(10 ** rng.randint(0, 12))}"
        )
        literal = literal[:15]
        step = Scale(f"1e-{k}")
        assert units_or_none(step.units, literal) == units_or_none(step._slow, literal), (
            literal,
            k,
        )
