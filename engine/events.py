"""Immutable, past-tense events: everything that happened, as the log records it.

Every event carries ``seq`` (its position in the log; assigned by the log writer,
0 before it is written), ``ts_event`` (venue time, int ns) and ``ts_recv`` (local
receive time, int ns). Prices and quantities are e8 integers (see engine.fixed).

Field order is part of the contract: the hot kinds are built positionally by the
log reader, so new fields go at the end and get a default.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar, TypeAlias

import msgspec

from engine.identifiers import InstrumentId
from engine.orders import (
    AnyCommand,
    ContingencyType,
    ExpiryReason,
    ListOrderStatus,
    ListStatusType,
    OrderSide,
    OrderSnapshot,
    OrderStatus,
    OrderType,
    RejectReason,
    SelfTradePreventionMode,
    TimeInForce,
)

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
    COMMAND_ISSUED = 40
    # 41-59 reserved for commands and risk decisions (50-54 taken by engine.risk)
    RISK_APPROVED = 50
    RISK_DENIED = 51
    CIRCUIT_BREAKER_TRIPPED = 52
    KILL_SWITCH_ENGAGED = 53
    RISK_RESET = 54
    ORDER_ACCEPTED = 60
    ORDER_REJECTED = 61
    ORDER_FILLED = 62
    ORDER_CANCELED = 63
    ORDER_EXPIRED = 64
    ORDER_TRIGGERED = 65
    ORDER_TRADE_PREVENTED = 66
    ORDER_LIST_STATUS = 67
    BALANCE_UPDATED = 68
    CANCEL_REJECTED = 69
    ORDER_STATUS_REPORTED = 70
    FEED_STATUS = 80
    LATENCY_RECORDED = 81
    OPERATOR_REQUESTED = 82
    CLOCK_TICKED = 83


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


class FeedStatusChanged(Event, frozen=True, gc=False):
    """A live connection changed state: what the adapter saw, recorded as an input.

    ``stream`` names the connection (a stream name such as ``btcusdt@depth@100ms``, ``user``
    for the user data stream, ``rest``); ``status`` is one of ``connected``, ``disconnected``,
    ``reconnecting``, ``rotated``, ``resync_started``, ``resynced``, ``gap``, ``throttled``,
    ``banned``; ``detail`` says why in words. Written by live adapters into the session's
    input log so an audit replay sees outages exactly where the live run did.
    """

    kind: ClassVar[Kind] = Kind.FEED_STATUS
    stream: str
    status: str
    detail: str = ""


class LatencyRecorded(Event, frozen=True, gc=False):
    """One measured live latency, in wall-clock ns (an observation, never an input to decisions).

    ``metric``: ``tick_to_order`` (stream message received -> signed request bytes ready) or
    ``order_round_trip`` (request bytes sent -> venue answer parsed), ``feed_lag`` (venue
    ``E`` to local receipt). ``client_order_id`` ties order latencies to their order.
    """

    kind: ClassVar[Kind] = Kind.LATENCY_RECORDED
    metric: str
    value_ns: int
    client_order_id: str = ""


class OperatorRequested(Event, frozen=True, gc=False):
    """An operator asked a live session for ``action`` (``kill`` or ``reset``), recorded as an input.

    The kill switch can be pulled by a signal, a file or the dashboard; whichever it was,
    the session feeds this event to the kernel, so the risk engine reacts at a logged point
    of the input and an audit replay reproduces the kill exactly. ``origin`` says how it
    came (``signal``, ``file``, ``http``), ``reason`` is the operator's text.
    """

    kind: ClassVar[Kind] = Kind.OPERATOR_REQUESTED
    action: str
    origin: str = ""
    reason: str = ""


class ClockTicked(Event, frozen=True, gc=False):
    """A live session's clock reached ``ts_recv`` while no other input came: recorded as an input.

    It carries no market data. The kernel's time only moves with its inputs, so a timer or a
    simulated arrival due in a quiet market would otherwise wait for the next market event;
    the session writes this tick (only when something is due, never backwards) and feeds it,
    and the kernel runs everything due up to ``ts_recv``. Being in the input log, an audit
    replay runs those items at the same point. ``due`` is the kernel deadline the session
    woke up for (``ts_recv - due`` is the wake-up lag; information only, never read by the
    kernel). ``instrument`` is ``NO_INSTRUMENT``.
    """

    kind: ClassVar[Kind] = Kind.CLOCK_TICKED
    due: int = 0


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


# --------------------------------------------------------------------------- venue events
# What a venue (simulated or live) reports back: Binance's executionReport / listStatus /
# outboundAccountPosition, one class per execution type. Defined here rather than in
# engine.orders so they can be members of AnyEvent without an import cycle.
# ``exec_id`` is the report's ``I`` (increasing per venue); prices/quantities are e8 ints.


class OrderAccepted(Event, frozen=True, gc=False):
    """``x=NEW``: the order exists (``status`` NEW, or PENDING_NEW for a pending list leg).

    ``working_time`` is -1 until the order works (a stop before its trigger, a pending leg).
    """

    kind: ClassVar[Kind] = Kind.ORDER_ACCEPTED
    order_id: int
    client_order_id: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: int
    price: int
    stop_price: int
    quote_order_qty: int
    iceberg_qty: int
    order_list_id: int
    status: OrderStatus
    working_time: int
    stp_mode: SelfTradePreventionMode
    exec_id: int
    trailing_delta: int = 0


class OrderRejected(Event, frozen=True, gc=False):
    """A new order (or order list) was refused: Binance's error ``code``/``msg`` and reject reason ``r``."""

    kind: ClassVar[Kind] = Kind.ORDER_REJECTED
    client_order_id: str
    code: int
    msg: str
    reject_reason: RejectReason = RejectReason.NONE
    list_client_order_id: str = ""


