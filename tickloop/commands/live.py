"""``tickloop live --symbols ... --strategy NAME --out SESSION``: live data, the live venue, risk.

Credentials come from ``$TICKLOOP_API_KEY``/``$TICKLOOP_API_SECRET`` or ``--secrets FILE``
(TOML, mode 0600); they are never logged or written to the session. Kill switch: SIGUSR1,
``--kill-file PATH`` or the dashboard. The last stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tickloop.live.config import add_session_arguments
    from tickloop.live.tools import add_tool_arguments

    add_session_arguments(parser, "live")
    add_tool_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from tickloop.commands.paper import run_session

    return run_session(args, "live")
