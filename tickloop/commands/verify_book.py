"""``tickloop log verify-book LOGDIR [--symbol S]``: rebuild the L2 book, check every alignable bookTicker.

Prints one JSON object (see replay.verify_book for the figures). Exit status: 0 when every
instrument verified cleanly; 1 when a quote mismatched, a book crossed, or an instrument had
quotes but none could be checked (ids never lined up: something is broken, not a pass);
2 (via the CLI) for a missing log or a symbol with no book data in it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logdir", metavar="LOGDIR", type=Path, help="directory of the event log")
    parser.add_argument(
        "--symbol",
        default=None,
        help="only this symbol (BTCUSDT: every market) or instrument id (BTCUSDT.USDM)",
    )


def run(args: argparse.Namespace) -> int:
    from replay.verify_book import verify_log

    logdir: Path = args.logdir
    if not logdir.exists():
        raise InputError("no such log directory", source=str(logdir))
    report = verify_log(logdir, args.symbol)
    if args.symbol is not None and not report.instruments:
        raise InputError(
            f"no book or quote events for symbol {args.symbol!r} in this log", source=str(logdir)
        )
    print(json.dumps({"log": str(logdir), **report.to_json()}, sort_keys=False))
    return 0 if report.ok else 1