class OrderFilled(Event, frozen=True, gc=False):
    """``x=TRADE``: one trade of our order. ``quote_qty`` = price x qty (``Y``); ``maker`` is ``m``."""

    kind: ClassVar[Kind] = Kind.ORDER_FILLED
    order_id: int
    client_order_id: str
    side: OrderSide
    price: int
    qty: int
    quote_qty: int
    cum_qty: int
    cum_quote: int
    status: OrderStatus
    commission: int
    commission_asset: str
    trade_id: int
    maker: bool
    order_list_id: int
    exec_id: int


class OrderCanceled(Event, frozen=True, gc=False):
    """``x=CANCELED``. ``cancel_client_order_id`` is the cancel request's own id (``c``); the order's is ``C``."""

    kind: ClassVar[Kind] = Kind.ORDER_CANCELED
    order_id: int
    client_order_id: str
    cancel_client_order_id: str
    cum_qty: int
    cum_quote: int
    order_list_id: int
    exec_id: int


class OrderExpired(Event, frozen=True, gc=False):
    """``x=EXPIRED``: the remainder expired (IOC/FOK, MARKET without liquidity, OCO_TRIGGER, ...)."""

    kind: ClassVar[Kind] = Kind.ORDER_EXPIRED
    order_id: int
    client_order_id: str
    status: OrderStatus
    expiry_reason: ExpiryReason
    cum_qty: int
    cum_quote: int
    order_list_id: int
    exec_id: int


class OrderTriggered(Event, frozen=True, gc=False):
    """A stop order's condition was met at ``trigger_price`` (the last price); it now works."""

    kind: ClassVar[Kind] = Kind.ORDER_TRIGGERED
    order_id: int
    client_order_id: str
    trigger_price: int
    working_time: int
    order_list_id: int
    exec_id: int


class OrderTradePrevented(Event, frozen=True, gc=False):
    """``x=TRADE_PREVENTION``: self-trade prevention took ``last_prevented_qty`` (``B``; ``A`` cumulative).

    ``status`` is EXPIRED_IN_MATCH when the order is gone, else its unchanged open status (DECREMENT).
    """

    kind: ClassVar[Kind] = Kind.ORDER_TRADE_PREVENTED
    order_id: int
    client_order_id: str
    status: OrderStatus
    prevented_match_id: int
    price: int
    last_prevented_qty: int
    prevented_qty: int
    counter_order_id: int
    taker: bool
    cum_qty: int
    cum_quote: int
    order_list_id: int
    exec_id: int


class OrderListStatusChanged(Event, frozen=True, gc=False):
    """``listStatus``: an order list was placed, changed or finished."""

    kind: ClassVar[Kind] = Kind.ORDER_LIST_STATUS
    order_list_id: int
    list_client_order_id: str
    contingency: ContingencyType
    list_status_type: ListStatusType
    list_order_status: ListOrderStatus
    order_ids: tuple[int, ...]
    client_order_ids: tuple[str, ...]
    list_reject_reason: str = "NONE"


class BalanceUpdated(Event, frozen=True, gc=False):
    """``outboundAccountPosition``: the changed assets as ``(asset, free e8, locked e8)``."""

    kind: ClassVar[Kind] = Kind.BALANCE_UPDATED
    balances: tuple[tuple[str, int, int], ...]


