"""Identifiers as their own types, so a symbol is never passed where an order id belongs."""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

InstrumentId = NewType("InstrumentId", str)
"""``<SYMBOL>.<MARKET>``, e.g. ``BTCUSDT.SPOT``, ``BTCUSDT.USDM``, ``BTCUSD_PERP.COINM``."""
ClientOrderId = NewType("ClientOrderId", str)
VenueOrderId = NewType("VenueOrderId", int)
TradeId = NewType("TradeId", int)
StrategyId = NewType("StrategyId", str)


class Market(StrEnum):
    """Which Binance market an instrument trades on (BTCUSDT exists on spot and USD-M)."""

    SPOT = "SPOT"
    USDM = "USDM"
    COINM = "COINM"


def instrument_id(symbol: str, market: Market | str = Market.SPOT) -> InstrumentId:
    """Build the canonical id; symbols are upper-cased as Binance prints them."""
    m = Market(market)
    sym = symbol.upper()
    if not sym or "." in sym:
        raise ValueError(f"invalid symbol {symbol!r}")
    return InstrumentId(f"{sym}.{m.value}")


def split_instrument_id(iid: str) -> tuple[str, Market]:
    """Inverse of :func:`instrument_id`; raises ValueError on a malformed id."""
    sym, dot, market = iid.rpartition(".")
    if not dot or not sym:
        raise ValueError(f"invalid instrument id {iid!r} (expected SYMBOL.MARKET)")
    return sym, Market(market)
