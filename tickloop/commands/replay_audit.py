"""``tickloop replay audit SESSION``: re-run a paper/live session and compare every decision.

Prints one JSON line: ``{"divergences": 0, ...}``, or the first differing decision with both
sides (``first``: index, seq, recorded, replayed). Exit 0 without divergence, 1 with.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", metavar="SESSION", help="a session directory of tickloop paper or live")


def run(args: argparse.Namespace) -> int:
    from replay.audit import audit_session

    report = audit_session(args.session)
    sys.stdout.write(json.dumps(report.to_json(), sort_keys=True) + "\n")
    return 1 if report.divergences else 0
