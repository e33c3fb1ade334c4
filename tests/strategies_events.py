"""Hypothesis strategies for every event kind in engine/events.py (reusable by any test).

Values stay inside what the log stores exactly: ints in int64 (prices and
quantities non-negative e8, extremes included), finite floats, any Unicode text
(no lone surrogates: not UTF-8). Events carry ``seq=0``; the log writer assigns it.

Market-data kinds have hand-written strategies (e8 semantics); any other event
class (venue/order events, future additions) gets one derived from its field types,
so a new event type is covered the day it is added.
"""

from __future__ import annotations

import types
import typing
from enum import Enum
from typing import Any

import msgspec
from hypothesis import strategies as st

from engine.events import (
    EVENT_TYPES,
    AggTradeReceived,
    BookDeltaReceived,
    BookGapDetected,
    BookSnapshotReceived,
    Event,
    FundingRateReceived,
    InstrumentUpdated,
    KlineReceived,
    LiquidationReceived,
    MarkPriceReceived,
    QuoteReceived,
    RunFinished,
    RunStarted,
    SignalEmitted,
    TimerFired,
    TradeReceived,
)
from engine.identifiers import InstrumentId

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)

INSTRUMENTS = ("BTCUSDT.SPOT", "ETHUSDT.SPOT", "BTCUSDT.USDM", "BTCUSD_PERP.COINM", "ÅÉ€.SPOT", "")
"""A small alphabet, including a non-ASCII id and the empty one (run events)."""

e8 = st.one_of(st.integers(0, I64_MAX), st.sampled_from([0, 1, 10**8, I64_MAX]))
"""A non-negative e8 price or quantity, extremes included."""
signed_e8 = st.integers(I64_MIN, I64_MAX)
ids = st.one_of(st.integers(0, I64_MAX), st.just(-1))
ts = st.integers(0, I64_MAX)
text = st.text(max_size=12)
instruments = st.sampled_from(INSTRUMENTS).map(InstrumentId)
levels = st.lists(st.tuples(e8, e8), max_size=5).map(tuple)
"""Book levels, empty included."""


def _common() -> dict[str, st.SearchStrategy[object]]:
    return {"seq": st.just(0), "ts_event": ts, "ts_recv": ts, "instrument": instruments}


def _kind(cls: type[Event], **fields: st.SearchStrategy[object]) -> st.SearchStrategy[Event]:
    return st.builds(cls, **_common(), **fields)


def strategy_for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for a field annotation: int64 ints, finite floats, text, enums, tuples, unions, Structs."""
    if tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(I64_MIN, I64_MAX)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is str:
        return text
    if hasattr(tp, "__supertype__"):  # typing.NewType
        return strategy_for_type(tp.__supertype__)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return struct_strategy(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(strategy_for_type(args[0]), max_size=4).map(tuple)
    if origin is tuple:
        return st.tuples(*(strategy_for_type(a) for a in args))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for_type(a) for a in args))
    raise TypeError(f"no strategy for field type {tp!r}; extend tests/strategies_events.py")


def struct_strategy(cls: type[msgspec.Struct], **overrides: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Build ``cls`` from strategies for each of its fields (``overrides`` win)."""
    fields = {f.name: overrides.get(f.name, strategy_for_type(f.type)) for f in msgspec.structs.fields(cls)}
    return st.builds(cls, **fields)


EVENT_STRATEGIES: dict[type[Event], st.SearchStrategy[Event]] = {
    TradeReceived: _kind(TradeReceived, price=e8, qty=e8, trade_id=ids, buyer_maker=st.booleans()),
    AggTradeReceived: _kind(
        AggTradeReceived,
        price=e8,
        qty=e8,
        agg_id=ids,
        first_trade_id=ids,
        last_trade_id=ids,
        buyer_maker=st.booleans(),
    ),
    BookDeltaReceived: _kind(
        BookDeltaReceived,
        first_update_id=ids,
        last_update_id=ids,
        prev_update_id=ids,
        bids=levels,
        asks=levels,
    ),
    BookSnapshotReceived: _kind(
        BookSnapshotReceived, last_update_id=ids, bids=levels, asks=levels, partial=st.booleans()
    ),
    QuoteReceived: _kind(QuoteReceived, update_id=ids, bid_price=e8, bid_qty=e8, ask_price=e8, ask_qty=e8),
    MarkPriceReceived: _kind(
        MarkPriceReceived,
        mark_price=e8,
        index_price=e8,
        estimated_settle_price=e8,
        funding_rate=signed_e8,
        next_funding_time=ts,
    ),
    FundingRateReceived: _kind(FundingRateReceived, funding_rate=signed_e8, mark_price=e8),
    KlineReceived: _kind(
        KlineReceived,
        interval=st.sampled_from(["1s", "1m", "1h", "1d"]),
        open_time=ts,
        close_time=ts,
        open=e8,
        high=e8,
        low=e8,
        close=e8,
        volume=e8,
        quote_volume=e8,
        trades=st.integers(0, I64_MAX),
        taker_buy_volume=e8,
        taker_buy_quote_volume=e8,
        closed=st.booleans(),
    ),
    LiquidationReceived: _kind(
        LiquidationReceived,
        side=st.sampled_from(["BUY", "SELL"]),
        price=e8,
        qty=e8,
        avg_price=e8,
        filled_qty=e8,
        status=st.sampled_from(["NEW", "FILLED", "PARTIALLY_FILLED"]),
    ),
    InstrumentUpdated: _kind(InstrumentUpdated, raw=text),
    BookGapDetected: _kind(BookGapDetected, last_update_id=ids, next_first_update_id=ids, reason=text),
    SignalEmitted: _kind(
        SignalEmitted, strategy=text, name=text, value=st.floats(allow_nan=False, allow_infinity=False)
    ),
    TimerFired: _kind(TimerFired, name=text),
    RunStarted: _kind(RunStarted, config_json=text, input_digest=st.text("0123456789abcdef", max_size=64)),
    RunFinished: _kind(RunFinished, events_in=st.integers(0, I64_MAX)),
}

for _cls in EVENT_TYPES:
    if _cls not in EVENT_STRATEGIES:
        EVENT_STRATEGIES[_cls] = struct_strategy(_cls, **_common())


def events_strategy() -> st.SearchStrategy[Event]:
    """Any event of any kind (uniform over kinds), ``seq=0``."""
    return st.one_of(*EVENT_STRATEGIES.values())


def event_lists(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[list[Event]]:
    """Lists of mixed events, the shape log tests write."""
    return st.lists(events_strategy(), min_size=min_size, max_size=max_size)
