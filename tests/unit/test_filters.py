"""Each exchangeInfo filter at its edges: exactly at a bound passes, one tick/step beyond fails,
zero disables a sub-rule, and the error is Binance's code and message."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import InputError, RequestRejected
from engine.fixed import parse_e8
from venues.sim.filters import (
    OrderParams,
    RefPrice,
    SymbolRules,
    check_exchange_limits,
    check_order,
    exchange_limits,
    failing_filter,
    parse_param,
    rules_from_exchange_info,
    symbol_rules,
)

pytestmark = pytest.mark.edge

E = parse_e8
HUNDRED = E("100")


def _symbol(*filters: dict[str, Any], base_prec: int = 8, quote_prec: int = 8) -> dict[str, Any]:
    return {
        "symbol": "TESTUSDT",
        "status": "TRADING",
        "baseAsset": "TEST",
        "baseAssetPrecision": base_prec,
        "quoteAsset": "USDT",
        "quotePrecision": quote_prec,
        "quoteAssetPrecision": quote_prec,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "filters": list(filters),
    }


PRICE = {
    "filterType": "PRICE_FILTER",
    "minPrice": "0.01000000",
    "maxPrice": "1000.00000000",
    "tickSize": "0.01000000",
}
LOT = {"filterType": "LOT_SIZE", "minQty": "0.00100000", "maxQty": "100.00000000", "stepSize": "0.00100000"}


def _check(
    rules: SymbolRules, *, avg: RefPrice = HUNDRED, last: int | None = HUNDRED, **kw: Any
) -> str | None:
    counts = {"open_orders_count": 0, "open_algo_count": 0, "open_iceberg_count": 0}
    counts.update(
        {k: kw.pop(k) for k in list(kw) if k.startswith("open_") or k in ("adding", "base_position_e8")}
    )
    order = OrderParams(symbol="TESTUSDT", **{"side": "BUY", "type": "LIMIT", **kw})
    return failing_filter(rules, order, avg_price_e8=avg, last_price_e8=last, **counts)


def _limit(rules: SymbolRules, price: str, qty: str = "1", **kw: Any) -> str | None:
    return _check(rules, price=E(price), quantity=E(qty), **kw)


# --------------------------------------------------------------------------- PRICE_FILTER


def test_price_filter_edges() -> None:
    r = symbol_rules(_symbol(PRICE))
    assert _limit(r, "0.01") is None
    assert _limit(r, "1000") is None
    assert _limit(r, "0.009") == "-1013 Filter failure: PRICE_FILTER"  # below min (and off tick)
    assert _limit(r, "1000.01") == "-1013 Filter failure: PRICE_FILTER"  # one tick above max
    assert _limit(r, "100.005") == "-1013 Filter failure: PRICE_FILTER"  # off tick
    assert _limit(r, "100.01") is None


def test_price_filter_applies_to_stop_price() -> None:
    r = symbol_rules(_symbol(PRICE))
    ok = _check(r, type="STOP_LOSS_LIMIT", price=E("10"), stop_price=E("10.01"), quantity=E("1"))
    bad = _check(r, type="STOP_LOSS_LIMIT", price=E("10"), stop_price=E("10.015"), quantity=E("1"))
    assert ok is None
    assert bad == "-1013 Filter failure: PRICE_FILTER"


@pytest.mark.parametrize("field", ["minPrice", "maxPrice", "tickSize"])
def test_price_filter_zero_disables_each_sub_rule(field: str) -> None:
    base = {**PRICE, "minPrice": "0.05000000"}
    r = symbol_rules(_symbol({**base, field: "0.00000000"}))
    probe = {"minPrice": "0.01", "maxPrice": "5000", "tickSize": "100.005"}[field]
    assert _limit(r, probe) is None
    enabled = symbol_rules(_symbol(base))
    assert _limit(enabled, probe) == "-1013 Filter failure: PRICE_FILTER"


def test_grid_origin_min_versus_zero() -> None:
    """minPrice off the tick grid: the two documented readings of the tick rule differ."""
    odd = {**PRICE, "minPrice": "0.015"}
    from_min = symbol_rules(_symbol(odd), grid_from_min=True)
    from_zero = symbol_rules(_symbol(odd), grid_from_min=False)
    assert _limit(from_min, "0.025") is None
    assert _limit(from_min, "0.02") == "-1013 Filter failure: PRICE_FILTER"
    assert _limit(from_zero, "0.02") is None
    assert _limit(from_zero, "0.025") == "-1013 Filter failure: PRICE_FILTER"


# --------------------------------------------------------------------------- PERCENT_PRICE


def test_percent_price_bounds_against_average_price() -> None:
    f = {"filterType": "PERCENT_PRICE", "multiplierUp": "1.2", "multiplierDown": "0.8", "avgPriceMins": 5}
    r = symbol_rules(_symbol(PRICE, f))
    assert _limit(r, "120", avg=E("100")) is None
    assert _limit(r, "120.01", avg=E("100")) == "-1013 Filter failure: PERCENT_PRICE"
    assert _limit(r, "80", avg=E("100")) is None
    assert _limit(r, "79.99", avg=E("100")) == "-1013 Filter failure: PERCENT_PRICE"
    # the last price is irrelevant when avgPriceMins > 0
    assert _limit(r, "120", avg=E("100"), last=E("1")) is None
    # no reference yet: the band cannot be applied
    assert _limit(r, "999", avg=None) is None


def test_percent_price_avg_price_mins_zero_uses_last_price() -> None:
    f = {"filterType": "PERCENT_PRICE", "multiplierUp": "5", "multiplierDown": "0.2", "avgPriceMins": 0}
    r = symbol_rules(_symbol(PRICE, f))
    assert _limit(r, "50", avg=E("1"), last=E("10")) is None
    assert _limit(r, "50.01", avg=E("1"), last=E("10")) == "-1013 Filter failure: PERCENT_PRICE"
    assert _limit(r, "1.99", avg=E("1000"), last=E("10")) == "-1013 Filter failure: PERCENT_PRICE"


def test_percent_price_avg_as_function_of_minutes() -> None:
    f = {"filterType": "PERCENT_PRICE", "multiplierUp": "1.1", "multiplierDown": "0.9", "avgPriceMins": 3}
    r = symbol_rules(_symbol(PRICE, f))
    seen: list[int] = []

    def avg(mins: int) -> int:
        seen.append(mins)
        return E("200")

    assert _limit(r, "220", avg=avg) is None
    assert _limit(r, "220.01", avg=avg) == "-1013 Filter failure: PERCENT_PRICE"
    assert seen == [3, 3]
    assert r.avg_price_windows == (3,)


def test_percent_price_by_side() -> None:
    f = {
        "filterType": "PERCENT_PRICE_BY_SIDE",
        "bidMultiplierUp": "1.2",
        "bidMultiplierDown": "0.2",
        "askMultiplierUp": "5",
        "askMultiplierDown": "0.8",
        "avgPriceMins": 1,
    }
    r = symbol_rules(_symbol(PRICE, f))
    assert _limit(r, "120", side="BUY") is None
    assert _limit(r, "120.01", side="BUY") == "-1013 Filter failure: PERCENT_PRICE_BY_SIDE"
    assert _limit(r, "20", side="BUY") is None
    assert _limit(r, "19.99", side="BUY") == "-1013 Filter failure: PERCENT_PRICE_BY_SIDE"
    assert _limit(r, "500", side="SELL") is None
    assert _limit(r, "500.01", side="SELL") == "-1013 Filter failure: PERCENT_PRICE_BY_SIDE"
    assert _limit(r, "80", side="SELL") is None
    assert _limit(r, "79.99", side="SELL") == "-1013 Filter failure: PERCENT_PRICE_BY_SIDE"


def test_market_orders_skip_price_filters() -> None:
    f = {"filterType": "PERCENT_PRICE", "multiplierUp": "1.2", "multiplierDown": "0.8", "avgPriceMins": 5}
    r = symbol_rules(_symbol(PRICE, f, LOT))
    assert _check(r, type="MARKET", quantity=E("1")) is None


# --------------------------------------------------------------------------- LOT_SIZE / MARKET_LOT_SIZE


def test_lot_size_edges() -> None:
    r = symbol_rules(_symbol(LOT))
    assert _limit(r, "1", "0.001") is None
    assert _limit(r, "1", "100") is None
    assert _limit(r, "1", "0.0009") == "-1013 Filter failure: LOT_SIZE"
    assert _limit(r, "1", "100.001") == "-1013 Filter failure: LOT_SIZE"
    assert _limit(r, "1", "1.0005") == "-1013 Filter failure: LOT_SIZE"
    assert _limit(r, "1", "1.001") is None


def test_lot_size_applies_to_iceberg_qty_and_zero_iceberg_means_none() -> None:
    r = symbol_rules(_symbol(LOT))
    assert _limit(r, "1", "1", iceberg_qty=E("0.1")) is None
    assert _limit(r, "1", "1", iceberg_qty=E("0.0005")) == "-1013 Filter failure: LOT_SIZE"
    assert _limit(r, "1", "1", iceberg_qty=0) is None


def test_lot_size_step_zero_disabled() -> None:
    r = symbol_rules(_symbol({**LOT, "stepSize": "0.00000000"}))
    assert _limit(r, "1", "1.00000001") is None


def test_market_lot_size_only_for_market_types() -> None:
    mls = {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00", "maxQty": "10.00000000", "stepSize": "0.00"}
    r = symbol_rules(_symbol(LOT, mls))
    assert _check(r, type="MARKET", quantity=E("10")) is None
    assert _check(r, type="MARKET", quantity=E("10.001")) == "-1013 Filter failure: MARKET_LOT_SIZE"
    assert _limit(r, "1", "10.001") is None  # a LIMIT order ignores it
    # LOT_SIZE applies to MARKET orders as well, before MARKET_LOT_SIZE (listing order)
    assert _check(r, type="MARKET", quantity=E("0.0005")) == "-1013 Filter failure: LOT_SIZE"
    # quoteOrderQty orders have no quantity to check
    assert _check(r, type="MARKET", quote_order_qty=E("1000000")) is None


# --------------------------------------------------------------------------- notional


MIN_NOTIONAL = {
    "filterType": "MIN_NOTIONAL",
    "minNotional": "10.00000000",
    "applyToMarket": True,
    "avgPriceMins": 5,
}


def test_min_notional_limit_edges() -> None:
    r = symbol_rules(_symbol(MIN_NOTIONAL))
    assert _limit(r, "10", "1") is None
    assert _limit(r, "9.99", "1") == "-1013 Filter failure: MIN_NOTIONAL"
    assert _limit(r, "0.01", "1000") is None
    assert _limit(r, "0.01", "999.99999999") == "-1013 Filter failure: MIN_NOTIONAL"


def test_min_notional_market_uses_avg_price_and_apply_to_market() -> None:
    r = symbol_rules(_symbol(MIN_NOTIONAL))
    assert _check(r, type="MARKET", quantity=E("0.1"), avg=E("100")) is None
    assert (
        _check(r, type="MARKET", quantity=E("0.09999999"), avg=E("100"))
        == "-1013 Filter failure: MIN_NOTIONAL"
    )
    # no trade yet: a MARKET order cannot be placed while applyToMarket is set
    assert _check(r, type="MARKET", quantity=E("5"), avg=None) == "-1013 Filter failure: MIN_NOTIONAL"
    assert _check(r, type="MARKET", quote_order_qty=E("10"), avg=None) is None
    assert _check(r, type="MARKET", quote_order_qty=E("9.99999999")) == "-1013 Filter failure: MIN_NOTIONAL"
    off = symbol_rules(_symbol({**MIN_NOTIONAL, "applyToMarket": False}))
    assert _check(off, type="MARKET", quantity=E("0.00000001")) is None
    assert _limit(off, "9.99", "1") == "-1013 Filter failure: MIN_NOTIONAL"


def test_min_notional_avg_price_mins_zero_uses_last() -> None:
    r = symbol_rules(_symbol({**MIN_NOTIONAL, "avgPriceMins": 0}))
    assert _check(r, type="MARKET", quantity=E("1"), avg=E("1"), last=E("10")) is None
    assert (
        _check(r, type="MARKET", quantity=E("1"), avg=E("100"), last=E("9"))
        == "-1013 Filter failure: MIN_NOTIONAL"
    )


def test_stop_market_notional_uses_stop_price() -> None:
    r = symbol_rules(_symbol(MIN_NOTIONAL))
    assert _check(r, type="STOP_LOSS", side="SELL", stop_price=E("10"), quantity=E("1"), avg=E("1")) is None
    got = _check(r, type="STOP_LOSS", side="SELL", stop_price=E("9.99"), quantity=E("1"), avg=E("1000"))
    assert got == "-1013 Filter failure: MIN_NOTIONAL"


NOTIONAL = {
    "filterType": "NOTIONAL",
    "minNotional": "10.00000000",
    "applyMinToMarket": False,
    "maxNotional": "10000.00000000",
    "applyMaxToMarket": True,
    "avgPriceMins": 5,
}


def test_notional_min_and_max() -> None:
    r = symbol_rules(_symbol(NOTIONAL))
    assert _limit(r, "10", "1") is None
    assert _limit(r, "10000", "1") is None
    assert _limit(r, "9.99", "1") == "-1013 Filter failure: NOTIONAL"
    assert _limit(r, "10000.01", "1") == "-1013 Filter failure: NOTIONAL"
    # MARKET: min not applied, max applied at the average price
    assert _check(r, type="MARKET", quantity=E("0.001"), avg=E("100")) is None
    assert _check(r, type="MARKET", quantity=E("100"), avg=E("100")) is None
    assert _check(r, type="MARKET", quantity=E("100.001"), avg=E("100")) == "-1013 Filter failure: NOTIONAL"
    # zero maxNotional disables the upper bound
    unbounded = symbol_rules(_symbol({**NOTIONAL, "maxNotional": "0"}))
    assert _limit(unbounded, "999999", "1000") is None


def test_notional_market_flags_both_off_skip_even_without_reference() -> None:
    r = symbol_rules(_symbol({**NOTIONAL, "applyMaxToMarket": False}))
    assert _check(r, type="MARKET", quantity=E("1"), avg=None) is None
    strict = symbol_rules(_symbol({**NOTIONAL, "applyMinToMarket": True}))
    assert _check(strict, type="MARKET", quantity=E("1"), avg=None) == "-1013 Filter failure: NOTIONAL"


# --------------------------------------------------------------------------- iceberg and counts


def test_iceberg_parts_is_ceil_of_qty_over_iceberg() -> None:
    r = symbol_rules(_symbol({"filterType": "ICEBERG_PARTS", "limit": 10}))
    assert _limit(r, "1", "1", iceberg_qty=E("0.1")) is None  # exactly 10 parts
    assert _limit(r, "1", "1", iceberg_qty=E("0.09999999")) == "-1013 Filter failure: ICEBERG_PARTS"  # 11
    assert _limit(r, "1", "1.00000001", iceberg_qty=E("0.1")) == "-1013 Filter failure: ICEBERG_PARTS"
    assert _limit(r, "1", "5") is None  # not an iceberg


def test_max_num_orders_counts_before_the_request() -> None:
    r = symbol_rules(_symbol({"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200}))
    assert _limit(r, "1", open_orders_count=199) is None
    assert _limit(r, "1", open_orders_count=200) == "-1013 Filter failure: MAX_NUM_ORDERS"
    assert _limit(r, "1", open_orders_count=198, adding=2) is None
    assert _limit(r, "1", open_orders_count=199, adding=2) == "-1013 Filter failure: MAX_NUM_ORDERS"


def test_max_num_algo_orders_only_for_stop_types() -> None:
    r = symbol_rules(_symbol({"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5}))
    stop: dict[str, Any] = {
        "type": "STOP_LOSS_LIMIT",
        "price": E("1"),
        "stop_price": E("1"),
        "quantity": E("1"),
    }
    assert _check(r, open_algo_count=4, **stop) is None
    assert _check(r, open_algo_count=5, **stop) == "-1013 Filter failure: MAX_NUM_ALGO_ORDERS"
    assert _limit(r, "1", open_algo_count=5) is None


def test_max_num_iceberg_orders() -> None:
    r = symbol_rules(_symbol({"filterType": "MAX_NUM_ICEBERG_ORDERS", "maxNumIcebergOrders": 2}))
    assert _limit(r, "1", iceberg_qty=E("0.5"), open_iceberg_count=1) is None
    assert (
        _limit(r, "1", iceberg_qty=E("0.5"), open_iceberg_count=2)
        == "-1013 Filter failure: MAX_NUM_ICEBERG_ORDERS"
    )
    assert _limit(r, "1", open_iceberg_count=2) is None


def test_max_position_for_buys() -> None:
    r = symbol_rules(_symbol({"filterType": "MAX_POSITION", "maxPosition": "10.00000000"}))
    assert _limit(r, "1", "4", base_position_e8=E("6")) is None
    assert _limit(r, "1", "4.00000001", base_position_e8=E("6")) == "-1013 Filter failure: MAX_POSITION"
    assert _limit(r, "1", "40", side="SELL", base_position_e8=E("6")) is None
    assert _limit(r, "1", "40") is None  # no position given: skipped


def test_trailing_delta_bounds_by_direction() -> None:
    td = {
        "filterType": "TRAILING_DELTA",
        "minTrailingAboveDelta": 10,
        "maxTrailingAboveDelta": 2000,
        "minTrailingBelowDelta": 20,
        "maxTrailingBelowDelta": 1000,
    }
    r = symbol_rules(_symbol(td))

    def stop(kind: str, side: str, delta: int) -> str | None:
        return _check(r, type=kind, side=side, quantity=E("1"), trailing_delta=delta)

    assert stop("STOP_LOSS", "BUY", 10) is None  # above
    assert stop("STOP_LOSS", "BUY", 9) == "-1013 Filter failure: TRAILING_DELTA"
    assert stop("TAKE_PROFIT", "SELL", 2000) is None
    assert stop("TAKE_PROFIT_LIMIT", "SELL", 2001) == "-1013 Filter failure: TRAILING_DELTA"
    assert stop("STOP_LOSS", "SELL", 19) == "-1013 Filter failure: TRAILING_DELTA"  # below
    assert stop("TAKE_PROFIT", "BUY", 1000) is None
    assert stop("TAKE_PROFIT_LIMIT", "BUY", 1001) == "-1013 Filter failure: TRAILING_DELTA"


# --------------------------------------------------------------------------- precision, order, parsing


def test_precision_error_precedes_filters() -> None:
    r = symbol_rules(_symbol(PRICE, LOT, base_prec=2, quote_prec=2))
    assert _limit(r, "1.001", "1") == "-1111 Parameter 'price' has too much precision."
    assert _limit(r, "1", "1.001") == "-1111 Parameter 'quantity' has too much precision."
    assert (
        _limit(r, "1", "1", iceberg_qty=E("0.001")) == "-1111 Parameter 'icebergQty' has too much precision."
    )
    assert _check(r, type="MARKET", quote_order_qty=E("10.001")) == (
        "-1111 Parameter 'quoteOrderQty' has too much precision."
    )
    got = _check(r, type="STOP_LOSS_LIMIT", price=E("1"), quantity=E("1"), stop_price=E("1.001"))
    assert got == "-1111 Parameter 'stopPrice' has too much precision."
    # exactly at precision but off the step grid: a filter failure, not a precision error
    coarse = symbol_rules(
        _symbol(PRICE, {**LOT, "minQty": "0.1", "stepSize": "0.1"}, base_prec=2, quote_prec=2)
    )
    assert _limit(coarse, "1.01", "1.01") == "-1013 Filter failure: LOT_SIZE"


def test_first_failing_filter_in_listing_order_is_reported() -> None:
    r1 = symbol_rules(_symbol(PRICE, LOT))
    r2 = symbol_rules(_symbol(LOT, PRICE))
    assert _limit(r1, "0.005", "0.0005") == "-1013 Filter failure: PRICE_FILTER"
    assert _limit(r2, "0.005", "0.0005") == "-1013 Filter failure: LOT_SIZE"


def test_check_order_raises_request_rejected_and_wrong_symbol() -> None:
    r = symbol_rules(_symbol(PRICE))
    kw: dict[str, Any] = {
        "avg_price_e8": None,
        "last_price_e8": None,
        "open_orders_count": 0,
        "open_algo_count": 0,
        "open_iceberg_count": 0,
    }
    with pytest.raises(RequestRejected) as info:
        check_order(r, OrderParams("TESTUSDT", "BUY", "LIMIT", price=E("0.001"), quantity=E("1")), **kw)
    assert (info.value.code, info.value.msg) == (-1013, "Filter failure: PRICE_FILTER")
    with pytest.raises(RequestRejected) as info:
        check_order(r, OrderParams("OTHER", "BUY", "LIMIT", price=E("1"), quantity=E("1")), **kw)
    assert info.value.code == -1121


def test_unknown_filters_kept_verbatim_and_listed() -> None:
    weird = {"filterType": "SOMETHING_NEW", "x": "1"}
    amends = {"filterType": "MAX_NUM_ORDER_AMENDS", "maxNumOrderAmends": 10}
    r = symbol_rules(_symbol(PRICE, weird, amends))
    assert r.ignored_filters == ("SOMETHING_NEW", "MAX_NUM_ORDER_AMENDS")
    assert [dict(f) for f in r.raw_filters] == [PRICE, weird, amends]
    assert [f.name for f in r.filters] == ["PRICE_FILTER"]
    with pytest.raises(TypeError):
        r.raw_filters[0]["minPrice"] = "0"  # type: ignore[index]
    assert r.tick_size == E("0.01")
    assert r.step_size == 0


def test_malformed_filters_name_symbol_and_field() -> None:
    with pytest.raises(InputError, match=r"x.json: TESTUSDT PRICE_FILTER: field 'tickSize'"):
        symbol_rules(_symbol({**PRICE, "tickSize": "1e-2"}), source="x.json")
    with pytest.raises(InputError, match="missing field 'maxQty'"):
        symbol_rules(_symbol({"filterType": "LOT_SIZE", "minQty": "1", "stepSize": "1"}))
    with pytest.raises(InputError, match="applyToMarket"):
        symbol_rules(_symbol({**MIN_NOTIONAL, "applyToMarket": "yes"}))
    with pytest.raises(InputError, match="listed twice"):
        rules_from_exchange_info({"symbols": [_symbol(), _symbol()]})
    with pytest.raises(InputError, match="no 'symbols'"):
        rules_from_exchange_info({})


def test_usdm_field_spellings_load() -> None:
    r = symbol_rules(
        _symbol(
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        )
    )
    assert [f.name for f in r.filters] == ["MAX_NUM_ORDERS", "MIN_NOTIONAL", "PERCENT_PRICE"]
    assert _limit(r, "5", "1", avg=E("5"), last=E("5")) is None
    assert _limit(r, "4.99", "1", avg=E("5"), last=E("5")) == "-1013 Filter failure: MIN_NOTIONAL"
    assert _limit(r, "5.26", "1", avg=E("5"), last=E("5")) == "-1013 Filter failure: PERCENT_PRICE"


def test_parse_param() -> None:
    assert parse_param("price", "0.00100000") == 100_000
    assert parse_param("price", "1.123456780") == 112_345_678
    with pytest.raises(RequestRejected, match="-1111 Parameter 'price' has too much precision."):
        parse_param("price", "0.000000001")
    with pytest.raises(RequestRejected, match="-1100"):
        parse_param("quantity", "1e-3")
    with pytest.raises(RequestRejected, match="-1100"):
        parse_param("quantity", "-1")


def test_exchange_limits() -> None:
    lim = exchange_limits(
        [{"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": 3}, {"filterType": "UNKNOWN"}]
    )
    order = OrderParams("X", "BUY", "LIMIT", price=1, quantity=1)
    check_exchange_limits(lim, order, open_orders_count=2, open_algo_count=0, open_iceberg_count=0)
    with pytest.raises(RequestRejected, match="EXCHANGE_MAX_NUM_ORDERS"):
        check_exchange_limits(lim, order, open_orders_count=3, open_algo_count=0, open_iceberg_count=0)
    algo = exchange_limits([{"filterType": "EXCHANGE_MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 1}])
    stop = OrderParams("X", "BUY", "STOP_LOSS", quantity=1, stop_price=1)
    with pytest.raises(RequestRejected, match="EXCHANGE_MAX_NUM_ALGO_ORDERS"):
        check_exchange_limits(algo, stop, open_orders_count=0, open_algo_count=1, open_iceberg_count=0)
    check_exchange_limits(algo, order, open_orders_count=0, open_algo_count=1, open_iceberg_count=0)
