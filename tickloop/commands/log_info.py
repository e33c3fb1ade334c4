"""``tickloop log info LOGDIR``: print a log's summary as one JSON object.

Imports only the pyarrow-free log reader (when it runs), so it works on the edge profile.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logdir", metavar="LOGDIR", help="the log directory (manifest.json + segments)")
    parser.add_argument(
        "--examples",
        type=int,
        default=10,
        metavar="N",
        help="how many locations of each anomaly (seq holes, update-id gaps) to list (default 10)",
    )
    parser.add_argument("--compact", action="store_true", help="print the JSON on one line")


def run(args: argparse.Namespace) -> int:
    from catalogs.loginfo import log_info

    summary = log_info(args.logdir, max_examples=max(0, args.examples))
    json.dump(summary, sys.stdout, indent=None if args.compact else 2)
    sys.stdout.write("\n")
    return 0
