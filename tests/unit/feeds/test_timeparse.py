import pytest

from gateway.feeds.timeparse import iso_to_ns


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2014-11-07T08:19:27.028459Z", 1415348367_028459000),
        ("2014-11-07T08:19:27Z", 1415348367_000000000),
        ("2023-10-06T17:35:55.440295+00:00", 1696613755_440295000),
        ("1970-01-01T00:00:00.000000001Z", 1),
    ],
)
def test_exact_nanoseconds(text: str, ns: int) -> None:
    assert iso_to_ns(text) == ns


@pytest.mark.parametrize(
    "text", ["2014-11-07T08:19:27+09:00", "2014-11-07T08:19:27.1234567890Z", "x"]
)
def test_rejects_non_utc_and_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        iso_to_ns(text)
