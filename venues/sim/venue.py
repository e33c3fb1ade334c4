"""The simulated Binance spot venue, sans-I/O: ``handle(command, ts) -> events``, ``on_market(event) -> events``.

It follows ``shared/reference/binance-spot-semantics.md`` down to statuses, execution types,
expiry reasons, error codes and messages; every choice the reference leaves open is listed
in ``docs/sim-venue.md``. Nothing here reads a clock or a random source: the same inputs
give the same events, byte for byte.

Shape of one request: API-level checks (parameters, symbol permissions, filters; -11xx /
-1013) -> matching-engine checks (duplicate client id, balance, trigger and post-only rules;
-2010) -> placement (lock funds, ``OrderAccepted``) -> execution (walk the book, rest, or wait
for the trigger) -> triggers fired by the trades we printed -> one ``BalanceUpdated``.

Models are injected: a fee model (:class:`FeeModel`), a filter checker (:class:`OrderChecker`,
by default the exchangeInfo filters of :mod:`venues.sim.filters`), a queue-position rule
(:class:`venues.sim.matching.QueueModel`; ``venues.sim.models.queue.ProbabilisticQueueRule``
fits it too) and an optional price-impact model (:class:`venues.sim.models.impact.ImpactModel`,
e.g. ``SquareRootImpact``). The tiered/flat schedules of :mod:`venues.sim.models.fees` plug in
through :class:`venues.sim.adapters.VenueFees`.
"""

from __future__ import annotations

import re
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import count
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from engine.errors import ConfigError, RequestRejected
from engine.events import (
    AggTradeReceived,
    BalanceUpdated,
    BookDeltaReceived,
    BookGapDetected,
    BookSnapshotReceived,
    CancelRejected,
    Event,
    Kind,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    OrderStatusReported,
    OrderTradePrevented,
    OrderTriggered,
    QuoteReceived,
    TradeReceived,
)
from engine.fixed import SCALE, format_e8_fixed
from engine.identifiers import InstrumentId, Market, instrument_id
from engine.lifecycle import ORDER_TRANSITIONS, ListAction, OrderAction, next_list_state, next_status
from engine.orders import (
    LIMIT_PRICED_TYPES,
    STOP_TYPES,
    TIF_TYPES,
    AnyCommand,
    CancelAllOrders,
    CancelOrder,
    CancelOrderList,
    CancelRestrictions,
    ExpiryReason,
    Liquidity,
    ListShape,
    NewOrderRespType,
    OrderLeg,
    OrderSide,
    OrderSnapshot,
    OrderStatus,
    OrderType,
    QueryOrder,
    RejectReason,
    SelfTradePreventionMode,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
    default_resp_type,
    rises_to_trigger,
)
from venues.sim.account import Account
from venues.sim.filters import CompiledRules, OrderParams, SymbolRules, check_order
from venues.sim.idempotency import RecentRequests
from venues.sim.matching import (
    OPEN_STATUSES,
    Order,
    QueueModel,
    RiskAverseQueue,
    SymbolBook,
    notional,
    notional_ceil,
)
from venues.sim.oco import (
    OrderList,
    check_legacy_prices,
    check_oco_prices,
    check_shape,
    leg_param,
    placement_order,
)

if TYPE_CHECKING:
    from venues.sim.models.impact import ImpactModel

ALL_ORDER_TYPES = frozenset(OrderType)
ALL_STP_MODES = frozenset(SelfTradePreventionMode)
DEFAULT_CLIENT_ID_PATTERN = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
NS_PER_MIN = 60_000_000_000

INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE = "Duplicate order sent."
UNKNOWN_ORDER = "Unknown order sent."
WOULD_TRIGGER = "Order would trigger immediately."
WOULD_TAKE = "Order would immediately match and take."
_REASON_OF_MSG = {
    INSUFFICIENT_BALANCE: RejectReason.INSUFFICIENT_BALANCES,
    WOULD_TRIGGER: RejectReason.STOP_PRICE_WOULD_TRIGGER_IMMEDIATELY,
    WOULD_TAKE: RejectReason.WOULD_MATCH_IMMEDIATELY,
    "The relationship of the prices for the orders is not correct.": RejectReason.OCO_BAD_PRICES,
}
_UNSUPPORTED_TYPE_MSG = {
    OrderType.MARKET: "Market orders are not supported for this symbol.",
    OrderType.STOP_LOSS: "Stop loss orders are not supported for this symbol.",
    OrderType.STOP_LOSS_LIMIT: "Stop loss limit orders are not supported for this symbol.",
    OrderType.TAKE_PROFIT: "Take profit orders are not supported for this symbol.",
    OrderType.TAKE_PROFIT_LIMIT: "Take profit limit orders are not supported for this symbol.",
}
_MARKET_LIKE = frozenset({OrderType.MARKET, OrderType.STOP_LOSS, OrderType.TAKE_PROFIT})
_ID_MULT = 0x9E3779B97F4A7C15  # odd: multiplying by it is a bijection modulo 2**80 (ids never collide)
_ID_MASK = (1 << 80) - 1

# Enum members the hot paths read, bound once: in CPython 3.11 every ``EnumClass.MEMBER`` read goes
# through ``EnumType.__getattr__``'s lookup hook (~150 ns each, more than a dict lookup), and one
# order used to read a few dozen of them.
_BUY = OrderSide.BUY
_MARKET, _LIMIT, _LIMIT_MAKER = OrderType.MARKET, OrderType.LIMIT, OrderType.LIMIT_MAKER
_GTC, _IOC, _FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
_NEW = OrderStatus.NEW
_INSUFFICIENT_LIQUIDITY = ExpiryReason.INSUFFICIENT_LIQUIDITY
_STP_NONE = SelfTradePreventionMode.NONE
_MAKER, _TAKER = Liquidity.MAKER, Liquidity.TAKER
_ACCEPT, _FILL, _PARTIAL_FILL = OrderAction.ACCEPT, OrderAction.FILL, OrderAction.PARTIAL_FILL
_CANCEL, _EXPIRE = OrderAction.CANCEL, OrderAction.EXPIRE
_QUOTE, _BOOK_DELTA, _BOOK_SNAPSHOT, _BOOK_GAP = Kind.QUOTE, Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT, Kind.BOOK_GAP
_AFTER: dict[OrderAction, dict[OrderStatus | None, OrderStatus]] = {}
for (_before, _action), _after in ORDER_TRANSITIONS.items():
    _AFTER.setdefault(_action, {})[_before] = _after
_AFTER_FILL, _AFTER_PARTIAL = _AFTER[OrderAction.FILL], _AFTER[OrderAction.PARTIAL_FILL]
_AFTER_CANCEL, _AFTER_EXPIRE = _AFTER[OrderAction.CANCEL], _AFTER[OrderAction.EXPIRE]
_ACCEPTED = ORDER_TRANSITIONS[(None, OrderAction.ACCEPT)]
"""``ORDER_TRANSITIONS`` split by action: ``_AFTER_FILL.get(status)`` is the table's answer without
building a ``(status, action)`` key tuple (None: not an edge; ``next_status`` then raises)."""
_ENGINE_CHECKED = STOP_TYPES | {OrderType.LIMIT_MAKER}
"""Types :meth:`SimVenue._engine_checks` can reject (trigger side, post-only)."""


# --------------------------------------------------------------------------- configuration


class SymbolSpec(msgspec.Struct, frozen=True, gc=False):
    """What the venue needs to know about one symbol (exchangeInfo's fields, e8 ints).

    ``rules`` (the parsed exchangeInfo filters) is optional: without it no filter applies.
    ``market_step`` is the quantity step a ``quoteOrderQty`` MARKET order rounds down to.
    Symbols recorded before STP existed have no STP fields: they default to mode NONE with
    every mode allowed.
    """

    instrument: InstrumentId
    symbol: str
    base_asset: str
    quote_asset: str
    status: str = "TRADING"
    order_types: frozenset[OrderType] = ALL_ORDER_TYPES
    iceberg_allowed: bool = True
    oco_allowed: bool = True
    oto_allowed: bool = True
    quote_order_qty_market_allowed: bool = True
    allow_trailing_stop: bool = True
    default_stp: SelfTradePreventionMode = SelfTradePreventionMode.NONE
    allowed_stp: frozenset[SelfTradePreventionMode] = ALL_STP_MODES
    market_step: int = 1
    rules: SymbolRules | None = None

    @classmethod
    def from_rules(cls, rules: SymbolRules, raw: Mapping[str, Any] | None = None, market: Market = Market.SPOT) -> SymbolSpec:
        """Build from parsed filters (and the raw exchangeInfo symbol dict for the STP/OTO/trailing flags)."""
        raw = raw or {}
        mls = rules.get("MARKET_LOT_SIZE")
        step = getattr(mls, "step_size", 0) or rules.step_size or 1
        stp_default = raw.get("defaultSelfTradePreventionMode")
        stp_allowed = raw.get("allowedSelfTradePreventionModes")
        return cls(
            instrument=instrument_id(rules.symbol, market),
            symbol=rules.symbol,
            base_asset=rules.base_asset,
            quote_asset=rules.quote_asset,
            status=rules.status,
            order_types=frozenset(OrderType(t) for t in rules.order_types if t in OrderType.__members__),
            iceberg_allowed=rules.iceberg_allowed,
            oco_allowed=rules.oco_allowed,
            oto_allowed=bool(raw.get("otoAllowed", True)),
            quote_order_qty_market_allowed=rules.quote_order_qty_market_allowed,
            allow_trailing_stop=bool(raw.get("allowTrailingStop", True)),
            default_stp=SelfTradePreventionMode(stp_default) if stp_default else SelfTradePreventionMode.NONE,
            allowed_stp=frozenset(SelfTradePreventionMode(m) for m in stp_allowed) if stp_allowed else ALL_STP_MODES,
            market_step=step,
            rules=rules,
        )


class SimConfig(msgspec.Struct, frozen=True, gc=False):
    """Venue behaviour switches; every default is the choice documented in docs/sim-venue.md."""

    consume_liquidity: bool = True
    """Our taker fills remove the quantity they took from the market book until it is next updated."""
    emit_balance_updates: bool = True
    """One BalanceUpdated (outboundAccountPosition) after every input that changed a balance."""
    dedupe_ttl_ns: int = 60 * 1_000_000_000
    """Window in which an identical request with the same client id is a retry (0 = Binance's rule only)."""
    dedupe_capacity: int = 100_000
    order_history: int = 100_000
    """Finished orders kept queryable (oldest forgotten first)."""
    oco_done_on_trigger: bool = True
    """True: an OCO list is ALL_DONE once one leg acted and the other expired; False: once every leg is final."""
    client_id_pattern: str | None = DEFAULT_CLIENT_ID_PATTERN
    last_price_from_quotes: bool = False
    """Also move the last price (stop triggers, OCO price rules) to the quote mid: for quote-only data."""
    use_depth: bool = True
    """True (L2): depth diffs and snapshots build the book takers walk. False (L1): depth events are
    not subscribed; each bookTicker replaces the book with its two quotes (and trades, with
    ``trades_as_book``), and a MARKET-like order's quantity beyond the top follows ``l1_remainder``."""
    trades_as_book: bool = False
    """L1 only: every trade becomes the whole book, ``(price, size)`` on both sides (NautilusTrader's
    L1 book on trade ticks), until the next trade or bookTicker. Lets MARKET orders fill on
    trades-only data."""
    l1_remainder: str = "slip"
    """L1 only, MARKET-like orders: ``"slip"`` fills what the top does not cover one tick worse than
    the top (NautilusTrader's L1 rule); ``"expire"`` expires it (INSUFFICIENT_LIQUIDITY)."""


class FeeModel(Protocol):
    """Commission of one fill: ``(asset, amount e8)``; negative amount = rebate.

    Binance charges the received asset (base on a BUY, quote on a SELL) unless the fee is
    paid in BNB. When the returned asset is neither and the account's free balance of it is
    short, the venue asks again with ``pay_in_bnb=False`` (the reference: "if BNB is
    insufficient, the full fee is taken from the received asset").
    """

    def commission(
        self,
        liquidity: Liquidity,
        quote_notional_e8: int,
        *,
        side: OrderSide,
        qty_e8: int,
        price_e8: int,
        base_asset: str,
        quote_asset: str,
        ts: int,
        pay_in_bnb: bool = True,
    ) -> tuple[str, int]: ...


