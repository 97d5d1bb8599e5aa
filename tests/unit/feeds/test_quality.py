import pytest

from gateway.feeds.quality import quality_score, symbol_ok

DUST = 10  # 0.0001 in lots of 0.00001
MAX = 100_000_000  # 1,000,000 in ticks of 0.01


@pytest.mark.parametrize(
    ("price", "qty", "symbol", "score"),
    [
        (1_650_000, 10_000, True, 100),
        (0, 10_000, True, 70),
        (-5, 10_000, True, 70),
        (1_650_000, 0, True, 60),  # non-positive size is also dust: −30 −10
        (1_650_000, 5, True, 90),  # dust
        (200_000_000, 10_000, True, 80),  # > 1,000,000
        (1_650_000, 10_000, False, 80),
        (0, 0, False, 10),
        (-1, -1, False, 10),
    ],
)
def test_score_table_from_seed_000(price: int, qty: int, symbol: bool, score: int) -> None:
    assert quality_score(price, qty, symbol, DUST, MAX) == score


def test_score_saturates_at_zero() -> None:
    assert quality_score(-1, -1, False, DUST, -10) == 0


@pytest.mark.parametrize(
    ("symbol", "ok"),
    [
        ("BTC-USD", True),
        ("BTCUSDT", True),
        ("BTC/USD", True),
        ("btc_krw", True),
        ("", False),
        ("BTC USD", False),
        ("-BTC", False),
    ],
)
def test_symbol_check(symbol: str, ok: bool) -> None:
    assert symbol_ok(symbol) is ok
