#!/usr/bin/env python3
"""Cost of one incremental feature update (ns), and of one vectorised row, on synthetic data.

    python bench/features.py [--n N] [--repeat K] [--no-vectorised]

Inputs are generated once from ``np.random.default_rng(7)`` in the shape the events carry
them (e8 int prices around 60,000.00 moving in 0.01 ticks, e8 quantities, ns times ~10 ms
apart, 20-level book sides as tuples) and turned into Python ints before timing, so the
loop measures only ``update`` calls: ``ns_per_update`` = best of K runs of N calls / N,
including the Python call itself (``baseline_ns`` is the same loop calling a no-op).
``vectorised_ns_per_row`` times the column functions after one warm-up call (numba compile),
with ``numba`` saying whether they ran compiled. Prints exactly one JSON line.
A benchmark, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]  # keep bench/ from shadowing packages

import numpy as np

from strategies.features import incremental as inc
from strategies.features import vectorized as vec
from strategies.features._jit import numba_available

E8 = 100_000_000
SEC = 1_000_000_000


def make_data(n: int) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    price = 60_000 * E8 + np.cumsum(rng.integers(-2, 3, n)) * (E8 // 100)
    cols = {
        "ts": 1_704_067_200 * SEC + np.cumsum(rng.integers(0, 20_000_000, n)),
        "price": price,
        "ref": 3_000 * E8 + np.cumsum(rng.integers(-2, 3, n)) * (E8 // 100),
        "qty": rng.integers(1, 5 * E8, n),
        "maker": rng.integers(0, 2, n).astype(bool),
        "bid_qty": rng.integers(1, 9 * E8, (n, 20)),
        "ask_qty": rng.integers(1, 9 * E8, (n, 20)),
    }
    cols = {k: np.ascontiguousarray(v) for k, v in cols.items()}
    py = {k: v.tolist() for k, v in cols.items() if v.ndim == 1}
    books = 256  # a pool of book states reused cyclically: building N tuples would dominate memory
    py["bids"] = [
        tuple((int(price[i]) - j * E8 // 100, int(q)) for j, q in enumerate(cols["bid_qty"][i]))
        for i in range(books)
    ]
    py["asks"] = [
        tuple((int(price[i]) + (j + 1) * E8 // 100, int(q)) for j, q in enumerate(cols["ask_qty"][i]))
        for i in range(books)
    ]
    return {"cols": cols, "py": py}


def _loop(update: Callable[..., Any], args: Sequence[list[Any]], n: int) -> int:
    """ns for n calls of ``update`` with the given argument columns (arity-specialised loops)."""
    t0 = time.perf_counter_ns()
    if len(args) == 1:
        for a in args[0]:
            update(a)
    elif len(args) == 2:
        for a, b in zip(*args, strict=False):
            update(a, b)
    elif len(args) == 3:
        for a, b, c in zip(*args, strict=False):
            update(a, b, c)
    else:
        for a, b, c, d in zip(*args, strict=False):
            update(a, b, c, d)
    return time.perf_counter_ns() - t0


def _noop(*_args: Any) -> None:
    return None


def incremental_cases(
    py: dict[str, list[Any]], n: int
) -> dict[str, tuple[Callable[[], Any], list[list[Any]]]]:
    W = 5 * SEC
    bids = [py["bids"][i % len(py["bids"])] for i in range(n)]
    asks = [py["asks"][i % len(py["asks"])] for i in range(n)]
    bid = py["price"]
    ask = [p + E8 // 100 for p in bid]
    bq = [row for row in py["qty"]]
    aq = bq[::-1]
    return {
        "rsi": (lambda: inc.Rsi(14).update, [py["price"]]),
        "bollinger": (lambda: inc.Bollinger(20, 2.0).update, [py["price"]]),
        "realized_vol": (lambda: inc.RealizedVolatility(20).update, [py["price"]]),
        "beta": (lambda: inc.RollingBeta(60).update, [py["price"], py["ref"]]),
        "correlation": (lambda: inc.RollingCorrelation(60).update, [py["price"], py["ref"]]),
        "tfi_count": (lambda: inc.TradeFlowImbalance(count=100).update, [py["ts"], py["qty"], py["maker"]]),
        "tfi_time": (lambda: inc.TradeFlowImbalance(window_ns=W).update, [py["ts"], py["qty"], py["maker"]]),
        "vwap_count": (lambda: inc.VwapDeviation(count=100).update, [py["ts"], py["price"], py["qty"]]),
        "vwap_time": (lambda: inc.VwapDeviation(window_ns=W).update, [py["ts"], py["price"], py["qty"]]),
        "obi_top1": (lambda: inc.OrderBookImbalance(1).update_top, [bq, aq]),
        "obi_top5": (lambda: inc.OrderBookImbalance(5).update, [bids, asks]),
        "depth_ratio_20": (lambda: inc.DepthRatio(20).update, [bids, asks]),
        "microprice": (lambda: inc.Microprice().update, [bid, bq, ask, aq]),
        "spread_bps": (lambda: inc.Spread(bps=True).update, [bid, ask]),
        "time_encoding": (lambda: inc.TimeEncoding().update, [py["ts"]]),
        "funding_rate": (lambda: inc.FundingRate().update, [py["qty"]]),
        "time_to_funding": (lambda: inc.TimeToFunding().update, [py["ts"]]),
        "oi_change_time": (lambda: inc.OpenInterestChange(window_ns=W).update, [py["ts"], py["qty"]]),
        "liquidation_time": (lambda: inc.LiquidationIntensity(W).update, [py["ts"], py["price"], py["qty"]]),
    }


def vectorised_cases(c: dict[str, np.ndarray]) -> dict[str, Callable[[], Any]]:
    W = 5 * SEC
    return {
        "rsi": lambda: vec.rsi(c["price"], 14),
        "bollinger": lambda: vec.bollinger(c["price"], 20),
        "realized_vol": lambda: vec.realized_volatility(c["price"], 20),
        "beta_correlation": lambda: vec.rolling_correlation(c["price"], c["ref"], 60),
        "tfi_time": lambda: vec.trade_flow_imbalance(c["ts"], c["qty"], c["maker"], window_ns=W),
        "vwap_time": lambda: vec.vwap_deviation(c["ts"], c["price"], c["qty"], window_ns=W),
        "obi_top5": lambda: vec.order_book_imbalance(c["bid_qty"], c["ask_qty"], 5),
        "microprice": lambda: vec.microprice(c["price"], c["qty"], c["price"] + 1, c["qty"][::-1]),
        "time_encoding": lambda: vec.time_encodings(c["ts"]),
        "oi_change_time": lambda: vec.open_interest_change(c["ts"], c["qty"], window_ns=W),
        "liquidation_time": lambda: vec.liquidation_intensity(c["ts"], c["price"], c["qty"], window_ns=W),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000, help="updates per feature (default 200,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per feature; the best is reported")
    parser.add_argument("--no-vectorised", action="store_true", help="skip the column functions")
    args = parser.parse_args()
    n = args.n
    data = make_data(n)
    py = data["py"]
    baseline = min(_loop(_noop, [py["price"]], n) for _ in range(args.repeat)) / n
    per_update: dict[str, float] = {}
    for name, (make, cols) in incremental_cases(py, n).items():
        per_update[name] = round(min(_loop(make(), cols, n) for _ in range(args.repeat)) / n, 1)
    out: dict[str, Any] = {
        "bench": "features",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "n": n,
        "baseline_ns": round(baseline, 1),
        "ns_per_update": per_update,
    }
    if not args.no_vectorised:
        per_row: dict[str, float] = {}
        for name, fn in vectorised_cases(data["cols"]).items():
            fn()  # warm-up: numba compiles (or loads its cache) here
            best = min(_timed(fn) for _ in range(args.repeat))
            per_row[name] = round(best / n, 1)
        out["numba"] = numba_available()
        out["vectorised_ns_per_row"] = per_row
    print(json.dumps(out))
    return 0


def _timed(fn: Callable[[], Any]) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


if __name__ == "__main__":
    sys.exit(main())
