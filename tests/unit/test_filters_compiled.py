"""The compiled filter checks: what each generated function contains, and the venue's fast path
(``SymbolSpec.rules`` checked through ``CompiledRules`` with the venue's own VWAP, last price and
open-order counts) rejecting exactly what the public ``failing_filter`` rejects for the same state."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import Event, OrderRejected, TradeReceived
from engine.fixed import SCALE, parse_e8
from engine.identifiers import InstrumentId
from engine.orders import STOP_TYPES, OrderSide, OrderType, SubmitOrder, TimeInForce
from venues.sim.filters import CompiledRules, OrderParams, failing_filter, filter_source, symbol_rules
from venues.sim.venue import NS_PER_MIN, FlatFee, SimVenue, SymbolSpec

pytestmark = pytest.mark.edge

E = parse_e8
I = InstrumentId("TESTUSDT.SPOT")
FILTERS: list[dict[str, Any]] = [
    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000", "tickSize": "0.01"},
    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.1", "multiplierDown": "0.9", "avgPriceMins": 5},
    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "100", "stepSize": "0.001"},
    {"filterType": "MIN_NOTIONAL", "minNotional": "10", "applyToMarket": True, "avgPriceMins": 5},
    {"filterType": "ICEBERG_PARTS", "limit": 4},
    {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "0.2", "stepSize": "0"},
    {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
     "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
    {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 3},
    {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 2},
    {"filterType": "MAX_NUM_ICEBERG_ORDERS", "maxNumIcebergOrders": 1},
]
SYMBOL: dict[str, Any] = {
    "symbol": "TESTUSDT", "status": "TRADING", "baseAsset": "TEST", "quoteAsset": "USDT",
    "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                   "TAKE_PROFIT_LIMIT"],
    "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True, "filters": FILTERS,
}
RULES = symbol_rules(SYMBOL)


def _names_in(source: str) -> list[str]:
    return [line.split("'")[1] for line in source.splitlines() if line.strip().startswith("return '")]


def test_each_type_gets_only_the_filters_that_can_fail_for_it() -> None:
    compiled = CompiledRules(RULES)
    always = ["PRICE_FILTER", "PERCENT_PRICE", "LOT_SIZE", "MIN_NOTIONAL", "ICEBERG_PARTS", "MAX_NUM_ORDERS",
              "MAX_NUM_ICEBERG_ORDERS"]
    assert _names_in(compiled.source("LIMIT")) == always
    assert _names_in(compiled.source("MARKET")) == [
        *always[:5], "MARKET_LOT_SIZE", "MAX_NUM_ORDERS", "MAX_NUM_ICEBERG_ORDERS"]
    assert _names_in(compiled.source("STOP_LOSS_LIMIT")) == [
        *always[:5], "TRAILING_DELTA", "MAX_NUM_ORDERS", "MAX_NUM_ALGO_ORDERS", "MAX_NUM_ICEBERG_ORDERS"]
    no_market_notional = symbol_rules({**SYMBOL, "filters": [
        {"filterType": "MIN_NOTIONAL", "minNotional": "10", "applyToMarket": False, "avgPriceMins": 5}]})
    assert _names_in(CompiledRules(no_market_notional).source("MARKET")) == []
    assert _names_in(CompiledRules(no_market_notional).source("LIMIT")) == ["MIN_NOTIONAL"]


def test_disabled_bounds_are_left_out_and_numbers_are_literals() -> None:
    rules = symbol_rules({**SYMBOL, "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0", "maxPrice": "0", "tickSize": "0.01"}]})
    src = filter_source(rules.filters, "LIMIT")
    assert f"price % {E('0.01')} != 0" in src
    assert "price <" not in src and "price >" not in src
    none = symbol_rules({**SYMBOL, "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0", "maxPrice": "0", "tickSize": "0"}]})
    assert _names_in(filter_source(none.filters, "LIMIT")) == []


def test_same_numbers_share_one_generated_function_and_answer_like_check_order() -> None:
    a, b = CompiledRules(RULES), CompiledRules(symbol_rules(SYMBOL))
    assert a.for_type("LIMIT") is b.for_type("LIMIT")
    order = OrderParams("TESTUSDT", "BUY", "LIMIT", price=E("100"), quantity=E("0.05"))
    fn = a.for_type("LIMIT")
    assert fn(order, lambda mins: E("100"), None, 0, 0, 0, 1, None) == "MIN_NOTIONAL"
    assert failing_filter(RULES, order, avg_price_e8=E("100"), last_price_e8=None, open_orders_count=0,
                          open_algo_count=0, open_iceberg_count=0) == "-1013 Filter failure: MIN_NOTIONAL"


# --------------------------------------------------------------------------- the venue's fast path

order_types = st.sampled_from([OrderType.LIMIT, OrderType.MARKET, OrderType.STOP_LOSS_LIMIT,
                               OrderType.TAKE_PROFIT_LIMIT, OrderType.LIMIT_MAKER])
prices = st.integers(80_00, 120_00).map(lambda c: c * SCALE // 100)  # 80.00 .. 120.00
steps = st.integers(1, 400).map(lambda k: k * SCALE // 1000)  # 0.001 .. 0.4
action = st.one_of(
    st.tuples(st.just("trade"), prices, steps, st.booleans()),
    st.tuples(st.just("order"), order_types, st.booleans(), prices, steps,
              st.sampled_from([0, 0, SCALE // 1000, SCALE // 100]), st.sampled_from([0, 0, 5, 100, 5000]),
              st.sampled_from([0, 0, 0, 7])),
)


def _submit(kind: OrderType, buy: bool, price: int, qty: int, iceberg: int, trailing: int, odd: int) -> SubmitOrder:
    side = OrderSide.BUY if buy else OrderSide.SELL
    kw: dict[str, Any] = {"quantity": qty + odd}
    if kind is not OrderType.MARKET:
        kw["price"] = price + odd
    if kind in (OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
        kw["time_in_force"] = TimeInForce.GTC
    if kind in STOP_TYPES:
        kw["stop_price"] = price * 2 if (kind is OrderType.STOP_LOSS_LIMIT) == buy else price // 2
        kw["trailing_delta"] = trailing
    if iceberg and kind in (OrderType.LIMIT, OrderType.LIMIT_MAKER) and iceberg < qty:
        kw["iceberg_qty"] = iceberg
    return SubmitOrder(I, side, kind, **kw)


def _expected(v: SimVenue, cmd: SubmitOrder, ts: int) -> str | None:
    opens = v.open_orders(I)
    params = OrderParams("TESTUSDT", cmd.side.value, cmd.order_type.value, cmd.price or None, cmd.quantity or None,
                         None, cmd.stop_price or None, cmd.iceberg_qty or None, cmd.trailing_delta or None)
    return failing_filter(
        RULES, params, avg_price_e8=v.market_book(I).vwap(5 * NS_PER_MIN, ts), last_price_e8=v.last_price(I),
        open_orders_count=len(opens), open_algo_count=sum(o.order_type in STOP_TYPES for o in opens),
        open_iceberg_count=sum(o.iceberg_qty > 0 for o in opens),
    )


def _filter_outcome(events: list[Event]) -> tuple[bool, str | None]:
    """(reached the filters?, the filter rejection as "CODE MSG" or None)."""
    rej = next((e for e in events if isinstance(e, OrderRejected)), None)
    if rej is None or rej.code == -2010:
        return True, None  # accepted, or refused by the matching engine after the filters passed
    if rej.code == -1111 or rej.msg.startswith("Filter failure"):
        return True, f"{rej.code} {rej.msg}"
    return False, None  # a parameter rule refused it before the filters


@settings(max_examples=150, deadline=None)
@given(st.lists(action, min_size=1, max_size=40))
def test_venue_rejects_exactly_what_failing_filter_rejects(actions: list[tuple[Any, ...]]) -> None:
    v = SimVenue([SymbolSpec.from_rules(RULES)], {"TEST": 10**6 * SCALE, "USDT": 10**9 * SCALE},
                 fee_model=FlatFee(0, 0))
    ts = 0
    for act in actions:
        ts += 20_000_000_000  # 20 s: trades leave the 5-minute average after 15 steps
        if act[0] == "trade":
            _, price, qty, buyer_maker = act
            v.on_market(TradeReceived(0, ts, ts, I, price, qty, 1, buyer_maker), ts)
            continue
        cmd = _submit(*act[1:])
        want = _expected(v, cmd, ts)
        checked, got = _filter_outcome(v.handle(cmd, ts))
        if checked:  # (an order refused by a parameter rule never reaches the filters)
            assert got == want, (cmd, got, want)


_amount = st.one_of(st.just(0), st.integers(1, 2_000 * SCALE), st.sampled_from([E("0.001"), E("0.01"), E("100")]))


@settings(max_examples=200, deadline=None)
@given(
    otype=st.sampled_from(list(OrderType)), side=st.sampled_from(list(OrderSide)), price=_amount, qty=_amount,
    quote=_amount, stop=_amount, iceberg=_amount, trailing=st.sampled_from([0, 5, 10, 100, 5000]),
    avg=st.one_of(st.none(), st.integers(1, 2_000 * SCALE)), last=st.one_of(st.none(), st.integers(1, 2_000 * SCALE)),
    counts=st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 2)),
)
def test_the_command_check_answers_like_the_params_check(
    otype: OrderType, side: OrderSide, price: int, qty: int, quote: int, stop: int, iceberg: int, trailing: int,
    avg: int | None, last: int | None, counts: tuple[int, int, int],
) -> None:
    """The venue checks its ``SubmitOrder`` as it is (0 = absent): every rule must answer exactly as
    the OrderParams check on the same order (None = absent)."""
    compiled = CompiledRules(RULES)
    cmd = SubmitOrder(I, side, otype, quantity=qty, price=price, quote_order_qty=quote, stop_price=stop,
                      iceberg_qty=iceberg, trailing_delta=trailing)
    params = OrderParams("TESTUSDT", side, otype, price or None, qty or None, quote or None, stop or None,
                         iceberg or None, trailing or None)
    ctx = (lambda mins: avg, last, *counts, 1, None)
    assert compiled.for_command(otype)(cmd, *ctx) == compiled.for_type(otype)(params, *ctx)
    assert compiled.adds_nothing_for("TESTUSDT") and not compiled.adds_nothing_for("OTHERUSDT")
