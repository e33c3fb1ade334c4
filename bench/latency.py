#!/usr/bin/env python3
"""Tick-to-order latency through the live adapter's real code path.

    python bench/latency.py [--frames N] [--period P] [--synthetic]

Each recorded trade is replayed as the WebSocket frame bytes Binance sent
(``{"stream":"btcusdt@trade","data":{...}}``) and goes exactly the live way:

    frame bytes -> venues.binance.protocol.MarketParser -> Kernel.feed -> ``rsi`` strategy
    -> risk (engine.risk.attach_risk, real limits) -> LiveVenue.handle -> signed request bytes ready

The clock starts when the frame is "received" (just before parsing, as the WebSocket reader
stamps it) and stops when ``LiveVenue.handle`` has the signed HTTP request bytes. The transport
(socket write, network, venue) is **not** part of this figure. Orders are answered with a
Binance FULL response parsed by ``venues.binance.requests`` and fed back to the kernel like a live
answer, so the strategy trades all the time (RSI period 2 with thresholds 45/55).

Data: the real BTCUSDT spot trades in ``../shared/data`` (hftbacktest recording); a seeded
synthetic random walk when that is absent (``--synthetic`` forces it). Prints one JSON line with
p50/p90/p99/p99.9 in microseconds and the count. A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.clock import LiveClock
from engine.events import Event, RiskDenied
from engine.fixed import SCALE, format_e8
from engine.kernel import Kernel
from engine.orders import AnyCommand, SubmitOrder
from engine.ports import EventListChunk
from engine.risk import RiskConfig, RiskEngine, attach_risk
from strategies.rsi import RsiConfig, RsiStrategy
from venues.binance.protocol import MarketParser
from venues.binance.requests import RequestBuilder, SignedRequest, answer_events
from venues.binance.rest import RestClient
from venues.binance.signing import Credentials, ServerTime, Signer
from venues.binance.venue import LiveConfig, LiveVenue

SHARED = Path(os.environ.get("TICKLOOP_SHARED_DATA", ROOT.parent / "shared" / "data"))
RECORDING = SHARED / "binance" / "spot" / "hftbacktest_2024-08-08"
TARGET_P99_US = 500.0
WARMUP = 200


def recorded_frames(limit: int) -> Iterator[bytes]:
    """The raw trade frames of the BTCUSDT recording, as Binance sent them."""
    n = 0
    for name in ("btcusdt_20240808.gz", "btcusdt_20240809.gz"):
        with gzip.open(RECORDING / name, "rb") as fh:
            for line in fh:
                body = line.rstrip().partition(b" ")[2]
                if body.startswith(b'{"stream":"btcusdt@trade"'):
                    yield body
                    n += 1
                    if n >= limit:
                        return


def synthetic_frames(limit: int, seed: int = 7) -> Iterator[bytes]:
    """A seeded random walk of trade frames with Binance's exact shape."""
    rng = random.Random(seed)
    price = 6_000_000_000_000  # 60000 e8
    for i in range(limit):
        price += rng.choice((-1, 1)) * rng.randrange(1, 500) * 1_000_000
        qty = rng.randrange(1, 10_000) * 1000
        t = 1_723_161_600_000 + i
        data = (f'{{"e":"trade","E":{t},"s":"BTCUSDT","t":{i + 1},"p":"{format_e8(price)}","q":"{format_e8(qty)}",'
                f'"T":{t},"m":{"true" if i % 2 else "false"},"M":true}}')
        yield f'{{"stream":"btcusdt@trade","data":{data}}}'.encode()


