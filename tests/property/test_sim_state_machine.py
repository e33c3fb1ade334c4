"""Stateful property test of the simulated venue: random interleavings of orders, lists, cancels and market data.

After every step: exact per-asset conservation (free + locked + fees - received + given ==
initial), free/locked never negative, locked == what open orders and linked OCO pairs
reserve, every fill at a price the book, the trades or our own orders allowed (and within
its limit), at most one leg of an OCO executes, no two open orders share a client id and
a retried request never creates an order, every status change is an edge of the lifecycle
table. At teardown the same inputs replayed into a fresh venue give identical events.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.events import (
    BookSnapshotReceived,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    OrderTradePrevented,
    OrderTriggered,
    QuoteReceived,
    TradeReceived,
)
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.lifecycle import OrderAction, is_allowed, next_status
from engine.orders import (
    LIMIT_PRICED_TYPES,
    AnyCommand,
    CancelAllOrders,
    CancelOrder,
    ContingencyType,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    SelfTradePreventionMode,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
)
from venues.sim.venue import FlatFee, SimVenue, SymbolSpec

pytestmark = pytest.mark.edge

E8 = SCALE
I = InstrumentId("BTCUSDT.SPOT")
BALANCES = {"BTC": 5 * E8, "USDT": 1_000 * E8}
prices = st.integers(95, 105).map(lambda p: p * E8)
qtys = st.integers(1, 30).map(lambda q: q * E8 // 10)
sides = st.sampled_from([OrderSide.BUY, OrderSide.SELL])
cids = st.sampled_from(["a", "b", "c", None])
stps = st.sampled_from(list(SelfTradePreventionMode))
Input = tuple[str, Any, int]


def new_venue() -> SimVenue:
    return SimVenue([SymbolSpec(I, "BTCUSDT", "BTC", "USDT")], BALANCES, fee_model=FlatFee(-20_000, 100_000))


def replay(inputs: list[Input]) -> list[bytes]:
    v = new_venue()
    out: list[bytes] = []
    for kind, item, ts in inputs:
        evs = v.handle(item, ts) if kind == "cmd" else v.on_market(item, ts)
        out.extend(msgspec.json.encode(e) for e in evs)
    return out


class VenueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.v = new_venue()
        self.ts = 0
        self.inputs: list[Input] = []
        self.encoded: list[bytes] = []
        self.status: dict[int, OrderStatus] = {}
        self.limits: dict[int, tuple[OrderSide, OrderType, int]] = {}
        self.oco_lists: dict[int, tuple[int, ...]] = {}
        self.last_accepted: SubmitOrder | None = None

    # ----------------------------------------------------------------- driving

    def _allowed_prices(self, extra: tuple[int, ...] = ()) -> set[int]:
        bk = self.v.market_book(I)
        allowed = {p for p, _ in bk.book.bids.top()} | {p for p, _ in bk.book.asks.top()}
        allowed |= set(bk.bids.levels) | set(bk.asks.levels) | set(extra)
        return allowed

    def _step(self, kind: str, item: Any, extra_prices: tuple[int, ...] = (), trade_px: int | None = None) -> list[Event]:
        self.ts += 1_000_000
        allowed = self._allowed_prices(extra_prices)
        evs = self.v.handle(item, self.ts) if kind == "cmd" else self.v.on_market(item, self.ts)
        self.inputs.append((kind, item, self.ts))
        self.encoded.extend(msgspec.json.encode(e) for e in evs)
        self._check_events(evs, allowed, trade_px)
        return evs

    def _check_events(self, evs: list[Event], allowed: set[int], trade_px: int | None) -> None:
        self_trades = {e.trade_id for e in evs if isinstance(e, OrderFilled) and e.maker}
        taker_trades = {e.trade_id for e in evs if isinstance(e, OrderFilled) and not e.maker}
        for e in evs:
            if isinstance(e, OrderAccepted):
                prev = self.status.get(e.order_id)
                action = (
                    OrderAction.ACTIVATE if prev is OrderStatus.PENDING_NEW
                    else OrderAction.ACCEPT_PENDING if e.status is OrderStatus.PENDING_NEW else OrderAction.ACCEPT
                )
                self._transition(e.order_id, action, e.status)
                self.limits[e.order_id] = (e.side, e.order_type, e.price)
            elif isinstance(e, OrderFilled):
                action = OrderAction.FILL if e.status is OrderStatus.FILLED else OrderAction.PARTIAL_FILL
                self._transition(e.order_id, action, e.status)
                side, otype, limit = self.limits[e.order_id]
                if otype in LIMIT_PRICED_TYPES:
                    assert e.price <= limit if side is OrderSide.BUY else e.price >= limit, e
                if e.maker:
                    assert e.price == limit, e
                    if trade_px is not None and e.trade_id not in taker_trades:  # needs a print at/through us
                        assert trade_px <= e.price if side is OrderSide.BUY else trade_px >= e.price, e
                else:  # a taker trades at a displayed level or against our own order (same trade id)
                    assert e.price in allowed or e.trade_id in self_trades, (e, allowed)
            elif isinstance(e, OrderCanceled):
                self._transition(e.order_id, OrderAction.CANCEL, OrderStatus.CANCELED)
            elif isinstance(e, OrderExpired):
                self._transition(e.order_id, OrderAction.EXPIRE, e.status)
            elif isinstance(e, OrderTriggered):
                self._transition(e.order_id, OrderAction.TRIGGER, self.status[e.order_id])
            elif isinstance(e, OrderTradePrevented):
                gone = e.status is OrderStatus.EXPIRED_IN_MATCH
                self._transition(e.order_id, OrderAction.EXPIRE_IN_MATCH if gone else OrderAction.PREVENT, e.status)
            elif isinstance(e, OrderListStatusChanged) and e.contingency is ContingencyType.OCO:
                self.oco_lists[e.order_list_id] = e.order_ids

    def _transition(self, order_id: int, action: OrderAction, reported: OrderStatus) -> None:
        prev = self.status.get(order_id)
        assert is_allowed(prev, action), (order_id, prev, action)
        assert next_status(prev, action) is reported, (order_id, prev, action, reported)
        self.status[order_id] = reported

    def _submit(self, cmd: AnyCommand) -> list[Event]:
        evs = self._step("cmd", cmd)
        accepted = any(isinstance(e, OrderAccepted) for e in evs)
        if isinstance(cmd, SubmitOrder) and cmd.client_order_id is not None and accepted:
            self.last_accepted = cmd
        return evs

    # ----------------------------------------------------------------- rules: orders

    @rule(side=sides, price=prices, qty=qtys, tif=st.sampled_from(list(TimeInForce)), cid=cids, stp=stps,
          iceberg=st.booleans())
    def limit(self, side: OrderSide, price: int, qty: int, tif: TimeInForce, cid: str | None,
              stp: SelfTradePreventionMode, iceberg: bool) -> None:
        ice = qty // 3 if iceberg and tif is TimeInForce.GTC and qty >= 3 else 0
        self._submit(SubmitOrder(I, side, OrderType.LIMIT, quantity=qty, price=price, time_in_force=tif,
                                 client_order_id=cid, stp_mode=stp, iceberg_qty=ice))

    @rule(side=sides, price=prices, qty=qtys, cid=cids)
    def limit_maker(self, side: OrderSide, price: int, qty: int, cid: str | None) -> None:
        self._submit(SubmitOrder(I, side, OrderType.LIMIT_MAKER, quantity=qty, price=price, client_order_id=cid))

    @rule(side=sides, qty=qtys, by_quote=st.booleans(), stp=stps)
    def market(self, side: OrderSide, qty: int, by_quote: bool, stp: SelfTradePreventionMode) -> None:
        if by_quote:
            cmd = SubmitOrder(I, side, OrderType.MARKET, quote_order_qty=qty * 100, stp_mode=stp)
        else:
            cmd = SubmitOrder(I, side, OrderType.MARKET, quantity=qty, stp_mode=stp)
        self._submit(cmd)

    @rule(side=sides, stop=prices, price=prices, qty=qtys,
          otype=st.sampled_from([OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT,
                                 OrderType.TAKE_PROFIT_LIMIT]), trailing=st.sampled_from([0, 0, 100]))
    def stop(self, side: OrderSide, stop: int, price: int, qty: int, otype: OrderType, trailing: int) -> None:
        limit_type = otype in LIMIT_PRICED_TYPES
        self._submit(SubmitOrder(I, side, otype, quantity=qty, stop_price=stop, trailing_delta=trailing,
                                 price=price if limit_type else 0,
                                 time_in_force=TimeInForce.GTC if limit_type else None))

    @rule(side=sides, qty=qtys, gap=st.integers(1, 6), legacy=st.booleans(), cid=st.sampled_from(["L1", "L2", None]))
    def oco(self, side: OrderSide, qty: int, gap: int, legacy: bool, cid: str | None) -> None:
        last = self.v.last_price(I) or 100 * E8
        hi, lo = last + gap * E8, last - gap * E8
        if legacy:
            price, stop = (hi, lo) if side is OrderSide.SELL else (lo, hi)
            cmd = SubmitOrderList.legacy_oco(I, side, qty, price=price, stop_price=stop, list_client_order_id=cid)
        elif side is OrderSide.SELL:
            cmd = SubmitOrderList.oco(I, side, qty, above={"order_type": OrderType.LIMIT_MAKER, "price": hi},
                                      below={"order_type": OrderType.STOP_LOSS, "stop_price": lo},
                                      list_client_order_id=cid)
        else:
            cmd = SubmitOrderList.oco(I, side, qty, above={"order_type": OrderType.STOP_LOSS_LIMIT, "stop_price": hi,
                                                           "price": hi + E8, "time_in_force": TimeInForce.GTC},
                                      below={"order_type": OrderType.LIMIT_MAKER, "price": lo},
                                      list_client_order_id=cid)
        self._submit(cmd)

    @rule(side=sides, qty=qtys, gap=st.integers(0, 4), tif=st.sampled_from(list(TimeInForce)), with_pair=st.booleans())
    def oto(self, side: OrderSide, qty: int, gap: int, tif: TimeInForce, with_pair: bool) -> None:
        last = self.v.last_price(I) or 100 * E8
        other = OrderSide.SELL if side is OrderSide.BUY else OrderSide.BUY
        px = last - gap * E8 if side is OrderSide.BUY else last + gap * E8
        working = OrderLeg(side, OrderType.LIMIT, qty, price=px, time_in_force=tif)
        if not with_pair:
            far = px + 5 * E8 if other is OrderSide.SELL else px - 5 * E8
            self._submit(SubmitOrderList.oto(I, working, OrderLeg(other, OrderType.LIMIT_MAKER, qty, price=far)))
            return
        hi, lo = px + 6 * E8, px - 6 * E8
        if other is OrderSide.SELL:
            above = OrderLeg(other, OrderType.LIMIT_MAKER, qty, price=hi)
            below = OrderLeg(other, OrderType.STOP_LOSS, qty, stop_price=lo)
        else:
            above = OrderLeg(other, OrderType.STOP_LOSS, qty, stop_price=hi)
            below = OrderLeg(other, OrderType.LIMIT_MAKER, qty, price=lo)
        self._submit(SubmitOrderList.otoco(I, working, above, below))

    @precondition(lambda self: self.last_accepted is not None)
    @rule()
    def retry_last(self) -> None:
        """Resend the last accepted order with a client id unchanged (a retry after a timeout): never a second order."""
        assert self.last_accepted is not None
        evs = self._step("cmd", self.last_accepted)
        assert not any(isinstance(e, OrderAccepted) for e in evs)
        assert any(isinstance(e, OrderRejected) and e.msg == "Duplicate order sent." for e in evs)

    @rule(data=st.data(), by_cid=st.booleans())
    def cancel(self, data: st.DataObject, by_cid: bool) -> None:
        ids = sorted(self.status)
        if not ids:
            return
        oid = data.draw(st.sampled_from(ids))
        snap = self.v.order(oid)
        if by_cid and snap is not None:
            self._step("cmd", CancelOrder(I, orig_client_order_id=snap.client_order_id))
        else:
            self._step("cmd", CancelOrder(I, order_id=oid))

    @rule()
    def cancel_all(self) -> None:
        self._step("cmd", CancelAllOrders(I))

    # ----------------------------------------------------------------- rules: market data

    @rule(price=prices, qty=qtys, buyer_maker=st.booleans())
    def market_trade(self, price: int, qty: int, buyer_maker: bool) -> None:
        self._step("mkt", TradeReceived(0, self.ts, self.ts, I, price, qty, 1, buyer_maker), trade_px=price)

    @rule(bid=st.integers(95, 104), spread=st.integers(1, 3), bq=qtys, aq=qtys)
    def quote(self, bid: int, spread: int, bq: int, aq: int) -> None:
        ev = QuoteReceived(0, self.ts, self.ts, I, 1, bid * E8, bq, (bid + spread) * E8, aq)
        self._step("mkt", ev, extra_prices=(bid * E8, (bid + spread) * E8))

    @rule(mid=st.integers(97, 103), depth=st.integers(1, 4), q=qtys)
    def snapshot(self, mid: int, depth: int, q: int) -> None:
        bids = tuple(((mid - i) * E8, q) for i in range(1, depth + 1))
        asks = tuple(((mid + i) * E8, q) for i in range(1, depth + 1))
        self._step("mkt", BookSnapshotReceived(0, self.ts, self.ts, I, 1, bids, asks),
                   extra_prices=tuple(p for p, _ in bids + asks))

    # ----------------------------------------------------------------- invariants

    @invariant()
    def balances_are_exact(self) -> None:
        acct = self.v.account
        reserved = self.v.reserved()
        for asset in acct.assets():
            assert acct.conservation_gap(asset) == 0, asset
            assert acct.free_of(asset) >= 0 and acct.locked_of(asset) >= 0, asset
            assert acct.locked_of(asset) == reserved.get(asset, 0), (asset, acct.locked_of(asset), reserved)

    @invariant()
    def open_client_ids_are_unique(self) -> None:
        open_ = self.v.open_orders(I)
        cids_ = [s.client_order_id for s in open_]
        assert len(cids_) == len(set(cids_))
        for s in open_:
            assert s.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_NEW)
            assert s.orig_qty - s.executed_qty - s.prevented_qty > 0

    @invariant()
    def at_most_one_oco_leg_executes(self) -> None:
        for legs in self.oco_lists.values():
            executed = [oid for oid in legs if (s := self.v.order(oid)) is not None and s.executed_qty > 0]
            assert len(executed) <= 1, legs

    def teardown(self) -> None:
        if self.inputs:
            assert replay(self.inputs) == self.encoded


VenueMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
TestVenueMachine = VenueMachine.TestCase