class CancelRejected(Event, frozen=True, gc=False):
    """A cancel (order, order list, or all open orders) was refused with Binance's ``code``/``msg``."""

    kind: ClassVar[Kind] = Kind.CANCEL_REJECTED
    code: int
    msg: str
    order_id: int = -1
    client_order_id: str = ""
    order_list_id: int = -1


class OrderStatusReported(Event, frozen=True, gc=False):
    """The answer to a query: the order's snapshot, or ``code``/``msg`` when it cannot be found."""

    kind: ClassVar[Kind] = Kind.ORDER_STATUS_REPORTED
    order: OrderSnapshot | None
    code: int = 0
    msg: str = ""

class CommandIssued(Event, frozen=True, gc=False):
    """A strategy issued ``command`` at ``ts_recv`` (before risk and the venue saw it).

    Commands themselves (``engine.orders``) are plain Binance-shaped requests; this
    envelope gives them the log's seq/time/instrument and the issuing strategy's id.
    """

    kind: ClassVar[Kind] = Kind.COMMAND_ISSUED
    strategy: str
    command: AnyCommand


# --------------------------------------------------------------------------- risk decisions
# What the risk engine (engine.risk) decided, so every decision lands in the log. Money is
# e8 quote-asset units, ratios are basis points, times are int ns.


class RiskApproved(Event, frozen=True, gc=False):
    """Risk let ``command`` (its class name) of ``strategy`` through to the venue.

    ``notional`` is the order's value as risk priced it (e8 quote; 0 for cancels and
    queries); ``reduce_only`` is True when the order can only shrink the position.
    """

    kind: ClassVar[Kind] = Kind.RISK_APPROVED
    strategy: str
    command: str
    client_order_id: str = ""
    list_client_order_id: str = ""
    notional: int = 0
    reduce_only: bool = False


class RiskDenied(OrderRejected, frozen=True, gc=False):
    """Risk refused a new order or order list: ``rule`` broke, ``value`` against ``limit``.

    A subclass of :class:`OrderRejected` on purpose: it is the answer the strategy gets
    instead of the venue's, so code that handles rejections handles risk's too, while the
    log keeps it apart (its own kind). ``msg`` says the same in words; ``value``/``limit``
    are in the rule's unit (e8 money or quantity, bps, orders per window).
    """

    kind: ClassVar[Kind] = Kind.RISK_DENIED
    strategy: str = ""
    rule: str = ""
    value: int = 0
    limit: int = 0


class CircuitBreakerTripped(Event, frozen=True, gc=False):
    """Equity fell through a loss limit: new risk is refused from here on.

    ``rule`` is ``max_drawdown`` (``reference`` = peak equity, ``limit`` in bps; lifts only
    on an explicit reset) or ``daily_loss`` (``reference`` = equity at the start of the UTC
    day, ``limit`` e8; lifts by itself at ``until``, the next UTC midnight).
    """

    kind: ClassVar[Kind] = Kind.CIRCUIT_BREAKER_TRIPPED
    rule: str
    equity: int
    reference: int
    loss: int
    limit: int
    until: int = 0


class KillSwitchEngaged(Event, frozen=True, gc=False):
    """Risk cancelled every open order (and flattened, if configured) with ``commands``."""

    kind: ClassVar[Kind] = Kind.KILL_SWITCH_ENGAGED
    reason: str
    flatten: bool
    commands: tuple[AnyCommand, ...] = ()


class RiskReset(Event, frozen=True, gc=False):
    """New risk is allowed again: an explicit reset, or a new UTC day after a daily-loss halt."""

    kind: ClassVar[Kind] = Kind.RISK_RESET
    reason: str
    equity: int


AnyEvent: TypeAlias = (
    TradeReceived
    | AggTradeReceived
    | BookDeltaReceived
    | BookSnapshotReceived
    | QuoteReceived
    | MarkPriceReceived
    | FundingRateReceived
    | KlineReceived
    | LiquidationReceived
    | InstrumentUpdated
    | BookGapDetected
    | SignalEmitted
    | TimerFired
    | RunStarted
    | RunFinished
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCanceled
    | OrderExpired
    | OrderTriggered
    | OrderTradePrevented
    | OrderListStatusChanged
    | BalanceUpdated
    | CancelRejected
    | OrderStatusReported
    | CommandIssued
    | RiskApproved
    | RiskDenied
    | CircuitBreakerTripped
    | KillSwitchEngaged
    | RiskReset
    | FeedStatusChanged
    | LatencyRecorded
    | OperatorRequested
    | ClockTicked
)

EVENT_TYPES: tuple[type[Event], ...] = AnyEvent.__args__
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