def fill_answer(cmd: SubmitOrder, order_id: int, price: int) -> dict[str, Any]:
    """The FULL answer Binance gives a MARKET order that fills at once."""
    qty = format_e8(cmd.quantity)
    return {
        "symbol": "BTCUSDT", "orderId": order_id, "orderListId": -1, "clientOrderId": cmd.client_order_id,
        "transactTime": 1_723_161_600_000, "price": "0.00000000", "origQty": qty, "executedQty": qty,
        "origQuoteOrderQty": "0.00000000", "cummulativeQuoteQty": format_e8(price * cmd.quantity // SCALE),
        "status": "FILLED", "timeInForce": "GTC", "type": "MARKET", "side": cmd.side.value, "workingTime": 1,
        "selfTradePreventionMode": "NONE",
        "fills": [{"price": format_e8(price), "qty": qty, "commission": "0", "commissionAsset": "BNB",
                   "tradeId": order_id}],
    }


def risk_config() -> RiskConfig:
    """Real limits, all of which an order passes through (none is set so loose it is skipped)."""
    usdt = 100_000_000
    return RiskConfig(
        starting_equity=100_000 * usdt, max_order_notional=5_000 * usdt, max_position_qty=SCALE,
        max_symbol_exposure=50_000 * usdt, max_gross_exposure=60_000 * usdt, price_band_bps=500,
        max_orders=100_000, daily_loss_limit=10_000 * usdt, max_drawdown_bps=2_000,
    )


class CountingSink:
    """Keeps no events (a live session writes them to its log): counts risk denials by rule."""

    def __init__(self) -> None:
        self.events = 0
        self.denied: dict[str, int] = {}

    def write(self, event: Event) -> None:
        self.events += 1
        if isinstance(event, RiskDenied):
            self.denied[event.rule] = self.denied.get(event.rule, 0) + 1


def _risked(engine: RiskEngine, venue: LiveVenue) -> tuple[Any, Any]:
    """Risk in front of the venue, able to ``observe`` live answers (fills move positions).

    ``engine.risk.attach_risk`` is the wiring; ``replay.audit.risked_venue`` adds ``observe`` when
    the gate lacks it (the live session uses the same helper).
    """
    try:
        from replay.audit import risked_venue
    except ImportError:
        return attach_risk(engine, venue)
    return risked_venue(engine, venue)


def run(frames: list[bytes], period: int) -> tuple[list[int], dict[str, Any]]:
    """Drive the path once per frame; returns the tick-to-order samples (ns) and counters."""
    clock = LiveClock()
    signer = Signer(Credentials("bench-key", b"bench-secret-" + b"x" * 51), ServerTime())
    rest = RestClient("http://127.0.0.1:9", RequestBuilder(signer), clock=clock)  # never sends here
    sent: list[tuple[AnyCommand, SignedRequest]] = []
    venue = LiveVenue(LiveConfig("bench-key", "unused"), lambda evs: None, clock=clock, rest=rest,
                      dispatch=lambda cmd, req: sent.append((cmd, req)))
    gate, risked = _risked(RiskEngine(risk_config()), venue)
    strategy = RsiStrategy(RsiConfig(period=period, lower=45.0, upper=55.0))
    sink = CountingSink()
    kernel = Kernel(sink, venue=risked, risk=gate)
    kernel.add_strategy(strategy)
    parser = MarketParser()
    kernel.start(config_json='{"bench":"latency"}')
    answers: list[Event] = []
    order_id = 0
    last_price = 0
    for frame in frames:
        recv = clock.now_ns()
        venue.set_market_recv_ns(recv)
        events = parser.parse(frame, recv)
        kernel.feed(EventListChunk(events))
        last_price = getattr(events[-1], "price", last_price)
        if sent:
            for cmd, _req in sent:
                assert isinstance(cmd, SubmitOrder)
                order_id += 1
                answers = answer_events(cmd, 200, fill_answer(cmd, order_id, last_price), clock.now_ns())
                kernel.feed(EventListChunk(answers))
            sent.clear()
    stats = kernel.finish()
    counts = {"frames": len(frames), "orders": stats.orders, "fills": stats.fills, "rejections": stats.rejections,
              "decisions": strategy.decisions, "risk_denied_by_rule": sink.denied}
    return list(venue.tick_to_order_ns), counts


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in µs."""
    idx = min(len(sorted_ns) - 1, max(0, int(round(q / 100 * len(sorted_ns) + 0.5)) - 1))
    return round(sorted_ns[idx] / 1000, 2)


def _set_scheduler(policy: str) -> str:
    """Switch this process to SCHED_FIFO when asked; the policy actually in force, for the JSON."""
    if policy == "fifo":
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        except (PermissionError, OSError, AttributeError) as exc:
            print(f"latency: cannot switch to SCHED_FIFO ({exc}); measuring under SCHED_OTHER", file=sys.stderr)
            return "other (fifo refused)"
    return "fifo" if policy == "fifo" else "other"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--period", type=int, default=2)
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument(
        "--sched",
        choices=("other", "fifo"),
        default="other",
        help="fifo: SCHED_FIFO priority 10, as deploy/tickloop-live.service runs the trader (needs root "
        "or CAP_SYS_NICE). On a shared, loaded machine the default scheduler preempts the process for "
        "a whole ~4 ms tick now and then, which is the p99 tail; fifo removes it",
    )
    args = ap.parse_args()
    sched = _set_scheduler(args.sched)
    use_real = not args.synthetic and (RECORDING / "btcusdt_20240808.gz").exists()
    frames = list(recorded_frames(args.frames) if use_real else synthetic_frames(args.frames))
    samples, counts = run(frames, args.period)
    kept = sorted(samples[WARMUP:] if len(samples) > 2 * WARMUP else samples)
    if not kept:
        print(json.dumps({"error": "no orders were placed", **counts}))
        return 1
    out = {
        "bench": "tick_to_order",
        "unit": "us",
        "count": len(kept),
        "p50_us": percentile(kept, 50), "p90_us": percentile(kept, 90), "p99_us": percentile(kept, 99),
        "p99_9_us": percentile(kept, 99.9), "max_us": round(kept[-1] / 1000, 2),
        "target_p99_us": TARGET_P99_US, "p99_below_target": percentile(kept, 99) < TARGET_P99_US,
        "data": "recorded BTCUSDT trades" if use_real else "synthetic trades (seed 7)",
        "path": "ws frame bytes -> MarketParser -> Kernel.feed -> rsi -> risk -> LiveVenue.handle -> signed bytes",
        "transport_included": False,
        "warmup_orders_dropped": len(samples) - len(kept),
        "clock": "time.time_ns (the adapter's LiveClock)",
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "scheduler": sched,
        **counts,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    _ = time  # the clock is the adapter's own (engine.clock.LiveClock)
    sys.exit(main())
