"""One connector class per venue, all on `gateway.feeds.connector.Connector`."""

from gateway.feeds.connector import Connector
from gateway.feeds.venues.binance import BinanceFutures, BinanceSpot
from gateway.feeds.venues.bybit import Bybit, BybitLinear
from gateway.feeds.venues.coinbase import Coinbase
from gateway.feeds.venues.coinone import Coinone
from gateway.feeds.venues.gateio import GateIo
from gateway.feeds.venues.korbit import Korbit
from gateway.feeds.venues.kraken import Kraken
from gateway.feeds.venues.okx import Okx
from gateway.feeds.venues.upbit import Bithumb, Upbit

VENUES: dict[str, type[Connector]] = {
    cls.venue: cls
    for cls in (
        BinanceSpot,
        BinanceFutures,
        Coinbase,
        Okx,
        Bybit,
        BybitLinear,
        Kraken,
        GateIo,
        Upbit,
        Bithumb,
        Korbit,
        Coinone,
    )
}
"""Venue name (the instrument id prefix) → connector class."""

__all__ = ["VENUES", *(cls.__name__ for cls in VENUES.values())]
