"""The risk engine: one sans-I/O object between every strategy and the venue, in every mode.

It is fed three things and answers one question:

- **fills and order events** (:meth:`RiskEngine.on_venue_event`): positions, cash, fees and
  what is still open of the orders it approved;
- **marks** (:meth:`RiskEngine.on_market` / :meth:`RiskEngine.on_trade`): last trade, mark
  price (optionally the quote mid), hence equity;
- **time** (every call carries ``now``, event time in int ns, never the wall clock);
- and it decides each command (:meth:`RiskEngine.decide`), returning the decision *event*
  (:class:`~engine.events.RiskApproved` or :class:`~engine.events.RiskDenied`) so every
  decision lands in the log.

Rules, checked in this order (the first that fails denies; see ``docs/risk.md``):
halt (tripped breaker: only reduce-only orders pass), duplicate open client id, order rate,
price band, order notional, worst-case position, worst-case exposure per instrument and in
total. A **worst-case** position counts every open order of one side as filled; an order
passes a position/exposure limit if the worst case stays within it *or does not grow*
(so orders that reduce a position are never blocked by those limits, even after a price
move pushed it over). Cancels and queries never add risk and are always approved.

Breakers: drawdown from the equity peak (``max_drawdown_bps``) trips the kill switch until
:meth:`RiskEngine.reset`; the UTC day's loss (``daily_loss_limit``) trips it until the next
UTC midnight. Tripping cancels every open order (and flattens, if configured): the engine
queues the breaker events and the kill-switch commands, which its driver takes with
:meth:`RiskEngine.drain` and sends on (see ``engine.risk.gate``).

Money is exact: positions x marks are kept as e16 integers (e8 x e8), cash in e8, and
limits are compared without division. Every instrument is assumed quoted in one asset.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from engine.events import (
    CircuitBreakerTripped,
    Event,
    KillSwitchEngaged,
    Kind,
    MarkPriceReceived,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    OrderTradePrevented,
    QuoteReceived,
    RiskApproved,
    RiskDenied,
    RiskReset,
)
from engine.fixed import SCALE, format_e8
from engine.identifiers import InstrumentId
from engine.orders import (
    AnyCommand,
    CancelAllOrders,
    ListOrderStatus,
    OrderSide,
    OrderStatus,
    OrderType,
    SubmitOrder,
    SubmitOrderList,
)
from engine.risk.config import BPS, NS_PER_DAY, RiskConfig
from engine.risk.orders import BANDED_TYPES, Hold, OrderView, view_of

RISK_STRATEGY = "risk"
"""Strategy id risk's own commands (kill switch) are issued under."""
RISK_REJECT_CODE = -2010
"""Binance's NEW_ORDER_REJECTED: what a refused new order looks like to a strategy."""
KILL_ID_PREFIX = "x-risk-kill-"
NO_INSTRUMENT = InstrumentId("")
_I64_MAX = 2**63 - 1
_NEVER = -(2**255)
"""A breaker floor no equity reaches."""
_I64_MIN = -(2**63)


class Rule(StrEnum):
    """Why risk denied an order or tripped (the ``rule`` field of its events)."""

    KILL_SWITCH = "kill_switch"
    MAX_DRAWDOWN = "max_drawdown"
    DAILY_LOSS = "daily_loss"
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    ORDER_RATE = "order_rate"
    NO_REFERENCE_PRICE = "no_reference_price"
    PRICE_BAND = "price_band"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION_QTY = "max_position_qty"
    MAX_SYMBOL_EXPOSURE = "max_symbol_exposure"
    MAX_GROSS_EXPOSURE = "max_gross_exposure"


@dataclass(slots=True)
class SymbolState:
    """Risk's view of one instrument: mark (0 = none yet), position and open order quantities (e8)."""

    mark: int = 0
    position: int = 0
    open_buy: int = 0
    open_sell: int = 0

    def worst(self, add_buy: int = 0, add_sell: int = 0) -> int:
        """Largest absolute position if every open order of one side (plus the adds) filled."""
        return max(abs(self.position + self.open_buy + add_buy), abs(self.position - self.open_sell - add_sell))


