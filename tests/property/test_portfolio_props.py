"""Properties of engine.portfolio, exact to the e8 unit.

- cash + positions value == initial + realised + unrealised - open fees, at every step;
- the base balance is the position; fee values and flows are conserved across lots and trips;
- a closed round trip's net PnL is exactly the quote cash its two legs moved;
- FIFO matching agrees with a brute-force queue of (order, quantity) lots.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import OrderFilled
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import OrderSide, OrderStatus
from engine.portfolio import Portfolio, market_value

pytestmark = pytest.mark.edge

I = InstrumentId("BTCUSDT.SPOT")
INITIAL = 10**9 * SCALE


@dataclass(frozen=True)
class Op:
    """A fill (side, qty, price, fee kind, fee rate, new order?) or, with side None, a mark at ``price``."""

    side: str | None
    qty: int
    price: int
    fee_kind: str
    fee_rate: int
    new_order: bool


prices = st.integers(min_value=SCALE // 100, max_value=100_000 * SCALE)
qtys = st.integers(min_value=1, max_value=20 * SCALE)
fills_ops = st.builds(
    Op,
    side=st.sampled_from(["BUY", "SELL"]),
    qty=qtys,
    price=prices,
    fee_kind=st.sampled_from(["none", "quote", "base"]),
    fee_rate=st.integers(min_value=0, max_value=SCALE // 50),
    new_order=st.booleans(),
)
mark_ops = st.builds(Op, side=st.none(), qty=st.just(0), price=prices, fee_kind=st.just("none"),
                     fee_rate=st.just(0), new_order=st.just(False))  # fmt: skip
ops_lists = st.lists(st.one_of(fills_ops, fills_ops, mark_ops), min_size=1, max_size=40)


def make_fill(side: str, qty: int, price: int, fee: int, asset: str, order: int, ts: int) -> OrderFilled:
    y = price * qty // SCALE
    return OrderFilled(
        0, ts, ts, I, order, f"c{order}", OrderSide(side), price, qty, y, qty, y, OrderStatus.FILLED,
        fee, asset, ts, False, -1, ts,
    )  # fmt: skip


def fee_of(op: Op) -> tuple[int, str]:
    if op.fee_kind == "quote":
        return op.price * op.qty // SCALE * op.fee_rate // SCALE, "USDT"
    if op.fee_kind == "base":
        return min(op.qty * op.fee_rate // SCALE, op.qty - 1), "BTC"
    return 0, "USDT"


def check_identities(pf: Portfolio, flows: int, fee_values: int) -> None:
    """Everything the module doc promises, exactly."""
    book = pf._books.get(I)
    pos = pf.position(I)
    assert pf.balance("BTC") == pos.qty
    assert pf.equity() == INITIAL + pf.realised_pnl + pf.unrealised_pnl() - pf.open_fees()
    assert pf.fees_value == fee_values == pf.realised_fees + pf.open_fees()
    assert pf.realised_gross_pnl + pos.open_flow == flows
    assert sum(t.gross_pnl for t in pf.round_trips) == pf.realised_gross_pnl
    assert sum(t.fees for t in pf.round_trips) == pf.realised_fees
    if book is not None:
        assert sum(lot.qty for lot in book.lots) == abs(pos.qty)
        assert all(lot.qty > 0 for lot in book.lots)
    assert all(t.qty > 0 and t.side in (1, -1) for t in pf.round_trips)


@settings(max_examples=150, deadline=None)
@given(ops_lists)
def test_cash_plus_positions_equals_initial_plus_pnl(ops: list[Op]) -> None:
    pf = Portfolio("USDT", {"USDT": INITIAL})
    flows = fee_values = 0
    order = 0
    for ts, op in enumerate(ops, start=1):
        if op.side is None:
            pf.mark(I, op.price)
        else:
            order += 1 if op.new_order or order == 0 else 0
            fee, asset = fee_of(op)
            pf.apply_fill(make_fill(op.side, op.qty, op.price, fee, asset, order, ts))
            y = op.price * op.qty // SCALE
            value = market_value(fee, op.price) if asset == "BTC" else fee
            flows += (-y if op.side == "BUY" else y) + (value if asset == "BTC" else 0)
            fee_values += value
        check_identities(pf, flows, fee_values)


@st.composite
def closed_trips(draw: st.DrawFn) -> tuple[list[OrderFilled], list[OrderFilled]]:
    """Partial BUY fills of one order (fees in quote or base), then partial SELLs of another that close it."""
    entries = []
    held = 0
    for ts in range(1, draw(st.integers(1, 5)) + 1):
        op = draw(fills_ops)
        fee, asset = fee_of(op)
        entries.append(make_fill("BUY", op.qty, op.price, fee, asset, 1, ts))
        held += op.qty - (fee if asset == "BTC" else 0)
    cuts = sorted(draw(st.lists(st.integers(1, held - 1), max_size=4, unique=True))) if held > 1 else []
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, held], strict=True)]
    exits = []
    for ts, q in enumerate(parts, start=100):
        price = draw(prices)
        rate = draw(st.integers(0, SCALE // 50))
        exits.append(make_fill("SELL", q, price, price * q // SCALE * rate // SCALE, "USDT", 2, ts))
    return entries, exits


@settings(max_examples=150, deadline=None)
@given(closed_trips())
def test_closed_round_trip_net_pnl_is_the_cash_it_moved(
    trip: tuple[list[OrderFilled], list[OrderFilled]],
) -> None:
    entries, exits = trip
    pf = Portfolio("USDT", {"USDT": INITIAL})
    for f in entries + exits:
        pf.apply_fill(f)
    assert pf.position(I).qty == 0 and pf.balance("BTC") == 0
    (t,) = pf.round_trips
    cash = pf.balance("USDT") - INITIAL
    assert t.net_pnl == t.gross_pnl - t.fees == cash
    assert t.fees == pf.fees_value
    assert t.qty == sum(f.qty for f in exits)
    assert t.notional == sum(f.quote_qty for f in entries + exits)
    assert (t.entry_ts, t.exit_ts) == (entries[0].ts_event, exits[-1].ts_event)


def brute_fifo(fills: list[tuple[str, int, int]]) -> dict[tuple[int, int], int]:
    """(side, qty, order) -> matched qty per (entry order, exit order), one queue of signed lots."""
    lots: deque[list[int]] = deque()  # [order, signed qty]
    matched: dict[tuple[int, int], int] = {}
    for side, qty, order in fills:
        sign = 1 if side == "BUY" else -1
        left = qty
        while left and lots and (lots[0][1] > 0) != (sign > 0):
            take = min(left, abs(lots[0][1]))
            key = (lots[0][0], order)
            matched[key] = matched.get(key, 0) + take
            lots[0][1] += sign * take
            left -= take
            if lots[0][1] == 0:
                lots.popleft()
        if left:
            lots.append([order, sign * left])
    return matched


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 5), st.booleans()), max_size=30))
def test_fifo_matching_agrees_with_a_brute_force_queue(script: list[tuple[str, int, bool]]) -> None:
    pf = Portfolio("USDT", {"USDT": INITIAL, "BTC": 1000 * SCALE})
    fills = []
    order, prev_side = 0, ""
    for ts, (side, units, same) in enumerate(script, start=1):
        if not (same and side == prev_side):
            order += 1
        prev_side = side
        fills.append((side, units * SCALE, order))
        pf.apply_fill(make_fill(side, units * SCALE, 100 * SCALE + ts, 0, "USDT", order, ts))
    got: dict[tuple[int, int], int] = {}
    for t in pf.round_trips:
        got[(t.entry_order_id, t.exit_order_id)] = got.get((t.entry_order_id, t.exit_order_id), 0) + t.qty
    assert got == brute_fifo(fills)
    # consecutive matches of the same two orders are one record
    keys = [(t.entry_order_id, t.exit_order_id) for t in pf.round_trips]
    assert all(a != b for a, b in zip(keys, keys[1:], strict=False))
