#!/usr/bin/env python3
"""Replay throughput and peak memory on the nautilus_trader peer's exact workload.

    python bench/replay.py --trades N --mode data|strategy [--peer PYTHON] [--repeat K]

Builds (once, cached under /tmp/tickloop-bench/) an event log of the peer's synthetic
trades -- ``np.random.default_rng(42)``: log returns normal(0, 1e-4) compounded from
50,000 and rounded to 0.01, sizes uniform(0.0001, 0.5) rounded to 6 dp, side
integers(1, 3) (1 = buyer is the aggressor), one trade every 10 ms from 2024-01-01 --
then replays it FROM DISK in a child process, so the child's peak RSS (``wait4``'s
``ru_maxrss``) is the replay's alone:

- ``data``: the kernel with no strategy (raw replay throughput: read, decode, clock/state);
- ``noop``: the ``noop`` strategy: every trade built as an event and dispatched to a
  callback that does nothing (the peer's ``subscribe`` mode);
- ``strategy``: the ``rsi`` strategy (period 14, 30/70), every trade dispatched to it and to
  the simulated venue; its MARKET orders (0.01 BTC) fill on the venue's L1 book, where each
  trade is the top of both sides with its size (``--fill l1``: NautilusTrader's rule on trade
  data; the part of an order beyond that size fills one tick worse), with Binance VIP 0 fees
  (0.1 %) charged in the received asset, zero latency, 1,000,000 USDT to start.

Every strategy run has the risk engine between the strategy and the venue (as every
backtest does). ``--risk`` (the default) gives it real limits, every rule on and loose
enough that RSI's orders are unchanged (:data:`BENCH_RISK`: order notional, position,
exposure, price band, order rate, daily loss, drawdown breaker); ``--no-risk`` leaves its
limits off (it still decides and logs every order).

Strategy runs (``noop`` and ``strategy``) go through the simulated venue
(``replay.venue_config``, settings as above); ``data`` has no strategy and so no venue.

With ``--peer /tmp/nt/bin/python`` it also runs ``shared/bench/nautilus_peer.py`` with the
same N and mode and adds ``peer_events_per_s``, ``peer_rss_mb`` and ``ratio`` (ours/peer).
Prints exactly one JSON line. A benchmark, never a test: nothing here asserts a time.
``events_per_s`` is wall time of the replay loop (the peer reports the same); on a shared
machine ``events_per_cpu_s`` (the child's CPU time over the whole run_backtest call,
symbol scan and output log included) is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]  # this file is bench/replay.py: don't let it shadow the ``replay`` package

CACHE = Path("/tmp/tickloop-bench")
PEER_SCRIPT = _HERE.parents[1] / "shared" / "bench" / "nautilus_peer.py"
SEED = 42
START_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
STEP_NS = 10_000_000
BUILD_CHUNK = 200_000
STRATEGY_OF_MODE = {"data": None, "noop": "noop", "strategy": "rsi"}
VENUE_FLAGS = {"fill": "l1", "fees": "vip0", "latency": "zero", "balances": ["USDT=1000000"]}
"""The benchmark's venue: an L1 book from trades (the workload has no quotes or depth)."""
PEER_MODE = {"data": "data", "noop": "subscribe", "strategy": "strategy"}
BENCH_RISK = {
    "max_order_notional": "10000",
    "max_position_qty": "1",
    "max_symbol_exposure": "100000",
    "max_gross_exposure": "200000",
    "price_band_bps": 500,
    "max_orders": 200,
    "rate_window_ns": 1_000_000_000,
    "daily_loss_limit": "50000",
    "max_drawdown_bps": 2000,
}
"""Risk limits of ``--risk`` (human units): all checked on every order, none binding for RSI's
0.01 BTC MARKET orders (~500 USDT each, at most one in flight, 1,000,000 USDT equity)."""


# --------------------------------------------------------------------------- building the log


def log_path(n: int) -> Path:
    return CACHE / f"peer-trades-n{n}-seed{SEED}"


def build_log(n: int) -> Path:
    """The cached log of the peer's N trades (built atomically: temp dir, then rename)."""
    path = log_path(n)
    if (path / "manifest.json").exists():
        return path
    import numpy as np

    from catalogs.log import LogWriter
    from engine.events import TradeReceived
    from engine.identifiers import InstrumentId

    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)  # same draws, same order as nautilus_peer.make_ticks
    log_ret = rng.normal(0.0, 1e-4, size=n)
    prices = np.round(50_000.0 * np.exp(np.cumsum(log_ret)), 2)
    sizes = np.round(rng.uniform(0.0001, 0.5, size=n), 6)
    sides = rng.integers(1, 3, size=n, dtype=np.uint8)
    price_e8 = np.rint(prices * 100).astype(np.int64) * 1_000_000
    qty_e8 = np.rint(sizes * 1_000_000).astype(np.int64) * 100
    buyer_maker = sides == 2  # side 2 = the seller was the aggressor
    ts = START_NS + np.arange(n, dtype=np.int64) * STEP_NS
    iid = InstrumentId("BTCUSDT.SPOT")
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=CACHE))
    tmp.rmdir()
    meta = {"bench": {"workload": "nautilus_peer make_ticks", "n": n, "seed": SEED}}
    with LogWriter(tmp, meta=meta, monotonic_ns=None) as writer:
        for s in range(0, n, BUILD_CHUNK):
            e = min(n, s + BUILD_CHUNK)
            t = ts[s:e].tolist()
            writer.extend(
                map(
                    TradeReceived,
                    [0] * (e - s),
                    t,
                    t,
                    [iid] * (e - s),
                    price_e8[s:e].tolist(),
                    qty_e8[s:e].tolist(),
                    range(s + 1, e + 1),
                    buyer_maker[s:e].tolist(),
                )
            )
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- child: the replay


