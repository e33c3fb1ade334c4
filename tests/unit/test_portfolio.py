"""engine.portfolio: exact balances, FIFO round trips, fee valuation, marks and equity."""

from __future__ import annotations

import pytest

from engine.errors import InputError
from engine.events import OrderFilled, QuoteReceived, TradeReceived
from engine.fixed import SCALE, parse_e8
from engine.identifiers import InstrumentId
from engine.orders import OrderSide, OrderStatus
from engine.portfolio import AssetPair, Portfolio, commission_side, market_value, spot_pair

pytestmark = pytest.mark.edge

E8 = SCALE
BTC = InstrumentId("BTCUSDT.SPOT")
BNB = InstrumentId("BNBUSDT.SPOT")


def d(text: str) -> int:
    return parse_e8(text, signed=True)


def fill(
    side: str,
    qty: str,
    price: str,
    *,
    fee: str = "0",
    asset: str = "USDT",
    order: int = 1,
    ts: int = 1,
    inst: InstrumentId = BTC,
) -> OrderFilled:
    q, p = d(qty), d(price)
    return OrderFilled(
        0, ts, ts, inst, order, f"c{order}", OrderSide(side), p, q, p * q // E8, q, p * q // E8,
        OrderStatus.FILLED, d(fee), asset, order, False, -1, order,
    )  # fmt: skip


def test_spot_pair_splits_by_the_longest_known_quote() -> None:
    assert spot_pair("BTCUSDT.SPOT") == AssetPair("BTC", "USDT")
    assert spot_pair("ETHBTC.SPOT") == AssetPair("ETH", "BTC")
    assert spot_pair("BTCFDUSD.SPOT") == AssetPair("BTC", "FDUSD")
    assert spot_pair("USDCUSDT.SPOT") == AssetPair("USDC", "USDT")
    assert spot_pair("BNBBTC.SPOT") == AssetPair("BNB", "BTC")


@pytest.mark.parametrize("bad", ["BTCUSDT.USDM", "XYZABC.SPOT", "BTCUSDT", "USDT.SPOT"])
def test_spot_pair_refuses_what_it_cannot_split(bad: str) -> None:
    with pytest.raises(InputError):
        spot_pair(bad)


@pytest.mark.parametrize(
    ("instrument", "asset", "side"),
    [
        ("BTCUSDT.SPOT", "BTC", "base"),
        ("BTCUSDT.SPOT", "USDT", "quote"),
        ("BTCUSDT.SPOT", "BNB", "other"),
        ("BTCUSDT.SPOT", "", "other"),
        ("BNBBTC.SPOT", "BNB", "base"),
        ("BNBBTC.SPOT", "BTC", "quote"),
        ("BTCDOMUSDT.SPOT", "BTC", "other"),  # the prefix rule would have called this base
        ("ETHBTC.SPOT", "ETH", "base"),
        ("XYZABC.SPOT", "XYZ", "base"),  # unknown quote: prefix/suffix decide instead of raising
        ("XYZABC.SPOT", "ABC", "quote"),
        ("BTCUSDT.USDM", "USDT", "quote"),  # not spot: the same fallback
    ],
)
def test_commission_side_is_one_rule_for_every_strategy(instrument: str, asset: str, side: str) -> None:
    assert commission_side(instrument, asset) == side


def test_market_value_truncates_symmetrically() -> None:
    assert market_value(d("0.33333333"), d("3")) == d("0.99999999")
    assert market_value(-d("0.33333333"), d("3")) == -d("0.99999999")
    assert market_value(1, 1) == 0 and market_value(-1, 1) == 0


def test_long_round_trip_with_quote_fees() -> None:
    pf = Portfolio("USDT", {"USDT": d("1000")})
    pf.apply_fill(fill("BUY", "1", "100", fee="0.1", order=1, ts=10))
    assert pf.balances == {"BTC": d("1"), "USDT": d("899.9")}
    assert pf.position(BTC).qty == d("1") and pf.position(BTC).avg_price == d("100")
    pf.apply_fill(fill("SELL", "1", "110", fee="0.11", order=2, ts=20))
    assert pf.balances == {"USDT": d("1009.79")}
    (t,) = pf.round_trips
    assert (t.side, t.qty, t.entry_ts, t.exit_ts) == (1, d("1"), 10, 20)
    assert (t.entry_price, t.exit_price) == (d("100"), d("110"))
    assert (t.gross_pnl, t.fees, t.net_pnl) == (d("10"), d("0.21"), d("9.79"))
    assert t.notional == d("210")
    assert pf.realised_pnl == d("9.79") == pf.equity() - d("1000")
    assert pf.fees_paid == {"USDT": d("0.21")} and pf.fees_value == d("0.21")
    assert pf.positions() == {} and pf.open_fees() == 0


