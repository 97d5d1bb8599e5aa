"""Per-venue instrument tables: venue symbol → our instrument id, tick and lot sizes.

Venue numbers arrive as decimal strings (or, for venues that send JSON numbers, as `Decimal`
because those venues' JSON is parsed with `parse_float=Decimal`). They are converted to integer
ticks and lots exactly: a power-of-ten tick takes a string fast path, anything else `Decimal`.
A value that is not a whole number of ticks (lots) raises `OffTick`, which the parser counts
and rejects; floats are never involved.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation

from gateway.feeds.quality import symbol_ok


class OffTick(ValueError):
    """A price (quantity) that is not a whole number of ticks (lots), or not a number at all."""


def _decimals_of(step: Decimal) -> int | None:
    """k when step == 10**-k (k may be negative), else None (no fast path)."""
    sign, digits, exponent = step.normalize().as_tuple()
    if sign or digits != (1,) or not isinstance(exponent, int):
        return None
    return -exponent


MEMO_SIZE = 4096
"""Converted strings remembered per scale: trades print the same few prices over and over."""


class Scale:
    """Converts decimal strings to integer multiples of one step (a tick or a lot)."""

    __slots__ = ("_k", "_memo", "_pad", "_pads", "step")

    def __init__(self, step: str | Decimal) -> None:
        self.step = Decimal(step)
        if not self.step > 0:
            raise ValueError(f"step must be positive, got {step!r}")
        self._k = _decimals_of(self.step)
        k = self._k if self._k is not None and self._k >= 0 else -1
        self._pad = ["0" * (k - n) for n in range(k + 1)]  # zeros to append to n fraction digits
        self._pads = len(self._pad)
        self._memo: dict[str, int] = {}

    def units(self, value: str | Decimal) -> int:
        """The exact number of steps in `value`; raises OffTick when it is not whole."""
        units = self._memo.get(value)  # type: ignore[arg-type]
        if units is None:
            units = self._convert(value)
            if value.__class__ is str:
                if len(self._memo) >= MEMO_SIZE:
                    self._memo.clear()
                self._memo[value] = units  # type: ignore[index]
        return units

    def _convert(self, value: str | Decimal) -> int:
        if value.__class__ is str and self._pads:
            whole, _, frac = value.partition(".")
            digits = whole + frac
            if digits.isdigit() and digits.isascii() and whole:
                n = len(frac)
                if n < self._pads:
                    return int(digits + self._pad[n])
                k = self._k
                if frac[k:].strip("0"):  # type: ignore[misc]
                    raise OffTick(value)
                return int(whole + frac[:k])
        return self._slow(value)

    def _slow(self, value: str | Decimal) -> int:
        try:
            number = value if isinstance(value, Decimal) else Decimal(value)
            quotient = number / self.step
            if not quotient.is_finite() or quotient != quotient.to_integral_value():
                raise OffTick(str(value))
        except InvalidOperation as error:
            raise OffTick(str(value)) from error
        return int(quotient)

    def value(self, units: int) -> Decimal:
        """Back to a decimal (for display and tests)."""
        return self.step * units


class InstrumentSpec:
    """One external instrument: the venue's symbol, our id, and its tick and lot sizes."""

    __slots__ = (
        "dust_lots",
        "instrument_id",
        "lot",
        "max_price_ticks",
        "symbol",
        "symbol_valid",
        "tick",
        "venue",
    )

    def __init__(
        self,
        venue: str,
        symbol: str,
        tick: str,
        lot: str,
        *,
        instrument_id: str = "",
        dust: str = "0.0001",
        max_price: str = "1000000",
    ) -> None:
        self.venue = venue
        self.symbol = symbol
        self.instrument_id = instrument_id or f"{venue}.{symbol}"
        self.tick = Scale(tick)
        self.lot = Scale(lot)
        # reference/ingestion.md's quality thresholds in this instrument's integer units:
        # an integer qty is below `dust` iff it is below the ceiling of dust/lot (same for price)
        self.dust_lots = math.ceil(Decimal(dust) / self.lot.step)
        self.max_price_ticks = math.floor(Decimal(max_price) / self.tick.step)
        self.symbol_valid = symbol_ok(symbol)


class InstrumentTable:
    """The instruments of one venue, looked up by the venue's own symbol spelling."""

    def __init__(self, venue: str, specs: Iterable[InstrumentSpec] = ()) -> None:
        self.venue = venue
        self._by_symbol: dict[str, InstrumentSpec] = {}
        self._by_id: dict[str, InstrumentSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: InstrumentSpec) -> None:
        if spec.venue != self.venue:
            raise ValueError(f"{spec.instrument_id} does not belong to {self.venue}")
        self._by_symbol[spec.symbol] = spec
        self._by_id[spec.instrument_id] = spec

    def get(self, symbol: str) -> InstrumentSpec | None:
        return self._by_symbol.get(symbol)

    def get_function(self) -> Callable[[str], InstrumentSpec | None]:
        """`get` without the method call, for the per-message hot path (sees later `add`s)."""
        return self._by_symbol.get

    def symbol_of(self, instrument_id: str) -> str:
        return self._by_id[instrument_id].symbol

    def symbols(self) -> list[str]:
        return list(self._by_symbol)

    @classmethod
    def from_mapping(cls, venue: str, rows: Mapping[str, Mapping[str, str]]) -> InstrumentTable:
        """Build from config: `{symbol: {"tick": "0.01", "lot": "0.00001", ...}}`."""
        return cls(venue, (InstrumentSpec(venue, symbol, **row) for symbol, row in rows.items()))
