"""``tickloop backtest LOGDIR --strategy NAME``: replay a log through a strategy.

Human-readable progress goes to stderr; the LAST stdout line is one JSON object (run_hash,
events, events_per_s, orders, fills, signals, out, ...), so scripts can ``tail -n1``.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logdir", metavar="LOGDIR", help="the input event log directory")
    parser.add_argument("--strategy", required=True, metavar="NAME", help="strategy to run (e.g. rsi, noop)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="strategy parameter (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="run seed (default 0)")
    parser.add_argument(
        "--out",
        default=None,
        metavar="RUNDIR",
        help="output log directory (must not exist; default runs/<strategy>-<config hash>)",
    )
    parser.add_argument(
        "--symbol", default=None, metavar="S", help="replay only this symbol (BTCUSDT or BTCUSDT.SPOT)"
    )
    parser.add_argument(
        "--per-event",
        action="store_true",
        help="disable the columnar fast path (same results, slower; for checking determinism)",
    )


def run(args: argparse.Namespace) -> int:
    from replay.backtest import run_backtest

    summary = run_backtest(
        args.logdir,
        args.strategy,
        args.param,
        seed=args.seed,
        symbol=args.symbol,
        out=args.out,
        vectorised=not args.per_event,
    )
    s = summary.to_json()
    print(
        f"tickloop backtest: {args.logdir} through {args.strategy} (seed {args.seed})\n"
        f"  {s['events']} events in {s['wall_s']} s ({s['events_per_s']:.0f}/s), "
        f"{s['signals']} signals, {s['orders']} orders, {s['fills']} fills\n"
        f"  output log: {s['out']}\n  run hash:   {s['run_hash']}",
        file=sys.stderr,
    )
    sys.stdout.write(json.dumps(s, sort_keys=True) + "\n")
    return 0