def test_base_commission_shrinks_the_position_and_is_valued_at_the_fill_price() -> None:
    """A BUY charged 0.001 BTC holds 0.999 BTC; selling exactly that closes it flat."""
    pf = Portfolio("USDT", {"USDT": d("1000")})
    pf.apply_fill(fill("BUY", "1", "100", fee="0.001", asset="BTC", order=1))
    assert pf.position(BTC).qty == d("0.999") == pf.balance("BTC")
    assert pf.fees_value == d("0.1") and pf.open_fees() == d("0.1")
    pf.apply_fill(fill("SELL", "0.999", "110", fee="0.1089", order=2))
    assert pf.position(BTC).qty == 0 and pf.balance("BTC") == 0
    (t,) = pf.round_trips
    cash_change = pf.balance("USDT") - d("1000")
    assert t.net_pnl == cash_change == d("109.89") - d("100") - d("0.1089")
    assert t.gross_pnl == d("0.999") * 10 and t.fees == d("0.1") + d("0.1089")


def test_fifo_matches_oldest_lots_first() -> None:
    pf = Portfolio("USDT", {"USDT": d("1000")})
    pf.apply_fill(fill("BUY", "1", "100", order=1, ts=1))
    pf.apply_fill(fill("BUY", "1", "120", order=2, ts=2))
    pf.apply_fill(fill("SELL", "1.5", "130", order=3, ts=3))
    a, b = pf.round_trips
    assert (a.entry_order_id, a.exit_order_id, a.qty, a.gross_pnl) == (1, 3, d("1"), d("30"))
    assert (b.entry_order_id, b.exit_order_id, b.qty, b.gross_pnl) == (2, 3, d("0.5"), d("5"))
    pos = pf.position(BTC)
    assert pos.qty == d("0.5") and pos.avg_price == d("120") and pos.open_flow == -d("60")


def test_partial_fills_of_the_same_two_orders_make_one_round_trip() -> None:
    pf = Portfolio("USDT", {"USDT": d("1000")})
    for q, ts in (("0.2", 1), ("0.3", 2), ("0.5", 3)):
        pf.apply_fill(fill("BUY", q, "100", order=7, ts=ts))
    assert len(pf._books[BTC].lots) == 1  # merged into one lot
    for q, ts in (("0.6", 4), ("0.4", 5)):
        pf.apply_fill(fill("SELL", q, "101", order=8, ts=ts))
    (t,) = pf.round_trips
    assert (t.qty, t.entry_ts, t.exit_ts, t.gross_pnl) == (d("1"), 1, 5, d("1"))


def test_short_then_cover_and_a_flip_through_zero() -> None:
    pf = Portfolio("USDT", {"USDT": d("1000"), "BTC": d("5")})
    pf.apply_fill(fill("SELL", "1", "100", order=1, ts=1))
    assert pf.position(BTC).qty == -d("1")
    pf.apply_fill(fill("BUY", "3", "90", order=2, ts=2))  # covers 1 (short +10), opens a 2 long
    (t,) = pf.round_trips
    assert (t.side, t.qty, t.gross_pnl, t.entry_price, t.exit_price) == (
        -1,
        d("1"),
        d("10"),
        d("100"),
        d("90"),
    )
    pos = pf.position(BTC)
    assert pos.qty == d("2") and pos.avg_price == d("90")
    assert pf.balance("BTC") == d("7")


