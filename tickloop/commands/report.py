"""``tickloop report RUNDIR``: a self-contained HTML report of a backtest run, and its metrics as JSON.

Writes ``RUNDIR/report.html`` (or ``--out FILE``) and ``RUNDIR/report.json``; with ``--json``
the JSON goes to stdout instead of the file. A one-line summary goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rundir", metavar="RUNDIR", help="a backtest run directory (tickloop backtest --out)")
    parser.add_argument(
        "--out", default=None, metavar="FILE", help="HTML file to write (default RUNDIR/report.html)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the metrics JSON to stdout instead of writing RUNDIR/report.json",
    )
    parser.add_argument(
        "--input", default=None, metavar="LOGDIR", help="the run's input log, if it moved since the run"
    )
    parser.add_argument(
        "--initial",
        action="append",
        default=[],
        metavar="ASSET=AMOUNT",
        help="initial balance (repeatable; default: the run config's venue balances, else the venue's reports)",
    )
    parser.add_argument(
        "--no-input-check",
        action="store_true",
        help="report even if the input log's digest differs from the one the run recorded",
    )
    parser.add_argument(
        "--buckets",
        type=int,
        default=800,
        metavar="N",
        help="chart resolution in pixel columns (default 800)",
    )


def run(args: argparse.Namespace) -> int:
    from replay.report import ReportOptions, dumps_json, parse_initial, write_report

    options = ReportOptions(
        input_log=Path(args.input) if args.input else None,
        initial=parse_initial(args.initial) if args.initial else None,
        check_input=not args.no_input_check,
        chart_buckets=args.buckets,
    )
    written = write_report(args.rundir, html_out=args.out, json_out=not args.json, options=options)
    report = written.report
    m = report.metrics
    ret = "n/a" if m is None or m.total_return is None else f"{m.total_return * 100:.2f}%"
    print(
        f"tickloop report: {args.rundir}: {len(report.trades)} round trips, total return {ret}\n"
        f"  html: {written.html}" + (f"\n  json: {written.json}" if written.json else ""),
        file=sys.stderr,
    )
    for warning in report.warnings:
        print(f"  warning: {warning}", file=sys.stderr)
    if args.json:
        sys.stdout.write(dumps_json(report) + "\n")
    return 0