class FlatFee:
    """Built-in default: one maker and one taker rate (e8, 0.001 = 100_000), in the received asset, truncated."""

    def __init__(self, maker_rate_e8: int = 100_000, taker_rate_e8: int = 100_000) -> None:
        self.maker_rate_e8 = maker_rate_e8
        self.taker_rate_e8 = taker_rate_e8

    def commission(
        self,
        liquidity: Liquidity,
        quote_notional_e8: int,
        *,
        side: OrderSide,
        qty_e8: int,
        price_e8: int,
        base_asset: str,
        quote_asset: str,
        ts: int,
        pay_in_bnb: bool = True,
    ) -> tuple[str, int]:
        rate = self.maker_rate_e8 if liquidity is _MAKER else self.taker_rate_e8
        if side is _BUY:
            return base_asset, qty_e8 * rate // SCALE
        return quote_asset, quote_notional_e8 * rate // SCALE


class OrderChecker(Protocol):
    """Filter checks for one new order; raises ``RequestRejected`` (-1013 / -1111 ...) or returns."""

    def __call__(
        self,
        spec: SymbolSpec,
        order: OrderParams,
        *,
        avg_price_e8: int | Callable[[int], int | None] | None,
        last_price_e8: int | None,
        open_orders_count: int,
        open_algo_count: int,
        open_iceberg_count: int,
        adding: int,
        base_position_e8: int | None,
    ) -> None: ...


def rules_checker(
    spec: SymbolSpec,
    order: OrderParams,
    *,
    avg_price_e8: int | Callable[[int], int | None] | None,
    last_price_e8: int | None,
    open_orders_count: int,
    open_algo_count: int,
    open_iceberg_count: int,
    adding: int,
    base_position_e8: int | None,
) -> None:
    """The default checker: the symbol's exchangeInfo filters (none when the spec has no rules)."""
    if spec.rules is None:
        return
    check_order(
        spec.rules,
        order,
        avg_price_e8=avg_price_e8,
        last_price_e8=last_price_e8,
        open_orders_count=open_orders_count,
        open_algo_count=open_algo_count,
        open_iceberg_count=open_iceberg_count,
        adding=adding,
        base_position_e8=base_position_e8,
    )


class TradeRecorder(Protocol):
    """Optional extra of a fee model: told the quote volume of every fill (after its commission).

    A tiered schedule needs it to move through the VIP tiers (``venues.sim.adapters.VenueFees``
    has it); the venue calls it when the fee model has a ``record_trade`` method.
    """

    def record_trade(self, ts: int, base_asset: str, quote_asset: str, quote_e8: int) -> None: ...


