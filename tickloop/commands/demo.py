"""``tickloop demo [--out DIR] [--seed N]``: a seeded synthetic session end to end.

No data and no network: generates a two-symbol Binance spot recording, imports it, checks
the rebuilt book against the bookTickers, and replays it through ``rsi``. Where everything
went goes to stderr; the LAST stdout line is the backtest's JSON summary (plus the demo's paths).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default=None, metavar="DIR", help="demo directory (default ./tickloop-demo[-N])"
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the session and the run (default 0)"
    )
    parser.add_argument(
        "--duration", type=float, default=120.0, metavar="S", help="session length in seconds (default 120)"
    )


def run(args: argparse.Namespace) -> int:
    from replay.demo import run_demo

    if args.duration <= 0:
        from engine.errors import ConfigError

        raise ConfigError(f"--duration must be positive, got {args.duration}")
    result = run_demo(args.out, seed=args.seed, duration_s=args.duration)
    s = result.to_json()
    check = s["book_check"]
    print(
        f"tickloop demo (seed {args.seed}) in {result.root}\n"
        f"  raw recording: {result.raw} ({result.lines} lines)\n"
        f"  event log:     {result.log} ({s['imported_events']} events; book check: {check['checked']} quotes "
        f"checked, {check['mismatched']} mismatched)\n"
        f"  run:           {s['out']} ({s['events']} events, {s['signals']} signals, "
        f"{s['events_per_s']:.0f} events/s)\n"
        f"  run hash:      {s['run_hash']}",
        file=sys.stderr,
    )
    sys.stdout.write(json.dumps(s, sort_keys=True) + "\n")
    return 0
