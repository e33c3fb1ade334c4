"""``tickloop dataset SRC --features SPECS --label triple-barrier:TP,SL,H --out FILE.parquet``.

Builds a training set from an event log (or a Parquet catalog) with the vectorised
features and triple-barrier labels (``replay.dataset``). Progress lines go to stderr; the
LAST stdout line is one JSON object (out, rows, counts, labels, features, columns, label,
sample, source digest), so scripts can ``tail -n1``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="the input event log directory, or a catalog directory")
    parser.add_argument(
        "--features",
        required=True,
        metavar="SPECS",
        help="comma-separated feature spec, e.g. rsi:14,obi:5,tfi:100,vol:20 (see docs/research.md)",
    )
    parser.add_argument(
        "--label",
        required=True,
        metavar="triple-barrier:TP_BPS,SL_BPS,HORIZON",
        help="label spec, e.g. triple-barrier:20,20,60s (take profit / stop loss in bps, time limit)",
    )
    parser.add_argument(
        "--sample",
        default="every-trade",
        metavar="every-trade|Ntrades|D",
        help="rows: every trade (default), every N-th trade (10trades), or the last trade per duration (5s)",
    )
    parser.add_argument("--symbol", default=None, metavar="S", help="only this symbol (BTCUSDT or BTCUSDT.SPOT)")
    parser.add_argument("--out", required=True, metavar="FILE.parquet", help="the Parquet file to write")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from replay.dataset import build_dataset, parse_label, parse_sample, write_parquet
    from strategies.features.spec import parse_specs

    specs = parse_specs(args.features)
    label = parse_label(args.label)
    sample = parse_sample(args.sample)
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"tickloop dataset: {msg} ({time.perf_counter() - t0:.1f}s)", file=sys.stderr, flush=True)

    dataset = build_dataset(args.src, specs, label, sample, symbol=args.symbol, progress=progress)
    path = write_parquet(dataset, args.out)
    progress(f"wrote {dataset.rows:,} rows to {path}")
    meta = dataset.metadata
    summary = {
        "out": str(path),
        "rows": dataset.rows,
        "counts": meta["counts"],
        "labels": meta["labels"],
        "features": meta["features"],
        "columns": meta["columns"],
        "label": meta["label"],
        "sample": meta["sample"],
        "source_digest": meta["source_digest"],
        "wall_s": round(time.perf_counter() - t0, 3),
    }
    print(json.dumps(summary, sort_keys=True))
    return 0
