"""``tickloop walkforward LOGDIR --strategy NAME --train W --test W``: rolling IS/OOS evaluation.

On each train window the best parameter set of ``--grid`` (by ``--objective``) is chosen
in-sample, then run on the following test window. A table goes to stderr; the LAST stdout line
is the whole result as one JSON object (per-window IS and OOS metrics, the aggregate of the
concatenated OOS windows). See ``replay.walkforward``.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from replay.walkforward import OBJECTIVES

    parser.add_argument("logdir", metavar="LOGDIR", help="the input event log directory")
    parser.add_argument("--strategy", required=True, metavar="NAME", help="strategy to run (e.g. rsi)")
    parser.add_argument(
        "--train", required=True, metavar="DUR", help="train window length (e.g. 90s, 5m, 1h)"
    )
    parser.add_argument("--test", required=True, metavar="DUR", help="test window length")
    parser.add_argument(
        "--step", default=None, metavar="DUR", help="window advance (default: --test; >= --test)"
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="K=V1,V2,...",
        help="parameter values to search (repeatable; every combination is tried)",
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="fixed strategy parameter (repeatable)"
    )
    parser.add_argument(
        "--objective", choices=sorted(OBJECTIVES), default="sharpe", help="what the train window maximises"
    )
    parser.add_argument(
        "--period", default=None, metavar="DUR", help="return period for Sharpe etc. (default: auto)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="run seed (default 0)")
    parser.add_argument("--symbol", default=None, metavar="S", help="replay only this symbol")
    parser.add_argument(
        "--work-dir", default=None, metavar="DIR", help="keep window logs and runs here (must not exist)"
    )
    parser.add_argument("--venue-config", default=None, metavar="FILE", help="venue settings (TOML)")
    parser.add_argument("--fill", default=None, metavar="l1|l2|auto", help="fill model (default auto)")
    parser.add_argument("--fees", default=None, metavar="SPEC", help="vip0..vip9 or flat:MAKER_BPS,TAKER_BPS")
    parser.add_argument(
        "--balance",
        action="append",
        default=None,
        metavar="ASSET=AMOUNT",
        help="starting balance (repeatable)",
    )


def _duration(text: str | None, flag: str) -> int | None:
    from replay.venue_config import parse_duration

    return None if text is None else parse_duration(text, flag)


def run(args: argparse.Namespace) -> int:
    from replay.venue_config import load_settings
    from replay.walkforward import WalkForwardSpec, parse_grid, run_walkforward, table

    train, test = _duration(args.train, "--train"), _duration(args.test, "--test")
    assert train is not None and test is not None
    spec = WalkForwardSpec(
        strategy=args.strategy,
        train_ns=train,
        test_ns=test,
        step_ns=_duration(args.step, "--step"),
        grid=parse_grid(args.grid),
        params=tuple(args.param),
        objective=args.objective,
        seed=args.seed,
        symbol=args.symbol,
        period_ns=_duration(args.period, "--period"),
    )
    venue = load_settings(args.venue_config, {"fill": args.fill, "fees": args.fees, "balances": args.balance})
    interactive = sys.stderr.isatty()

    def progress(msg: str) -> None:
        if interactive:
            print(f"tickloop walkforward: {msg}", file=sys.stderr)

    result = run_walkforward(args.logdir, spec, venue=venue, work_dir=args.work_dir, progress=progress)
    print(table(result), file=sys.stderr)
    sys.stdout.write(json.dumps(result.to_json(), sort_keys=True, allow_nan=False) + "\n")
    return 0
