"""``tickloop catalog compact LOGDIR... --catalog CATDIR``: sealed logs -> Parquet + DuckDB views.

Prints the compaction report as JSON on stdout; notes (skipped unsealed segments) go to
stderr as they happen. pyarrow/duckdb are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logdirs", nargs="+", metavar="LOGDIR", help="log directories to compact")
    parser.add_argument(
        "--catalog", required=True, metavar="CATDIR", help="catalog directory (created if absent)"
    )


def run(args: argparse.Namespace) -> int:
    from catalogs.catalog import compact

    def note(text: str) -> None:
        print(f"tickloop: note: {text}", file=sys.stderr)

    report = compact(args.logdirs, args.catalog, note=note)
    json.dump(report.to_json(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
