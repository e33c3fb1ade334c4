"""Golden event streams of the simulated venue: long seeded random workloads, pinned by SHA-256.

Why: the venue's hot paths get optimised (fewer allocations, inlined checks, cheaper id
bookkeeping) and every such change must leave the events byte-identical. The digests below
were recorded from the venue *before* the performance work of issue 3 (the impact workload
after the own-order dry-run fix, which it exercises; see ``test_models_impact``), so any
drift in an event, a balance or an order snapshot shows up here with the workload that
moved. Each workload mixes every command the venue takes (all order types, time-in-force
values, icebergs, STP modes, duplicate and retried client ids, OCO/OTO/OTOCO lists,
cancels by id/client id/restriction, cancel-all, queries) with every market input (trades,
aggTrades, bookTickers, diffs, snapshots, gaps), under the exchangeInfo filters.

If an event class gains a field on purpose, the digests change: re-record them with
``python tests/unit/test_sim_golden.py`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest

from engine.events import (
    AggTradeReceived,
    BookDeltaReceived,
    BookGapDetected,
    BookSnapshotReceived,
    Event,
    OrderAccepted,
    QuoteReceived,
    TradeReceived,
)
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import (
    AnyCommand,
    CancelAllOrders,
    CancelOrder,
    CancelOrderList,
    OrderLeg,
    OrderSide,
    OrderType,
    QueryOrder,
    SelfTradePreventionMode,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
)
from venues.sim.adapters import VenueFees
from venues.sim.filters import symbol_rules
from venues.sim.models.fees import TieredFees
from venues.sim.models.impact import FixedStats, SquareRootImpact
from venues.sim.models.queue import ProbabilisticQueueRule
from venues.sim.venue import FlatFee, SimConfig, SimVenue, SymbolSpec

pytestmark = pytest.mark.edge

E8 = SCALE
TICK = E8 // 100  # 0.01
STEP = E8 // 1000  # 0.001
I = InstrumentId("TESTUSDT.SPOT")
BALANCES = {"TEST": 150 * E8, "USDT": 15_000 * E8, "BNB": 10 * E8}
FILTERS: list[dict[str, Any]] = [
    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "100000", "tickSize": "0.01"},
    {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "1.2", "bidMultiplierDown": "0.5",
     "askMultiplierUp": "2", "askMultiplierDown": "0.8", "avgPriceMins": 1},
    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "50", "stepSize": "0.001"},
    {"filterType": "NOTIONAL", "minNotional": "1", "applyMinToMarket": True, "maxNotional": "90000",
     "applyMaxToMarket": False, "avgPriceMins": 1},
    {"filterType": "ICEBERG_PARTS", "limit": 10},
    {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
     "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
    {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 25},
    {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 8},
    {"filterType": "MAX_NUM_ICEBERG_ORDERS", "maxNumIcebergOrders": 2},
]
SYMBOL: dict[str, Any] = {
    "symbol": "TESTUSDT", "status": "TRADING", "baseAsset": "TEST", "quoteAsset": "USDT",
    "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                   "TAKE_PROFIT_LIMIT"],
    "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
    "allowTrailingStop": True, "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
    "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
    "filters": FILTERS,
}
BUY, SELL = OrderSide.BUY, OrderSide.SELL
STPS: list[SelfTradePreventionMode | None] = [None, None, *SelfTradePreventionMode]
CIDS = ["a", "b", "c", "d", "e", None, None, None]
Input = tuple[str, Any, int]


def filtered_spec() -> SymbolSpec:
    return SymbolSpec.from_rules(symbol_rules(SYMBOL), SYMBOL)


class Workload:
    """A seeded random interleaving of market data and commands around a random-walking mid price."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.mid = 100 * E8
        self.ts = 1_000_000_000
        self.update_id = 1
        self.trade_id = 1
        self.sent: list[AnyCommand] = []

    # ----------------------------------------------------------------- numbers

    def px(self, ticks: int) -> int:
        return max(TICK, self.mid + ticks * TICK)

    def qty(self) -> int:
        r = self.rng
        return r.choice([r.randint(1, 20), r.randint(1, 2000), r.randint(100, 30_000)]) * STEP

    def side(self) -> OrderSide:
        return self.rng.choice([BUY, SELL])

    # ----------------------------------------------------------------- market data

    def levels(self, sign: int, n: int) -> tuple[tuple[int, int], ...]:
        return tuple((self.px(sign * (i + 1 + self.rng.randint(0, 2) * i)), self.qty()) for i in range(n))

    def market(self) -> Event:
        r, ts = self.rng, self.ts
        k = r.random()
        self.mid = max(50 * E8, self.mid + r.randint(-8, 8) * TICK)
        self.update_id += 1
        if k < 0.40:
            self.trade_id += 1
            price = self.px(r.randint(-6, 6))
            if r.random() < 0.5:
                return TradeReceived(0, ts, ts, I, price, self.qty(), self.trade_id, r.random() < 0.5)
            return AggTradeReceived(0, ts, ts, I, price, self.qty(), self.trade_id, self.trade_id, self.trade_id,
                                    r.random() < 0.5)
        if k < 0.60:
            spread = r.randint(1, 4)
            return QuoteReceived(0, ts, ts, I, self.update_id, self.px(-spread), self.qty(), self.px(spread), self.qty())
        if k < 0.85:
            bids = tuple((p, 0 if r.random() < 0.25 else q) for p, q in self.levels(-1, r.randint(0, 4)))
            asks = tuple((p, 0 if r.random() < 0.25 else q) for p, q in self.levels(1, r.randint(0, 4)))
            return BookDeltaReceived(0, ts, ts, I, self.update_id, self.update_id, -1, bids, asks)
        if k < 0.98:
            n = r.randint(1, 25)
            return BookSnapshotReceived(0, ts, ts, I, self.update_id, self.levels(-1, n), self.levels(1, n))
        return BookGapDetected(0, ts, ts, I, self.update_id, self.update_id + 5, "test gap")

    # ----------------------------------------------------------------- commands

    def order(self) -> SubmitOrder:
        r = self.rng
        side = self.side()
        away = 1 if side is BUY else -1  # ticks * away: positive = away from the market for this side
        otype = r.choice([OrderType.LIMIT] * 5 + [OrderType.MARKET] * 3 + list(OrderType))
        kw: dict[str, Any] = {"client_order_id": r.choice(CIDS), "stp_mode": r.choice(STPS),
                              "strategy_id": r.choice([None, 7])}
        if otype in (OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
            kw["price"] = self.px(-away * r.randint(-6, 12))
            if r.random() < 0.03:
                kw["price"] += 1  # off the tick grid: -1013 PRICE_FILTER
        if otype in (OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
            kw["time_in_force"] = r.choice([TimeInForce.GTC] * 4 + [TimeInForce.IOC, TimeInForce.FOK])
        qty = self.qty()
        if otype is OrderType.MARKET and r.random() < 0.4:
            kw["quote_order_qty"] = r.randint(1, 5_000) * E8
        else:
            kw["quantity"] = qty
        if otype in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT):
            if r.random() < 0.2:
                kw["trailing_delta"] = r.choice([50, 100, 300])
            if not kw.get("trailing_delta") or r.random() < 0.5:
                kw["stop_price"] = self.px(r.randint(-15, 15))
        if otype in (OrderType.LIMIT, OrderType.LIMIT_MAKER) and kw.get("time_in_force", TimeInForce.GTC) is TimeInForce.GTC \
                and r.random() < 0.1 and qty > 4 * STEP:
            kw["iceberg_qty"] = qty // 4 // STEP * STEP
        return SubmitOrder(I, side, otype, **kw)

    def order_list(self, last: int) -> SubmitOrderList:
        r = self.rng
        side = self.side()
        q = self.qty()
        gap = r.randint(1, 30) * TICK
        hi, lo = last + gap, max(TICK, last - gap)
        cid = r.choice(["L1", "L2", None])
        shape = r.randint(0, 3)
        if shape == 0:
            price, stop = (hi, lo) if side is SELL else (lo, hi)
            return SubmitOrderList.legacy_oco(I, side, q, price=price, stop_price=stop, list_client_order_id=cid,
                                              stop_limit_price=stop if r.random() < 0.5 else 0,
                                              stop_limit_time_in_force=TimeInForce.GTC)
        if shape == 1:
            if side is SELL:
                above: dict[str, Any] = {"order_type": OrderType.LIMIT_MAKER, "price": hi}
                below: dict[str, Any] = {"order_type": OrderType.STOP_LOSS, "stop_price": lo}
            else:
                above = {"order_type": OrderType.STOP_LOSS_LIMIT, "stop_price": hi, "price": hi + TICK,
                         "time_in_force": TimeInForce.GTC}
                below = {"order_type": OrderType.LIMIT_MAKER, "price": lo}
            return SubmitOrderList.oco(I, side, q, above=above, below=below, list_client_order_id=cid,
                                       stp_mode=r.choice(STPS))
        other = SELL if side is BUY else BUY
        px = lo if side is BUY else hi
        working = OrderLeg(side, OrderType.LIMIT, q, price=px, time_in_force=r.choice([TimeInForce.GTC, TimeInForce.IOC]))
        far = px + 2 * gap if other is SELL else max(TICK, px - 2 * gap)
        if shape == 2:
            return SubmitOrderList.oto(I, working, OrderLeg(other, OrderType.LIMIT_MAKER, q, price=far),
                                       list_client_order_id=cid)
        if other is SELL:
            a = OrderLeg(other, OrderType.LIMIT_MAKER, q, price=far)
            b = OrderLeg(other, OrderType.STOP_LOSS, q, stop_price=max(TICK, px - gap))
        else:
            a = OrderLeg(other, OrderType.STOP_LOSS, q, stop_price=px + gap)
            b = OrderLeg(other, OrderType.LIMIT_MAKER, q, price=far)
        return SubmitOrderList.otoco(I, working, a, b, list_client_order_id=cid)

    def command(self, venue: SimVenue) -> AnyCommand:
        r = self.rng
        k = r.random()
        open_ = venue.open_orders(I)
        if k < 0.45 or not open_ and k < 0.7:
            cmd: AnyCommand = self.order()
        elif k < 0.52:
            cmd = self.order_list(venue.last_price(I) or self.mid)
        elif k < 0.80 and open_:
            snap = r.choice(open_)
            how = r.randint(0, 3)
            if how == 0:
                cmd = CancelOrder(I, orig_client_order_id=snap.client_order_id)
            elif how == 1:
                cmd = CancelOrder(I, order_id=snap.order_id, cancel_restrictions=r.choice(["ONLY_NEW", "ONLY_PARTIALLY_FILLED"]))
            elif how == 2 and snap.order_list_id >= 0:
                cmd = CancelOrderList(I, order_list_id=snap.order_list_id)
            else:
                cmd = CancelOrder(I, order_id=snap.order_id, new_client_order_id=r.choice([None, "cx"]))
        elif k < 0.86 and self.sent:
            cmd = r.choice(self.sent[-20:])  # a retry (or a stale cancel): idempotency and -2011 paths
        elif k < 0.92:
            cmd = QueryOrder(I, order_id=r.randint(1, 40)) if r.random() < 0.5 else QueryOrder(
                I, orig_client_order_id=r.choice(["a", "b", "c", "zz"]))
        elif k < 0.95:
            cmd = CancelAllOrders(I)
        else:
            cmd = CancelOrder(I, order_id=r.randint(1, 10**6))
        self.sent.append(cmd)
        return cmd

    def run(self, venue: SimVenue, steps: int) -> Iterator[list[Event]]:
        """Feed ``steps`` inputs (about 40% market data, 60% commands) and yield each input's events."""
        for _ in range(steps):
            self.ts += self.rng.choice([1, 1_000, 1_000_000, 50_000_000, 3_000_000_000])
            if self.rng.random() < 0.4:
                yield venue.on_market(self.market(), self.ts)
            else:
                yield venue.handle(self.command(venue), self.ts)


def _impact_venue() -> SimVenue:
    impact = SquareRootImpact(1.0, FixedStats(0.02, 5_000 * E8), permanent_share=0.5, half_life_ns=20_000_000_000)
    return SimVenue([filtered_spec()], BALANCES, fee_model=FlatFee(-10_000, 75_000), impact=impact,
                    queue_model=ProbabilisticQueueRule())


def _tiered_venue() -> SimVenue:
    fees = VenueFees(TieredFees(), pay_in_bnb=True)
    v = SimVenue([filtered_spec()], BALANCES, fee_model=fees, config=SimConfig(consume_liquidity=False, dedupe_ttl_ns=0))
    fees.bind(v)
    return v


VENUES: dict[str, Callable[[], SimVenue]] = {
    "l2_filters": lambda: SimVenue([filtered_spec()], BALANCES, fee_model=FlatFee(-20_000, 100_000)),
    "l2_plain": lambda: SimVenue([SymbolSpec(I, "TESTUSDT", "TEST", "USDT")], BALANCES),
    "l1_trades_as_book": lambda: SimVenue(
        [filtered_spec()], BALANCES, config=SimConfig(use_depth=False, trades_as_book=True, l1_remainder="slip")),
    "l1_expire": lambda: SimVenue(
        [filtered_spec()], BALANCES, config=SimConfig(use_depth=False, l1_remainder="expire", last_price_from_quotes=True)),
    "impact": _impact_venue,
    "tiered_bnb": _tiered_venue,
}
STEPS = 2_500
SEEDS = (1, 2)


def digest(name: str, seed: int, steps: int = STEPS) -> tuple[str, int]:
    """SHA-256 over every event (msgspec JSON + newline) then the final balances and order snapshots."""
    venue = VENUES[name]()
    h = hashlib.sha256()
    accepted = 0
    enc = msgspec.json.encode
    for events in Workload(seed).run(venue, steps):
        for e in events:
            h.update(enc(e) + b"\n")
            accepted += type(e) is OrderAccepted
    h.update(enc(venue.balances()) + b"\n")
    h.update(enc(venue.reserved()) + b"\n")
    h.update(enc(venue.open_orders()) + b"\n")
    h.update(enc([venue.order(i) for i in range(1, venue._next_order_id)]) + b"\n")
    return h.hexdigest(), accepted


GOLDEN: dict[tuple[str, int], str] = {
    ('l2_filters', 1): '1e963cb114f425381ea2216c98a0aa27e597ddac52b374bb52feb63a3917efba',
    ('l2_filters', 2): 'a70fe332e707e1cd5c8937b64f93367357bf28122b3823f8b9db410e61234a06',
    ('l2_plain', 1): 'fdd98c35de95a2657bd384044be874d267334a036023ade1b28026c127dca6e3',
    ('l2_plain', 2): 'c28cb24648c02a6270069ef80ad540d154939b1397162dfbb742cd283c1e47cc',
    ('l1_trades_as_book', 1): '7b2bfeee4409595992c5843aafafda2894c5af0d438775dd47dc259ce4e2ea05',
    ('l1_trades_as_book', 2): '9ca88ff6d3b9e09a4cae258304a6172df4f3991c2088126355372e333553387f',
    ('l1_expire', 1): '8dd3ab84787065f0a4e0c5cb8d78a0b851450fc1609bfe217d570fe6bddfb68d',
    ('l1_expire', 2): '2afae296813340c9b4f12beb83138e45d96cb2808527b6c50d7aa86b9b252bb0',
    ('impact', 1): '540749742f4b299580721db9fb13860b95ca02acf3aa8bda9db4e443d78d5c4b',
    ('impact', 2): '92116ececdb4467aeee48ea6b85824b0947e2a0fa8c7a1d9730e68782e8a8109',
    ('tiered_bnb', 1): '97e8061989702415267da2930b5bae72035c6fa40d3772415ed22fdf31b335b2',
    ('tiered_bnb', 2): '05b20a918ca313ef6d2b4878e0b073ebbead73faae42f104db0d4484a4c5f7f5',
}


@pytest.mark.parametrize(("name", "seed"), sorted(GOLDEN))
def test_workload_events_match_the_recorded_digest(name: str, seed: int) -> None:
    got, accepted = digest(name, seed)
    assert accepted > 100  # the workload really placed orders (not a stream of rejects)
    assert got == GOLDEN[(name, seed)], f"{name} seed {seed}: events drifted from the recorded run"


def test_every_venue_configuration_is_pinned() -> None:
    assert {name for name, _ in GOLDEN} == set(VENUES) and {seed for _, seed in GOLDEN} == set(SEEDS)


if __name__ == "__main__":  # re-record: prints the GOLDEN table
    for _name in VENUES:
        for _seed in SEEDS:
            print(f"    ({_name!r}, {_seed}): {digest(_name, _seed)[0]!r},  # {digest(_name, _seed)[1]} accepted")
