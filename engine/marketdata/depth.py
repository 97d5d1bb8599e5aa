"""Aggregated depth (price level → resting lots) maintained from matching's BookChanged events."""

from __future__ import annotations

from sortedcontainers import SortedDict

from engine.enums import Side


class Depth:
    """Both sides of one instrument's book by level; bids are kept under negated keys."""

    __slots__ = ("_asks", "_bids")

    def __init__(self) -> None:
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()

    def apply(self, side: Side, price: int, qty: int) -> None:
        """Set the resting lots at one level; 0 removes the level."""
        levels, key = (self._bids, -price) if side is Side.BUY else (self._asks, price)
        if qty > 0:
            levels[key] = qty
        else:
            levels.pop(key, None)

    def levels(self, count: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best `count` (price, lots) levels of each side, best first."""
        bids = [(-key, qty) for key, qty in self._bids.items()[:count]]
        asks = list(self._asks.items()[:count])
        return bids, asks

    @property
    def best_bid(self) -> tuple[int, int] | None:
        if not self._bids:
            return None
        key, qty = self._bids.peekitem(0)
        return -key, qty

    @property
    def best_ask(self) -> tuple[int, int] | None:
        if not self._asks:
            return None
        return self._asks.peekitem(0)

    def export_levels(self) -> dict[str, list[list[int]]]:
        """Every level of both sides, best first (for checkpoints)."""
        bids, asks = self.levels(max(len(self._bids), len(self._asks)))
        return {"bids": [list(level) for level in bids], "asks": [list(level) for level in asks]}

    @classmethod
    def from_levels(cls, levels: dict[str, list[list[int]]]) -> Depth:
        depth = cls()
        for price, qty in levels["bids"]:
            depth.apply(Side.BUY, price, qty)
        for price, qty in levels["asks"]:
            depth.apply(Side.SELL, price, qty)
        return depth

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