class _Symbol:
    """Per-symbol venue state: spec, matcher book, open orders and ids, counters."""

    __slots__ = (
        "book",
        "by_cid",
        "cancelable",
        "checked_at",
        "direct_filters",
        "filters",
        "n_algo",
        "n_iceberg",
        "open",
        "open_cids",
        "open_list_cids",
        "passive",
        "prevented_match_id",
        "ref_ask",
        "ref_bid",
        "spec",
        "tick",
        "top",
        "track_position",
        "trade_ids",
        "traded_at",
        "trading",
        "vwap_by_mins",
    )

    def __init__(self, spec: SymbolSpec, has_impact: bool) -> None:
        self.spec = spec
        self.trading = spec.status == "TRADING"
        self.cancelable = spec.status in ("TRADING", "CANCEL_ONLY")
        windows = tuple(m * NS_PER_MIN for m in spec.rules.avg_price_windows) if spec.rules else ()
        self.book = SymbolBook(tuple(w for w in windows if w > 0))
        self.vwap_by_mins = {w // NS_PER_MIN: v for w, v in self.book.vwaps.items()}
        self.filters = CompiledRules(spec.rules) if spec.rules is not None else None
        """The exchangeInfo filters compiled once (used when the venue runs the default checker)."""
        self.checked_at = 0
        """Venue time of the filter check in progress: the 'now' of :meth:`avg_price`."""
        self.open: dict[int, Order] = {}
        self.open_cids: dict[str, Order] = {}
        self.by_cid: dict[str, int] = {}
        """Client order id -> the most recent order id with it (open or still in the venue's history)."""
        self.open_list_cids: dict[str, OrderList] = {}
        self.n_algo = 0
        self.n_iceberg = 0
        self.trade_ids = count(1)
        """This symbol's trade ids: ``next(st.trade_ids)``."""
        self.prevented_match_id = -1
        self.track_position = spec.rules is not None and spec.rules.get("MAX_POSITION") is not None
        self.direct_filters = False
        """The venue may call the compiled filter function itself (set by the venue: default checker,
        no MAX_POSITION, nothing else :meth:`CompiledRules.check` would add)."""
        self.tick = (spec.rules.tick_size if spec.rules is not None else 0) or 1
        self.passive = not self.book.vwaps and not has_impact
        """No per-trade feed (VWAP windows, impact statistics): with no open order a trade only moves the last price."""
        self.top: tuple[int, int] | None = None
        """L1 trades-as-book: the last trade's (price, size), not yet written into the book (see _sync_top)."""
        self.ref_bid = 0
        self.ref_ask = 0
        """L1: the last top of each side (quote or trade), the reference of the ``slip`` remainder rule."""
        self.traded_at: dict[tuple[bool, int], int] = {}
        """(bid side?, price) -> market volume traded at a price where we rest, since that level's last update."""

    def avg_price(self, mins: int) -> int | None:
        """The filters' weighted average price over ``mins`` minutes as of ``checked_at`` (None: no such
        window, or no trade in it)."""
        v = self.vwap_by_mins.get(mins)
        return v.value(self.checked_at) if v is not None else None


class _Reject(Exception):
    """Internal: abort a placement with Binance's error (turned into OrderRejected)."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(code, msg)
        self.code = code
        self.msg = msg


def _leg_namer(shape: ListShape, index: int) -> Callable[[str], str]:
    def name(n: str) -> str:
        return leg_param(shape, index, n)

    return name


def _param(name: str, prefix: Callable[[str], str] | None) -> str:
    return prefix(name) if prefix else name


def _mandatory(name: str, prefix: Callable[[str], str] | None) -> _Reject:
    return _Reject(-1102, f"Mandatory parameter '{_param(name, prefix)}' was not sent, was empty/null, or malformed.")


def _not_required(name: str, prefix: Callable[[str], str] | None) -> _Reject:
    return _Reject(-1106, f"Parameter '{_param(name, prefix)}' sent when not required.")


# --------------------------------------------------------------------------- the venue


class SimVenue:
    """Simulated Binance spot venue for one account. See the module docstring."""

    def __init__(
        self,
        symbols: Iterable[SymbolSpec],
        balances: Mapping[str, int] | None = None,
        *,
        config: SimConfig | None = None,
        fee_model: FeeModel | None = None,
        checker: OrderChecker | None = None,
        queue_model: QueueModel | None = None,
        impact: ImpactModel | None = None,
    ) -> None:
        self.config = config or SimConfig()
        cfg = self.config
        if cfg.l1_remainder not in ("slip", "expire"):
            raise ConfigError(f"SimConfig.l1_remainder must be 'slip' or 'expire', got {cfg.l1_remainder!r}")
        if cfg.trades_as_book and cfg.use_depth:
            raise ConfigError("SimConfig.trades_as_book needs use_depth=False (an L1 book): trades would overwrite the depth")
        self.account = Account(balances)
        self.fees: FeeModel = fee_model or FlatFee()
        self._flat_fee = self.fees if type(self.fees) is FlatFee else None
        """The built-in FlatFee (not a subclass), whose rule :meth:`_fill` applies inline."""
        recorder = getattr(self.fees, "record_trade", None)
        self._record_trade: Callable[[int, str, str, int], None] | None = recorder if callable(recorder) else None
        self.checker: OrderChecker = checker or rules_checker
        self.queue: QueueModel = queue_model or RiskAverseQueue()
        self.impact: ImpactModel | None = impact
        self._trades_as_book = cfg.trades_as_book
        self._slip = not cfg.use_depth and cfg.l1_remainder == "slip"
        self._symbols: dict[InstrumentId, _Symbol] = {}
        self._pairs: dict[tuple[str, str], _Symbol] = {}
        for spec in symbols:
            if spec.instrument in self._symbols:
                raise ValueError(f"symbol {spec.instrument} given twice")
            self._symbols[spec.instrument] = _Symbol(spec, impact is not None)
            self._pairs.setdefault((spec.base_asset, spec.quote_asset), self._symbols[spec.instrument])
        self._all_passive = all(st.passive for st in self._symbols.values())
        for st in self._symbols.values():
            st.direct_filters = (self.checker is rules_checker and st.filters is not None and not st.track_position
                                 and st.filters.adds_nothing_for(st.spec.symbol))
        self._n_open = 0
        self.quiet = self._all_passive
        """No open order anywhere and no per-trade feed: a trade then only sets its symbol's last
        price (and L1 top), nothing else, and returns no event. A driver may therefore hold back
        trades while ``quiet`` and hand over only the last one per instrument before the venue's
        next input (``replay.backtest.VenueKernel`` does)."""
        self._orders: dict[int, Order] = {}
        self._finished: deque[int] = deque()
        self._lists: dict[int, OrderList] = {}
        self._recent: RecentRequests[SubmitOrder] = RecentRequests(self.config.dedupe_ttl_ns, self.config.dedupe_capacity)
        self._recent_lists: RecentRequests[SubmitOrderList] = RecentRequests(
            self.config.dedupe_ttl_ns, self.config.dedupe_capacity
        )
        self._cid_re = re.compile(self.config.client_id_pattern) if self.config.client_id_pattern else None
        self._next_order_id = 1
        self._next_list_id = 0
        self._exec_ids = count(1)
        """Execution ids (``I``), one sequence for the venue: ``next(self._exec_ids)`` (no Python call)."""
        self._cid_n = 0
        """The last generated client id number (see :meth:`_new_cid`)."""
        self._emit_balances = self.config.emit_balance_updates
        self._consume = self.config.consume_liquidity
        self._history = self.config.order_history
        self._default_checker = self.checker is rules_checker
        self._now = 0
        self._dirty: set[_Symbol] = set()
        self._handlers: dict[type, Callable[[Any, int, list[Event]], None]] = {
            SubmitOrder: self._submit,
            CancelOrder: self._cancel,
            SubmitOrderList: self._submit_list,
            CancelOrderList: self._cancel_list_cmd,
            CancelAllOrders: self._cancel_all,
            QueryOrder: self._query,
        }
        """Command class -> its handler (one dict lookup instead of a chain of type tests)."""

    # ----------------------------------------------------------------- public API

    @property
    def market_kinds(self) -> frozenset[int]:
        """Market event kinds that can move our orders (no depth kinds for an L1 book: ``use_depth=False``)."""
        if not self.config.use_depth:
            return frozenset({Kind.TRADE, Kind.AGG_TRADE, Kind.QUOTE})
        return frozenset({Kind.TRADE, Kind.AGG_TRADE, Kind.QUOTE, Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT, Kind.BOOK_GAP})

    def handle(self, command: AnyCommand, ts: int) -> list[Event]:
        """Apply one command at venue time ``ts`` (int ns); returns the events it caused, in order."""
        self._now = ts
        out: list[Event] = []
        if self._trades_as_book:  # (only an L1 trades-as-book venue defers a trade into st.top)
            st = self._symbols.get(command.instrument)
            if st is not None and st.top is not None:
                self._sync_top(st)
        run = self._handlers.get(type(command))
        if run is None:
            raise TypeError(f"SimVenue cannot handle {type(command).__name__}")
        run(command, ts, out)
        if self.account.changed:  # self._flush(ts, out), without the call
            changes = self.account.take_changes()
            if changes and out and self._emit_balances:
                out.append(BalanceUpdated(0, ts, ts, out[-1].instrument, changes))
        return out

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        """See one market event (at ``now_ns``, default its ``ts_recv``); returns the fills/triggers it caused."""
        st = self._symbols.get(event.instrument)
        if st is None:
            return []
        ts = event.ts_recv if now_ns is None else now_ns
        self._now = ts
        out: list[Event] = []
        t = type(event)
        if t is TradeReceived or t is AggTradeReceived:  # (a type test: Enum member lookups are slow)
            price: int = event.price  # type: ignore[attr-defined]
            if not st.open and st.passive:  # the hot path: nothing of ours can fill or trigger
                st.book.last_price = price
                if self._trades_as_book:
                    st.top = (price, event.qty)  # type: ignore[attr-defined]
                    st.ref_bid = st.ref_ask = price
                return out
            self._on_trade(st, price, event.qty, event.buyer_maker, ts, out)  # type: ignore[attr-defined]
            if self.account.changed:  # self._flush(ts, out), without the call
                changes = self.account.take_changes()
                if changes and out and self._emit_balances:
                    out.append(BalanceUpdated(0, ts, ts, out[-1].instrument, changes))
            return out
        k = event.kind
        if st.top is not None:
            self._sync_top(st)
        if k is _QUOTE:
            assert isinstance(event, QuoteReceived)
            self._on_quote(st, event, ts, out)
        elif k is _BOOK_DELTA:
            assert isinstance(event, BookDeltaReceived)
            self._on_levels(st, event.bids, event.asks, ts, out)
        elif k is _BOOK_SNAPSHOT:
            assert isinstance(event, BookSnapshotReceived)
            self._on_snapshot(st, event, ts, out)
        elif k is _BOOK_GAP:
            assert isinstance(event, BookGapDetected)
            st.book.book.clear()
        else:
            return out
        self._flush(ts, out)
        return out

    def order(self, order_id: int) -> OrderSnapshot | None:
        """Snapshot of an order (open, or finished and still in history)."""
        o = self._orders.get(order_id)
        return o.snapshot(self._symbols[o.instrument].spec.symbol) if o is not None else None

    def order_by_client_id(self, instrument: InstrumentId, client_order_id: str) -> OrderSnapshot | None:
        """The most recent order with this client id on the instrument."""
        st = self._symbols.get(instrument)
        oid = st.by_cid.get(client_order_id) if st is not None else None
        return self.order(oid) if oid is not None else None

    def open_orders(self, instrument: InstrumentId | None = None) -> list[OrderSnapshot]:
        """Open orders (all instruments when None), in order-id order."""
        out: list[OrderSnapshot] = []
        for st in self._symbols.values():
            if instrument is None or st.spec.instrument == instrument:
                out.extend(o.snapshot(st.spec.symbol) for o in st.open.values())
        return sorted(out, key=lambda s: s.order_id)

    def order_list(self, order_list_id: int) -> OrderList | None:
        return self._lists.get(order_list_id)

    def balances(self) -> dict[str, tuple[int, int]]:
        """``asset -> (free, locked)``."""
        acct = self.account
        return {a: (acct.free_of(a), acct.locked_of(a)) for a in acct.assets()}

    def last_price(self, instrument: InstrumentId) -> int | None:
        return self._symbols[instrument].book.last_price

    def market_book(self, instrument: InstrumentId) -> SymbolBook:
        """The matcher's view of one symbol (for tests and reports; do not mutate)."""
        st = self._symbols[instrument]
        if st.top is not None:
            self._sync_top(st)
        return st.book

    def bnb_balance(self) -> tuple[int, int]:
        """(free, free + locked) BNB, e8: what fee models paying in BNB need."""
        acct = self.account
        free = acct.free_of("BNB")
        return free, free + acct.locked_of("BNB")

    def price_of(self, base_asset: str, quote_asset: str) -> int | None:
        """Last trade price of the ``base``/``quote`` symbol if the venue lists it and it traded (fee conversions)."""
        st = self._pairs.get((base_asset, quote_asset))
        return st.book.last_price if st is not None else None

    def reserved(self) -> dict[str, int]:
        """What open orders and linked OCO pairs hold locked, per asset (must equal the account's locked)."""
        out: dict[str, int] = {}
        for st in self._symbols.values():
            spec = st.spec
            for o in st.open.values():
                if o.locked:
                    a = spec.quote_asset if o.is_buy else spec.base_asset
                    out[a] = out.get(a, 0) + o.locked
        for lst in self._lists.values():
            if lst.locked and lst.pair is not None:
                spec = self._symbols[lst.instrument].spec
                a = spec.quote_asset if lst.pair[0].is_buy else spec.base_asset
                out[a] = out.get(a, 0) + lst.locked
        return out

    # ----------------------------------------------------------------- helpers

    def _new_cid(self) -> str:
        """A deterministic 22-character id (``x-`` + 20 hex digits) for requests that sent none.

        The k-th id is ``k * _ID_MULT mod 2**80`` in hex, kept as a running sum (an add, not a multiply).
        """
        n = self._cid_n + _ID_MULT
        if n > _ID_MASK:  # (the mod 2**80 wraps once in 2**16 ids)
            n &= _ID_MASK
        self._cid_n = n
        return "x-" + n.to_bytes(10, "big").hex()  # == f"x-{n:020x}", at half the cost

    def _flush(self, ts: int, out: list[Event]) -> None:
        acct = self.account
        if acct.changed:
            changes = acct.take_changes()
            if self._emit_balances and out and changes:
                out.append(BalanceUpdated(0, ts, ts, out[-1].instrument, changes))

    def _reject(self, cmd: SubmitOrder | SubmitOrderList, cid: str, code: int, msg: str, ts: int, out: list[Event]) -> None:
        reason = _REASON_OF_MSG.get(msg, RejectReason.NONE) if code == -2010 else RejectReason.NONE
        list_cid = ""
        if isinstance(cmd, SubmitOrderList):
            list_cid = cmd.list_client_order_id or ""
        out.append(OrderRejected(0, ts, ts, cmd.instrument, cid, code, msg, reason, list_cid))

    def _client_id(self, given: str | None, param: str) -> str:
        if given is None:
            return self._new_cid()
        if not given:
            raise _Reject(-1118, "New client order ID was empty.")
        if self._cid_re is not None and not self._cid_re.match(given):
            pattern = self.config.client_id_pattern
            raise _Reject(-1100, f"Illegal characters found in parameter '{param}'; legal range is '{pattern}'.")
        return given

    def _stp(self, mode: SelfTradePreventionMode | None, spec: SymbolSpec) -> SelfTradePreventionMode:
        if mode is None:
            return spec.default_stp
        if mode not in spec.allowed_stp:
            raise _Reject(-1013, "This symbol does not allow the specified self-trade prevention mode.")
        return mode

    def _validate(
        self,
        spec: SymbolSpec,
        side: OrderSide,
        otype: OrderType,
        quantity: int,
        price: int,
        tif: TimeInForce | None,
        quote_qty: int,
        stop_price: int,
        trailing_delta: int,
        iceberg_qty: int,
        prefix: Callable[[str], str] | None = None,
    ) -> TimeInForce:
        """Parameter rules per type (reference §1, §2); returns the effective timeInForce."""
        if otype not in spec.order_types:
            raise _Reject(-1013, _UNSUPPORTED_TYPE_MSG.get(otype, "Unsupported order combination"))
        if min(quantity, price, quote_qty, stop_price, trailing_delta, iceberg_qty) < 0:
            raise _Reject(-1013, "Price * QTY is zero or less.")
        if otype is _MARKET:
            if quantity and quote_qty:
                raise _not_required("quoteOrderQty", prefix)
            if not quantity and not quote_qty:
                raise _Reject(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
            if quote_qty and not spec.quote_order_qty_market_allowed:
                raise _Reject(-1013, "Quote order qty market orders are not support for this symbol.")
        else:
            if quote_qty:
                raise _not_required("quoteOrderQty", prefix)
            if not quantity:
                raise _mandatory("quantity", prefix)
        if otype in LIMIT_PRICED_TYPES:
            if not price:
                raise _mandatory("price", prefix)
        elif price:
            raise _not_required("price", prefix)
        if otype in TIF_TYPES:
            if tif is None:
                raise _mandatory("timeInForce", prefix)
        elif tif is not None:
            raise _Reject(-1114, "TimeInForce parameter sent when not required.")
        if otype in STOP_TYPES:
            if not stop_price and not trailing_delta:
                raise _Reject(
                    -1102,
                    f"Param '{_param('stopPrice', prefix)}' or '{_param('trailingDelta', prefix)}' must be sent, "
                    "but both were empty/null!",
                )
            if trailing_delta and not spec.allow_trailing_stop:
                raise _Reject(-1013, "Trailing stop orders are not supported for this symbol.")
        else:
            if stop_price:
                raise _not_required("stopPrice", prefix)
            if trailing_delta:
                raise _not_required("trailingDelta", prefix)
        if iceberg_qty:
            if otype not in LIMIT_PRICED_TYPES:
                raise _Reject(-1013, "Unsupported order combination")
            if not spec.iceberg_allowed:
                raise _Reject(-1013, "Iceberg orders are not supported for this symbol.")
            if tif is not None and tif is not _GTC:
                raise _Reject(-1013, "Unsupported order combination")
            if iceberg_qty >= quantity:
                raise _Reject(-1013, "IcebergQty exceeds QTY.")
        return tif if tif is not None else _GTC

    def _check_filters(self, st: _Symbol, params: OrderParams, adding: int, ts: int) -> None:
        """The default checker runs the symbol's compiled filters directly; an injected one gets the full call."""
        bk = st.book
        position = None
        if st.track_position:
            acct = self.account
            base = st.spec.base_asset
            position = acct.free_of(base) + acct.locked_of(base) + sum(o.remaining for o in st.open.values() if o.is_buy)
        try:
            if self._default_checker:
                if st.filters is not None:
                    st.checked_at = ts
                    st.filters.check(params, st.avg_price, bk.last_price, len(st.open), st.n_algo, st.n_iceberg,
                                     adding, position)
                return
            self.checker(
                st.spec,
                params,
                avg_price_e8=(lambda mins: bk.vwap(mins * NS_PER_MIN, ts)) if bk.vwaps else None,
                last_price_e8=bk.last_price,
                open_orders_count=len(st.open),
                open_algo_count=st.n_algo,
                open_iceberg_count=st.n_iceberg,
                adding=adding,
                base_position_e8=position,
            )
        except RequestRejected as exc:
            raise _Reject(exc.code, exc.msg) from None

    def _symbol_for(self, instrument: InstrumentId, trading: bool) -> _Symbol:
        st = self._symbols.get(instrument)
        if st is None:
            raise _Reject(-1121, "Invalid symbol.")
        status = st.spec.status
        if trading and status != "TRADING" or not trading and status not in ("TRADING", "CANCEL_ONLY"):
            raise _Reject(-1013, "Market is closed.")
        return st

    # ----------------------------------------------------------------- new order

    def _submit(self, cmd: SubmitOrder, ts: int, out: list[Event]) -> None:
        cid = cmd.client_order_id or ""
        try:
            st = self._symbols.get(cmd.instrument)
            if st is None or not st.trading:
                st = self._symbol_for(cmd.instrument, True)  # raises Binance's error
            spec = st.spec
            otype = cmd.order_type
            qty, price, tif = cmd.quantity, cmd.price, cmd.time_in_force
            extras = cmd.quote_order_qty or cmd.stop_price or cmd.trailing_delta or cmd.iceberg_qty
            # the two plain shapes pass _validate unchanged (all its rules checked here); the rest go through it
            if not extras and qty > 0 and otype is _LIMIT and price > 0 and tif is not None and otype in spec.order_types:
                pass
            elif not extras and qty > 0 and otype is _MARKET and not price and tif is None and otype in spec.order_types:
                tif = _GTC
            else:
                tif = self._validate(spec, cmd.side, otype, qty, price, tif, cmd.quote_order_qty, cmd.stop_price,
                                     cmd.trailing_delta, cmd.iceberg_qty)
            given = cmd.client_order_id
            if given is None:  # self._new_cid(), inline
                n = self._cid_n + _ID_MULT
                if n > _ID_MASK:
                    n &= _ID_MASK
                self._cid_n = n
                cid = "x-" + n.to_bytes(10, "big").hex()
            else:
                cid = self._client_id(given, "newClientOrderId")
            stp = spec.default_stp if cmd.stp_mode is None else self._stp(cmd.stp_mode, spec)
            filters = st.filters
            if st.direct_filters:  # self._check_filters(...), inline for the usual case: the command as it is
                st.checked_at = ts
                failed = (filters.by_type_cmd.get(otype) or filters.for_command(otype))(  # type: ignore[union-attr]
                    cmd, st.avg_price, st.book.last_price, len(st.open), st.n_algo, st.n_iceberg, 1, None)
                if failed is not None:
                    raise _Reject(-1013, f"Filter failure: {failed}")
            elif filters is not None or not self._default_checker:
                params = OrderParams(  # StrEnum members are the str values (Enum.value is a slow descriptor)
                    spec.symbol, cmd.side, otype, price or None, qty or None, cmd.quote_order_qty or None,
                    cmd.stop_price or None, cmd.iceberg_qty or None, cmd.trailing_delta or None,
                )
                self._check_filters(st, params, 1, ts)
            if cid in st.open_cids:
                raise _Reject(-2010, DUPLICATE)
            if given is not None and self._recent.retry_of(cid, cmd, ts) is not None:
                raise _Reject(-2010, DUPLICATE)
            o = Order(
                self._next_order_id, cid, cmd.instrument, cmd.side, otype, tif, qty, price,
                cmd.stop_price, cmd.quote_order_qty, cmd.iceberg_qty, cmd.trailing_delta, stp, -1, ts,
            )
            if cmd.strategy_id is not None or cmd.strategy_type is not None:
                o.strategy_id = cmd.strategy_id
                o.strategy_type = cmd.strategy_type
            if otype in _ENGINE_CHECKED:
                self._engine_checks(st, o)
            if o.quote_qty:
                o.qty = self._dry_run(st, o)[1]
                if not o.qty:
                    raise _Reject(-2010, "Order book liquidity is less than symbol minimum quantity.")
            if not o.is_buy:  # what placing o locks (self._lock_needed, the two common cases inline)
                amount = o.qty
            elif otype in LIMIT_PRICED_TYPES:
                amount = -(-price * o.qty // SCALE)  # notional_ceil(price, qty)
            else:
                amount = self._lock_needed(st, o)
            if not self.account.try_lock(spec.quote_asset if o.is_buy else spec.base_asset, amount):
                raise _Reject(-2010, INSUFFICIENT_BALANCE)
        except _Reject as rej:
            self._reject(cmd, cid, rej.code, rej.msg, ts, out)
            return
        o.locked = amount
        oid = self._next_order_id
        self._next_order_id = oid + 1
        if given is not None:
            self._recent.remember(cid, cmd, oid, ts)
        is_stop = otype in STOP_TYPES
        # self._accept(st, o, _ACCEPT, ts, out), inline
        o.status = _ACCEPTED
        self._orders[oid] = o
        st.open[oid] = o
        self._n_open += 1
        self.quiet = False
        st.open_cids[cid] = o
        st.by_cid[cid] = oid
        if is_stop:
            st.n_algo += 1
        else:
            o.working_time = ts
        if o.iceberg_qty:
            st.n_iceberg += 1
        out.append(OrderAccepted(
            0, ts, ts, o.instrument, oid, cid, o.side, otype, tif, o.qty, price, o.stop_price, o.quote_qty,
            o.iceberg_qty, -1, _ACCEPTED, o.working_time, stp, next(self._exec_ids), o.trailing_delta,
        ))
        if is_stop:
            self._start(st, o, ts, out)
        else:  # what _start does for a working type
            self._work(st, o, ts, out)
        if self._dirty:  # our fills moved a last price: stops may fire
            if st.book.triggers.orders:
                self._run_triggers(st, ts, out)
            else:  # what _run_triggers would do with no stop to fire
                self._dirty.discard(st)

    def _engine_checks(self, st: _Symbol, o: Order) -> None:
        """Matching-engine rules that depend on the market: trigger side and post-only."""
        if o.order_type in STOP_TYPES and o.stop_price:
            last = st.book.last_price
            if last is not None:
                rises = rises_to_trigger(o.order_type, o.side)
                if (last >= o.stop_price) if rises else (last <= o.stop_price):
                    raise _Reject(-2010, WOULD_TRIGGER)
        if o.order_type is _LIMIT_MAKER and st.book.crosses(o.is_buy, o.price):
            raise _Reject(-2010, WOULD_TAKE)

    def _lock_needed(self, st: _Symbol, o: Order) -> int:
        """What placing ``o`` locks: base qty for a SELL; for a BUY the quote it can spend at most."""
        t = o.order_type
        if not o.is_buy:
            return o.qty
        if t is _MARKET:
            return o.quote_qty if o.quote_qty else self._dry_run(st, o)[0]
        if t in LIMIT_PRICED_TYPES:
            return -(-o.price * o.qty // SCALE)  # notional_ceil(o.price, o.qty)
        return notional_ceil(o.stop_price or (st.book.last_price or 0), o.qty)

    def _dry_run(self, st: _Symbol, o: Order) -> tuple[int, int]:
        """(quote cost, base qty) a MARKET order would execute against what is displayed now (no mutation).

        A ``quoteOrderQty`` order buys (sells) whole ``market_step`` s while the quote spent (received)
        stays within ``quoteOrderQty``. Our own opposite orders count only when the taker's STP mode
        is NONE (any other mode prevents those matches).
        """
        cost = base = 0
        step = st.spec.market_step
        shift = self._impact_shift(st, o) if self.impact is not None else 0
        budget = o.quote_qty
        if not budget and not shift:  # fast path: the best displayed level covers the order, ahead of ours
            bk = st.book
            best = (bk.book.asks if o.is_buy else bk.book.bids).best()
            own_best = (bk.asks if o.is_buy else bk.bids).best()
            if best is not None and best[1] >= o.qty and (
                own_best is None or (own_best > best[0] if o.is_buy else own_best < best[0])
            ):
                return best[0] * o.qty // SCALE, o.qty  # (notional(best[0], o.qty), o.qty)
        for price, qty, own in st.book.liquidity(o.is_buy, None):
            if own is not None:  # our own order trades at its own price in _take: never shifted
                if o.stp is not _STP_NONE:
                    continue
                qty = own.remaining
                px = price
            else:
                px = price + shift
                if px <= 0:
                    break
            q = min(qty, (budget - cost) * SCALE // px // step * step) if budget else min(qty, o.qty - base)
            if q <= 0:
                break
            cost += notional(px, q)
            base += q
        px = self._slip_price(st, o, shift)
        if px > 0:  # L1: what the top does not cover fills one tick worse (see SimConfig.l1_remainder)
            q = (budget - cost) * SCALE // px // step * step if budget else o.qty - base
            if q > 0:
                cost += notional(px, q)
                base += q
        return cost, base

    def _slip_price(self, st: _Symbol, o: Order, shift: int) -> int:
        """Price of the L1 ``slip`` remainder of a MARKET-like order (one tick beyond the side's last top), or 0."""
        if not self._slip or o.order_type not in _MARKET_LIKE:
            return 0
        if o.is_buy:
            return st.ref_ask + st.tick + shift if st.ref_ask else 0
        px = st.ref_bid - st.tick + shift if st.ref_bid else 0
        return px if px > 0 else 0

    def _impact_shift(self, st: _Symbol, o: Order) -> int:
        """Signed price shift of this taker's fills (impact model; 0 without one), from the best opposite price."""
        impact = self.impact
        if impact is None:
            return 0
        ref = st.book.market_opposite(o.is_buy).best_price() or (st.ref_ask if o.is_buy else st.ref_bid)
        if not ref:
            return 0
        qty = o.remaining if o.qty else 0
        return impact.shift_e8(self._now, o.side.value, qty, ref, st.tick)

    def _accept(self, st: _Symbol, o: Order, action: OrderAction, ts: int, out: list[Event]) -> None:
        # ORDER_TRANSITIONS.get(...) or next_status(...): the table's answer without a call; next_status raises
        o.status = _ACCEPTED if action is _ACCEPT else (
            ORDER_TRANSITIONS.get((None, action)) or next_status(None, action, o.order_id))
        oid = o.order_id
        cid = o.client_order_id
        self._orders[oid] = o
        st.open[oid] = o
        self._n_open += 1
        self.quiet = False
        st.open_cids[cid] = o
        st.by_cid[cid] = oid
        is_stop = o.order_type in STOP_TYPES
        if is_stop:
            st.n_algo += 1
        if o.iceberg_qty:
            st.n_iceberg += 1
        if action is _ACCEPT and not is_stop:
            o.working_time = ts
        out.append(OrderAccepted(  # self._accepted_event(o, ts), without the call
            0, ts, ts, o.instrument, oid, cid, o.side, o.order_type, o.tif, o.qty, o.price, o.stop_price,
            o.quote_qty, o.iceberg_qty, o.list_id, o.status or _NEW, o.working_time, o.stp, next(self._exec_ids),
            o.trailing_delta,
        ))

    def _accepted_event(self, o: Order, ts: int) -> OrderAccepted:
        return OrderAccepted(
            0, ts, ts, o.instrument, o.order_id, o.client_order_id, o.side, o.order_type, o.tif, o.qty, o.price,
            o.stop_price, o.quote_qty, o.iceberg_qty, o.list_id, o.status or _NEW, o.working_time,
            o.stp, next(self._exec_ids), o.trailing_delta,
        )

    def _start(self, st: _Symbol, o: Order, ts: int, out: list[Event]) -> None:
        """After acceptance: wait for the trigger, or work now."""
        if o.order_type in STOP_TYPES:
            if o.trailing_delta and not o.stop_price and st.book.last_price is not None:
                o.trailing_time = ts
                o.trail_ref = st.book.last_price
            st.book.triggers.add(o, rises_to_trigger(o.order_type, o.side))
            return
        self._work(st, o, ts, out)

    def _work(self, st: _Symbol, o: Order, ts: int, out: list[Event]) -> None:
        """Execute a working order: take what it may, then rest or expire per type and timeInForce."""
        o.working_time = ts if o.working_time < 0 else o.working_time
        if o.order_type in _MARKET_LIKE:
            self._take(st, o, None, ts, out)
            if o.status in OPEN_STATUSES:
                self._expire(st, o, _INSUFFICIENT_LIQUIDITY, ts, out)
            return
        tif = o.tif
        if tif is _FOK and not self._fok_fillable(st, o):
            self._expire(st, o, ExpiryReason.UNFILLED_FOK_ORDER_EXPIRED, ts, out)
            return
        bk = st.book
        price = o.price
        if o.is_buy:  # bk.crosses(o.is_buy, price), inlined
            best = bk.book.asks.best_price()
            keys = bk.asks.keys  # our best ask is -keys[-1]
            crosses = (best is not None and price >= best) or (bool(keys) and price >= -keys[-1])
        else:
            best = bk.book.bids.best_price()
            keys = bk.bids.keys
            crosses = (best is not None and price <= best) or (bool(keys) and price <= keys[-1])
        if crosses:
            if o.order_type is _LIMIT_MAKER:
                self._expire(st, o, ExpiryReason.REJECTED, ts, out)  # a pending LIMIT_MAKER leg placed too late
                return
            self._take(st, o, o.price, ts, out)
        if o.status not in OPEN_STATUSES:
            return
        if tif is _IOC:
            self._expire(st, o, ExpiryReason.UNFILLED_IOC_QUANTITY_EXPIRED, ts, out)
        elif tif is _FOK:
            self._expire(st, o, ExpiryReason.UNFILLED_FOK_ORDER_EXPIRED, ts, out)
        else:  # self._rest(st, o), inline
            o.working = True
            if o.is_buy:
                o.queue_ahead = self.queue.initial(bk.book.bids.qty(price))
                own = bk.bids
            else:
                o.queue_ahead = self.queue.initial(bk.book.asks.qty(price))
                own = bk.asks
            if o.iceberg_qty:
                o.visible_left = min(o.iceberg_qty, o.remaining)
            level = own.levels.get(price)  # own.add(o), inline
            if level is None:
                own.levels[price] = {o.order_id: o}
                insort(own.keys, price * own.sign)
            else:
                level[o.order_id] = o

    def _fok_fillable(self, st: _Symbol, o: Order) -> bool:
        need = o.remaining
        for _, qty, own in st.book.liquidity(o.is_buy, o.price):
            if own is not None:
                if o.stp is not _STP_NONE:
                    return False
                qty = own.remaining
            need -= qty
            if need <= 0:
                return True
        return False

    # ----------------------------------------------------------------- taking liquidity

    def _take(self, st: _Symbol, o: Order, limit: int | None, ts: int, out: list[Event]) -> None:
        """Walk market levels and our own opposite orders (self-trade prevention) while ``o`` can trade."""
        bk = st.book
        is_buy = o.is_buy
        market = bk.book.asks if is_buy else bk.book.bids  # bk.market_opposite(is_buy)
        shift = self._impact_shift(st, o) if self.impact is not None else 0
        market_buy = is_buy and o.order_type in _MARKET_LIKE
        taken = 0
        best = market.best() if not shift else None
        left = o.qty - o.executed - o.prevented
        if best is not None and best[1] >= left > 0 and o.status in OPEN_STATUSES:
            # the common taker: the best market level covers it all, within its limit and its lock, and no
            # order of ours is better placed: the walk below would make exactly this one fill and stop
            bprice = best[0]
            own_keys = (bk.asks if is_buy else bk.bids).keys
            if (limit is None or (bprice <= limit if is_buy else bprice >= limit)) \
                    and (not own_keys or (-own_keys[-1] >= bprice if is_buy else own_keys[-1] <= bprice)) \
                    and (not market_buy or bprice * left // SCALE <= o.locked):
                taken = self._take_at(st, o, bprice, left, market_buy, ts, out)
                if self._consume:
                    market.set(bprice, best[1] - taken)
        # (o.status in OPEN_STATUSES is o.is_open, o.qty - o.executed - o.prevented is o.remaining:
        # without the property calls, this loop being every taker's)
        for price, qty, own in bk.liquidity(is_buy, limit) if not taken else ():
            if o.status not in OPEN_STATUSES:
                break
            if own is not None:
                if own.status in OPEN_STATUSES and own is not o:
                    self._self_match(st, o, own, price, ts, out)
                continue
            px = price + shift
            if px <= 0 or (limit is not None and (px > limit if is_buy else px < limit)):
                break
            left = o.qty - o.executed - o.prevented
            q = self._take_at(st, o, px, qty if qty < left else left, market_buy, ts, out)
            if q <= 0:
                break
            taken += q
            if self._consume:
                market.set(price, qty - q)
            if o.qty - o.executed - o.prevented <= 0:  # done: do not pull the next level
                break
        if self._slip and o.status in OPEN_STATUSES:
            px = self._slip_price(st, o, shift)
            if px > 0:
                taken += self._take_at(st, o, px, o.remaining, market_buy, ts, out)
        if taken and self.impact is not None:
            self.impact.record(ts, o.side.value, taken)
        if o.list_id >= 0 and o.executed:
            lst = self._lists.get(o.list_id)
            if lst is not None and lst.is_open:
                self._leg_acted(st, lst, o, ts, out)

    def _take_at(self, st: _Symbol, o: Order, px: int, q: int, market_buy: bool, ts: int, out: list[Event]) -> int:
        """One taker fill of up to ``q`` at ``px``; a MARKET BUY is bounded by its lock (EXCHANGE_CANCELED when
        not even one step fits). Returns the quantity filled (0: stop walking)."""
        if market_buy and px * q // SCALE > o.locked:  # notional(px, q) beyond the lock
            step = st.spec.market_step
            q = min(q, o.locked * SCALE // px // step * step)
            if q <= 0:
                self._expire(st, o, ExpiryReason.EXCHANGE_CANCELED, ts, out)
                return 0
        if q <= 0:
            return 0
        self._fill(st, o, px, q, False, next(st.trade_ids), ts, out)
        return q

    def _fill(self, st: _Symbol, o: Order, price: int, q: int, maker: bool, trade_id: int, ts: int, out: list[Event]) -> None:
        """One trade of ``o``: move balances, charge the fee, advance the status, report it."""
        spec = st.spec
        acct = self.account
        quote = price * q // SCALE
        is_buy = o.is_buy
        flat = self._flat_fee
        if flat is not None:  # the built-in FlatFee, inline: reads no balance, so one account call does it all
            rate = flat.maker_rate_e8 if maker else flat.taker_rate_e8
            if is_buy:
                fee_asset, fee = spec.base_asset, q * rate // SCALE
                acct.settle(spec.quote_asset, quote, fee_asset, q, fee)
                o.locked -= quote
            else:
                fee_asset, fee = spec.quote_asset, quote * rate // SCALE
                acct.settle(spec.base_asset, q, fee_asset, quote, fee)
                o.locked -= q
        else:
            if is_buy:
                acct.trade(spec.quote_asset, quote, spec.base_asset, q)
                o.locked -= quote
            else:
                acct.trade(spec.base_asset, q, spec.quote_asset, quote)
                o.locked -= q
            fee_asset, fee = self._commission(spec, o, price, q, quote, maker, ts)
            if fee:
                acct.charge_fee(fee_asset, fee)
        if self._record_trade is not None:
            self._record_trade(ts, spec.base_asset, spec.quote_asset, quote)
        o.executed += q
        o.cum_quote += quote
        o.update_time = ts
        done = o.qty - o.executed - o.prevented <= 0  # o.remaining, without the property call
        o.status = (_AFTER_FILL if done else _AFTER_PARTIAL).get(o.status) or next_status(
            o.status, _FILL if done else _PARTIAL_FILL, o.order_id)
        out.append(
            OrderFilled(
                0, ts, ts, o.instrument, o.order_id, o.client_order_id, o.side, price, q, quote, o.executed,
                o.cum_quote, o.status, fee, fee_asset, trade_id, maker, o.list_id, next(self._exec_ids),
            )
        )
        if not maker:  # our aggression prints a trade; a passive fill is inside a market print already
            st.book.last_price = price
            self._dirty.add(st)
        if done:
            self._close(st, o)
        elif is_buy and o.order_type in LIMIT_PRICED_TYPES:
            self._release_surplus(st, o)

    def _commission(
        self, spec: SymbolSpec, o: Order, price: int, q: int, quote: int, maker: bool, ts: int
    ) -> tuple[str, int]:
        liq = _MAKER if maker else _TAKER
        asset, fee = self.fees.commission(
            liq, quote, side=o.side, qty_e8=q, price_e8=price, base_asset=spec.base_asset,
            quote_asset=spec.quote_asset, ts=ts,
        )
        received = spec.base_asset if o.is_buy else spec.quote_asset
        if asset != received and fee > self.account.free_of(asset):
            asset, fee = self.fees.commission(
                liq, quote, side=o.side, qty_e8=q, price_e8=price, base_asset=spec.base_asset,
                quote_asset=spec.quote_asset, ts=ts, pay_in_bnb=False,
            )
        return asset, fee

    def _release_surplus(self, st: _Symbol, o: Order) -> None:
        """A BUY limit keeps locked exactly ceil(price x remaining); the rest (price improvement) goes back."""
        need = notional_ceil(o.price, o.remaining)
        if o.locked > need:
            self.account.unlock(st.spec.quote_asset, o.locked - need)
            o.locked = need

    # ----------------------------------------------------------------- self-trade prevention

    def _self_match(self, st: _Symbol, taker: Order, maker: Order, price: int, ts: int, out: list[Event]) -> None:
        """Our taker meets our own resting order: trade (NONE) or prevent per the taker's STP mode."""
        mode = taker.stp
        if mode is _STP_NONE:
            q = min(taker.remaining, maker.remaining)
            if taker.is_buy and taker.order_type in _MARKET_LIKE and price * q // SCALE > taker.locked:
                # a MARKET BUY spends only its lock, against our own asks as against the market's
                # (its lock can fall short of its quantity: quoteOrderQty sized before its own impact,
                # a triggered stop that could not lock more)
                step = st.spec.market_step
                q = min(q, taker.locked * SCALE // price // step * step)
                if q <= 0:
                    self._expire(st, taker, ExpiryReason.EXCHANGE_CANCELED, ts, out)
                    return
            if q <= 0:
                return
            tid = next(st.trade_ids)
            self._fill(st, taker, price, q, False, tid, ts, out)
            self._maker_fill(st, maker, q, tid, ts, out)
            return
        st.prevented_match_id += 1
        pmid = st.prevented_match_id
        expire_taker = mode is SelfTradePreventionMode.EXPIRE_TAKER or mode is SelfTradePreventionMode.EXPIRE_BOTH
        expire_maker = mode is SelfTradePreventionMode.EXPIRE_MAKER or mode is SelfTradePreventionMode.EXPIRE_BOTH
        if mode is SelfTradePreventionMode.DECREMENT or mode is SelfTradePreventionMode.TRANSFER:
            # TRANSFER between orders of one account is DECREMENT (the transfer nets to zero).
            q = min(taker.remaining, maker.remaining)
            self._prevent(st, taker, maker, price, q, pmid, True, ts, out)
            self._prevent(st, maker, taker, price, q, pmid, False, ts, out)
            return
        if expire_taker:
            self._prevent(st, taker, maker, price, taker.remaining, pmid, True, ts, out)
        if expire_maker:
            self._prevent(st, maker, taker, price, maker.remaining, pmid, False, ts, out)

    def _prevent(
        self, st: _Symbol, o: Order, counter: Order, price: int, q: int, pmid: int, taker: bool, ts: int, out: list[Event]
    ) -> None:
        """Add ``q`` to ``o``'s prevented quantity; expire it (EXPIRED_IN_MATCH) when nothing is left."""
        o.prevented += q
        o.prevented_match_id = pmid
        o.update_time = ts
        gone = o.remaining <= 0
        o.status = next_status(o.status, OrderAction.EXPIRE_IN_MATCH if gone else OrderAction.PREVENT, o.order_id)
        if gone:
            o.expiry_reason = ExpiryReason.NONE
        out.append(
            OrderTradePrevented(
                0, ts, ts, o.instrument, o.order_id, o.client_order_id, o.status, pmid, price, q, o.prevented,
                counter.order_id, taker, o.executed, o.cum_quote, o.list_id, next(self._exec_ids),
            )
        )
        if gone:
            self._close(st, o)
            self._after_leg_final(st, o, ts, out)
        elif o.is_buy and o.order_type in LIMIT_PRICED_TYPES:
            self._release_surplus(st, o)
        elif not o.is_buy and o.locked > o.remaining and o.order_type not in _MARKET_LIKE:
            self.account.unlock(st.spec.base_asset, o.locked - o.remaining)
            o.locked = o.remaining

    # ----------------------------------------------------------------- resting orders filled by the market

    def _maker_fill(self, st: _Symbol, m: Order, q: int, trade_id: int, ts: int, out: list[Event]) -> None:
        """A resting order of ours trades ``q`` at its own price; list effects follow the trade."""
        lst = self._lists.get(m.list_id) if m.list_id >= 0 else None
        if lst is not None and lst.pair is not None:
            self._take_pair_lock(st, lst, m)
        if m.iceberg_qty:
            m.visible_left -= q
        self._fill(st, m, m.price, q, True, trade_id, ts, out)
        if m.iceberg_qty and m.is_open and m.visible_left <= 0:
            m.visible_left = min(m.iceberg_qty, m.remaining)
            side = st.book.book.bids if m.is_buy else st.book.book.asks
            m.queue_ahead = self.queue.initial(side.qty(m.price))
        if lst is not None:
            self._leg_acted(st, lst, m, ts, out)

    def _on_trade(self, st: _Symbol, price: int, qty: int, buyer_maker: bool, ts: int, out: list[Event]) -> None:
        bk = st.book
        if st.top is not None:
            self._sync_top(st)  # the book as it stood before this print (iceberg refills read it)
        bk.last_price = price
        for v in bk.vwaps.values():
            v.add(ts, price, qty)
        if self.impact is not None:
            self.impact.on_trade(ts, price, qty)
        own = bk.bids if buyer_maker else bk.asks  # a selling taker hits bids, a buying taker lifts asks
        keys = own.keys
        best = keys[-1] * own.sign if keys else None  # own.best()
        if best is not None and (best >= price if buyer_maker else best <= price):
            budget = qty
            queue = self.queue
            if price in own.levels:  # a queue rule must not count this print again as a cancel
                key = (buyer_maker, price)
                st.traded_at[key] = st.traded_at.get(key, 0) + qty
            sign = own.sign
            for k in keys[bisect_left(keys, price * sign):][::-1]:  # own.prices_from_best(price), inline
                p = k * sign
                level = own.levels.get(p)
                if not level:
                    continue
                touch = p == price
                for m in list(level.values()):
                    if budget <= 0:
                        break
                    if m.status not in OPEN_STATUSES:  # not m.is_open
                        continue
                    left = m.qty - m.executed - m.prevented  # m.remaining
                    if touch:
                        ahead = m.queue_ahead
                        m.queue_ahead = queue.on_trade(ahead, qty)
                        f = min(left, qty - ahead, budget)
                        if m.iceberg_qty:
                            f = min(f, m.visible_left)
                    else:
                        f = left if left < budget else budget
                    if f > 0:
                        budget -= f
                        if m.list_id < 0 and not m.iceberg_qty:  # what _maker_fill does for a plain order
                            self._fill(st, m, m.price, f, True, next(st.trade_ids), ts, out)
                        else:
                            self._maker_fill(st, m, f, next(st.trade_ids), ts, out)
                if budget <= 0:
                    break
        if self._trades_as_book:
            st.top = (price, qty)
            st.ref_bid = st.ref_ask = price
        if bk.triggers.orders:
            self._dirty.add(st)
            self._run_triggers(st, ts, out)
        else:  # what _run_triggers would do with no stop to fire
            self._dirty.discard(st)

    def _sync_top(self, st: _Symbol) -> None:
        """L1 trades-as-book: write the last trade into the book as the whole of both sides.

        Deferred from the trade itself to the next thing that reads the book (a command, another
        market event, a report), so a trade nobody acts on costs no book update.
        """
        top = st.top
        st.top = None
        if top is not None and top[1] > 0:
            price, qty = top
            for side in (st.book.book.bids, st.book.book.asks):
                side.clear()
                side.set(price, qty)

    def _on_quote(self, st: _Symbol, q: QuoteReceived, ts: int, out: list[Event]) -> None:
        """A bookTicker: the top of each side becomes exactly the quote (better levels were taken).

        L1 (``use_depth=False``): the quote is all there is, each side becomes just its quote.
        """
        book = st.book.book
        l1 = not self.config.use_depth
        if l1:
            st.ref_bid = q.bid_price or st.ref_bid
            st.ref_ask = q.ask_price or st.ref_ask
        for side, own, price, qty in ((book.bids, st.book.bids, q.bid_price, q.bid_qty), (book.asks, st.book.asks, q.ask_price, q.ask_qty)):
            if l1:
                if price > 0:
                    self._apply_side(st, side, own, ((price, qty),))
                side.replace(((price, qty),) if price > 0 else ())
                continue
            sign = 1 if side is book.bids else -1
            while True:  # levels better than the quote are gone
                best = side.best_price()
                if best is None or price <= 0 or best * sign <= price * sign:
                    break
                self._apply_side(st, side, own, ((best, 0),))
            if price > 0:
                self._apply_side(st, side, own, ((price, qty),))
        if self.config.last_price_from_quotes and q.bid_price > 0 and q.ask_price > 0:
            st.book.last_price = (q.bid_price + q.ask_price) // 2
            self._dirty.add(st)
        self._cross(st, ts, out)
        self._run_triggers(st, ts, out)

    def _apply_side(self, st: _Symbol, side: Any, own: Any, levels: Sequence[tuple[int, int]]) -> None:
        own_levels = own.levels
        is_bid = own is st.book.bids
        for price, qty in levels:
            if own_levels and price in own_levels:
                old = self._level_before(st, is_bid, price, side.qty(price))
                for m in own_levels[price].values():
                    m.queue_ahead = self.queue.on_level_change(m.queue_ahead, old, qty)
            side.set(price, qty)

    @staticmethod
    def _level_before(st: _Symbol, is_bid: bool, price: int, shown: int) -> int:
        """The level as it stood after the trades at its price that the queue rule already applied.

        A depth update's decrease includes those prints; handing the rule the level net of them
        keeps a probabilistic rule from taking them for cancels a second time.
        """
        traded = st.traded_at.pop((is_bid, price), 0)
        return shown - traded if shown > traded else 0

    def _on_levels(self, st: _Symbol, bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]], ts: int,
                   out: list[Event]) -> None:
        book = st.book.book
        self._apply_side(st, book.bids, st.book.bids, bids)
        self._apply_side(st, book.asks, st.book.asks, asks)
        self._cross(st, ts, out)
        self._run_triggers(st, ts, out)

    def _on_snapshot(self, st: _Symbol, ev: BookSnapshotReceived, ts: int, out: list[Event]) -> None:
        book = st.book.book
        for side, own in ((book.bids, st.book.bids), (book.asks, st.book.asks)):
            is_bid = side is book.bids
            before = {p: self._level_before(st, is_bid, p, side.qty(p)) for p in own.levels}
            side.replace(ev.bids if side is book.bids else ev.asks)
            for p, old in before.items():
                new = side.qty(p)
                for m in own.levels[p].values():
                    m.queue_ahead = self.queue.on_level_change(m.queue_ahead, old, new)
        self._cross(st, ts, out)
        self._run_triggers(st, ts, out)

    def _cross(self, st: _Symbol, ts: int, out: list[Event]) -> None:
        """Resting orders of ours the displayed market now crosses fill at their price, bounded by the crossing size."""
        bk = st.book
        consume = self.config.consume_liquidity
        for own, market, is_bid in ((bk.asks, bk.book.bids, False), (bk.bids, bk.book.asks, True)):
            best = own.best()
            mbest = market.best_price()
            if best is None or mbest is None or (mbest > best if is_bid else mbest < best):
                continue
            levels = [lv for lv in market.top(64) if (lv[0] <= best if is_bid else lv[0] >= best)]
            avail = {p: q for p, q in levels}
            for p in own.prices_from_best(mbest):
                level = own.levels.get(p)
                if not level:
                    continue
                for m in list(level.values()):
                    for mp, _ in levels:
                        if not m.is_open:
                            break
                        left = avail[mp]
                        if left <= 0 or (mp > p if is_bid else mp < p):
                            continue
                        f = min(left, m.remaining)
                        avail[mp] = left - f
                        self._maker_fill(st, m, f, next(st.trade_ids), ts, out)
            if consume:
                for mp, q0 in levels:
                    if avail[mp] != q0:
                        market.set(mp, avail[mp])

    # ----------------------------------------------------------------- triggers

    def _run_triggers(self, st: _Symbol, ts: int, out: list[Event]) -> None:
        """Fire every stop the current last price satisfies, repeatedly (our own fills move the price)."""
        bk = st.book
        trig = bk.triggers
        while st in self._dirty and bk.last_price is not None and trig.orders:
            self._dirty.discard(st)
            last = bk.last_price
            fired = trig.fired(last)
            if trig.trailing:
                rises = {oid: rises_to_trigger(o.order_type, o.side) for oid, o in trig.trailing.items()}
                fired.extend(trig.trailing_fired(last, ts, rises))
                fired.sort(key=lambda o: o.order_id)
            for o in fired:
                if o.is_open and not o.triggered:
                    self._trigger(st, o, ts, out)
        self._dirty.discard(st)

    def _trigger(self, st: _Symbol, o: Order, ts: int, out: list[Event]) -> None:
        o.triggered = True
        o.status = next_status(o.status, OrderAction.TRIGGER, o.order_id)
        o.working_time = ts
        o.update_time = ts
        out.append(
            OrderTriggered(0, ts, ts, o.instrument, o.order_id, o.client_order_id, st.book.last_price or 0, ts,
                           o.list_id, next(self._exec_ids))
        )
        lst = self._lists.get(o.list_id) if o.list_id >= 0 else None
        if lst is not None and lst.pair is not None:
            self._take_pair_lock(st, lst, o)
            self._expire_partner(st, lst, o, ts, out)
        if o.is_buy and o.order_type in _MARKET_LIKE:
            cost = self._dry_run(st, o)[0]
            if cost > o.locked:
                extra = min(cost - o.locked, self.account.free_of(st.spec.quote_asset))
                if self.account.try_lock(st.spec.quote_asset, extra):
                    o.locked += extra
        self._work(st, o, ts, out)
        if lst is not None:
            self._list_progress(st, lst, ts, out)

    # ----------------------------------------------------------------- ending orders

    def _close(self, st: _Symbol, o: Order) -> None:
        """Bookkeeping for an order that reached a final status: out of the books, funds released."""
        if o.working:
            own = st.book.bids if o.is_buy else st.book.asks
            price = o.price
            level = own.levels[price]  # own.remove(o), inline
            del level[o.order_id]
            if not level:
                del own.levels[price]
                keys = own.keys
                del keys[bisect_left(keys, price * own.sign)]
            o.working = False
        elif o.order_type in STOP_TYPES and not o.triggered:
            st.book.triggers.remove(o, rises_to_trigger(o.order_type, o.side))
        if o.locked:
            self.account.unlock(st.spec.quote_asset if o.is_buy else st.spec.base_asset, o.locked)
            o.locked = 0
        if st.open.pop(o.order_id, None) is not None:
            self._n_open -= 1
            if not self._n_open:
                self.quiet = self._all_passive
            cid = o.client_order_id
            open_cids = st.open_cids
            if open_cids.get(cid) is o:
                del open_cids[cid]
            if o.order_type in STOP_TYPES:
                st.n_algo -= 1
            if o.iceberg_qty:
                st.n_iceberg -= 1
        fin = self._finished
        fin.append(o.order_id)
        if len(fin) > self._history:
            old = self._orders.pop(fin.popleft(), None)
            if old is not None:
                by_cid = self._symbols[old.instrument].by_cid
                if by_cid.get(old.client_order_id) == old.order_id:
                    del by_cid[old.client_order_id]

    def _expire(
        self, st: _Symbol, o: Order, reason: ExpiryReason, ts: int, out: list[Event], notify_list: bool = True
    ) -> None:
        o.status = _AFTER_EXPIRE.get(o.status) or next_status(o.status, _EXPIRE, o.order_id)
        o.expiry_reason = reason
        o.update_time = ts
        out.append(
            OrderExpired(0, ts, ts, o.instrument, o.order_id, o.client_order_id, o.status, reason, o.executed,
                         o.cum_quote, o.list_id, next(self._exec_ids))
        )
        self._close(st, o)
        if notify_list:
            self._after_leg_final(st, o, ts, out)

    def _cancel_one(self, st: _Symbol, o: Order, cancel_cid: str, ts: int, out: list[Event]) -> None:
        o.status = _AFTER_CANCEL.get(o.status) or next_status(o.status, _CANCEL, o.order_id)
        o.update_time = ts
        out.append(
            OrderCanceled(0, ts, ts, o.instrument, o.order_id, o.client_order_id, cancel_cid, o.executed, o.cum_quote,
                          o.list_id, next(self._exec_ids))
        )
        self._close(st, o)

    # ----------------------------------------------------------------- cancel / query

    def _find(self, st: _Symbol, order_id: int | None, cid: str | None) -> Order | None:
        if order_id is not None:
            o = self._orders.get(order_id)
            if o is None or o.instrument != st.spec.instrument:
                return None
            if cid is not None and o.client_order_id != cid:
                return None
            return o
        if cid is not None:
            oid = st.by_cid.get(cid)
            return self._orders.get(oid) if oid is not None else None
        return None

    def _cancel(self, cmd: CancelOrder, ts: int, out: list[Event]) -> None:
        oid = cmd.order_id
        if oid is not None and cmd.orig_client_order_id is None and cmd.cancel_restrictions is None \
                and cmd.new_client_order_id is None:
            # the common request (by orderId, nothing else): when every check below would pass, skip them
            st = self._symbols.get(cmd.instrument)
            o = self._orders.get(oid)
            if st is not None and st.cancelable and o is not None and o.status in OPEN_STATUSES \
                    and o.instrument == st.spec.instrument and o.list_id < 0:
                n = self._cid_n + _ID_MULT  # self._new_cid(), inline
                if n > _ID_MASK:
                    n &= _ID_MASK
                self._cid_n = n
                self._cancel_one(st, o, "x-" + n.to_bytes(10, "big").hex(), ts, out)
                return
        try:
            st = self._symbols.get(cmd.instrument)
            if st is None or not st.cancelable:
                st = self._symbol_for(cmd.instrument, False)  # raises Binance's error
            if cmd.order_id is None and cmd.orig_client_order_id is None:
                raise _Reject(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
            if cmd.orig_client_order_id == "":
                raise _Reject(-1119, "Original client order ID was empty.")
            restriction = None
            if cmd.cancel_restrictions is not None:
                if cmd.cancel_restrictions not in CancelRestrictions.__members__:
                    raise _Reject(-1145, "cancelRestrictions has to be either ONLY_NEW or ONLY_PARTIALLY_FILLED.")
                restriction = CancelRestrictions(cmd.cancel_restrictions)
            o = self._find(st, cmd.order_id, cmd.orig_client_order_id)
            if o is None or o.status not in OPEN_STATUSES:
                raise _Reject(-2011, UNKNOWN_ORDER)
            if restriction is not None and (
                restriction is CancelRestrictions.ONLY_NEW and o.status is not OrderStatus.NEW
                or restriction is CancelRestrictions.ONLY_PARTIALLY_FILLED and o.status is not OrderStatus.PARTIALLY_FILLED
            ):
                raise _Reject(-2011, "Order was not canceled due to cancel restrictions.")
            given = cmd.new_client_order_id
            cancel_cid = self._new_cid() if given is None else self._client_id(given, "newClientOrderId")
        except _Reject as rej:
            out.append(CancelRejected(0, ts, ts, cmd.instrument, rej.code, rej.msg, cmd.order_id if cmd.order_id is not None else -1,
                                      cmd.orig_client_order_id or ""))
            return
        lst = self._lists.get(o.list_id) if o.list_id >= 0 else None
        if lst is not None and lst.is_open:
            self._cancel_list(st, lst, cancel_cid, ts, out, first=o)
        else:
            self._cancel_one(st, o, cancel_cid, ts, out)

    def _cancel_all(self, cmd: CancelAllOrders, ts: int, out: list[Event]) -> None:
        try:
            st = self._symbol_for(cmd.instrument, False)
        except _Reject as rej:
            out.append(CancelRejected(0, ts, ts, cmd.instrument, rej.code, rej.msg))
            return
        if not st.open:
            out.append(CancelRejected(0, ts, ts, cmd.instrument, -2011, UNKNOWN_ORDER))
            return
        for o in sorted(st.open.values(), key=lambda x: x.order_id):
            if not o.is_open:
                continue
            lst = self._lists.get(o.list_id) if o.list_id >= 0 else None
            if lst is not None and lst.is_open:
                self._cancel_list(st, lst, self._new_cid(), ts, out)
            else:
                self._cancel_one(st, o, self._new_cid(), ts, out)

    def _cancel_list_cmd(self, cmd: CancelOrderList, ts: int, out: list[Event]) -> None:
        try:
            st = self._symbol_for(cmd.instrument, False)
            if cmd.order_list_id is None and cmd.list_client_order_id is None:
                raise _Reject(-1102, "Param 'listClientOrderId' or 'orderListId' must be sent, but both were empty/null!")
            lst = None
            if cmd.order_list_id is not None:
                lst = self._lists.get(cmd.order_list_id)
                if lst is not None and cmd.list_client_order_id is not None and lst.list_client_order_id != cmd.list_client_order_id:
                    lst = None
            elif cmd.list_client_order_id is not None:
                lst = st.open_list_cids.get(cmd.list_client_order_id)
            if lst is None or not lst.is_open or lst.instrument != cmd.instrument:
                raise _Reject(-2011, UNKNOWN_ORDER)
            cancel_cid = self._client_id(cmd.new_client_order_id, "newClientOrderId")
        except _Reject as rej:
            oid = cmd.order_list_id if cmd.order_list_id is not None else -1
            out.append(CancelRejected(0, ts, ts, cmd.instrument, rej.code, rej.msg, order_list_id=oid))
            return
        self._cancel_list(st, lst, cancel_cid, ts, out)

    def _query(self, cmd: QueryOrder, ts: int, out: list[Event]) -> None:
        st = self._symbols.get(cmd.instrument)
        if st is None:
            out.append(OrderStatusReported(0, ts, ts, cmd.instrument, None, -1121, "Invalid symbol."))
            return
        if cmd.order_id is None and cmd.orig_client_order_id is None:
            msg = "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            out.append(OrderStatusReported(0, ts, ts, cmd.instrument, None, -1102, msg))
            return
        o = self._find(st, cmd.order_id, None)
        if cmd.order_id is None:
            o = self._find(st, None, cmd.orig_client_order_id)
        elif o is not None and cmd.orig_client_order_id is not None and o.client_order_id != cmd.orig_client_order_id:
            msg = "Client order ID is not correct for this order ID."
            out.append(OrderStatusReported(0, ts, ts, cmd.instrument, None, -2039, msg))
            return
        if o is None:
            out.append(OrderStatusReported(0, ts, ts, cmd.instrument, None, -2013, "Order does not exist."))
            return
        out.append(OrderStatusReported(0, ts, ts, cmd.instrument, o.snapshot(st.spec.symbol)))

    # ----------------------------------------------------------------- order lists

    def _submit_list(self, cmd: SubmitOrderList, ts: int, out: list[Event]) -> None:
        cids: list[str] = [leg.client_order_id or "" for leg in cmd.legs]
        try:
            st = self._symbol_for(cmd.instrument, True)
            spec = st.spec
            if cmd.shape in (ListShape.OTO, ListShape.OTOCO):
                if not spec.oto_allowed:
                    raise _Reject(-1013, "OTO orders are not supported for this symbol.")
            elif not spec.oco_allowed:
                raise _Reject(-1013, "OCO orders are not supported for this symbol")
            try:
                check_shape(cmd)
            except RequestRejected as exc:
                raise _Reject(exc.code, exc.msg) from None
            stp = self._stp(cmd.stp_mode, spec)
            list_cid = self._client_id(cmd.list_client_order_id, "listClientOrderId")
            tifs = []
            for i, leg in enumerate(cmd.legs):
                prefix = _leg_namer(cmd.shape, i)
                if leg.iceberg_qty and leg.time_in_force not in (None, TimeInForce.GTC) and cmd.shape is not ListShape.OCO_LEGACY:
                    raise _Reject(
                        -1160,
                        f"Parameter '{prefix('icebergQty')}' is not supported if aboveTimeInForce/belowTimeInForce is not GTC.",
                    )
                tifs.append(self._validate(spec, leg.side, leg.order_type, leg.quantity, leg.price, leg.time_in_force, 0,
                                           leg.stop_price, leg.trailing_delta, leg.iceberg_qty, prefix))
                cids[i] = self._client_id(leg.client_order_id, prefix("clientOrderId"))
            for leg in cmd.legs:
                params = OrderParams(spec.symbol, leg.side.value, leg.order_type.value, leg.price or None,
                                     leg.quantity or None, None, leg.stop_price or None, leg.iceberg_qty or None,
                                     leg.trailing_delta or None)
                self._check_filters(st, params, len(cmd.legs), ts)
            given = [c for c, leg in zip(cids, cmd.legs, strict=True) if leg.client_order_id is not None]
            if len(set(given)) != len(given):
                raise _Reject(-1013, DUPLICATE)
            last = st.book.last_price
            self._check_list_prices(cmd, last)
            if list_cid in st.open_list_cids or any(c in st.open_cids for c in cids):
                raise _Reject(-2010, DUPLICATE)
            if cmd.list_client_order_id is not None and self._recent_lists.retry_of(list_cid, cmd, ts) is not None:
                raise _Reject(-2010, DUPLICATE)
            legs = [
                Order(0, cids[i], cmd.instrument, leg.side, leg.order_type, tifs[i], leg.quantity, leg.price,
                      leg.stop_price, 0, leg.iceberg_qty, leg.trailing_delta, stp, self._next_list_id, ts)
                for i, leg in enumerate(cmd.legs)
            ]
            for o, leg in zip(legs, cmd.legs, strict=True):
                o.strategy_id, o.strategy_type = leg.strategy_id, leg.strategy_type
            first = legs if cmd.shape in (ListShape.OCO, ListShape.OCO_LEGACY) else legs[:1]
            for o in first:
                self._engine_checks(st, o)
            lock = max(self._lock_needed(st, o) for o in first)
            if not self.account.try_lock(spec.quote_asset if first[0].is_buy else spec.base_asset, lock):
                raise _Reject(-2010, INSUFFICIENT_BALANCE)
        except _Reject as rej:
            self._reject(cmd, cids[0] if cids else "", rej.code, rej.msg, ts, out)
            return
        self._place_list(st, cmd, list_cid, legs, lock, ts, out)

    def _check_list_prices(self, cmd: SubmitOrderList, last: int | None) -> None:
        try:
            if cmd.shape is ListShape.OCO:
                check_oco_prices(cmd.legs[0], cmd.legs[1], last)
            elif cmd.shape is ListShape.OCO_LEGACY:
                check_legacy_prices(cmd.legs[0], cmd.legs[1], last)
            elif cmd.shape is ListShape.OTOCO:
                check_oco_prices(cmd.legs[1], cmd.legs[2], None)
        except RequestRejected as exc:
            raise _Reject(exc.code, exc.msg) from None

    def _place_list(self, st: _Symbol, cmd: SubmitOrderList, list_cid: str, legs: list[Order], lock: int, ts: int,
                    out: list[Event]) -> None:
        lst = OrderList(self._next_list_id, list_cid, cmd.shape, cmd, ts)
        self._next_list_id += 1
        self._lists[lst.list_id] = lst
        for i in placement_order(cmd):
            legs[i].order_id = self._next_order_id
            self._next_order_id += 1
        lst.legs = sorted(legs, key=lambda o: o.order_id)
        if cmd.list_client_order_id is not None:
            self._recent_lists.remember(list_cid, cmd, lst.list_id, ts)
        st.open_list_cids[list_cid] = lst
        oco = cmd.shape in (ListShape.OCO, ListShape.OCO_LEGACY)
        if oco:
            lst.pair = (legs[0], legs[1])
            lst.locked = lock
        else:
            lst.working = legs[0]
            legs[0].locked = lock
            lst.pending = sorted(legs[1:], key=lambda o: o.order_id)
        for o in lst.legs:
            pending = o in lst.pending
            self._accept(st, o, OrderAction.ACCEPT_PENDING if pending else OrderAction.ACCEPT, ts, out)
        lst.status_type, lst.status = next_list_state(None, ListAction.START, lst.list_id)
        out.append(self._list_event(lst, ts))
        for o in [leg for leg in lst.legs if leg.status is not OrderStatus.PENDING_NEW]:
            if o.is_open:  # an OCO partner may have acted meanwhile
                self._start(st, o, ts, out)
        self._run_triggers(st, ts, out)

    def _list_event(self, lst: OrderList, ts: int) -> OrderListStatusChanged:
        assert lst.status is not None and lst.status_type is not None
        return OrderListStatusChanged(
            0, ts, ts, lst.instrument, lst.list_id, lst.list_client_order_id, lst.contingency, lst.status_type,
            lst.status, tuple(o.order_id for o in lst.legs), tuple(o.client_order_id for o in lst.legs),
        )

    def _take_pair_lock(self, st: _Symbol, lst: OrderList, leg: Order) -> None:
        """An OCO leg acts: it takes over the pair's shared lock (its partner is about to expire)."""
        leg.locked += lst.locked
        lst.locked = 0

    def _expire_partner(self, st: _Symbol, lst: OrderList, leg: Order, ts: int, out: list[Event]) -> None:
        other = lst.other(leg)
        lst.pair = None
        if other is not None and other.is_open:
            self._expire(st, other, ExpiryReason.OCO_TRIGGER, ts, out, notify_list=False)
        if leg.is_open:
            if leg.is_buy and leg.order_type in LIMIT_PRICED_TYPES:
                self._release_surplus(st, leg)
            elif not leg.is_buy and leg.locked > leg.remaining:
                self.account.unlock(st.spec.base_asset, leg.locked - leg.remaining)
                leg.locked = leg.remaining

    def _leg_acted(self, st: _Symbol, lst: OrderList, leg: Order, ts: int, out: list[Event]) -> None:
        """After a leg traded: an OCO expires the partner; a filled OTO working order releases its pending legs."""
        if lst.pair is not None and leg in lst.pair:
            self._expire_partner(st, lst, leg, ts, out)
        elif leg is lst.working and leg.status is OrderStatus.FILLED and lst.pending:
            self._activate_pending(st, lst, ts, out)
        self._list_progress(st, lst, ts, out)

    def _after_leg_final(self, st: _Symbol, o: Order, ts: int, out: list[Event]) -> None:
        """An order ended without trading to completion: its list reacts (OCO partner, OTO pending legs)."""
        if o.list_id < 0:
            return
        lst = self._lists.get(o.list_id)
        if lst is None or not lst.is_open:
            return
        if lst.pair is not None and o in lst.pair:
            other = lst.other(o)
            lst.pair = None
            if other is not None and other.is_open:
                other.locked += lst.locked  # hand the shared lock over so _close releases it
                lst.locked = 0
                self._expire(st, other, ExpiryReason.OCO_TRIGGER, ts, out, notify_list=False)
            elif lst.locked:
                self.account.unlock(st.spec.quote_asset if o.is_buy else st.spec.base_asset, lst.locked)
                lst.locked = 0
        elif o is lst.working and lst.pending and o.status is not OrderStatus.FILLED:
            for p in list(lst.pending):
                lst.pending.remove(p)
                if p.is_open:
                    self._expire(st, p, ExpiryReason.OTO_PHASE_ONE_EXPIRED, ts, out, notify_list=False)
        self._list_progress(st, lst, ts, out)

    def _activate_pending(self, st: _Symbol, lst: OrderList, ts: int, out: list[Event]) -> None:
        """OTO/OTOCO: the working order filled; the pending order(s) go live (PENDING_NEW -> NEW)."""
        pending = list(lst.pending)
        lst.pending = []
        spec = st.spec
        lock = max(self._lock_needed(st, o) for o in pending)
        if not self.account.try_lock(spec.quote_asset if pending[0].is_buy else spec.base_asset, lock):
            for o in pending:
                o.status = next_status(o.status, OrderAction.ACTIVATE, o.order_id)
                self._expire(st, o, ExpiryReason.REJECTED, ts, out, notify_list=False)
            return
        if len(pending) == 2:
            lst.pair = (pending[0], pending[1])
            lst.locked = lock
        else:
            pending[0].locked = lock
        for o in pending:
            o.status = next_status(o.status, OrderAction.ACTIVATE, o.order_id)
            if o.order_type not in STOP_TYPES:
                o.working_time = ts
            out.append(self._accepted_event(o, ts))
        for o in pending:
            if not o.is_open:
                continue
            if o.order_type in STOP_TYPES and o.stop_price and st.book.last_price is not None:
                last = st.book.last_price
                if (last >= o.stop_price) if rises_to_trigger(o.order_type, o.side) else (last <= o.stop_price):
                    self._trigger(st, o, ts, out)  # a pending stop whose condition already holds works at once
                    continue
            self._start(st, o, ts, out)

    def _list_progress(self, st: _Symbol, lst: OrderList, ts: int, out: list[Event]) -> None:
        """Emit the list's status after a change: ALL_DONE when finished (per ``oco_done_on_trigger``)."""
        if not lst.is_open:
            return
        all_final = all(not o.is_open for o in lst.legs)
        resolved = lst.pair is None and not lst.pending and (
            lst.contingency.value == "OCO" or (lst.shape is ListShape.OTOCO and lst.working is not None
                                               and not lst.working.is_open)
        )
        if all_final or (self.config.oco_done_on_trigger and resolved):
            lst.status_type, lst.status = next_list_state(lst.status, ListAction.FINISH, lst.list_id)
            if st.open_list_cids.get(lst.list_client_order_id) is lst:
                del st.open_list_cids[lst.list_client_order_id]
            out.append(self._list_event(lst, ts))

    def _cancel_list(self, st: _Symbol, lst: OrderList, cancel_cid: str, ts: int, out: list[Event],
                     first: Order | None = None) -> None:
        """Cancel every open leg (the named one first), release the shared lock, finish the list."""
        legs = [o for o in lst.legs if o.is_open]
        if first is not None and first in legs:
            legs.remove(first)
            legs.insert(0, first)
        if lst.pair is not None and lst.locked:
            self.account.unlock(st.spec.quote_asset if lst.pair[0].is_buy else st.spec.base_asset, lst.locked)
            lst.locked = 0
        lst.pair = None
        lst.pending = []
        for o in legs:
            self._cancel_one(st, o, cancel_cid, ts, out)
        self._list_progress(st, lst, ts, out)


# --------------------------------------------------------------------------- responses


def _fmt(v: int) -> str:
    return format_e8_fixed(v, 8)


def _ms(ns: int) -> int:
    return ns // 1_000_000 if ns >= 0 else -1


def render_order(
    snap: OrderSnapshot,
    resp_type: NewOrderRespType | None = None,
    fills: Sequence[OrderFilled] = (),
    transact_time_ns: int | None = None,
) -> dict[str, Any]:
    """Binance's JSON body for ``POST /api/v3/order`` (ACK / RESULT / FULL), from a snapshot and its fills.

    ``resp_type`` None takes Binance's default for the order type. Conditional fields appear
    under the documented conditions (``stopPrice`` for stop types, ``icebergQty`` when sent,
    ``preventedMatchId``/``preventedQuantity`` after STP, strategy ids when sent).
    """
    resp_type = resp_type or default_resp_type(snap.order_type)
    tt = _ms(transact_time_ns if transact_time_ns is not None else snap.update_time)
    body: dict[str, Any] = {
        "symbol": snap.symbol,
        "orderId": snap.order_id,
        "orderListId": snap.order_list_id,
        "clientOrderId": snap.client_order_id,
        "transactTime": tt,
    }
    if resp_type is NewOrderRespType.ACK:
        return body
    body.update(
        {
            "price": _fmt(snap.price),
            "origQty": _fmt(snap.orig_qty),
            "executedQty": _fmt(snap.executed_qty),
            "origQuoteOrderQty": _fmt(snap.orig_quote_order_qty),
            "cummulativeQuoteQty": _fmt(snap.cum_quote),
            "status": snap.status.value,
            "timeInForce": snap.time_in_force.value,
            "type": snap.order_type.value,
            "side": snap.side.value,
        }
    )
    _conditional(snap, body)
    body["workingTime"] = _ms(snap.working_time)
    body["selfTradePreventionMode"] = snap.stp_mode.value
    if resp_type is NewOrderRespType.FULL:
        body["fills"] = [
            {
                "price": _fmt(f.price),
                "qty": _fmt(f.qty),
                "commission": _fmt(f.commission),
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in fills
            if f.order_id == snap.order_id
        ]
    return body


def _conditional(snap: OrderSnapshot, body: dict[str, Any]) -> None:
    if snap.order_type in STOP_TYPES:
        body["stopPrice"] = _fmt(snap.stop_price)
    if snap.iceberg_sent:
        body["icebergQty"] = _fmt(snap.iceberg_qty)
    if snap.trailing_delta:
        body["trailingDelta"] = snap.trailing_delta
        body["trailingTime"] = _ms(snap.trailing_time)
    if snap.strategy_id is not None:
        body["strategyId"] = snap.strategy_id
    if snap.strategy_type is not None:
        body["strategyType"] = snap.strategy_type
    if snap.prevented_match_id >= 0:
        body["preventedMatchId"] = snap.prevented_match_id
        body["preventedQuantity"] = _fmt(snap.prevented_qty)
    if snap.expiry_reason is not ExpiryReason.NONE:
        body["expiryReason"] = snap.expiry_reason.value


def render_query(snap: OrderSnapshot) -> dict[str, Any]:
    """Binance's JSON body for ``GET /api/v3/order``."""
    body: dict[str, Any] = {
        "symbol": snap.symbol,
        "orderId": snap.order_id,
        "orderListId": snap.order_list_id,
        "clientOrderId": snap.client_order_id,
        "price": _fmt(snap.price),
        "origQty": _fmt(snap.orig_qty),
        "executedQty": _fmt(snap.executed_qty),
        "cummulativeQuoteQty": _fmt(snap.cum_quote),
        "status": snap.status.value,
        "timeInForce": snap.time_in_force.value,
        "type": snap.order_type.value,
        "side": snap.side.value,
        "stopPrice": _fmt(snap.stop_price),
        "icebergQty": _fmt(snap.iceberg_qty),
        "time": _ms(snap.time),
        "updateTime": _ms(snap.update_time),
        "isWorking": snap.is_working,
        "workingTime": _ms(snap.working_time),
        "origQuoteOrderQty": _fmt(snap.orig_quote_order_qty),
        "selfTradePreventionMode": snap.stp_mode.value,
    }
    if snap.prevented_match_id >= 0:
        body["preventedMatchId"] = snap.prevented_match_id
        body["preventedQuantity"] = _fmt(snap.prevented_qty)
    return body


def render_order_list(
    lst_event: OrderListStatusChanged,
    snaps: Sequence[OrderSnapshot],
    resp_type: NewOrderRespType = NewOrderRespType.FULL,
    fills: Sequence[OrderFilled] = (),
) -> dict[str, Any]:
    """Binance's JSON body for an order-list placement (``orderReports`` shaped by ``resp_type``)."""
    symbol = snaps[0].symbol if snaps else ""
    return {
        "orderListId": lst_event.order_list_id,
        "contingencyType": lst_event.contingency.value,
        "listStatusType": lst_event.list_status_type.value,
        "listOrderStatus": lst_event.list_order_status.value,
        "listClientOrderId": lst_event.list_client_order_id,
        "transactionTime": _ms(lst_event.ts_event),
        "symbol": symbol,
        "orders": [{"symbol": s.symbol, "orderId": s.order_id, "clientOrderId": s.client_order_id} for s in snaps],
        "orderReports": [render_order(s, resp_type, fills, lst_event.ts_event) for s in snaps],
    }


def order_list_legs(venue: SimVenue, order_list_id: int) -> list[OrderSnapshot]:
    """Snapshots of a list's legs in order-id order (for :func:`render_order_list`)."""
    lst = venue.order_list(order_list_id)
    if lst is None:
        return []
    out = []
    for o in lst.legs:
        snap = venue.order(o.order_id)
        if snap is not None:
            out.append(snap)
    return out


__all__ = [
    "FeeModel",
    "FlatFee",
    "OrderChecker",
    "OrderLeg",
    "SimConfig",
    "SimVenue",
    "SymbolSpec",
    "TradeRecorder",
    "render_order",
    "render_order_list",
    "render_query",
    "rules_checker",
]
