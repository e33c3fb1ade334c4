"""Risk engine properties, checked against an independent model of positions and open orders.

- No approved order ever breaches a configured limit (random limits, marks, fills, cancels
  and order streams). "Breach" is judged on the model's own book: an approval must leave
  every worst-case measure within its limit or no larger than before.
- While a breaker is tripped (as told by the engine's own events) no order that adds risk
  is approved, until a reset or, for the daily loss, the next UTC day; and the engine trips
  whenever the model's equity says it must.
- Sizing never exceeds the fraction of equity it is given.
- The engine's position and cash agree with the simulated venue's balances, fees included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import (
    CircuitBreakerTripped,
    Event,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    RiskApproved,
    RiskDenied,
    RiskReset,
)
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import (
    AnyCommand,
    CancelAllOrders,
    ContingencyType,
    ExpiryReason,
    ListOrderStatus,
    ListStatusType,
    OrderSide,
    OrderStatus,
    OrderType,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
)
from engine.risk import (
    BPS,
    NS_PER_DAY,
    RiskConfig,
    RiskEngine,
    Rule,
    fixed_fraction_qty,
    kelly_qty,
    vol_target_qty,
)

pytestmark = pytest.mark.edge

X = SCALE
INSTRUMENTS = (InstrumentId("BTCUSDT.SPOT"), InstrumentId("ETHUSDT.SPOT"))
T0 = 1_700_000_000 * 10**9
BANDED = (OrderType.LIMIT, OrderType.LIMIT_MAKER)


# --------------------------------------------------------------------------- the model


@dataclass
class Leg:
    cid: str
    remaining: int
    order_type: OrderType
    price: int
    stop: int
    quote: int = 0


@dataclass
class MOrder:
    """An approved order (one leg) or OCO list (two legs, same side, at most one fills)."""

    inst: InstrumentId
    buy: bool
    legs: list[Leg]
    list_cid: str = ""

    @property
    def reserved(self) -> int:
        return max(leg.remaining for leg in self.legs)


@dataclass
class Model:
    cash: int
    pos: dict[InstrumentId, int] = field(default_factory=dict)
    mark: dict[InstrumentId, int] = field(default_factory=dict)
    orders: list[MOrder] = field(default_factory=list)
    approvals: list[int] = field(default_factory=list)  # one time per approved leg
    peak: int = 0
    day_start: int = 0
    day_end: int | None = None

    def open_side(self, inst: InstrumentId, buy: bool) -> int:
        return sum(o.reserved for o in self.orders if o.inst == inst and o.buy == buy)

    def worst(self, inst: InstrumentId) -> int:
        p = self.pos.get(inst, 0)
        return max(abs(p + self.open_side(inst, True)), abs(p - self.open_side(inst, False)))

    def gross(self) -> int:
        return sum(self.worst(i) * self.mark.get(i, 0) for i in INSTRUMENTS)

    def equity(self) -> int:  # e16
        return self.cash * X + sum(self.pos.get(i, 0) * self.mark.get(i, 0) for i in INSTRUMENTS)

    def roll(self, now: int) -> None:
        if self.day_end is None or now >= self.day_end:
            self.day_end = (now // NS_PER_DAY + 1) * NS_PER_DAY
            self.day_start = self.equity()

    def after_equity_change(self) -> None:
        self.peak = max(self.peak, self.equity())


@dataclass
class Halt:
    """What the engine's own events say: tripped by which rule, until when (0 = reset)."""

    rule: str | None = None
    until: int = 0

    def active(self, now: int) -> bool:
        return self.rule is not None and (self.until == 0 or now < self.until)


# --------------------------------------------------------------------------- the driver


