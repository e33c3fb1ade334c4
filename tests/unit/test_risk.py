"""The risk engine, rule by rule, at the edges: exactly at a limit passes, one unit over is denied."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
import pytest

from engine.errors import ConfigError
from engine.events import (
    EVENT_TYPES,
    AnyEvent,
    CircuitBreakerTripped,
    CommandIssued,
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
    TradeReceived,
)
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.kernel import Kernel
from engine.orders import (
    CancelAllOrders,
    CancelOrder,
    ContingencyType,
    ExpiryReason,
    ListOrderStatus,
    ListStatusType,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    QueryOrder,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
)
from engine.ports import ListSink, chunked
from engine.risk import (
    KILL_ID_PREFIX,
    NS_PER_DAY,
    RISK_REJECT_CODE,
    RiskConfig,
    RiskEngine,
    Rule,
    attach_risk,
    load_risk_config,
)
from engine.strategy import Strategy, StrategyConfig

pytestmark = pytest.mark.edge

X = SCALE
BTC = InstrumentId("BTCUSDT.SPOT")
ETH = InstrumentId("ETHUSDT.SPOT")
BUY, SELL = OrderSide.BUY, OrderSide.SELL
T0 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
_ids = iter(range(1, 10**9))


def limit(side: OrderSide, qty: int, price: int, iid: InstrumentId = BTC, cid: str | None = None) -> SubmitOrder:
    return SubmitOrder(iid, side, OrderType.LIMIT, qty, price, TimeInForce.GTC,
                       client_order_id=cid or f"o{next(_ids)}")


def market(side: OrderSide, qty: int, iid: InstrumentId = BTC, cid: str | None = None, **kw: Any) -> SubmitOrder:
    return SubmitOrder(iid, side, OrderType.MARKET, qty, client_order_id=cid or f"o{next(_ids)}", **kw)


def fill(order: SubmitOrder, qty: int, price: int, *, done: bool = True, fee: int = 0, asset: str = "USDT",
         ts: int = T0) -> OrderFilled:
    status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
    return OrderFilled(0, ts, ts, order.instrument, 1, order.client_order_id or "", order.side, price, qty,
                       price * qty // X, qty, price * qty // X, status, fee, asset, 1, False, -1, 1)


def canceled(cid: str, iid: InstrumentId = BTC, ts: int = T0) -> OrderCanceled:
    return OrderCanceled(0, ts, ts, iid, 1, cid, "c", 0, 0, -1, 1)


def trade(price: int, iid: InstrumentId = BTC, ts: int = T0) -> TradeReceived:
    return TradeReceived(0, ts, ts, iid, price, X, 1, False)


def engine(**cfg: Any) -> RiskEngine:
    return RiskEngine(RiskConfig(**cfg))


def approved(e: RiskEngine, cmd: Any, now: int = T0) -> bool:
    d = e.decide(cmd, "s", now)
    return isinstance(d, RiskApproved)


def denied_by(e: RiskEngine, cmd: Any, now: int = T0) -> str:
    d = e.decide(cmd, "s", now)
    assert isinstance(d, RiskDenied), f"expected a denial, got {d}"
    return d.rule


def buy_position(e: RiskEngine, qty: int, price: int, iid: InstrumentId = BTC, ts: int = T0) -> None:
    """Get a position through the normal path: approved market buy, then its fill."""
    e.on_trade(iid, price, ts)
    o = market(BUY, qty, iid)
    assert approved(e, o, ts)
    e.on_venue_event(fill(o, qty, price, ts=ts), ts)


# --------------------------------------------------------------------------- config


def test_defaults_check_nothing_even_without_any_price() -> None:
    e = RiskEngine()
    assert approved(e, market(BUY, 10**6 * X))
    assert approved(e, limit(SELL, 10**6 * X, 10**9 * X))
    assert e.equity() == 0 and e.halted is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_order_notional", -1), ("price_band_bps", -1), ("max_orders", -1), ("rate_window_ns", 0),
     ("max_drawdown_bps", 0), ("max_drawdown_bps", 10_001), ("starting_equity", -1)],
)
def test_config_rejects_out_of_range_values_naming_the_field(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        RiskConfig(**{field: value})  # type: ignore[arg-type]


def test_load_risk_config_takes_human_units_exactly() -> None:
    cfg = load_risk_config(
        {"max_order_notional": "1000", "daily_loss_limit": 0.5, "starting_equity": 10_000,
         "position_qty_limits": {"BTCUSDT.SPOT": "0.00000001"}, "price_band_bps": "50",
         "max_drawdown_bps": "none", "flatten_on_kill": "true"}
    )
    assert cfg.max_order_notional == 1000 * X
    assert cfg.daily_loss_limit == X // 2
    assert cfg.starting_equity == 10_000 * X
    assert cfg.position_limit("BTCUSDT.SPOT") == 1
    assert cfg.position_limit("ETHUSDT.SPOT") is None
    assert cfg.price_band_bps == 50 and cfg.max_drawdown_bps is None and cfg.flatten_on_kill is True


@pytest.mark.parametrize(
    ("params", "needle"),
    [({"max_notional": 1}, "unknown risk parameter"), ({"max_order_notional": "abc"}, "max_order_notional"),
     ({"max_order_notional": "0.000000001"}, "max_order_notional"), ({"max_drawdown_bps": 0}, "max_drawdown_bps"),
     ({"daily_loss_limit": float("nan")}, "daily_loss_limit"), ({"position_qty_limits": 3}, "table")],
)
def test_load_risk_config_names_the_bad_parameter(params: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_risk_config(params)


# --------------------------------------------------------------------------- events


def test_risk_event_kinds_are_unique_and_round_trip_through_the_union() -> None:
    kinds = [cls.kind for cls in EVENT_TYPES]
    assert len(kinds) == len(set(kinds))
    for cls in (RiskApproved, RiskDenied, CircuitBreakerTripped, KillSwitchEngaged, RiskReset):
        assert 41 <= cls.kind <= 59
    samples: list[Event] = [
        RiskApproved(0, 1, 2, BTC, "s", "SubmitOrder", "c1", "", 5, True),
        RiskDenied(0, 1, 2, BTC, "c1", -2010, "Risk: x", strategy="s", rule="price_band", value=7, limit=5),
        CircuitBreakerTripped(0, 1, 2, BTC, "daily_loss", 1, 2, 1, 1, NS_PER_DAY),
        KillSwitchEngaged(0, 1, 2, BTC, "why", True, (CancelAllOrders(BTC), market(SELL, 3, cid="k"))),
        RiskReset(0, 1, 2, BTC, "manual", 9),
    ]
    for ev in samples:
        assert msgspec.json.decode(msgspec.json.encode(ev), type=AnyEvent) == ev


def test_a_denial_is_an_order_rejection_for_strategies_but_its_own_kind_in_the_log() -> None:
    e = engine(max_order_notional=1)
    o = market(BUY, X, cid="abc", quote_order_qty=0)
    e.on_trade(BTC, X, T0)
    d = e.decide(o, "strat", T0)
    assert isinstance(d, RiskDenied) and isinstance(d, OrderRejected)
    assert d.kind == Kind.RISK_DENIED != OrderRejected.kind
    assert (d.code, d.client_order_id, d.strategy, d.rule) == (RISK_REJECT_CODE, "abc", "strat", "max_order_notional")
    assert d.msg.startswith("Risk: max_order_notional: order value 1 > max_order_notional 0.00000001")
    assert (d.value, d.limit) == (X, 1)


def test_cancels_and_queries_are_always_approved_even_when_halted() -> None:
    e = engine(max_orders=0)
    e.engage_kill_switch(T0)
    for cmd in (CancelOrder(BTC, orig_client_order_id="x"), CancelAllOrders(BTC), QueryOrder(BTC, order_id=1)):
        d = e.decide(cmd, "s", T0)
        assert isinstance(d, RiskApproved) and d.command == type(cmd).__name__ and d.notional == 0


# --------------------------------------------------------------------------- order notional


def test_order_notional_exactly_at_the_limit_passes_one_unit_more_is_denied() -> None:
    e = engine(max_order_notional=1000 * X)
    e.on_trade(BTC, 100 * X, T0)
    assert approved(e, limit(BUY, 10 * X, 100 * X))  # 1000.00000000 exactly
    assert denied_by(e, limit(BUY, 10 * X + 1, 100 * X)) == "max_order_notional"
    assert approved(e, market(SELL, 10 * X))  # market valued at the mark
    assert denied_by(e, market(SELL, 10 * X + 1)) == "max_order_notional"
    assert approved(e, market(BUY, 0, quote_order_qty=1000 * X))  # quote quantity: its own value
    assert denied_by(e, market(BUY, 0, quote_order_qty=1000 * X + 1)) == "max_order_notional"


def test_stop_orders_are_valued_at_their_stop_price_and_list_legs_one_by_one() -> None:
    e = engine(max_order_notional=1000 * X)
    e.on_trade(BTC, 100 * X, T0)
    stop = SubmitOrder(BTC, SELL, OrderType.STOP_LOSS, 10 * X, stop_price=101 * X, client_order_id="st")
    assert denied_by(e, stop) == "max_order_notional"
    oco = SubmitOrderList.oco(BTC, SELL, 9 * X, {"order_type": OrderType.LIMIT_MAKER, "price": 111 * X,
                                                  "client_order_id": "a"},
                              {"order_type": OrderType.STOP_LOSS, "stop_price": 90 * X, "client_order_id": "b"},
                              list_client_order_id="L")
    assert approved(e, oco)  # 999 and 810
    oco2 = SubmitOrderList.oco(BTC, SELL, 9 * X, {"order_type": OrderType.LIMIT_MAKER, "price": 112 * X,
                                                   "client_order_id": "c"},
                               {"order_type": OrderType.STOP_LOSS, "stop_price": 90 * X, "client_order_id": "d"})
    assert denied_by(e, oco2) == "max_order_notional"  # 1008 on the limit leg


def test_without_a_reference_price_a_limit_that_needs_one_fails_closed_unless_told_otherwise() -> None:
    assert denied_by(engine(max_order_notional=X), market(BUY, 1)) == "no_reference_price"
    assert approved(engine(max_order_notional=X), limit(BUY, 1, X))  # a limit price values itself
    assert approved(engine(max_order_notional=X, require_reference_price=False), market(BUY, 1))
    assert denied_by(engine(max_symbol_exposure=X), limit(BUY, 1, X)) == "no_reference_price"
    assert denied_by(engine(max_position_qty=X), market(BUY, 0, quote_order_qty=X)) == "no_reference_price"


# --------------------------------------------------------------------------- price band


def test_price_band_edges_on_both_sides() -> None:
    e = engine(price_band_bps=100)
    e.on_trade(BTC, 10_000 * X, T0)
    assert approved(e, limit(BUY, 1, 10_100 * X))  # exactly +100 bps
    assert approved(e, limit(SELL, 1, 9_900 * X))  # exactly -100 bps
    assert denied_by(e, limit(BUY, 1, 10_100 * X + 1)) == "price_band"
    assert denied_by(e, limit(SELL, 1, 9_900 * X - 1)) == "price_band"
    assert approved(e, market(BUY, 1))  # no price: nothing to band
    stop = SubmitOrder(BTC, SELL, OrderType.STOP_LOSS_LIMIT, 1, 5_000 * X, TimeInForce.GTC, stop_price=5_000 * X,
                       client_order_id="sl")
    assert approved(e, stop)  # contingent prices act only once the market is there


def test_a_zero_band_allows_only_the_mark_and_marks_come_from_trades_and_mark_prices() -> None:
    e = engine(price_band_bps=0)
    e.on_trade(BTC, 100 * X, T0)
    assert approved(e, limit(BUY, 1, 100 * X))
    assert denied_by(e, limit(BUY, 1, 100 * X + 1)) == "price_band"
    e.on_market(MarkPriceReceived(0, T0, T0, BTC, 101 * X, 0, 0, 0, 0), T0)
    assert approved(e, limit(BUY, 1, 101 * X))
    e.on_market(QuoteReceived(0, T0, T0, BTC, 1, 50 * X, 1, 52 * X, 1), T0)  # quotes ignored by default
    assert approved(e, limit(BUY, 1, 101 * X))
    q = engine(price_band_bps=0, mark_from_quotes=True)
    q.on_market(QuoteReceived(0, T0, T0, BTC, 1, 50 * X, 1, 52 * X, 1), T0)
    assert approved(q, limit(BUY, 1, 51 * X)) and Kind.QUOTE in q.market_kinds


# --------------------------------------------------------------------------- order rate


def test_order_rate_window_is_event_time_and_half_open() -> None:
    w = 1_000_000_000
    e = engine(max_orders=3, rate_window_ns=w)
    for k in range(3):
        assert approved(e, market(BUY, 1), T0 + k)
    d = e.decide(market(BUY, 1), "s", T0 + w - 1)
    assert isinstance(d, RiskDenied) and (d.rule, d.value, d.limit) == ("order_rate", 4, 3)
    assert approved(e, market(BUY, 1), T0 + w)  # the first left the window (now - w, now]
    assert denied_by(e, market(BUY, 1), T0 + w) == "order_rate"  # denials did not count, this one would


def test_order_rate_counts_list_legs_and_never_limits_cancels() -> None:
    e = engine(max_orders=2)
    e.on_trade(BTC, 100 * X, T0)
    assert approved(e, market(BUY, 1))
    oco = SubmitOrderList.oco(BTC, SELL, 1, {"order_type": OrderType.LIMIT_MAKER, "price": 120 * X},
                              {"order_type": OrderType.STOP_LOSS, "stop_price": 90 * X})
    assert denied_by(e, oco) == "order_rate"
    assert approved(e, market(BUY, 1))
    assert approved(e, CancelAllOrders(BTC))


# --------------------------------------------------------------------------- position and exposure


def test_position_limit_counts_open_orders_of_one_side_as_filled() -> None:
    e = engine(max_position_qty=10 * X)
    e.on_trade(BTC, 100 * X, T0)
    a = limit(BUY, 6 * X, 99 * X)
    assert approved(e, a)
    assert approved(e, limit(BUY, 4 * X, 98 * X))  # 6 + 4 = 10 exactly
    assert denied_by(e, limit(BUY, 1, 98 * X)) == "max_position_qty"
    assert approved(e, limit(SELL, 10 * X, 120 * X))  # short side: -10 exactly
    assert denied_by(e, limit(SELL, 1, 120 * X)) == "max_position_qty"
    e.on_venue_event(canceled(a.client_order_id or ""), T0)
    assert approved(e, limit(BUY, 6 * X, 99 * X))  # the cancel released its reservation


def test_position_limit_override_per_instrument_and_fills_move_the_position() -> None:
    e = engine(max_position_qty=10 * X, position_qty_limits={ETH: 100 * X})
    e.on_trade(ETH, 2 * X, T0)
    assert approved(e, market(BUY, 100 * X, ETH))
    buy_position(e, 10 * X, 100 * X)
    assert e.symbol(BTC).position == 10 * X
    assert denied_by(e, market(BUY, 1)) == "max_position_qty"


def test_an_order_that_does_not_grow_the_worst_case_passes_even_over_the_limit() -> None:
    e = engine(max_symbol_exposure=1_000 * X, max_gross_exposure=1_000 * X)
    buy_position(e, 10 * X, 100 * X)  # exposure 1000: at the limit
    e.on_trade(BTC, 200 * X, T0 + 1)  # the mark doubles: 2000 > 1000
    assert denied_by(e, market(BUY, 1), T0 + 1) == "max_symbol_exposure"
    assert approved(e, market(SELL, 4 * X), T0 + 1)  # reduces: passes though still over
    assert approved(e, market(SELL, 16 * X), T0 + 1)  # worst case -10 after both: not above 10
    assert denied_by(e, market(SELL, 1), T0 + 1) == "max_symbol_exposure"  # -11 would grow it


def test_exposure_per_symbol_and_gross_at_their_edges() -> None:
    e = engine(max_symbol_exposure=1_000 * X, max_gross_exposure=1_500 * X)
    e.on_trade(BTC, 100 * X, T0)
    e.on_trade(ETH, 10 * X, T0)
    assert approved(e, limit(BUY, 10 * X, 90 * X))  # valued at the mark: 1000 exactly
    assert denied_by(e, limit(BUY, 1, 90 * X)) == "max_symbol_exposure"
    assert approved(e, limit(BUY, 50 * X, 9 * X, ETH))  # gross 1500 exactly
    d = e.decide(limit(BUY, 1, 9 * X, ETH), "s", T0)
    assert isinstance(d, RiskDenied) and d.rule == "max_gross_exposure" and d.value == 1_500 * X + 10  # 1e-8 ETH at 10
    assert e.gross_exposure_e16() == 1_500 * X * X


def test_oco_legs_reserve_the_larger_leg_and_oto_legs_add_up() -> None:
    e = engine(max_position_qty=10 * X)
    buy_position(e, 10 * X, 100 * X)
    oco = SubmitOrderList.oco(BTC, SELL, 10 * X, {"order_type": OrderType.LIMIT_MAKER, "price": 120 * X,
                                                   "client_order_id": "tp"},
                              {"order_type": OrderType.STOP_LOSS, "stop_price": 90 * X, "client_order_id": "sl"},
                              list_client_order_id="bracket")
    assert approved(e, oco)
    assert (e.symbol(BTC).open_buy, e.symbol(BTC).open_sell) == (0, 10 * X)
    oto = SubmitOrderList.oto(BTC, OrderLeg(SELL, OrderType.LIMIT, 5 * X, 130 * X, time_in_force=TimeInForce.GTC,
                                            client_order_id="w"),
                              OrderLeg(SELL, OrderType.LIMIT, 6 * X, 140 * X, time_in_force=TimeInForce.GTC,
                                       client_order_id="p"))
    assert denied_by(e, oto) == "max_position_qty"  # 10 - 10 - 11 = -11
    e.on_venue_event(OrderExpired(0, T0, T0, BTC, 2, "sl", OrderStatus.EXPIRED, ExpiryReason.OCO_TRIGGER, 0, 0, 1,
                                  2), T0)
    assert e.symbol(BTC).open_sell == 10 * X  # the other leg is still open
    e.on_venue_event(OrderListStatusChanged(0, T0, T0, BTC, 1, "bracket", ContingencyType.OCO,
                                            ListStatusType.ALL_DONE, ListOrderStatus.ALL_DONE, (1, 2),
                                            ("tp", "sl")), T0)
    assert e.symbol(BTC).open_sell == 0


def test_partial_fills_rejections_and_prevented_trades_release_what_is_left() -> None:
    e = engine(max_position_qty=10 * X)
    e.on_trade(BTC, 100 * X, T0)
    a = limit(BUY, 10 * X, 100 * X, cid="a")
    assert approved(e, a)
    e.on_venue_event(fill(a, 4 * X, 100 * X, done=False), T0)
    st = e.symbol(BTC)
    assert (st.position, st.open_buy) == (4 * X, 6 * X)
    e.on_venue_event(OrderTradePrevented(0, T0, T0, BTC, 1, "a", OrderStatus.PARTIALLY_FILLED, 1, 100 * X, 2 * X,
                                         2 * X, 9, True, 4 * X, 400 * X, -1, 3), T0)
    assert e.symbol(BTC).open_buy == 4 * X  # DECREMENT took 2 off
    e.on_venue_event(OrderRejected(0, T0, T0, BTC, "a", -2010, "no"), T0)
    assert e.symbol(BTC).open_buy == 0
    assert approved(e, limit(BUY, 6 * X, 100 * X, cid="a"))  # the id is free again


def test_an_open_client_order_id_cannot_be_reused() -> None:
    e = RiskEngine()
    assert approved(e, limit(BUY, 1, X, cid="dup"))
    assert denied_by(e, limit(BUY, 1, X, cid="dup")) == "duplicate_client_order_id"
    e.on_venue_event(canceled("dup"), T0)
    assert approved(e, limit(BUY, 1, X, cid="dup"))


# --------------------------------------------------------------------------- fees and equity


def test_fees_by_asset_quote_lowers_cash_base_lowers_the_position_others_are_kept_aside() -> None:
    e = engine(starting_equity=1_000 * X)
    e.on_trade(BTC, 100 * X, T0)
    o = market(BUY, 2 * X)
    assert approved(e, o)
    e.on_venue_event(fill(o, 2 * X, 100 * X, fee=X // 1000, asset="BTC"), T0)
    assert e.symbol(BTC).position == 2 * X - X // 1000
    assert e.cash == 800 * X
    assert e.equity() == 1_000 * X - 10 * X // 100  # fee worth 0.1 USDT
    s = market(SELL, X)
    assert approved(e, s)
    e.on_venue_event(fill(s, X, 100 * X, fee=X // 10, asset="USDT"), T0)
    assert e.cash == 900 * X - X // 10
    s2 = market(SELL, X // 2)
    assert approved(e, s2)
    e.on_venue_event(fill(s2, X // 2, 100 * X, fee=7, asset="BNB"), T0)
    assert e.unvalued_fees == {"BNB": 7}


# --------------------------------------------------------------------------- daily loss


def test_daily_loss_trips_exactly_at_the_limit_allows_reductions_and_lifts_at_utc_midnight() -> None:
    day_end = (T0 // NS_PER_DAY + 1) * NS_PER_DAY
    e = engine(starting_equity=10_000 * X, daily_loss_limit=100 * X)
    buy_position(e, 10 * X, 100 * X)
    e.on_trade(BTC, 90 * X + 1, T0 + 1)  # loss 99.99999990: not yet
    assert e.halted is None
    e.on_trade(BTC, 90 * X, T0 + 2)  # loss 100 exactly: trips
    assert e.halted is Rule.DAILY_LOSS and e.halted_until == day_end
    events, commands = e.drain()
    trip = events[0]
    assert isinstance(trip, CircuitBreakerTripped)
    assert (trip.rule, trip.equity, trip.reference, trip.loss, trip.limit, trip.until) == (
        "daily_loss", 9_900 * X, 10_000 * X, 100 * X, 100 * X, day_end)
    assert isinstance(events[1], KillSwitchEngaged) and commands == []  # no open orders, no flatten
    assert denied_by(e, market(BUY, 1), T0 + 3) == "daily_loss"
    sell = market(SELL, 4 * X)
    d = e.decide(sell, "s", T0 + 3)
    assert isinstance(d, RiskApproved) and d.reduce_only
    assert denied_by(e, market(SELL, 6 * X + 1), day_end - 1) == "daily_loss"  # with the open 4: crosses zero
    assert approved(e, market(BUY, 1), day_end)
    events, _ = e.drain()
    assert [type(x) for x in events] == [RiskReset] and events[0].reason == "new UTC day"


def test_the_daily_loss_is_measured_from_the_start_of_each_utc_day() -> None:
    day_end = (T0 // NS_PER_DAY + 1) * NS_PER_DAY
    e = engine(starting_equity=10_000 * X, daily_loss_limit=100 * X)
    buy_position(e, 10 * X, 100 * X)
    e.on_trade(BTC, 91 * X, day_end - 1)  # -90 today
    e.on_trade(BTC, 82 * X, day_end)  # -90 again, but it is a new day
    assert e.halted is None
    e.on_trade(BTC, 81 * X, day_end + 5)  # -100 today
    assert e.halted is Rule.DAILY_LOSS


# --------------------------------------------------------------------------- drawdown and kill switch


def test_drawdown_from_the_peak_trips_the_kill_switch_which_cancels_and_flattens() -> None:
    e = engine(starting_equity=1_000 * X, max_drawdown_bps=1_000, flatten_on_kill=True)
    buy_position(e, 5 * X, 100 * X)  # equity 1000
    e.on_trade(BTC, 140 * X, T0 + 1)  # equity 1200: the new peak
    assert e.peak_equity == 1_200 * X
    resting = limit(BUY, X, 130 * X, cid="rest")
    assert approved(e, resting, T0 + 1)
    e.on_trade(BTC, 116 * X + 1, T0 + 2)  # drawdown just under 10 %
    assert e.halted is None
    e.on_trade(BTC, 116 * X, T0 + 3)  # 1080 = peak - 10 % exactly
    assert e.halted is Rule.MAX_DRAWDOWN and e.halted_until == 0
    events, commands = e.drain()
    assert isinstance(events[0], CircuitBreakerTripped) and events[0].rule == "max_drawdown"
    assert (events[0].equity, events[0].reference, events[0].limit) == (1_080 * X, 1_200 * X, 1_000)
    kill = events[1]
    assert isinstance(kill, KillSwitchEngaged) and kill.flatten and kill.commands == tuple(commands)
    assert commands[0] == CancelAllOrders(BTC)
    flat = commands[1]
    assert isinstance(flat, SubmitOrder) and (flat.side, flat.order_type, flat.quantity) == (
        SELL, OrderType.MARKET, 5 * X)
    assert (flat.client_order_id or "").startswith(KILL_ID_PREFIX)
    assert denied_by(e, limit(BUY, 1, 116 * X), T0 + NS_PER_DAY) == "max_drawdown"  # no lifting by time
    e.reset(T0 + NS_PER_DAY, "operator")
    assert e.halted is None and e.peak_equity == e.equity()
    assert approved(e, limit(BUY, 1, 116 * X), T0 + NS_PER_DAY)


def test_manual_kill_switch_cancels_every_instrument_with_open_orders_and_refuses_until_reset() -> None:
    e = RiskEngine()
    e.on_trade(ETH, 10 * X, T0)
    assert approved(e, limit(BUY, 1, X))
    assert approved(e, limit(SELL, 1, X, ETH))
    e.engage_kill_switch(T0, "operator")
    events, commands = e.drain()
    assert commands == [CancelAllOrders(BTC), CancelAllOrders(ETH)]
    assert isinstance(events[0], KillSwitchEngaged) and not events[0].flatten and events[0].reason == "operator"
    assert denied_by(e, limit(BUY, 1, X), T0 + 2 * NS_PER_DAY) == "kill_switch"
    e.reset(T0 + 2 * NS_PER_DAY)
    assert approved(e, limit(BUY, 1, 2 * X), T0 + 2 * NS_PER_DAY)


def test_a_drawdown_escalates_a_daily_halt_and_the_breaker_needs_a_positive_peak() -> None:
    e = engine(starting_equity=1_000 * X, daily_loss_limit=10 * X, max_drawdown_bps=500)
    buy_position(e, 10 * X, 100 * X)
    e.on_trade(BTC, 99 * X, T0 + 1)
    assert e.halted is Rule.DAILY_LOSS
    e.on_trade(BTC, 95 * X, T0 + 2)
    escalated: Rule | None = e.halted  # (a fresh read: the property changed)
    assert escalated is Rule.MAX_DRAWDOWN
    z = engine(max_drawdown_bps=1)  # starting equity 0: no peak to fall from
    buy_position(z, X, 100 * X)
    z.on_trade(BTC, X, T0 + 1)
    assert z.halted is None


# --------------------------------------------------------------------------- sizing (unit edges)


def test_sizing_helpers_at_their_edges() -> None:
    from engine.risk import fixed_fraction_qty, kelly_fraction, kelly_qty, vol_target_fraction, vol_target_qty

    assert fixed_fraction_qty(1_000 * X, 0.5, 100 * X) == 5 * X
    assert fixed_fraction_qty(1_000 * X, 0.5, 100 * X, step=3 * X) == 3 * X
    assert fixed_fraction_qty(0, 0.5, 100 * X) == 0 and fixed_fraction_qty(-5, 1.0, X) == 0
    assert kelly_fraction(0.6, 1.0) == pytest.approx(0.25 * 0.2)
    assert kelly_fraction(0.4, 1.0) == 0.0  # no edge: no bet
    assert kelly_fraction(1.0, 1.0, scale=1.0) == 1.0
    assert kelly_qty(1_000 * X, 100 * X, 0.75, 1.0) == 125 * X // 100  # 0.25 x Kelly 0.5 of 1000 at 100
    assert kelly_qty(1_000 * X, 100 * X, 0.6, 1.0) == 5 * X // 10 - 1  # binary 0.6 < 0.6: never rounds up
    assert vol_target_fraction(0.4, 0.2) == 0.5
    assert vol_target_fraction(0.1, 0.2) == 1.0 and vol_target_fraction(0.1, 0.2, max_leverage=3.0) == 2.0
    assert vol_target_fraction(0.0, 0.2) == 0.0
    assert vol_target_qty(1_000 * X, 100 * X, 0.4, 0.2) == 5 * X
    for bad in (lambda: fixed_fraction_qty(X, -0.1, X), lambda: fixed_fraction_qty(X, 0.1, 0),
                lambda: fixed_fraction_qty(X, float("inf"), X), lambda: kelly_fraction(1.5, 1.0),
                lambda: kelly_fraction(0.5, 0.0), lambda: vol_target_fraction(float("nan"), 0.1)):
        with pytest.raises(ValueError):
            bad()


# --------------------------------------------------------------------------- through the kernel


class _Cfg(StrategyConfig, frozen=True, kw_only=True):
    pass


class _Scripted(Strategy[_Cfg]):
    """Sends the commands scripted for a trade seq; records every order event it gets."""

    name: ClassVar[str] = "scripted"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.TRADE})

    def __init__(self, script: dict[int, list[Any]]) -> None:
        super().__init__(_Cfg())
        self.script = script
        self.got: list[Event] = []

    def on_trade(self, trade: TradeReceived) -> None:
        for cmd in self.script.get(trade.seq, []):
            self.ctx.send(cmd)

    def on_order_event(self, event: Event) -> None:
        self.got.append(event)


class _FillAtLast:
    """A tiny venue: market orders fill at the last trade; limit orders rest; cancel-all cancels them."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.resting: dict[str, SubmitOrder] = {}
        self.seen: list[Any] = []

    @property
    def market_kinds(self) -> frozenset[int]:
        return frozenset({Kind.TRADE})

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        assert isinstance(event, TradeReceived)
        self.last[event.instrument] = event.price
        return []

    def handle(self, command: Any, ts: int) -> list[Event]:
        self.seen.append(command)
        if isinstance(command, SubmitOrder) and command.order_type is OrderType.MARKET:
            return [fill(command, command.quantity, self.last[command.instrument], ts=ts)]
        if isinstance(command, SubmitOrder):
            self.resting[command.client_order_id or ""] = command
        if isinstance(command, CancelAllOrders):
            out: list[Event] = [canceled(cid, command.instrument, ts) for cid in sorted(self.resting)]
            self.resting.clear()
            return out
        return []


