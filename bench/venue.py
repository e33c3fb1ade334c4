#!/usr/bin/env python3
"""Simulated-venue throughput: order cycles per second on one instrument with 1,000 resting orders.

    python bench/venue.py [--cycles N] [--resting R] [--repeat K] [--no-filters] [--cpu]

Workloads (each cycle goes through ``SimVenue.handle`` / ``on_market`` exactly as a backtest
would, events and the BalanceUpdated included):

- ``submit_cancel``: a non-marketable LIMIT GTC rests among the R orders, then is cancelled by id;
- ``submit_fill``: a MARKET order of 0.01 BTC fills against the displayed L2 book (BUY and SELL
  alternate; ``consume_liquidity`` off so the synthetic book does not drain);
- ``rest_trade_fill``: a LIMIT rests at the best bid (nothing displayed ahead), then a market trade
  prints through it and fills it as maker.

With the real exchangeInfo in ``../shared/data`` the BTCUSDT filters are checked on every order
minus MAX_NUM_ORDERS, which allows only 200 open orders (``--no-filters`` or absent data: none).

Prints exactly one JSON line with the best of K repeats, by both clocks: ``<workload>_wall_per_s``
(perf_counter) and ``<workload>_cpu_per_s`` (process CPU time, steadier on a shared machine);
``<workload>_per_s`` repeats the wall figure, or the CPU one with ``--cpu``.
A benchmark, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]

import msgspec

from engine.events import BookSnapshotReceived, TradeReceived
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import CancelOrder, OrderSide, OrderType, SubmitOrder, TimeInForce
from venues.sim.filters import rules_from_exchange_info
from venues.sim.venue import FlatFee, SimConfig, SimVenue, SymbolSpec

E8 = SCALE
I = InstrumentId("BTCUSDT.SPOT")
EXCHANGE_INFO = _HERE.parent.parent / "shared" / "data" / "binance" / "spot" / "nautilus_rest_2021-10-22" / (
    "http_spot_market_exchange_info.json"
)
MID = 50_000 * E8
TICK = E8 // 100
Elapsed = tuple[float, float]
"""(wall seconds, CPU seconds) of one timed loop."""


def _clocks() -> Elapsed:
    return time.perf_counter(), time.process_time()


def _since(t0: Elapsed) -> Elapsed:
    wall, cpu = _clocks()
    return wall - t0[0], cpu - t0[1]


def spec(use_filters: bool) -> tuple[SymbolSpec, bool]:
    if use_filters and EXCHANGE_INFO.exists():
        info = json.loads(EXCHANGE_INFO.read_text())
        raw = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
        rules = rules_from_exchange_info(info)["BTCUSDT"]
        # BTCUSDT allows 200 open orders (MAX_NUM_ORDERS); the workload needs 1,000, so that one filter goes
        rules = msgspec.structs.replace(rules, filters=tuple(f for f in rules.filters if f.name != "MAX_NUM_ORDERS"))
        return SymbolSpec.from_rules(rules, raw), True
    return SymbolSpec(I, "BTCUSDT", "BTC", "USDT"), False


def venue(s: SymbolSpec, resting: int) -> SimVenue:
    v = SimVenue([s], {"BTC": 1_000_000 * E8, "USDT": 10**12 * E8}, fee_model=FlatFee(100_000, 100_000),
                 config=SimConfig(consume_liquidity=False))
    bids = tuple((MID - i * TICK, 2 * E8) for i in range(1, 21))
    asks = tuple((MID + i * TICK, 2 * E8) for i in range(1, 21))
    v.on_market(BookSnapshotReceived(0, 1, 1, I, 1, bids, asks))
    v.on_market(TradeReceived(0, 1, 1, I, MID, E8, 1, True))
    for i in range(resting):  # our 1,000 resting orders: below the book, one per tick
        v.handle(SubmitOrder(I, OrderSide.BUY, OrderType.LIMIT, quantity=E8 // 1000, price=MID - (100 + i) * TICK,
                             time_in_force=TimeInForce.GTC), ts=2)
    return v


def submit_cancel(v: SimVenue, n: int) -> Elapsed:
    cmds = [SubmitOrder(I, OrderSide.BUY, OrderType.LIMIT, quantity=E8 // 1000, price=MID - (50 + i % 40) * TICK,
                        time_in_force=TimeInForce.GTC) for i in range(n)]
    t0 = _clocks()
    ts = 10
    handle = v.handle
    for cmd in cmds:
        ts += 1
        oid = handle(cmd, ts)[0].order_id  # type: ignore[attr-defined]
        handle(CancelOrder(I, order_id=oid), ts)
    return _since(t0)


def submit_fill(v: SimVenue, n: int) -> Elapsed:
    buy = SubmitOrder(I, OrderSide.BUY, OrderType.MARKET, quantity=E8 // 100)
    sell = SubmitOrder(I, OrderSide.SELL, OrderType.MARKET, quantity=E8 // 100)
    t0 = _clocks()
    ts = 10
    handle = v.handle
    for i in range(n):
        ts += 1
        handle(buy if i & 1 else sell, ts)
    return _since(t0)


def rest_trade_fill(v: SimVenue, n: int) -> Elapsed:
    bid = MID - 2 * TICK  # the second bid level: a fresh price of ours below the touch
    cmd = SubmitOrder(I, OrderSide.BUY, OrderType.LIMIT, quantity=E8 // 1000, price=bid,
                      time_in_force=TimeInForce.GTC)
    t0 = _clocks()
    ts = 10
    for _ in range(n):
        ts += 1
        v.handle(cmd, ts)
        v.on_market(TradeReceived(0, ts, ts, I, bid - TICK, E8 // 1000, 1, True), ts)  # prints through our bid
    return _since(t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=50_000)
    ap.add_argument("--resting", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-filters", action="store_true")
    ap.add_argument("--cpu", action="store_true", help="headline <workload>_per_s by process CPU time")
    args = ap.parse_args(argv)
    s, filters = spec(not args.no_filters)
    out: dict[str, Any] = {"bench": "venue", "resting_orders": args.resting, "cycles": args.cycles,
                           "filters": filters, "clock": "cpu" if args.cpu else "wall"}
    for name, fn in (("submit_cancel", submit_cancel), ("submit_fill", submit_fill),
                     ("rest_trade_fill", rest_trade_fill)):
        wall = cpu = 0.0
        for _ in range(args.repeat):
            v = venue(s, args.resting)
            dt_wall, dt_cpu = fn(v, args.cycles)
            wall, cpu = max(wall, args.cycles / dt_wall), max(cpu, args.cycles / max(dt_cpu, 1e-9))
            assert len(v.open_orders()) >= args.resting  # the 1,000 are still resting
        out[f"{name}_per_s"] = round(cpu if args.cpu else wall)
        out[f"{name}_wall_per_s"] = round(wall)
        out[f"{name}_cpu_per_s"] = round(cpu)
    out["python"] = platform.python_version()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
