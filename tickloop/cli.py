"""The ``tickloop`` console script: parses arguments and hands off to one command module.

Each command lives in ``tickloop/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so the edge
profile (no pyarrow/duckdb) can run ``record``/``paper``/``live`` without importing them.
Every ``TickloopError`` becomes one clear line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engine.errors import TickloopError

# (command path, module, help)
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("demo",), "demo", "run a seeded synthetic session end to end (no data, no network)"),
    (("backtest",), "backtest", "replay a log through a strategy; prints the run summary as JSON"),
    (("import",), "importing", "import third-party recordings into an event log"),
    (("serve-venue",), "serve_venue", "serve the simulated venue behind Binance's REST/WebSocket API on localhost"),
    (("status",), "status", "running sessions, last event age per stream, breaker state, disk use"),
    (("log", "info"), "log_info", "JSON summary of a log: counts per kind and symbol, span, gaps"),
    (("log", "verify-book"), "verify_book", "rebuild the L2 book and check it against every bookTicker"),
    (("log", "ship"), "log_ship", "copy a log's sealed segments to DEST (local or host:path), SHA-256 verified"),
    (("catalog", "compact"), "catalog", "compact sealed logs into the Parquet catalog"),
    (("sql",), "sql", "run a DuckDB SQL query over a catalog"),
    (("record",), "record", "record live market streams to an event log (resumes after a crash)"),
    (("paper",), "paper", "paper trading: live market data, the simulated venue, risk"),
    (("live",), "live", "live trading: live market data, the live venue, risk and a kill switch"),
    (("replay", "audit"), "replay_audit", "re-run a paper/live session and report the first divergence"),
    (("report",), "report", "write a self-contained HTML report and metrics JSON of a backtest run"),
    (("dataset",), "dataset", "build a training set (features + triple-barrier labels) from a log as Parquet"),
    (("walkforward",), "walkforward", "rolling train/test windows: grid search in-sample, judged out-of-sample"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickloop", description=__doc__.splitlines()[0])
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for path, module, help_text in COMMANDS:
        if len(path) == 1:
            sub = top.add_parser(path[0], help=help_text, description=help_text)
        else:
            if path[0] not in groups:
                grp = top.add_parser(path[0], help=f"{path[0]} commands")
                groups[path[0]] = grp.add_subparsers(dest=f"{path[0]}_command", required=True, metavar="SUBCOMMAND")
            sub = groups[path[0]].add_parser(path[1], help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        _load(module).add_arguments(sub)
    return parser


def _load(module: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"tickloop.commands.{module}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(_load(args._module).run(args))
    except TickloopError as exc:
        print(f"tickloop: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tickloop: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