def test_through_the_kernel_every_decision_is_logged_and_the_breaker_acts_on_marks() -> None:
    cfg = RiskConfig(starting_equity=1_000 * X, max_order_notional=600 * X, max_drawdown_bps=1_000,
                     flatten_on_kill=True)
    venue = _FillAtLast()
    gate, risked = attach_risk(RiskEngine(cfg), venue)
    strat = _Scripted({
        1: [SubmitOrder(BTC, BUY, OrderType.MARKET, 5 * X)],  # 500: approved and filled
        2: [SubmitOrder(BTC, BUY, OrderType.MARKET, 7 * X)],  # 700: denied
        3: [SubmitOrder(BTC, BUY, OrderType.LIMIT, X, 90 * X, TimeInForce.GTC)],  # rests
        5: [SubmitOrder(BTC, BUY, OrderType.LIMIT, X, 80 * X, TimeInForce.GTC)],  # after the trip: denied
    })
    trades = [TradeReceived(i, T0 + i, T0 + i, BTC, p * X, X, i, False)
              for i, p in enumerate([100, 100, 100, 100, 80, 80], start=1)]
    sink = ListSink()
    kernel = Kernel(sink, venue=risked, risk=gate)
    kernel.add_strategy(strat)
    kernel.run(chunked(trades, 2))
    kinds = [type(e).__name__ for e in sink.events if not isinstance(e, TradeReceived)]
    assert kinds == [
        "RunStarted",
        "CommandIssued", "RiskApproved", "OrderFilled",
        "CommandIssued", "RiskDenied",
        "CommandIssued", "RiskApproved",
        # trade 5: risk sees the mark before the strategy, which then sends an order: logged
        # at once, while the breaker's events and the denial come back as responses
        "CommandIssued",
        "CircuitBreakerTripped", "KillSwitchEngaged", "OrderCanceled", "OrderFilled",
        "RiskDenied",
        "RunFinished",
    ]
    assert [e.seq for e in sink.events] == list(range(1, len(sink.events) + 1))
    denials = [e for e in strat.got if isinstance(e, OrderRejected)]
    assert [d.rule for d in denials if isinstance(d, RiskDenied)] == ["max_order_notional", "max_drawdown"]
    flat = venue.seen[-1]
    assert isinstance(flat, SubmitOrder) and (flat.side, flat.quantity) == (SELL, 5 * X)
    assert gate.engine.symbol(BTC).position == 0 and gate.pending == 0
    issued = [e for e in sink.events if isinstance(e, CommandIssued)]
    assert len(issued) == 4 and all(e.strategy == "scripted" for e in issued)
