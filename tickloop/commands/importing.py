"""``tickloop import <source> FILE... --out LOGDIR``: third-party recordings into one event log.

Every source prints one JSON line (events and counts per kind, skipped records, out dir).
Files are imported in the order given. Bad input stops the import with an error naming the
file and line; ``--skip-bad`` skips and counts bad records instead. Either way what was
already imported stays in the log. The importers are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

MARKETS = ("auto", "spot", "usdm", "coinm")
FIXED_MARKETS = ("spot", "usdm", "coinm")


def _common(p: argparse.ArgumentParser, *, latency: bool) -> None:
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="input files (plain, gzip or zip), imported in order"
    )
    p.add_argument(
        "--out", required=True, metavar="LOGDIR", help="new log directory (must not exist or be empty)"
    )
    p.add_argument("--skip-bad", action="store_true", help="skip and count bad records instead of stopping")
    if latency:
        p.add_argument(
            "--recv-latency-ns",
            type=int,
            default=0,
            metavar="N",
            help="the source has no receive time: ts_recv = ts_event + N (default 0; kept in the manifest)",
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="import_source", required=True, metavar="SOURCE")

    p = sub.add_parser(
        "binance-stream", help="raw combined-stream recordings (hftbacktest '<ns> <json>', cryptofeed)"
    )
    _common(p, latency=False)
    p.add_argument(
        "--exchange-info", metavar="FILE", help="exchangeInfo file whose symbols go first in the log"
    )
    p.add_argument("--market", choices=MARKETS, default="auto", help="default: detected per file")
    p.add_argument(
        "--symbol", help="symbol of bare REST depth snapshots when a file has several depth streams"
    )

    p = sub.add_parser(
        "exchange-info", help="exchangeInfo (REST body or cryptofeed recording): one event per symbol"
    )
    _common(p, latency=True)
    p.add_argument("--market", choices=MARKETS, default="auto", help="default: from the URL or the body")

    p = sub.add_parser(
        "binance-rest", help="REST bodies: aggTrades, trades, klines, depth, bookTicker, fundingRate"
    )
    _common(p, latency=True)
    p.add_argument("--symbol", required=True, help="the symbol the requests were for (the bodies do not say)")
    p.add_argument("--market", choices=FIXED_MARKETS, default="spot")
    p.add_argument(
        "--at-ms",
        type=int,
        default=0,
        metavar="MS",
        help="venue time of bodies that carry none (spot depth/bookTicker); default 0",
    )

    p = sub.add_parser("vision", help="data.binance.vision CSVs: klines, aggTrades, trades (ms or µs times)")
    _common(p, latency=True)
    p.add_argument("--symbol", help="default: from the file name (ADABTC-1m-2021-11-27.csv)")
    p.add_argument(
        "--kind", choices=("klines", "aggtrades", "trades"), help="default: from the name or columns"
    )
    p.add_argument("--market", choices=FIXED_MARKETS, default="spot")
    p.add_argument("--interval", help="kline interval (default: from the name or the candle span)")

    p = sub.add_parser("tardis", help="Tardis.dev CSVs: trades, quotes, book_snapshot_N")
    _common(p, latency=False)
    p.add_argument("--market", choices=MARKETS, default="auto", help="default: from the exchange column")

    p = sub.add_parser("depth-csv", help="nautilus flattened depth CSV (snap/set rows)")
    _common(p, latency=True)
    p.add_argument(
        "--market", choices=MARKETS, default="auto", help="default: futures when a pu column exists"
    )

    p = sub.add_parser("freqtrade", help="freqtrade JSON: funding-rate history or candles")
    _common(p, latency=True)
    p.add_argument("--symbol", help="default: from the file name (XRP_USDT-8h-funding_rate.json -> XRPUSDT)")
    p.add_argument("--kind", choices=("funding", "candles"), help="default: from the file name")
    p.add_argument("--interval", help="candle interval (default: from the file name, else 8h)")
    p.add_argument("--market", choices=FIXED_MARKETS, default="usdm")

    p = sub.add_parser(
        "sqlzst", help="SQLite dumps (`sqlite3 db .dump | zstd`, .sql.zst or .sql): trades, quotes, klines"
    )
    _common(p, latency=True)
    p.add_argument("--symbol", help="symbol of tables without a symbol column")
    p.add_argument("--market", choices=FIXED_MARKETS, default="spot")
    p.add_argument(
        "--time-unit",
        choices=("auto", "s", "ms", "us", "ns"),
        default="auto",
        help="unit of epoch time columns whose name has no _ms/_us/_ns suffix (auto: by magnitude)",
    )
    p.add_argument("--interval", help="kline interval of tables with neither close_time nor interval")


def run(args: argparse.Namespace) -> int:
    from catalogs import importers
    from catalogs.importers.common import parse_market

    source: str = args.import_source
    market = parse_market(args.market)
    common: dict[str, Any] = {"skip_bad": args.skip_bad}
    if hasattr(args, "recv_latency_ns"):
        common["recv_latency_ns"] = args.recv_latency_ns
    if source == "binance-stream":
        report = importers.import_binance_stream(
            args.files,
            args.out,
            exchange_info=args.exchange_info,
            market=market,
            symbol=args.symbol,
            **common,
        )
    elif source == "exchange-info":
        report = importers.import_exchange_info(args.files, args.out, market=market, **common)
    elif source == "binance-rest":
        assert market is not None
        report = importers.import_binance_rest(
            args.files, args.out, symbol=args.symbol, market=market, at_ns=args.at_ms * 1_000_000, **common
        )
    elif source == "vision":
        assert market is not None
        report = importers.import_vision(
            args.files,
            args.out,
            symbol=args.symbol,
            kind=args.kind,
            market=market,
            interval=args.interval,
            **common,
        )
    elif source == "tardis":
        report = importers.import_tardis(args.files, args.out, market=market, **common)
    elif source == "depth-csv":
        report = importers.import_depth_csv(args.files, args.out, market=market, **common)
    elif source == "sqlzst":
        from catalogs.importers.sqlzst import import_sqlzst

        assert market is not None
        report = import_sqlzst(
            args.files,
            args.out,
            symbol=args.symbol,
            market=market,
            time_unit=args.time_unit,
            interval=args.interval,
            **common,
        )
    else:
        assert market is not None
        report = importers.import_freqtrade(
            args.files,
            args.out,
            symbol=args.symbol,
            kind=args.kind,
            interval=args.interval,
            market=market,
            **common,
        )
    print(json.dumps({"command": f"import {source}", **report.summary()}, sort_keys=True))
    return 0
