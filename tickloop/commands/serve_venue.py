"""``tickloop serve-venue``: the simulated venue behind Binance's REST/WebSocket API on localhost.

The server is composed by :func:`replay.serve.build_setup` (venue, market source from a log or
the seeded demo market, credentials, the server's own log).

On start the command prints ONE JSON line (``base_url``, ``ws_url``, ``ws_api_url``, ``api_key``,
``api_secret``, ``symbols``), flushes stdout, and serves until SIGINT/SIGTERM; then it closes the log cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from engine.errors import ConfigError
from replay.serve import ServerConfig, build_setup
from venues.server.app import ServerSetup, VenueServer
from venues.server.limits import LimitsConfig

_LIMITS = LimitsConfig()
FAULT_FLAGS = ("drop_order_responses", "drop_mode", "delay_ms", "error_next", "error_status",
               "disconnect_every_s", "skip_depth_updates")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--log", metavar="LOGDIR", help="replay this event log")
    src.add_argument("--demo", action="store_true", help="serve the seeded synthetic demo market (default)")
    parser.add_argument("--demo-duration", type=float, default=600.0, metavar="S",
                        help="length of the demo market in seconds of market time (default 600)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 = ephemeral, the default)")
    parser.add_argument("--speed", type=float, default=1.0, help="replay pace: 1 = real time, 0 = as fast as possible")
    parser.add_argument("--wait-for-client", action="store_true",
                        help="start the market replay at the first WebSocket market subscription")
    parser.add_argument("--out", metavar="LOGDIR", help="write the server's own event log (commands and venue events) here")
    parser.add_argument("--api-key", help="fixed API key (default: demo key derived from --seed)")
    parser.add_argument("--api-secret", help="fixed API secret (default: derived from --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the demo market and demo credentials")
    parser.add_argument("--venue-config", metavar="TOML", help="the backtest's venue settings file")
    parser.add_argument("--balance", action="append", default=[], metavar="ASSET=AMOUNT",
                        help="initial balance (repeatable; over --venue-config)")
    parser.add_argument("--weight-limit", type=int, default=_LIMITS.weight_per_minute,
                        help="REQUEST_WEIGHT per minute per IP")
    parser.add_argument("--orders-10s", type=int, default=_LIMITS.orders_per_10s, help="ORDERS per 10 s")
    parser.add_argument("--orders-day", type=int, default=_LIMITS.orders_per_day, help="ORDERS per day")
    faults = parser.add_argument_group("fault injection (also settable at runtime: POST /_tickloop/faults)")
    faults.add_argument("--drop-order-responses", type=int, default=0, metavar="N",
                        help="execute the next N order placements but drop their answers")
    faults.add_argument("--drop-mode", choices=("close", "hang"), default="close")
    faults.add_argument("--delay-ms", type=int, default=0, help="delay every REST answer")
    faults.add_argument("--error-next", type=int, default=0, metavar="N", help="fail the next N REST requests")
    faults.add_argument("--error-status", type=int, default=503, help="status of --error-next failures (429/5xx)")
    faults.add_argument("--disconnect-every-s", type=float, default=0.0, help="close every stream every S seconds")
    faults.add_argument("--skip-depth-updates", type=int, default=0, metavar="N", help="do not send the next N diffs")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    if args.api_key is not None and not args.api_secret or args.api_secret is not None and not args.api_key:
        raise ConfigError("--api-key and --api-secret go together")
    faults = {name: getattr(args, name) for name in FAULT_FLAGS}
    return ServerConfig(
        log=Path(args.log) if args.log else None, demo=args.log is None, speed=args.speed, seed=args.seed,
        faults=faults, out=Path(args.out) if args.out else None, api_key=args.api_key, api_secret=args.api_secret,
        host=args.host, port=args.port,
        limits=LimitsConfig(weight_per_minute=args.weight_limit, orders_per_10s=args.orders_10s,
                            orders_per_day=args.orders_day),
        demo_duration_s=args.demo_duration, venue_config=Path(args.venue_config) if args.venue_config else None,
        balances=tuple(args.balance), wait_for_client=args.wait_for_client,
    )


# --------------------------------------------------------------------------- the command


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    setup = build_setup(config)
    asyncio.run(_serve(config, setup))
    return 0


async def _serve(config: ServerConfig, setup: ServerSetup) -> None:
    server = VenueServer(setup)
    await server.start(config.host, config.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    line = {"base_url": server.base_url, "ws_url": server.ws_url, "ws_api_url": server.ws_api_url,
            "api_key": setup.credentials.api_key,
            "api_secret": setup.credentials.api_secret,
            "symbols": [server.protocol.symbol_of(i) for i in server.protocol.exchange_symbols]}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.stop()