def child(log: Path, mode: str, risk: bool) -> int:
    """Replay ``log`` once and print the run summary as JSON (runs in its own process)."""
    from replay.backtest import run_backtest
    from replay.venue_config import load_settings

    out = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE)) / "run"
    try:
        cpu0 = time.process_time()
        summary = run_backtest(
            log,
            STRATEGY_OF_MODE[mode],
            out=out,
            venue=load_settings(None, VENUE_FLAGS),
            risk=BENCH_RISK if risk else None,
        )
        cpu = time.process_time() - cpu0
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    result = summary.to_json()
    result["cpu_s"] = round(cpu, 4)  # less sensitive than wall time to a busy machine
    result["events_per_cpu_s"] = round(summary.events / cpu, 1) if cpu > 0 else 0.0
    print(json.dumps(result))
    return 0


def build_in_child(n: int) -> Path:
    """Build the log in its own process: a fork inherits its parent's peak RSS (Linux keeps
    ``maxrss`` across fork and exec), so this process must stay small for the replay
    child's ``ru_maxrss`` to be the replay's own."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--build", str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"building the log failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def run_child(log: Path, mode: str, risk: bool) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter; its summary plus its own peak RSS."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(log), "--mode", mode]
    cmd.append("--risk" if risk else "--no-risk")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"replay child failed ({proc.returncode}):\n{err.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # Linux: KiB
    return result


def run_peer(python: str, n: int, mode: str) -> dict[str, Any]:
    cmd = [python, str(PEER_SCRIPT), str(n), "--mode", mode]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"peer failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    peer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return peer


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trades", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--mode", choices=tuple(STRATEGY_OF_MODE), default="strategy")
    parser.add_argument("--peer", default=None, metavar="PYTHON", help="python with nautilus_trader 1.221.0")
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="K", help="replay K times, report the fastest"
    )
    parser.add_argument(
        "--risk",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="risk limits on (default; see BENCH_RISK) or off (risk still decides every order)",
    )
    parser.add_argument("--child", default=None, metavar="LOG", help=argparse.SUPPRESS)
    parser.add_argument("--build", type=int, default=None, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child(Path(args.child), args.mode, args.risk)
    if args.trades < 1 or args.repeat < 1:
        parser.error("--trades and --repeat must be >= 1")

    if args.build is not None:
        print(build_log(args.build))
        return 0

    t0 = time.perf_counter()
    cached = (log_path(args.trades) / "manifest.json").exists()
    log = log_path(args.trades) if cached else build_in_child(args.trades)
    build_s = time.perf_counter() - t0
    runs = [run_child(log, args.mode, args.risk) for _ in range(args.repeat)]
    best = max(runs, key=lambda r: r["events_per_s"])
    if len({r["run_hash"] for r in runs}) != 1:
        raise SystemExit(f"replays of the same log disagree: {[r['run_hash'] for r in runs]}")
    result: dict[str, Any] = {
        "bench": "replay",
        "mode": args.mode,
        "trades": args.trades,
        "events": best["events"],
        "wall_s": best["wall_s"],
        "events_per_s": best["events_per_s"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "cpu_s": min(r["cpu_s"] for r in runs),
        "events_per_cpu_s": max(r["events_per_cpu_s"] for r in runs),
        "events_per_cpu_s_all": [r["events_per_cpu_s"] for r in runs],
        "run_hash": best["run_hash"],
        "signals": best["signals"],
        "orders": best["orders"],
        "fills": best["fills"],
        "rejections": best["rejections"],
        "risk": "limits" if args.risk else "limits off",
        "risk_approved": best["risk_approved"],
        "risk_denied": best["risk_denied"],
        "fees_paid": best["fees_paid"],
        "balances": best["balances"],
        "runs": len(runs),
        "events_per_s_all": [r["events_per_s"] for r in runs],
        "log": str(log),
        "log_cached": cached,
        "log_build_s": round(build_s, 2),
        "python": sys.version.split()[0],
        "self_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.peer:
        peer = run_peer(args.peer, args.trades, PEER_MODE[args.mode])
        result["peer_events_per_s"] = peer["events_per_sec"]
        result["peer_rss_mb"] = peer["max_rss_mb"]
        result["peer_wall_s"] = peer["wall_s"]
        result["peer_orders"] = peer["n_orders"]
        result["peer_fills"] = peer["n_fill_events"]
        result["peer_balances"] = {"BTC": peer["final_balance_btc"], "USDT": peer["final_balance_usdt"]}
        result["peer_version"] = peer["version"]
        result["ratio"] = round(best["events_per_s"] / peer["events_per_sec"], 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