def test_bnb_commission_is_valued_at_the_bnb_mark_or_counted_unvalued() -> None:
    pf = Portfolio("USDT", {"USDT": d("1000"), "BNB": d("1")})
    pf.apply_fill(fill("BUY", "1", "100", fee="0.0001", asset="BNB", order=1))
    assert pf.unvalued_fees == {"BNB": d("0.0001")} and pf.fees_value == 0
    assert pf.unpriced_assets() == ("BNB",)
    pf.mark(BNB, d("500"))
    pf.apply_fill(fill("SELL", "1", "100", fee="0.0002", asset="BNB", order=2))
    assert pf.fees_value == d("0.1") and pf.fees_paid == {"BNB": d("0.0003")}
    assert pf.balance("BNB") == d("0.9997") and pf.position(BTC).qty == 0
    (t,) = pf.round_trips
    assert t.gross_pnl == 0 and t.fees == d("0.1")
    assert pf.equity() == d("1000") + market_value(d("0.9997"), d("500"))


def test_maker_rebate_is_a_negative_fee() -> None:
    pf = Portfolio("USDT", {"USDT": d("1000")})
    pf.apply_fill(fill("BUY", "1", "100", fee="-0.01", order=1))
    pf.apply_fill(fill("SELL", "1", "100", fee="-0.01", order=2))
    (t,) = pf.round_trips
    assert t.fees == -d("0.02") and t.net_pnl == d("0.02") == pf.balance("USDT") - d("1000")


def test_marks_trade_price_wins_over_quote_mid_once_seen() -> None:
    pf = Portfolio("USDT", {"USDT": d("1000")})
    pf.apply(QuoteReceived(0, 1, 1, BTC, 1, d("99"), E8, d("101"), E8))
    assert pf.mark_of(BTC) == d("100")
    pf.apply(TradeReceived(0, 2, 2, BTC, d("105"), E8, 1, False))
    pf.apply(QuoteReceived(0, 3, 3, BTC, 2, d("199"), E8, d("201"), E8))
    assert pf.mark_of(BTC) == d("105")


def test_unrealised_pnl_and_equity_follow_the_mark() -> None:
    pf = Portfolio("USDT", {"USDT": d("1000")})
    pf.apply_fill(fill("BUY", "2", "100", fee="0.2", order=1))
    assert pf.mark_of(BTC) == d("100")  # a fill marks an unmarked instrument
    pf.mark(BTC, d("90"))
    pos = pf.position(BTC)
    assert (pos.market_value, pos.unrealised_pnl) == (d("180"), -d("20"))
    assert pf.equity() == d("1000") - d("200") - d("0.2") + d("180")
    assert pf.equity() == d("1000") + pf.realised_pnl + pf.unrealised_pnl() - pf.open_fees()
    assert pf.gross_exposure() == pf.net_exposure() == d("180")


def test_reconcile_reports_differences() -> None:
    pf = Portfolio("USDT", {"USDT": d("1000")})
    pf.apply_fill(fill("BUY", "1", "100", order=1))
    assert pf.reconcile([("USDT", d("850"), d("50")), ("BTC", d("1"), 0)]) == ()
    (m,) = pf.reconcile([("BTC", d("0.5"), 0)])
    assert (m.asset, m.expected, m.reported) == ("BTC", d("1"), d("0.5"))


def test_bad_fills_are_refused_with_their_seq() -> None:
    pf = Portfolio("USDT")
    with pytest.raises(InputError, match="quotes in BTC"):
        pf.apply_fill(fill("BUY", "1", "0.05", inst=InstrumentId("ETHBTC.SPOT")))
    with pytest.raises(InputError, match="consumes the whole quantity"):
        pf.apply_fill(fill("BUY", "1", "100", fee="1", asset="BTC"))
    with pytest.raises(InputError, match="mark price must be positive"):
        pf.mark(BTC, 0)


def test_explicit_pairs_override_the_heuristic() -> None:
    odd = InstrumentId("FOOBAR.SPOT")
    pf = Portfolio("BAR", {"BAR": d("10")}, {odd: AssetPair("FOO", "BAR")})
    pf.apply_fill(fill("BUY", "2", "1.5", inst=odd, fee="0.003", asset="BAR"))
    assert pf.balances == {"BAR": d("6.997"), "FOO": d("2")}
    assert pf.summary()["balances"] == {"BAR": "6.997", "FOO": "2"}