class Driver:
    def __init__(self, cfg: RiskConfig) -> None:
        self.cfg = cfg
        self.e = RiskEngine(cfg)
        self.m = Model(cash=cfg.starting_equity, peak=cfg.starting_equity * X)
        self.halt = Halt()
        self.now = T0
        self.n = 0
        self.approved_while_halted = 0

    def _cid(self) -> str:
        self.n += 1
        return f"c{self.n}"

    # ---- feeding the engine (and the model, in step)

    def mark(self, inst: InstrumentId, price: int) -> None:
        self.m.roll(self.now)
        self.e.on_trade(inst, price, self.now)
        if price > 0:
            self.m.mark[inst] = price
            if self.m.pos.get(inst, 0):
                self.m.after_equity_change()
        self.settle()

    def fill(self, order: MOrder, leg: Leg, qty: int, price: int) -> None:
        self.m.roll(self.now)
        leg.remaining -= qty
        status = OrderStatus.FILLED if leg.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        side = OrderSide.BUY if order.buy else OrderSide.SELL
        quote = price * qty // X
        ev = OrderFilled(0, self.now, self.now, order.inst, 1, leg.cid, side, price, qty, quote, qty, quote,
                         status, 0, "USDT", 1, False, -1, 1)
        self.e.on_venue_event(ev, self.now)
        self.m.mark[order.inst] = price
        self.m.pos[order.inst] = self.m.pos.get(order.inst, 0) + (qty if order.buy else -qty)
        self.m.cash += -quote if order.buy else quote
        self.m.after_equity_change()
        for other in order.legs:  # an OCO leg trading expires its partner
            if other is not leg and other.remaining:
                other.remaining = 0
                self.venue(OrderExpired(0, self.now, self.now, order.inst, 2, other.cid, OrderStatus.EXPIRED,
                                        ExpiryReason.OCO_TRIGGER, 0, 0, 1, 2))
        if order.reserved == 0:
            self.m.orders.remove(order)
        self.settle()

    def cancel(self, order: MOrder, by_list: bool) -> None:
        if by_list and order.list_cid:
            self.venue(OrderListStatusChanged(
                0, self.now, self.now, order.inst, 1, order.list_cid, ContingencyType.OCO, ListStatusType.ALL_DONE,
                ListOrderStatus.ALL_DONE, (1, 2), tuple(leg.cid for leg in order.legs)))
        else:
            for leg in order.legs:
                if leg.remaining:
                    self.venue(OrderCanceled(0, self.now, self.now, order.inst, 1, leg.cid, "x", 0, 0, -1, 1))
        for leg in order.legs:
            leg.remaining = 0
        self.m.orders.remove(order)
        self.settle()

    def venue(self, ev: Event) -> None:
        self.m.roll(self.now)
        self.e.on_venue_event(ev, self.now)

    def settle(self) -> None:
        """Take the engine's breaker events and kill-switch commands; act as the venue would."""
        while self.e.has_output:
            events, commands = self.e.drain()
            for ev in events:
                if isinstance(ev, CircuitBreakerTripped):
                    self.halt = Halt(ev.rule, ev.until)
                elif isinstance(ev, RiskReset):
                    self.halt = Halt()
            for cmd in commands:
                self.kill_command(cmd)

    def kill_command(self, cmd: AnyCommand) -> None:
        if isinstance(cmd, CancelAllOrders):
            for order in [o for o in self.m.orders if o.inst == cmd.instrument]:
                self.cancel(order, by_list=False)
        elif isinstance(cmd, SubmitOrder):  # flatten: the engine reserved it; it fills at the mark
            leg = Leg(cmd.client_order_id or "", cmd.quantity, cmd.order_type, 0, 0)
            order = MOrder(cmd.instrument, cmd.side is OrderSide.BUY, [leg])
            self.m.orders.append(order)
            self.fill(order, leg, cmd.quantity, self.m.mark[cmd.instrument])
        else:
            raise AssertionError(f"unexpected kill-switch command {cmd}")

    def reset(self) -> None:
        self.m.roll(self.now)
        self.e.reset(self.now)
        self.m.peak = self.m.day_start = self.m.equity()
        self.settle()

    def advance(self, dt: int) -> None:
        self.now += dt
        self.m.roll(self.now)
        self.e.advance(self.now)
        self.settle()

    # ---- orders

    def submit(self, inst: InstrumentId, buy: bool, kind: str, qty: int, offset_bps: int, raw_price: int) -> None:
        self.m.roll(self.now)
        mark = self.m.mark.get(inst, 0)
        price = mark + mark * offset_bps // BPS if mark else raw_price
        price = max(price, 1)
        side = OrderSide.BUY if buy else OrderSide.SELL
        cmd: SubmitOrder | SubmitOrderList
        if kind == "oco":
            lo, hi = sorted((price, price + price * abs(offset_bps) // BPS + 1))
            cmd = SubmitOrderList.oco(inst, side, qty,
                                      {"order_type": OrderType.LIMIT_MAKER, "price": hi, "client_order_id": self._cid()},
                                      {"order_type": OrderType.STOP_LOSS, "stop_price": lo,
                                       "client_order_id": self._cid()},
                                      list_client_order_id=self._cid())
            legs = [Leg(leg.client_order_id or "", qty, leg.order_type, leg.price, leg.stop_price) for leg in cmd.legs]
        elif kind == "market_quote":
            if not mark:
                return
            quote = qty  # reuse the drawn number as a quote amount
            cmd = SubmitOrder(inst, side, OrderType.MARKET, quote_order_qty=quote, client_order_id=self._cid())
            legs = [Leg(cmd.client_order_id or "", -(-quote * X // mark), OrderType.MARKET, 0, 0, quote)]
        else:
            otype = {"limit": OrderType.LIMIT, "maker": OrderType.LIMIT_MAKER, "market": OrderType.MARKET,
                     "stop": OrderType.STOP_LOSS}[kind]
            p = price if otype in BANDED else 0
            stop = price if otype is OrderType.STOP_LOSS else 0
            tif = TimeInForce.GTC if otype is OrderType.LIMIT else None
            cmd = SubmitOrder(inst, side, otype, qty, p, tif, stop_price=stop, client_order_id=self._cid())
            legs = [Leg(cmd.client_order_id or "", qty, otype, p, stop)]
        before = self.snapshot(inst)
        decision = self.e.decide(cmd, "prop", self.now)
        if isinstance(decision, RiskDenied):
            self.settle()
            return
        assert isinstance(decision, RiskApproved)
        list_cid = (cmd.list_client_order_id or "") if isinstance(cmd, SubmitOrderList) else ""
        order = MOrder(inst, buy, legs, list_cid)
        if self.halt.active(self.now):
            self.assert_reduce_only(order, before)
            self.approved_while_halted += 1
        self.m.orders.append(order)
        self.m.approvals.extend([self.now] * len(legs))
        self.assert_within_limits(order, before)
        self.settle()

    def snapshot(self, inst: InstrumentId) -> dict[str, int]:
        return {"worst": self.m.worst(inst), "gross": self.m.gross(), "pos": self.m.pos.get(inst, 0),
                "open_buy": self.m.open_side(inst, True), "open_sell": self.m.open_side(inst, False)}

    # ---- the properties

    def assert_reduce_only(self, order: MOrder, before: dict[str, int]) -> None:
        add = order.reserved
        pos = before["pos"]
        if order.buy:
            assert pos < 0 and pos + before["open_buy"] + add <= 0, f"adds risk while halted: {order} {before}"
        else:
            assert pos > 0 and pos - before["open_sell"] - add >= 0, f"adds risk while halted: {order} {before}"

    def assert_within_limits(self, order: MOrder, before: dict[str, int]) -> None:
        cfg, m, inst = self.cfg, self.m, order.inst
        mark = m.mark.get(inst, 0)
        for leg in order.legs:
            if cfg.max_order_notional is not None:
                if leg.quote:
                    assert leg.quote <= cfg.max_order_notional
                else:
                    vp = leg.price or leg.stop or mark
                    assert vp > 0 and leg.remaining * vp <= cfg.max_order_notional * X, (leg, mark)
            if cfg.price_band_bps is not None and leg.order_type in BANDED:
                assert mark > 0 and abs(leg.price - mark) * BPS <= cfg.price_band_bps * mark, (leg, mark)
        if cfg.max_orders is not None:
            window = [t for t in m.approvals if t > self.now - cfg.rate_window_ns]
            assert len(window) <= cfg.max_orders
        worst = m.worst(inst)
        grew = worst > before["worst"]
        lim = cfg.position_limit(inst)
        if lim is not None:
            assert worst <= lim or not grew, (worst, lim, before)
        if cfg.max_symbol_exposure is not None:
            assert worst * mark <= cfg.max_symbol_exposure * X or not grew, (worst, mark)
            assert mark > 0
        if cfg.max_gross_exposure is not None:
            gross = m.gross()
            assert gross <= cfg.max_gross_exposure * X or gross <= before["gross"], (gross, before)
            assert mark > 0

    def assert_breakers(self) -> None:
        """The engine trips whenever the model's equity says it must (and says so in an event)."""
        cfg, m = self.cfg, self.m
        eq = m.equity()
        dd = cfg.max_drawdown_bps
        if dd is not None and m.peak > 0 and (m.peak - eq) * BPS >= dd * m.peak:
            assert self.halt.rule in (Rule.MAX_DRAWDOWN.value,), (m.peak, eq, self.halt)
            assert self.e.halted is Rule.MAX_DRAWDOWN
        limit = cfg.daily_loss_limit
        if limit is not None and m.day_start - eq > 0 and m.day_start - eq >= limit * X:
            assert self.halt.active(self.now), (m.day_start, eq, self.halt)
        assert (self.e.halted is not None) == self.halt.active(self.now) or (
            self.e.halted is Rule.DAILY_LOSS and self.now >= self.halt.until  # lifts at the next call
        )
        assert self.e.equity_e16() == eq


# --------------------------------------------------------------------------- strategies

qty_st = st.one_of(st.integers(1, 50 * X), st.sampled_from([1, X, 10 * X, 50 * X]))
price_st = st.one_of(st.integers(1, 200_000 * X), st.sampled_from([1, X, 100 * X, 30_000 * X]))
inst_st = st.sampled_from(INSTRUMENTS)

_any_submit = st.tuples(st.just("submit"), inst_st, st.booleans(),
                        st.sampled_from(["limit", "maker", "market", "stop", "oco", "market_quote"]),
                        qty_st, st.integers(-400, 400), price_st)
_fill = st.tuples(st.just("fill"), st.integers(0, 50), st.integers(0, 1), st.integers(1, 100))
op_st = st.one_of(  # submits and fills repeated: they are what builds up open orders and positions
    _any_submit,
    st.tuples(st.just("mark"), inst_st, price_st),
    _any_submit,
    st.tuples(st.just("move"), inst_st, st.integers(-3_000, 3_000)),
    _fill,
    _any_submit,
    st.tuples(st.just("cancel"), st.integers(0, 50), st.booleans()),
    _fill,
    st.tuples(st.just("time"), st.sampled_from([0, 1, 10**6, 10**9, 3 * 10**9, 3_600 * 10**9, NS_PER_DAY])),
)


def _maybe(values: st.SearchStrategy[int]) -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), values)


def _either(values: st.SearchStrategy[int], typical: list[int]) -> st.SearchStrategy[int]:
    """Any value, or one of a few that sit right where the sampled orders and marks make them bind."""
    return st.one_of(values, st.sampled_from(typical))


_equity = st.integers(0, 2_000_000 * X)
_position_limits = {
    "max_position_qty": _maybe(_either(st.integers(0, 100 * X), [X, 10 * X, 15 * X, 50 * X, 60 * X])),
    "position_qty_limits": st.dictionaries(st.sampled_from([str(i) for i in INSTRUMENTS]), st.integers(0, 100 * X),
                                           max_size=1),
}
_exposure_limits = {
    "max_symbol_exposure": _maybe(_either(st.integers(0, 2_000_000 * X), [1_000 * X, 300_000 * X, 1_500_000 * X])),
    "max_gross_exposure": _maybe(_either(st.integers(0, 3_000_000 * X), [2_000 * X, 600_000 * X, 2_000_000 * X])),
}
_order_limits = {
    "max_order_notional": _maybe(_either(st.integers(0, 500_000 * X), [100 * X, 1_000 * X, 300_000 * X])),
    "price_band_bps": _maybe(st.integers(0, 500)),
    "max_orders": _maybe(st.integers(0, 6)),
    "rate_window_ns": st.sampled_from([1, 10**9, 10 * 10**9]),
}
_breakers = {
    "daily_loss_limit": _maybe(st.integers(0, 100_000 * X)),
    "max_drawdown_bps": _maybe(st.integers(1, BPS)),
    "flatten_on_kill": st.booleans(),
    "flatten_on_daily_loss": st.booleans(),
}
limits_st = st.one_of(
    # every family at once, and each family alone (so one binds without the others denying first)
    st.builds(RiskConfig, starting_equity=_equity, **_position_limits, **_exposure_limits, **_order_limits,
              **_breakers),
    st.builds(RiskConfig, starting_equity=_equity, **_position_limits),
    st.builds(RiskConfig, starting_equity=_equity, **_exposure_limits),
    st.builds(RiskConfig, starting_equity=_equity, **_order_limits),
)


def run_ops(d: Driver, ops: list[tuple[Any, ...]]) -> None:
    for op in ops:
        what = op[0]
        if what == "mark":
            d.mark(op[1], op[2])
        elif what == "move":
            old = d.m.mark.get(op[1], 0)
            if old:
                d.mark(op[1], max(1, old + old * op[2] // BPS))
        elif what == "submit":
            d.submit(*op[1:])
        elif what == "fill" and d.m.orders:
            order = d.m.orders[op[1] % len(d.m.orders)]
            leg = order.legs[op[2] % len(order.legs)]
            price = d.m.mark.get(order.inst, 0) or leg.price or leg.stop
            if leg.remaining and price:
                d.fill(order, leg, max(1, leg.remaining * op[3] // 100), price)
        elif what == "cancel" and d.m.orders:
            d.cancel(d.m.orders[op[1] % len(d.m.orders)], op[2])
        elif what == "time":
            d.advance(op[1])
        elif what == "reset":
            d.reset()
        d.assert_breakers()


# --------------------------------------------------------------------------- the tests


@settings(max_examples=150, deadline=None)
@given(cfg=limits_st, marks=st.tuples(price_st, price_st), ops=st.lists(op_st, min_size=20, max_size=60))
def test_no_approved_order_ever_breaches_a_configured_limit(
    cfg: RiskConfig, marks: tuple[int, int], ops: list[tuple[Any, ...]]
) -> None:
    d = Driver(cfg)
    for inst, price in zip(INSTRUMENTS, marks, strict=True):
        d.mark(inst, price)
    run_ops(d, ops)


breaker_cfg_st = st.builds(
    RiskConfig,
    starting_equity=st.integers(1_000 * X, 20_000 * X),
    daily_loss_limit=_maybe(st.integers(0, 2_000 * X)),
    max_drawdown_bps=_maybe(st.integers(1, 2_000)),
    flatten_on_kill=st.booleans(),
    flatten_on_daily_loss=st.booleans(),
    max_position_qty=_maybe(st.integers(0, 100 * X)),
)
# marks move a lot and orders come often, so breakers trip and orders meet a halted engine
_move = st.tuples(st.just("move"), inst_st,
                  st.one_of(st.integers(-2_500, 1_500), st.sampled_from([-2_000, -1_000, -500, -200, 300, 800])))
_submit = st.tuples(st.just("submit"), inst_st, st.booleans(),
                    st.sampled_from(["limit", "market", "oco", "market_quote"]),
                    st.integers(1, 20 * X), st.integers(-50, 50), st.just(100 * X))
breaker_op_st = st.one_of(
    _move,
    _submit,
    _move,
    _submit,
    st.tuples(st.just("fill"), st.integers(0, 50), st.integers(0, 1), st.integers(1, 100)),
    st.tuples(st.just("cancel"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("time"), st.sampled_from([1, 10**9, 6 * 3_600 * 10**9])),
    _move,
    _submit,
    _submit,
    st.tuples(st.just("reset")),  # one op in twelve: halts last a while
)


@settings(max_examples=150, deadline=None)
@given(cfg=breaker_cfg_st, opening=st.tuples(st.integers(1, 100 * X), st.integers(0, 100 * X)),
       ops=st.lists(breaker_op_st, min_size=20, max_size=80))
def test_after_the_breaker_trips_no_order_that_adds_risk_is_approved_until_reset(
    cfg: RiskConfig, opening: tuple[int, int], ops: list[tuple[Any, ...]]
) -> None:
    d = Driver(cfg)
    opened: list[tuple[Any, ...]] = []
    for inst, qty in zip(INSTRUMENTS, opening, strict=True):  # start with positions, so marks move equity
        d.mark(inst, 100 * X)
        if qty:
            opened += [("submit", inst, True, "market", qty, 0, 100 * X), ("fill", len(opened) // 2, 0, 100)]
    run_ops(d, opened + ops)


@settings(max_examples=150, deadline=None)
@given(
    long=st.booleans(),
    size=st.one_of(st.integers(5 * X, 100 * X), st.sampled_from([5 * X, 10 * X, 50 * X])),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("submit"), st.just(INSTRUMENTS[0]), st.booleans(),
                      st.sampled_from(["limit", "market", "oco", "stop", "market_quote"]),
                      st.one_of(st.integers(1, 60 * X), st.sampled_from([X, 5 * X, 10 * X, 30 * X])),
                      st.integers(-50, 50), st.just(100 * X)),
            _fill,
            st.tuples(st.just("cancel"), st.integers(0, 50), st.booleans()),
            st.tuples(st.just("time"), st.sampled_from([1, 10**9, NS_PER_DAY])),
            st.tuples(st.just("move"), st.just(INSTRUMENTS[0]), st.integers(-300, 300)),
        ),
        min_size=5,
        max_size=40,
    ),
)
def test_while_the_drawdown_breaker_is_tripped_only_reductions_pass(
    long: bool, size: int, ops: list[tuple[Any, ...]]
) -> None:
    """Straight to a tripped breaker with a long or short position, then any order stream without reset."""
    btc = INSTRUMENTS[0]
    d = Driver(RiskConfig(starting_equity=10_000 * X, max_drawdown_bps=10))
    run_ops(d, [("mark", btc, 100 * X), ("submit", btc, long, "market", size, 0, 100 * X), ("fill", 0, 0, 100),
                ("move", btc, -500 if long else 500)])  # a 5 % move loses >= 25 of 10,000: > 10 bps
    assert d.e.halted is Rule.MAX_DRAWDOWN and d.halt.active(d.now)
    run_ops(d, ops)
    assert d.e.halted is Rule.MAX_DRAWDOWN


def test_the_breaker_property_does_meet_a_halted_engine() -> None:
    """Guard against a vacuous property: a hand-made run where reductions pass while halted."""
    d = Driver(RiskConfig(starting_equity=1_000 * X, max_drawdown_bps=100))
    run_ops(d, [("mark", INSTRUMENTS[0], 100 * X), ("submit", INSTRUMENTS[0], True, "limit", 5 * X, 0, 0),
                ("fill", 0, 0, 100), ("move", INSTRUMENTS[0], -500),
                ("submit", INSTRUMENTS[0], True, "limit", X, 0, 0),
                ("submit", INSTRUMENTS[0], False, "limit", 2 * X, 0, 0)])
    assert d.e.halted is Rule.MAX_DRAWDOWN and d.approved_while_halted == 1
    assert len(d.m.orders) == 1 and not d.m.orders[0].buy


fraction_st = st.one_of(st.floats(0, 3, allow_nan=False), st.sampled_from([0.0, 0.1, 0.25, 1 / 3, 1.0, 2.0]))
equity_st = st.one_of(st.integers(-10**6, 10**18), st.sampled_from([0, 1, X, 10**15]))
pos_price_st = st.one_of(st.integers(1, 10**14), st.sampled_from([1, X, 60_000 * X]))
step_st = st.one_of(st.integers(1, 10**9), st.sampled_from([1, 1_000, 100_000, X]))


@settings(max_examples=200, deadline=None)
@given(equity=equity_st, fraction=fraction_st, price=pos_price_st, step=step_st)
def test_fixed_fraction_never_exceeds_its_fraction_and_is_the_largest_step_multiple(
    equity: int, fraction: float, price: int, step: int
) -> None:
    qty = fixed_fraction_qty(equity, fraction, price, step)
    budget = Fraction(fraction) * max(equity, 0) * X  # e16
    assert qty >= 0 and qty % step == 0
    assert qty * price <= budget
    if equity > 0:
        assert (qty + step) * price > budget


@settings(max_examples=200, deadline=None)
@given(equity=equity_st, price=pos_price_st, step=step_st, p=st.floats(0, 1), b=st.floats(1e-3, 100),
       scale=st.floats(0, 1))
def test_kelly_sizing_never_exceeds_its_scale_of_equity(
    equity: int, price: int, step: int, p: float, b: float, scale: float
) -> None:
    qty = kelly_qty(equity, price, p, b, scale=scale, step=step)
    full = max(Fraction(0), min(Fraction(1), Fraction(p) - (1 - Fraction(p)) / Fraction(b)))
    assert qty * price <= Fraction(scale) * full * max(equity, 0) * X
    assert qty * price <= Fraction(scale) * max(equity, 0) * X


@settings(max_examples=200, deadline=None)
@given(equity=equity_st, price=pos_price_st, step=step_st, vol=st.floats(-1, 5), target=st.floats(0, 2),
       lev=st.floats(0, 5))
def test_vol_target_sizing_never_exceeds_its_fraction_of_equity(
    equity: int, price: int, step: int, vol: float, target: float, lev: float
) -> None:
    qty = vol_target_qty(equity, price, vol, target, max_leverage=lev, step=step)
    if vol <= 0:
        assert qty == 0
        return
    frac = min(Fraction(target) / Fraction(vol), Fraction(lev))
    assert qty * price <= frac * max(equity, 0) * X


@settings(max_examples=100, deadline=None)
@given(trades=st.lists(st.tuples(st.booleans(), st.integers(1, 3 * X), st.integers(90, 110)), max_size=25),
       maker_bps=st.integers(0, 20), taker_bps=st.integers(0, 20))
def test_positions_and_cash_agree_with_the_sim_venues_balances(
    trades: list[tuple[bool, int, int]], maker_bps: int, taker_bps: int
) -> None:
    from engine.events import QuoteReceived
    from engine.risk import attach_risk
    from venues.sim.venue import FlatFee, SimVenue, SymbolSpec

    btc = INSTRUMENTS[0]
    venue = SimVenue([SymbolSpec(btc, "BTCUSDT", "BTC", "USDT")], {"USDT": 10**7 * X},
                     fee_model=FlatFee(maker_bps * 10_000, taker_bps * 10_000))
    gate, risked = attach_risk(RiskEngine(RiskConfig(starting_equity=10**7 * X)), venue)
    now = T0
    for k, (buy, qty, px) in enumerate(trades):
        now += 1
        risked.on_market(QuoteReceived(0, now, now, btc, k, px * X - X // 2, 100 * X, px * X, 100 * X), now)
        have = gate.engine.symbol(btc).position
        if not buy and have < qty:
            continue
        cmd = SubmitOrder(btc, OrderSide.BUY if buy else OrderSide.SELL, OrderType.MARKET, qty,
                          client_order_id=f"m{k}")
        assert gate.check(cmd, "s", now) is None
        risked.handle(cmd, now)
    balances = venue.balances()
    base = sum(balances.get("BTC", (0, 0)))
    assert gate.engine.symbol(btc).position == base
    assert gate.engine.cash == sum(balances["USDT"])
    assert gate.pending == 0 and gate.engine.symbol(btc).open_buy == gate.engine.symbol(btc).open_sell == 0
