"""``tickloop backtest LOGDIR --strategy NAME``: replay a log through a strategy.

Human-readable progress goes to stderr; the LAST stdout line is one JSON object (run_hash,
events, events_per_s, orders, fills, rejections, fees_paid, balances, signals, out, ...), so
scripts can ``tail -n1``.

The strategy trades on the simulated Binance spot venue. Its settings come from
``--venue-config FILE`` (TOML) with the venue flags below laid over it; see
``replay.venue_config`` and ``docs/sim-venue.md``.

Every order goes strategy -> risk -> venue. The risk engine's limits come from ``--risk
FILE`` (TOML, human units: ``max_order_notional = "5000"``) with ``--risk-param K=V`` laid
over it; without them risk still decides and logs every command (starting equity = the
venue's initial quote balance, limits off). See ``docs/risk.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replay.venue_config import VenueSettings


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
    risk = parser.add_argument_group("risk engine (always in the path; limits off unless configured)")
    risk.add_argument("--risk", default=None, metavar="FILE", help="risk limits (TOML; keys of engine.risk.RiskConfig)")
    risk.add_argument(
        "--risk-param",
        action="append",
        default=[],
        metavar="K=V",
        help="risk limit over --risk (repeatable), e.g. max_order_notional=5000 or max_drawdown_bps=500",
    )
    venue = parser.add_argument_group("simulated venue (flags override --venue-config)")
    venue.add_argument("--venue-config", default=None, metavar="FILE", help="venue settings (TOML)")
    venue.add_argument(
        "--fees",
        default=None,
        metavar="SPEC",
        help="vip0..vip9 (Binance spot tiers; default vip0) or flat:MAKER_BPS,TAKER_BPS",
    )
    venue.add_argument(
        "--bnb-fees",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pay commission in BNB when possible",
    )
    venue.add_argument(
        "--latency",
        default=None,
        metavar="SPEC",
        help="zero (default), const:NS[,NS], lognormal:MU,SIGMA (log-ms, seeded by --seed) or recorded:FILE",
    )
    venue.add_argument(
        "--impact", default=None, metavar="Y", help="square-root impact coefficient (0 = off, default)"
    )
    venue.add_argument(
        "--impact-half-life", default=None, metavar="DUR", help="permanent impact half-life (default 60s)"
    )
    venue.add_argument(
        "--fill",
        default=None,
        metavar="l1|l2|auto",
        help="l2: walk the depth book; l1: bookTicker and trades as the book; auto (default): l2 if the data has depth",
    )
    venue.add_argument(
        "--queue", default=None, metavar="RULE", help="risk-averse (default), prob:power:N or prob:log"
    )
    venue.add_argument(
        "--balance",
        action="append",
        default=None,
        metavar="ASSET=AMOUNT",
        help="starting balance (repeatable; default USDT=1000000)",
    )
    venue.add_argument(
        "--exchange-info", default=None, metavar="FILE", help="symbol rules (exchangeInfo body or recording)"
    )


VENUE_FLAGS = (
    "fees",
    "bnb_fees",
    "latency",
    "impact",
    "impact_half_life",
    "fill",
    "queue",
    "balance",
    "exchange_info",
)


def venue_settings(args: argparse.Namespace) -> VenueSettings:
    """The venue settings of these arguments (TOML file, then flags)."""
    from replay.venue_config import load_settings

    flags = {("balances" if k == "balance" else k): getattr(args, k) for k in VENUE_FLAGS}
    return load_settings(args.venue_config, flags)


def run(args: argparse.Namespace) -> int:
    from replay.backtest import run_backtest
    from replay.venue_config import load_risk_params

    settings = venue_settings(args)
    risk = load_risk_params(args.risk, args.risk_param)
    summary = run_backtest(
        args.logdir,
        args.strategy,
        args.param,
        seed=args.seed,
        symbol=args.symbol,
        out=args.out,
        vectorised=not args.per_event,
        venue=settings,
        risk=risk,
    )
    s = summary.to_json()
    print(
        f"tickloop backtest: {args.logdir} through {args.strategy} (seed {args.seed})\n"
        f"  {s['events']} events in {s['wall_s']} s ({s['events_per_s']:.0f}/s), "
        f"{s['signals']} signals, {s['orders']} orders, {s['fills']} fills, {s['rejections']} rejections\n"
        f"  risk: {s['risk_approved']} approved, {s['risk_denied']} denied"
        f"{', halted by ' + s['risk_halted'] if s['risk_halted'] else ''}\n"
        f"  fees paid: {s['fees_paid'] or '-'}; final balances: {s['balances'] or '-'}",
        file=sys.stderr,
    )
    if s["default_specs"]:
        print(
            f"  NOTE: no exchangeInfo for {', '.join(s['default_specs'])}: traded under the permissive default "
            "spec (tick/step from the data, no notional or price-band filters); pass --exchange-info FILE",
            file=sys.stderr,
        )
    print(f"  output log: {s['out']}\n  run hash:   {s['run_hash']}", file=sys.stderr)
    sys.stdout.write(json.dumps(s, sort_keys=True) + "\n")
    return 0
