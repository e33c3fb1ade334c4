"""Fill rules: L1 trade/quote fills, the L2 book walk, quoteOrderQty walks, consumed liquidity."""

from __future__ import annotations

import pytest

from engine.fixed import parse_e8
from venues.sim.models.fill import ConsumedLiquidity, L1FillRule, walk_book, walk_book_quote

pytestmark = pytest.mark.edge

E = parse_e8
ASKS = [(E("100"), E("1")), (E("101"), E("2")), (E("103"), E("5"))]
BIDS = [(E("99"), E("1")), (E("98"), E("2")), (E("95"), E("5"))]


def test_l1_trade_through_fills_bounded_by_trade_size() -> None:
    rule = L1FillRule()
    assert rule.trade_fill_qty("BUY", E("100"), E("5"), E("99.9"), E("2")) == E("2")
    assert rule.trade_fill_qty("BUY", E("100"), E("1"), E("99.9"), E("2")) == E("1")
    assert rule.trade_fill_qty("BUY", E("100"), E("5"), E("100"), E("2")) == 0  # at price: queue decides
    assert rule.trade_fill_qty("BUY", E("100"), E("5"), E("100.1"), E("2")) == 0
    assert rule.trade_fill_qty("SELL", E("100"), E("5"), E("100.1"), E("2")) == E("2")
    assert L1FillRule(fill_at_price=True).trade_fill_qty("SELL", E("100"), E("5"), E("100"), E("2")) == E("2")


def test_l1_quote_crossing_fills_at_our_price() -> None:
    rule = L1FillRule()
    assert rule.quote_fill("BUY", E("100"), E("5"), (E("99"), E("1")), (E("99.5"), E("3"))) == (
        E("100"),
        E("3"),
    )
    assert rule.quote_fill("BUY", E("100"), E("5"), (E("99"), E("1")), (E("100.5"), E("3"))) is None
    assert rule.quote_fill("SELL", E("100"), E("2"), (E("100"), E("3")), None) == (E("100"), E("2"))
    assert rule.quote_fill("SELL", E("100"), E("2"), None, (E("101"), E("3"))) is None


def test_walk_book_takes_best_first_and_respects_the_limit() -> None:
    r = walk_book(ASKS, "BUY", E("2.5"))
    assert r.fills == ((E("100"), E("1")), (E("101"), E("1.5")))
    assert (r.filled_e8, r.remaining_e8, r.quote_e8) == (E("2.5"), 0, E("251.5"))
    limited = walk_book(ASKS, "BUY", E("10"), limit_e8=E("101"))
    assert (limited.filled_e8, limited.remaining_e8) == (E("3"), E("7"))
    sell = walk_book(BIDS, "SELL", E("10"))
    assert sell.fills == tuple(BIDS) and sell.remaining_e8 == E("2")
    assert walk_book([], "BUY", E("1")).remaining_e8 == E("1")


def test_walk_book_quote_buy_never_overspends_and_keeps_the_step() -> None:
    r = walk_book_quote(ASKS, "BUY", E("250"), E("0.01"))
    # 1 @ 100 = 100, then 1.48 @ 101 = 149.48 (1.49 would be 150.49 > 150 left)
    assert r.fills == ((E("100"), E("1")), (E("101"), E("1.48")))
    assert r.quote_e8 == E("249.48") and r.remaining_e8 == E("0.52")
    assert all(q % E("0.01") == 0 for _, q in r.fills)


def test_walk_book_quote_sell_may_go_deeper_to_get_closer() -> None:
    levels = [(E("100"), E("10")), (E("60"), E("10"))]
    r = walk_book_quote(levels, "SELL", E("150"), E("1"))
    assert r.fills == ((E("100"), E("1")),)  # 50 left: one more unit at 60 would exceed it
    r2 = walk_book_quote([(E("100"), E("10")), (E("40"), E("10"))], "SELL", E("150"), E("1"))
    assert r2.fills == ((E("100"), E("1")), (E("40"), E("1")))


def test_walk_book_quote_limit_and_zero_step() -> None:
    r = walk_book_quote(ASKS, "BUY", E("1000"), 0, limit_e8=E("100"))
    assert r.fills == ((E("100"), E("1")),) and r.remaining_e8 == E("900")


def test_consumed_liquidity_hides_our_fills_until_the_level_updates() -> None:
    c = ConsumedLiquidity()
    first = walk_book(c.visible("ASK", ASKS), "BUY", E("2"))
    c.take("ASK", first.fills)
    assert list(c.visible("ASK", ASKS)) == [(E("101"), E("1")), (E("103"), E("5"))]
    second = walk_book(c.visible("ASK", ASKS), "BUY", E("2"))
    assert second.fills == ((E("101"), E("1")), (E("103"), E("1")))
    c.take("ASK", second.fills)
    assert c.taken("ASK", E("101")) == E("2")
    c.on_level_update("ASK", E("101"))
    assert list(c.visible("ASK", ASKS))[:2] == [(E("101"), E("2")), (E("103"), E("4"))]
    assert list(c.visible("BID", BIDS)) == BIDS
    c.on_snapshot()
    assert list(c.visible("ASK", ASKS)) == ASKS
