"""Per-venue instrument tables: venue symbol → our instrument id, tick and lot sizes.

Venue numbers arrive as decimal strings, or, for venues that send JSON numbers, as ints,
floats whose `repr` is the venue's literal, or `Decimal`s when that cannot be guaranteed
(gateway/feeds/numbers.py). They are converted to integer ticks and lots exactly: a
power-of-ten step takes the float path below (a string of at most 15 characters is a literal of
at most 15 significant digits, so `float()` of it qualifies) or a digit-string path, anything
else `Decimal`. A value that is not a whole number of ticks (lots) raises `OffTick`, which the
parser counts and rejects. Every value `float()` accepts, `Decimal` accepts with the same value,
so the float path never admits a string the `Decimal` path would refuse.

A float f (literal L of ≤ 15 significant digits, step 10**-k) takes one multiplication:
n = round(f · 10**k). When L = m·10**-k is on the grid with |m| < 10**15, f·10**k is within
m·2**-52 < 0.5 of m, so n = m, and n / 10**k (both exact doubles, one correctly rounded
division) is the double nearest m·10**-k = L, i.e. f itself. When L is off the grid, n·10**-k
and L are distinct decimals of ≤ 15 significant digits, so their doubles differ (DBL_DIG) and
the check `n / 10**k == f` fails; the float then goes through its `repr` and the string path,
which raises `OffTick`. No float result is ever trusted without that exact check.
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


Number = str | int | float | Decimal
"""What a venue number arrives as (see the module docstring)."""

_SMALLEST_NORMAL = 2.2250738585072014e-308
_EXACT_UNITS = 10**15
"""Below this many units a float's units are found by one multiplication (see `convert`)."""

MEMO_SIZE = 4096
"""Converted values remembered per scale: trades print the same few prices over and over."""


class Scale:
    """Converts venue numbers to integer multiples of one step (a tick or a lot).

    `units(v)` is the whole API; the per-message path spells it `lookup(v) or convert(v)`,
    which is the same thing without a Python frame when the value is remembered. The memo holds
    no Decimal (equal numbers, equal units: one memo serves all) and no number equal to 0 or 1
    (`True == 1 == 1.0` as a dict key, and a bool must reach `_exact`, which refuses it), so a
    remembered value is never falsy and a lookup never answers for a bool.
    """

    __slots__ = ("_float_scale", "_k", "_memo", "_pad", "_pads", "lookup", "step")

    lookup: Callable[[Number], int | None]
    """The remembered units of a value, or None."""

    def __init__(self, step: str | Decimal) -> None:
        self.step = Decimal(step)
        if not self.step > 0:
            raise ValueError(f"step must be positive, got {step!r}")
        self._k = _decimals_of(self.step)
        k = self._k if self._k is not None and self._k >= 0 else -1
        self._pad = ["0" * (k - n) for n in range(k + 1)]  # zeros to append to n fraction digits
        self._pads = len(self._pad)
        self._float_scale = 10.0**k if 0 <= k <= 22 else 0.0  # 10**k is an exact double
        self._memo: dict[Number, int] = {}
        self.lookup = self._memo.get

    def units(self, value: Number) -> int:
        """The exact number of steps in `value`; raises OffTick when it is not whole."""
        return self.lookup(value) or self.convert(value)

    def convert(self, value: Number) -> int:
        """`units` of a value the memo does not hold; remembers it (see the class docstring).
        Short strings and floats take the float path here, in one frame; the rest `_exact`."""
        scale = self._float_scale
        cls = value.__class__
        if scale and ((cls is str and len(value) < 16) or cls is float):  # type: ignore[arg-type]
            try:
                number = float(value)
                units = round(number * scale)
            except (ValueError, OverflowError):  # not a number, NaN, infinity: `_exact` says
                units = self._exact(value)
            else:
                # exact: the product is within 0.5 of the true units, and only the units of
                # an on-grid value divide back to the very same double (module docstring)
                if not -_EXACT_UNITS < units < _EXACT_UNITS or units / scale != number:
                    units = self._exact(value)
        else:
            units = self._exact(value)
        if units and (cls is str or (cls is not Decimal and value != 1)):
            memo = self._memo
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[value] = units
        return units

    def _exact(self, value: Number) -> int:
        """Digit strings and ints exactly, floats through their literal, the rest `Decimal`."""
        cls = value.__class__
        if cls is float:
            if 0.0 < abs(value) < _SMALLEST_NORMAL:  # type: ignore[arg-type]
                raise OffTick(repr(value))  # subnormal: repr may not be the literal
            value = repr(value)  # the literal itself (gateway/feeds/numbers.py)
        elif cls is int and self._pads:
            return value * 10**self._k  # type: ignore[operator]
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

    def _slow(self, value: Number) -> int:
        if value.__class__ is bool:
            raise OffTick(str(value))
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


class _BySymbol(dict[str, "InstrumentSpec | None"]):
    """Symbol → spec, where subscripting an unknown symbol gives None and counts it: the
    per-message lookup is then one dict lookup in C (no Python frame)."""

    __slots__ = ("unknown",)

    def __init__(self) -> None:
        super().__init__()
        self.unknown = 0

    def __missing__(self, symbol: str) -> None:
        self.unknown += 1


class InstrumentTable:
    """The instruments of one venue, looked up by the venue's own symbol spelling."""

    def __init__(self, venue: str, specs: Iterable[InstrumentSpec] = ()) -> None:
        self.venue = venue
        self._by_symbol = _BySymbol()
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

    def lookup_function(self) -> Callable[[str], InstrumentSpec | None]:
        """`get` for the per-message hot path: no Python frame, sees later `add`s, and counts
        the symbols it did not know in `unknown`."""
        return self._by_symbol.__getitem__

    @property
    def unknown(self) -> int:
        """Lookups by `lookup_function` of symbols not in the table."""
        return self._by_symbol.unknown

    def symbol_of(self, instrument_id: str) -> str:
        return self._by_id[instrument_id].symbol

    def symbols(self) -> list[str]:
        return list(self._by_symbol)

    @classmethod
    def from_mapping(cls, venue: str, rows: Mapping[str, Mapping[str, str]]) -> InstrumentTable:
        """Build from config: `{symbol: {"tick": "0.01", "lot": "0.00001", ...}}`."""
        return cls(venue, (InstrumentSpec(venue, symbol, **row) for symbol, row in rows.items()))
