"""Immutable, past-tense events: everything that happened, as the log records it.

Every event carries ``seq`` (its position in the log; assigned by the log writer,
0 before it is written), ``ts_event`` (venue time, int ns) and ``ts_recv`` (local
receive time, int ns). Prices and quantities are e8 integers (see engine.fixed).

Field order is part of the contract: the hot kinds are built positionally by the
log reader, so new fields go at the end and get a default.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar, Union

import msgspec

from engine.identifiers import InstrumentId

Level = tuple[int, int]
"""One book level: (price e8, quantity e8). Quantity 0 in a diff deletes the level."""


class Kind(IntEnum):
    """Stable codes of the log's ``kind`` column. Never renumber: logs outlive code."""

    TRADE = 1
    AGG_TRADE = 2
    BOOK_DELTA = 3
    BOOK_SNAPSHOT = 4
    QUOTE = 5
    MARK_PRICE = 6
    FUNDING_RATE = 7
    KLINE = 8
    LIQUIDATION = 9
    INSTRUMENT = 10
    BOOK_GAP = 11
    SIGNAL = 20
    TIMER = 21
    RUN_STARTED = 30
    RUN_FINISHED = 31


class Event(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="type"):
    """Base of every event; ``kind`` is the class's stable log code."""

    seq: int
    ts_event: int
    ts_recv: int
    instrument: InstrumentId
    kind: ClassVar[Kind]


# --------------------------------------------------------------------------- market data


class TradeReceived(Event, frozen=True, gc=False):
    """A raw trade (``@trade``); ``ts_event`` is the trade time ``T``."""

    kind: ClassVar[Kind] = Kind.TRADE
    price: int
    qty: int
    trade_id: int
    buyer_maker: bool


class AggTradeReceived(Event, frozen=True, gc=False):
    """An aggregate trade (``@aggTrade`` or REST aggTrades); ``ts_event`` is ``T``."""

    kind: ClassVar[Kind] = Kind.AGG_TRADE
    price: int
    qty: int
    agg_id: int
    first_trade_id: int
    last_trade_id: int
    buyer_maker: bool


class BookDeltaReceived(Event, frozen=True, gc=False):
    """A diff-depth message. ``prev_update_id`` is futures' ``pu``; -1 on spot."""

    kind: ClassVar[Kind] = Kind.BOOK_DELTA
    first_update_id: int
    last_update_id: int
    prev_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class BookSnapshotReceived(Event, frozen=True, gc=False):
    """A full book at ``last_update_id``: a REST depth snapshot or a partial-depth stream.

    ``partial`` is True for ``depth5/10/20`` stream messages (top levels only,
    levels beyond them unknown), False for a REST snapshot the local book is
    rebuilt from.
    """

    kind: ClassVar[Kind] = Kind.BOOK_SNAPSHOT
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    partial: bool = False


class QuoteReceived(Event, frozen=True, gc=False):
    """A ``bookTicker``. Spot carries no event time: there ``ts_event == ts_recv``."""

    kind: ClassVar[Kind] = Kind.QUOTE
    update_id: int
    bid_price: int
    bid_qty: int
    ask_price: int
    ask_qty: int


class MarkPriceReceived(Event, frozen=True, gc=False):
    """Futures ``markPrice`` stream: mark, index, settle estimate and funding."""

    kind: ClassVar[Kind] = Kind.MARK_PRICE
    mark_price: int
    index_price: int
    estimated_settle_price: int
    funding_rate: int
    next_funding_time: int


class FundingRateReceived(Event, frozen=True, gc=False):
    """A settled funding rate (e8, signed) at ``ts_event`` = fundingTime."""

    kind: ClassVar[Kind] = Kind.FUNDING_RATE
    funding_rate: int
    mark_price: int = 0


class KlineReceived(Event, frozen=True, gc=False):
    """A candle. ``ts_event`` is the message time; open/close times are in ns."""

    kind: ClassVar[Kind] = Kind.KLINE
    interval: str
    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int
    taker_buy_volume: int
    taker_buy_quote_volume: int
    closed: bool


class LiquidationReceived(Event, frozen=True, gc=False):
    """Futures ``forceOrder``: a liquidation order and its fill state."""

    kind: ClassVar[Kind] = Kind.LIQUIDATION
    side: str
    price: int
    qty: int
    avg_price: int
    filled_qty: int
    status: str


class InstrumentUpdated(Event, frozen=True, gc=False):
    """One symbol of an ``exchangeInfo`` response, kept verbatim in ``raw`` (JSON)."""

    kind: ClassVar[Kind] = Kind.INSTRUMENT
    raw: str


class BookGapDetected(Event, frozen=True, gc=False):
    """The diff sequence broke: the local book is invalid until resynced."""

    kind: ClassVar[Kind] = Kind.BOOK_GAP
    last_update_id: int
    next_first_update_id: int
    reason: str


# --------------------------------------------------------------------------- run events


class SignalEmitted(Event, frozen=True, gc=False):
    """A strategy's signal (a feature value or decision); floats are allowed here."""

    kind: ClassVar[Kind] = Kind.SIGNAL
    strategy: str
    name: str
    value: float


class TimerFired(Event, frozen=True, gc=False):
    """A timer a strategy asked for came due."""

    kind: ClassVar[Kind] = Kind.TIMER
    name: str


class RunStarted(Event, frozen=True, gc=False):
    """First event of a run's output log: what ran, on what, with which config."""

    kind: ClassVar[Kind] = Kind.RUN_STARTED
    config_json: str
    input_digest: str


class RunFinished(Event, frozen=True, gc=False):
    """Last event of a run's output log."""

    kind: ClassVar[Kind] = Kind.RUN_FINISHED
    events_in: int


AnyEvent = Union[
    TradeReceived,
    AggTradeReceived,
    BookDeltaReceived,
    BookSnapshotReceived,
    QuoteReceived,
    MarkPriceReceived,
    FundingRateReceived,
    KlineReceived,
    LiquidationReceived,
    InstrumentUpdated,
    BookGapDetected,
    SignalEmitted,
    TimerFired,
    RunStarted,
    RunFinished,
]

EVENT_TYPES: tuple[type[Event], ...] = AnyEvent.__args__  # type: ignore[attr-defined]
CLASS_OF_KIND: dict[int, type[Event]] = {cls.kind: cls for cls in EVENT_TYPES}
MARKET_KINDS = frozenset(
    {
        Kind.TRADE,
        Kind.AGG_TRADE,
        Kind.BOOK_DELTA,
        Kind.BOOK_SNAPSHOT,
        Kind.QUOTE,
        Kind.MARK_PRICE,
        Kind.FUNDING_RATE,
        Kind.KLINE,
        Kind.LIQUIDATION,
        Kind.INSTRUMENT,
        Kind.BOOK_GAP,
    }
)


def with_seq(event: Event, seq: int) -> Event:
    """Return the event with its log position set (events are frozen)."""
    return msgspec.structs.replace(event, seq=seq)