@dataclass(frozen=True, slots=True)
class _Denial:
    rule: Rule
    value: int
    limit: int
    detail: str


def _i64(x: int) -> int:
    """Clamp for event fields (the catalog stores them as int64); the message keeps the exact value."""
    return max(_I64_MIN, min(_I64_MAX, x))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _money(e16: int) -> str:
    """An e16 amount (e8 x e8) in words, exact to e8 (rounded up, as risk is conservative)."""
    return format_e8(_ceil_div(e16, SCALE))


def symbol_of(instrument: str) -> str:
    """``BTCUSDT.SPOT`` -> ``BTCUSDT``."""
    sym, dot, _ = instrument.rpartition(".")
    return sym if dot else instrument


class RiskEngine:
    """See module doc. One instance per account; not thread-safe (the kernel is single-threaded)."""

    def __init__(self, config: RiskConfig | None = None) -> None:
        self.config = cfg = config if config is not None else RiskConfig()
        self._syms: dict[InstrumentId, SymbolState] = {}
        self._cash = cfg.starting_equity  # e8
        self._mtm = 0  # e16: sum of position x mark
        self._peak = cfg.starting_equity * SCALE  # e16
        self._day_start = self._peak  # e16
        self._day_end: int | None = None  # ns; None before the first call
        self._roll_at = _NEVER  # ns: the next call at or after it rolls the day (the day's end)
        self._halt: Rule | None = None
        self._halt_until = 0  # ns; 0 = until reset
        self._breakers = cfg.max_drawdown_bps is not None or cfg.daily_loss_limit is not None
        self._floor = _NEVER  # e16 equity at or below which a breaker trips (see _refloor)
        self._holds: dict[str, Hold] = {}  # leg client id -> hold
        self._list_holds: dict[str, Hold] = {}  # list client id -> hold
        self._anonymous: list[Hold] = []  # holds of orders without ids: kept forever (conservative)
        self._rate: deque[int] = deque()
        self._kills = 0
        self._events: list[Event] = []
        self._commands: list[AnyCommand] = []
        self.unvalued_fees: dict[str, int] = {}
        """Fees paid in a third asset (e.g. BNB): e8 per asset, not in equity (no price for them)."""
        self._refloor()
        kinds = {Kind.TRADE, Kind.AGG_TRADE, Kind.MARK_PRICE}
        if cfg.mark_from_quotes:
            kinds.add(Kind.QUOTE)
        self.market_kinds: frozenset[int] = frozenset(kinds)
        """Market kinds the engine must see (its driver subscribes to them)."""

    # ----------------------------------------------------------------- queries

    def equity(self) -> int:
        """Cash plus positions at their marks, e8 quote (rounded down)."""
        return (self._cash * SCALE + self._mtm) // SCALE

    def equity_e16(self) -> int:
        """Equity exactly, in e16 (e8 x e8) units."""
        return self._cash * SCALE + self._mtm

    @property
    def cash(self) -> int:
        """Quote-asset cash, e8: starting equity plus every fill's flow, minus quote-asset fees."""
        return self._cash

    @property
    def peak_equity(self) -> int:
        """Highest equity seen since the start or the last reset, e8."""
        return self._peak // SCALE

    @property
    def halted(self) -> Rule | None:
        """The breaker that refuses new risk (MAX_DRAWDOWN, DAILY_LOSS, KILL_SWITCH), or None."""
        return self._halt

    @property
    def halted_until(self) -> int:
        """When the halt lifts by itself (ns), or 0 if only :meth:`reset` lifts it."""
        return self._halt_until

    def symbol(self, instrument: InstrumentId) -> SymbolState:
        """The instrument's state (a zero state if never seen); do not mutate it."""
        return self._syms.get(instrument) or SymbolState()

    def instruments(self) -> list[InstrumentId]:
        """Every instrument seen so far, sorted."""
        return sorted(self._syms)

    def gross_exposure_e16(self, extra: InstrumentId | None = None, add_buy: int = 0, add_sell: int = 0) -> int:
        """Sum over instruments of worst-case |position| x mark (e16); ``extra`` gets the adds."""
        total = 0
        for iid, st in self._syms.items():
            if iid == extra:
                total += st.worst(add_buy, add_sell) * st.mark
            else:
                total += st.worst() * st.mark
        return total

    # ----------------------------------------------------------------- time and marks

    def _sym(self, instrument: InstrumentId) -> SymbolState:
        st = self._syms.get(instrument)
        if st is None:
            st = self._syms[instrument] = SymbolState()
        return st

    def advance(self, now: int) -> None:
        """Let time pass: at a new UTC day the day's loss restarts and a daily-loss halt lifts."""
        if now >= self._roll_at:
            self._roll(now)

    def _roll(self, now: int) -> None:
        self._day_end = self._roll_at = (now // NS_PER_DAY + 1) * NS_PER_DAY
        self._day_start = self.equity_e16()
        self._refloor()
        if self._halt is Rule.DAILY_LOSS and self._halt_until and now >= self._halt_until:
            self._lift(now, "new UTC day")

    def on_trade(self, instrument: InstrumentId, price: int, now: int) -> bool:
        """A trade (or mark) at ``price``: the hot path, O(1).

        Returns True when this call queued output (a breaker tripped, a new UTC day lifted a
        halt), so a driver calling it per trade needs no second call to learn whether to
        :meth:`drain`. Written out flat (no helper call) on purpose: it runs on every trade.
        """
        if now >= self._roll_at:
            self._roll(now)
            self._mark(instrument, price, now)
            return bool(self._events or self._commands)
        st = self._syms.get(instrument)
        if st is None or price <= 0:
            self._mark(instrument, price, now)
            return bool(self._events or self._commands)
        pos = st.position
        if not pos:
            st.mark = price
            return False
        mtm = self._mtm = self._mtm + pos * (price - st.mark)
        st.mark = price
        eq = self._cash * SCALE + mtm
        if eq > self._peak:
            self._peak = eq
            if self._breakers:
                self._refloor()
            return False
        if eq <= self._floor:
            self._check_breakers(now)
            return bool(self._events or self._commands)
        return False

    def _mark(self, instrument: InstrumentId, price: int, now: int) -> None:
        st = self._syms.get(instrument)
        if st is None:
            st = self._syms[instrument] = SymbolState()
        if price <= 0:
            return
        pos = st.position
        if pos:
            mtm = self._mtm = self._mtm + pos * (price - st.mark)
            st.mark = price
            eq = self._cash * SCALE + mtm
            if eq > self._peak:
                self._peak = eq
                if self._breakers:
                    self._refloor()
            elif eq <= self._floor:
                self._check_breakers(now)
        else:
            st.mark = price

    def on_market(self, event: Event, now: int | None = None) -> None:
        """Any market event; only trades, aggregate trades, mark prices (and quotes if configured) matter."""
        t = now if now is not None else event.ts_recv
        price: int = getattr(event, "price", 0)
        if isinstance(event, MarkPriceReceived):
            price = event.mark_price
        elif isinstance(event, QuoteReceived):
            if not self.config.mark_from_quotes or event.bid_price <= 0 or event.ask_price <= 0:
                self.advance(t)
                return
            price = (event.bid_price + event.ask_price) // 2
        elif event.kind not in self.market_kinds:
            self.advance(t)
            return
        self.on_trade(event.instrument, price, t)

    # ----------------------------------------------------------------- venue events

    def on_venue_event(self, event: Event, now: int | None = None) -> None:
        """A venue event: fills move position and cash; terminal events release reservations."""
        t = now if now is not None else event.ts_recv
        self.advance(t)
        typ = type(event)
        if typ is OrderFilled:
            assert isinstance(event, OrderFilled)
            self._on_fill(event, t)
        elif typ is OrderCanceled or typ is OrderExpired:
            assert isinstance(event, OrderCanceled | OrderExpired)
            self._leg_left(event.client_order_id, 0)
        elif typ is OrderRejected:  # a venue rejection; never our own RiskDenied (reserved nothing)
            assert isinstance(event, OrderRejected)
            self._leg_left(event.client_order_id, 0)
            self._list_done(event.list_client_order_id)
        elif typ is OrderTradePrevented:
            assert isinstance(event, OrderTradePrevented)
            hold = self._holds.get(event.client_order_id)
            if event.status is OrderStatus.EXPIRED_IN_MATCH:
                self._leg_left(event.client_order_id, 0)
            elif hold is not None:
                i = hold.client_order_ids.index(event.client_order_id)
                self._leg_left(event.client_order_id, hold.remaining[i] - event.last_prevented_qty)
        elif typ is OrderListStatusChanged:
            assert isinstance(event, OrderListStatusChanged)
            if event.list_order_status is not ListOrderStatus.EXECUTING:
                self._list_done(event.list_client_order_id)

    def _on_fill(self, fill: OrderFilled, now: int) -> None:
        hold = self._holds.get(fill.client_order_id)
        if hold is not None:
            i = hold.client_order_ids.index(fill.client_order_id)
            left = 0 if fill.status is OrderStatus.FILLED else hold.remaining[i] - fill.qty
            self._leg_left(fill.client_order_id, left)
        st = self._sym(fill.instrument)
        if fill.price > 0:  # our fill is a trade: it marks the instrument
            self._mtm += st.position * (fill.price - st.mark)
            st.mark = fill.price
        buy = fill.side is OrderSide.BUY
        dq = fill.qty if buy else -fill.qty
        self._cash += -fill.quote_qty if buy else fill.quote_qty
        if fill.commission:
            dq += self._fee(fill.instrument, fill.commission_asset, fill.commission)
        st.position += dq
        self._mtm += dq * st.mark
        self._check_breakers(now)

    def _fee(self, instrument: InstrumentId, asset: str, fee: int) -> int:
        """Charge a fee; returns its effect on the position (a base-asset fee shrinks it).

        The asset is told by the symbol's spelling: ``BTCUSDT`` ends with the quote asset
        and starts with the base asset. Anything else (BNB) cannot be valued here.
        """
        sym = symbol_of(instrument)
        if asset and sym.endswith(asset):
            self._cash -= fee
            return 0
        if asset and sym.startswith(asset):
            return -fee
        self.unvalued_fees[asset] = self.unvalued_fees.get(asset, 0) + fee
        return 0

    def _leg_left(self, client_order_id: str, left: int) -> None:
        """Set what is still open of one leg; drops the hold once nothing is left."""
        hold = self._holds.get(client_order_id)
        if hold is None:
            return
        hold.remaining[hold.client_order_ids.index(client_order_id)] = max(0, left)
        self._apply(hold)

    def _list_done(self, list_client_order_id: str) -> None:
        hold = self._list_holds.get(list_client_order_id) if list_client_order_id else None
        if hold is None:
            return
        hold.remaining = [0] * len(hold.remaining)
        self._apply(hold)

    def _apply(self, hold: Hold) -> None:
        d_buy, d_sell = hold.recompute()
        st = self._sym(hold.instrument)
        st.open_buy += d_buy
        st.open_sell += d_sell
        if hold.done:
            for cid in hold.client_order_ids:
                if self._holds.get(cid) is hold:
                    del self._holds[cid]
            if self._list_holds.get(hold.list_client_order_id) is hold:
                del self._list_holds[hold.list_client_order_id]

    def set_position(self, instrument: InstrumentId, qty: int, now: int) -> None:
        """Declare a holding risk did not see being bought (startup reconciliation); cash is unchanged."""
        self.advance(now)
        st = self._sym(instrument)
        self._mtm += (qty - st.position) * st.mark
        st.position = qty
        self._check_breakers(now)

    # ----------------------------------------------------------------- breakers

    def _refloor(self) -> None:
        """The equity (e16) at or below which a breaker trips, from the peak, the day's start and the halt.

        Exact integer equivalents of the rules in :meth:`_check_breakers`, so the hot path
        compares one number: ``(peak - eq) * BPS >= dd * peak`` iff ``eq <= peak * (BPS - dd) // BPS``,
        and ``loss > 0 and loss >= limit`` iff ``eq <= day_start - max(limit, 1)``.
        """
        cfg = self.config
        halt = self._halt
        floor = _NEVER
        dd = cfg.max_drawdown_bps
        if dd is not None and self._peak > 0 and (halt is None or halt is Rule.DAILY_LOSS):
            floor = self._peak * (BPS - dd) // BPS
        limit = cfg.daily_loss_limit
        if limit is not None and halt is None:
            floor = max(floor, self._day_start - max(limit * SCALE, 1))
        self._floor = floor

    def _check_breakers(self, now: int) -> None:
        eq = self._cash * SCALE + self._mtm
        if eq > self._peak:
            self._peak = eq
            if self._breakers:
                self._refloor()
            return
        if eq > self._floor:
            return
        cfg = self.config
        halt = self._halt
        if halt is Rule.MAX_DRAWDOWN or halt is Rule.KILL_SWITCH:
            return
        dd = cfg.max_drawdown_bps
        peak = self._peak
        if dd is not None and peak > 0 and (peak - eq) * BPS >= dd * peak:
            self._trip(Rule.MAX_DRAWDOWN, eq, peak, dd, 0, now)
            return
        limit = cfg.daily_loss_limit
        loss = self._day_start - eq
        if limit is not None and halt is None and loss > 0 and loss >= limit * SCALE:
            self._trip(Rule.DAILY_LOSS, eq, self._day_start, limit, self._day_end or 0, now)

    def _trip(self, rule: Rule, eq: int, reference: int, limit: int, until: int, now: int) -> None:
        self._halt = rule
        self._halt_until = until
        self._refloor()
        loss = reference - eq
        self._events.append(
            CircuitBreakerTripped(
                0, now, now, NO_INSTRUMENT, rule.value, _i64(eq // SCALE), _i64(reference // SCALE),
                _i64(_ceil_div(loss, SCALE)), _i64(limit), until,
            )
        )
        flatten = self.config.flatten_on_kill if rule is Rule.MAX_DRAWDOWN else self.config.flatten_on_daily_loss
        self._kill(f"{rule.value}: equity {format_e8(eq // SCALE)} is {_money(loss)} below {format_e8(reference // SCALE)}",
                   flatten, now)

    def engage_kill_switch(self, now: int, reason: str = "manual", *, flatten: bool | None = None) -> None:
        """Halt by hand: cancel every open order (flatten if asked or configured) until :meth:`reset`."""
        self.advance(now)
        self._halt = Rule.KILL_SWITCH
        self._halt_until = 0
        self._refloor()
        self._kill(reason, self.config.flatten_on_kill if flatten is None else flatten, now)

    def _kill(self, reason: str, flatten: bool, now: int) -> None:
        """Queue cancel-all for every instrument with open orders, then flattening market orders."""
        commands: list[AnyCommand] = [
            CancelAllOrders(iid) for iid, st in sorted(self._syms.items()) if st.open_buy or st.open_sell
        ]
        if flatten:
            for iid, st in sorted(self._syms.items()):
                if st.position:
                    self._kills += 1
                    side = OrderSide.SELL if st.position > 0 else OrderSide.BUY
                    order = SubmitOrder(iid, side, OrderType.MARKET, abs(st.position),
                                        client_order_id=f"{KILL_ID_PREFIX}{self._kills}")
                    self._reserve(view_of(order, st.mark))
                    commands.append(order)
        self._events.append(KillSwitchEngaged(0, now, now, NO_INSTRUMENT, reason, flatten, tuple(commands)))
        self._commands.extend(commands)

    def reset(self, now: int, reason: str = "manual") -> None:
        """Allow new risk again; the drawdown peak and the day's starting equity restart from now."""
        self.advance(now)
        eq = self.equity_e16()
        self._peak = eq
        self._day_start = eq
        self._lift(now, reason)  # (re-floors)

    def _lift(self, now: int, reason: str) -> None:
        self._halt = None
        self._halt_until = 0
        self._refloor()
        self._events.append(RiskReset(0, now, now, NO_INSTRUMENT, reason, _i64(self.equity())))

    def drain(self) -> tuple[list[Event], list[AnyCommand]]:
        """Take the events (breaker trips, kill switch, resets) and kill-switch commands queued so far."""
        events, commands = self._events, self._commands
        self._events, self._commands = [], []
        return events, commands

    @property
    def has_output(self) -> bool:
        """True when :meth:`drain` has something."""
        return bool(self._events or self._commands)

    # ----------------------------------------------------------------- decisions

    def decide(self, command: AnyCommand, strategy_id: str, now: int) -> RiskApproved | RiskDenied:
        """Approve or deny one command at event time ``now``; an approval reserves the order's quantity."""
        self.advance(now)
        iid = command.instrument
        if not isinstance(command, SubmitOrder | SubmitOrderList):
            return RiskApproved(0, now, now, iid, strategy_id, type(command).__name__)
        st = self._sym(iid)
        view = view_of(command, st.mark)
        add_buy, add_sell = view.adds()
        reduce_only = view.qty_known and self._reduce_only(st, add_buy, add_sell)
        denial = self._check(view, st, add_buy, add_sell, reduce_only, now)
        if denial is not None:
            msg = f"Risk: {denial.rule.value}: {denial.detail}"
            return RiskDenied(
                0, now, now, iid, view.client_order_id, RISK_REJECT_CODE, msg,
                list_client_order_id=view.list_client_order_id, strategy=strategy_id, rule=denial.rule.value,
                value=_i64(denial.value), limit=_i64(denial.limit),
            )
        self._reserve(view)
        if self.config.max_orders is not None:
            self._rate.extend([now] * len(view.legs))
        notional = sum(n for leg in view.legs if (n := leg.notional_e16(st.mark)) is not None)
        return RiskApproved(
            0, now, now, iid, strategy_id, type(command).__name__, view.client_order_id,
            view.list_client_order_id, _i64(_ceil_div(notional, SCALE)), reduce_only,
        )

    @staticmethod
    def _reduce_only(st: SymbolState, add_buy: int, add_sell: int) -> bool:
        """True if even with every open order of its side filled, the order only shrinks the position."""
        pos = st.position
        if add_buy == 0 and add_sell > 0:
            return pos > 0 and pos - st.open_sell - add_sell >= 0
        if add_sell == 0 and add_buy > 0:
            return pos < 0 and pos + st.open_buy + add_buy <= 0
        return False

    def _reserve(self, view: OrderView) -> None:
        hold = Hold(view)
        st = self._sym(view.instrument)
        st.open_buy += hold.reserved[0]
        st.open_sell += hold.reserved[1]
        keyed = False
        for cid in hold.client_order_ids:
            if cid:
                self._holds[cid] = hold
                keyed = True
        if hold.list_client_order_id:
            self._list_holds[hold.list_client_order_id] = hold
            keyed = True
        if not keyed:
            self._anonymous.append(hold)

    def _check(
        self, view: OrderView, st: SymbolState, add_buy: int, add_sell: int, reduce_only: bool, now: int
    ) -> _Denial | None:
        return (
            self._check_halt(reduce_only)
            or self._check_ids(view)
            or self._check_rate(view, now)
            or self._check_band(view, st)
            or self._check_notional(view, st)
            or self._check_position(view, st, add_buy, add_sell)
            or self._check_exposure(view, st, add_buy, add_sell)
        )

    def _check_halt(self, reduce_only: bool) -> _Denial | None:
        if self._halt is None or reduce_only:
            return None
        until = f" until {self._halt_until} ns" if self._halt_until else " until reset"
        return _Denial(self._halt, 0, 0, f"breaker tripped{until}; only orders that reduce a position pass")

    def _check_ids(self, view: OrderView) -> _Denial | None:
        for cid in (*(leg.client_order_id for leg in view.legs), view.list_client_order_id):
            if cid and (cid in self._holds or cid in self._list_holds):
                return _Denial(Rule.DUPLICATE_CLIENT_ORDER_ID, 0, 0, f"client order id {cid!r} is still open")
        return None

    def _check_rate(self, view: OrderView, now: int) -> _Denial | None:
        limit = self.config.max_orders
        if limit is None:
            return None
        rate = self._rate
        start = now - self.config.rate_window_ns
        while rate and rate[0] <= start:
            rate.popleft()
        n = len(rate) + len(view.legs)
        if n <= limit:
            return None
        window = format_e8(self.config.rate_window_ns // 10)  # seconds as e8 = ns / 10
        return _Denial(Rule.ORDER_RATE, n, limit, f"{n} orders in {window} s > max_orders {limit}")

    def _no_price(self, what: str) -> _Denial | None:
        if not self.config.require_reference_price:
            return None
        return _Denial(Rule.NO_REFERENCE_PRICE, 0, 0, f"no trade or mark seen yet to check {what}")

    def _check_band(self, view: OrderView, st: SymbolState) -> _Denial | None:
        band = self.config.price_band_bps
        if band is None:
            return None
        mark = st.mark
        for leg in view.legs:
            if leg.order_type not in BANDED_TYPES or leg.price <= 0:
                continue
            if mark <= 0:
                return self._no_price("price_band_bps")
            dev = abs(leg.price - mark) * BPS
            if dev > band * mark:
                bps = _ceil_div(dev, mark)
                return _Denial(Rule.PRICE_BAND, bps, band,
                               f"price {format_e8(leg.price)} is {bps} bps from the mark {format_e8(mark)} "
                               f"> price_band_bps {band}")
        return None

    def _check_notional(self, view: OrderView, st: SymbolState) -> _Denial | None:
        limit = self.config.max_order_notional
        if limit is None:
            return None
        for leg in view.legs:
            n = leg.notional_e16(st.mark)
            if n is None:
                if (d := self._no_price("max_order_notional")) is not None:
                    return d
                continue
            if n > limit * SCALE:
                return _Denial(Rule.MAX_ORDER_NOTIONAL, _ceil_div(n, SCALE), limit,
                               f"order value {_money(n)} > max_order_notional {format_e8(limit)}")
        return None

    def _check_position(self, view: OrderView, st: SymbolState, add_buy: int, add_sell: int) -> _Denial | None:
        limit = self.config.position_limit(view.instrument)
        if limit is None:
            return None
        if not view.qty_known:
            return self._no_price("max_position_qty (quote quantity)")
        before, after = st.worst(), st.worst(add_buy, add_sell)
        if after > limit and after > before:
            return _Denial(Rule.MAX_POSITION_QTY, after, limit,
                           f"worst-case position {format_e8(after)} > max_position_qty {format_e8(limit)}")
        return None

    def _check_exposure(self, view: OrderView, st: SymbolState, add_buy: int, add_sell: int) -> _Denial | None:
        cfg = self.config
        if cfg.max_symbol_exposure is None and cfg.max_gross_exposure is None:
            return None
        if not view.qty_known or st.mark <= 0:
            return self._no_price("exposure limits")
        before, after = st.worst(), st.worst(add_buy, add_sell)
        if after <= before:
            return None  # does not add exposure: never blocked by an exposure limit
        value = after * st.mark
        limit = cfg.max_symbol_exposure
        if limit is not None and value > limit * SCALE:
            return _Denial(Rule.MAX_SYMBOL_EXPOSURE, _ceil_div(value, SCALE), limit,
                           f"worst-case exposure {_money(value)} > max_symbol_exposure {format_e8(limit)}")
        limit = cfg.max_gross_exposure
        if limit is not None:
            gross = self.gross_exposure_e16(view.instrument, add_buy, add_sell)
            if gross > limit * SCALE:
                return _Denial(Rule.MAX_GROSS_EXPOSURE, _ceil_div(gross, SCALE), limit,
                               f"worst-case gross exposure {_money(gross)} > max_gross_exposure {format_e8(limit)}")
        return None
