"""``tickloop record --symbols btcusdt,... --out SESSION``: write every stream message's events to a log.

The recording is ``SESSION/input`` (an event log). Restarting with the same ``--out`` resumes
it: a torn tail from a crash is cut and the seq continues. Stops on ``--duration``,
``--max-events``, SIGINT or SIGTERM; the last stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tickloop.live.config import add_session_arguments
    from tickloop.live.tools import add_tool_arguments

    add_session_arguments(parser, "record")
    add_tool_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from tickloop.commands.paper import run_session

    return run_session(args, "record")
