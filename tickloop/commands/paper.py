"""``tickloop paper --symbols ... --strategy NAME --out SESSION``: live data, simulated venue, risk.

The venue is the backtest's (same ``--venue-config`` TOML and flags); symbol rules come from
``--exchange-info FILE`` or the venue's REST ``exchangeInfo``. ``SESSION`` gets ``input/``,
``out/`` and ``session.json``; ``tickloop replay audit SESSION`` re-runs it. The last stdout
line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

from tickloop.live.config import DEFAULT_RECORD_STREAMS

if TYPE_CHECKING:
    from tickloop.live.session import LiveSession


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tickloop.live.config import add_session_arguments
    from tickloop.live.tools import add_tool_arguments

    add_session_arguments(parser, "paper")
    add_tool_arguments(parser)


def run_session(args: argparse.Namespace, mode: str) -> int:
    """Shared body of ``record``, ``paper`` and ``live``."""
    import asyncio

    from tickloop.live.config import session_config
    from tickloop.live.modes import DEFAULT_TRADING_STREAMS, run_mode

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    cfg = session_config(args, mode, DEFAULT_RECORD_STREAMS if mode == "record" else DEFAULT_TRADING_STREAMS)
    print(f"tickloop {mode}: {', '.join(cfg.symbols)} [{', '.join(cfg.streams)}] -> {cfg.out}", file=sys.stderr)
    from tickloop.live.tools import build_tools

    tools = build_tools(args, mode)

    async def main() -> tuple[int, LiveSession]:
        await tools.start()
        try:
            return await run_mode(cfg, tools.observers, tools.proxy.bind)
        finally:
            await tools.aclose()

    status, session = asyncio.run(main())
    summary = {**session.status(), "stop_reason": session.stop_reason, "exit": status}
    if session.kernel is not None:
        summary["run_hash"] = session.kernel.run_hash
    sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
    return status


def run(args: argparse.Namespace) -> int:
    return run_session(args, "paper")
