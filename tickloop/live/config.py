"""A session's configuration: one TOML file (``--config FILE``) with CLI flags laid over it.

The file uses the flags' names (``symbols``, ``streams``, ``base_url``, ``ws_url``, ``ws_api_url``,
``user_stream``, ``out``, ``strategy``, ``seed``, ``duration``, ``max_events``, ``kill_file``,
``venue_config``, ``risk``) plus tables ``[params]`` (strategy), ``[risk_params]`` and ``[venue]`` (the venue
flags: ``fees``, ``latency``, ``fill``, ``balances = {USDT = "1000"}``...). A flag given on the
command line wins. Secrets are refused in this file on purpose: it is meant to be copied and
committed; they come from the environment or a 0600 ``--secrets`` file
(:mod:`tickloop.live.secrets`).
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

BINANCE_REST = "https://api.binance.com"
BINANCE_WS = "wss://stream.binance.com:9443"
BINANCE_WS_API = "wss://ws-api.binance.com:443/ws-api/v3"
WS_API_PATH = "/ws-api/v3"
USER_STREAM_MODES = ("ws_api", "listen_key")
DEFAULT_RECORD_STREAMS = ("aggTrade", "depth20", "depth", "bookTicker")
VENUE_FLAGS = ("fees", "bnb_fees", "latency", "impact", "impact_half_life", "fill", "queue", "balance", "exchange_info")
FILE_KEYS = frozenset(
    {
        "symbols", "streams", "base_url", "ws_url", "ws_api_url", "user_stream", "out", "strategy", "seed", "duration", "max_events",
        "kill_file", "venue_config", "risk", "params", "risk_params", "venue",
    }
)
SECRET_KEYS = frozenset({"api_key", "api_secret", "secret", "key"})


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything a session needs except secrets (see module doc)."""

    mode: str
    out: Path
    symbols: tuple[str, ...]
    streams: tuple[str, ...]
    base_url: str = BINANCE_REST
    ws_url: str = BINANCE_WS
    ws_api_url: str = BINANCE_WS_API
    """Binance's WebSocket API (the user data stream's ``userDataStream.subscribe.signature``)."""
    user_stream: str = "ws_api"
    """``ws_api`` (current) or ``listen_key`` (the deprecated ``POST /api/v3/userDataStream`` flow)."""
    strategy: str | None = None
    params: tuple[str, ...] = ()
    seed: int = 0
    risk_file: str | None = None
    risk_params: tuple[str, ...] = ()
    venue_config: str | None = None
    venue_flags: dict[str, Any] = field(default_factory=dict)
    duration_s: float | None = None
    max_events: int | None = None
    kill_file: str | None = None
    secrets_file: str | None = None

    def venue_source(self) -> dict[str, Any]:
        """What ``session.json`` records so an audit can rebuild the simulated venue."""
        vc = str(Path(self.venue_config).resolve()) if self.venue_config else None
        flags = dict(self.venue_flags)
        if flags.get("exchange_info"):
            flags["exchange_info"] = str(Path(flags["exchange_info"]).resolve())
        return {"config_file": vc, "flags": flags}


def add_session_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    """The flags of ``tickloop record|paper|live`` (defaults None: the config file fills in)."""
    parser.add_argument("--config", default=None, metavar="FILE", help="session settings (TOML); flags override")
    parser.add_argument("--out", default=None, metavar="SESSION", help="session directory (input/, out/, session.json)")
    parser.add_argument("--symbols", default=None, metavar="S,S,...", help="symbols, e.g. btcusdt,ethusdt")
    parser.add_argument(
        "--streams", default=None, metavar="S,S,...", help="aggTrade,trade,depth20,depth,bookTicker,markPrice,kline_1m"
    )
    parser.add_argument("--base-url", default=None, metavar="URL", help=f"REST base URL (default {BINANCE_REST})")
    parser.add_argument("--ws-url", default=None, metavar="URL", help=f"WebSocket base URL (default {BINANCE_WS})")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument("--max-events", type=int, default=None, metavar="N", help="stop after N input events")
    if mode == "record":
        return
    parser.add_argument("--strategy", default=None, metavar="NAME", help="strategy to run (e.g. rsi)")
    parser.add_argument("--param", action="append", default=None, metavar="K=V", help="strategy parameter (repeatable)")
    parser.add_argument("--seed", type=int, default=None, metavar="N", help="seed (default 0)")
    parser.add_argument("--risk", default=None, metavar="FILE", help="risk limits (TOML)")
    parser.add_argument("--risk-param", action="append", default=None, metavar="K=V", help="risk limit (repeatable)")
    parser.add_argument("--kill-file", default=None, metavar="PATH", help="engage the kill switch when PATH appears")
    if mode == "live":
        parser.add_argument("--secrets", default=None, metavar="FILE", help="api_key/api_secret (TOML, mode 0600)")
        parser.add_argument("--ws-api-url", default=None, metavar="URL",
                            help=f"WebSocket API URL (default {BINANCE_WS_API}; with a non-Binance --ws-url: "
                            f"<ws-url>{WS_API_PATH})")
        parser.add_argument("--user-stream", default=None, choices=USER_STREAM_MODES,
                            help="user data stream: ws_api (default) or the deprecated listen_key flow")
        return
    venue = parser.add_argument_group("simulated venue (as tickloop backtest; flags override --venue-config)")
    venue.add_argument("--venue-config", default=None, metavar="FILE", help="venue settings (TOML)")
    venue.add_argument("--fees", default=None, metavar="SPEC", help="vip0..vip9 or flat:MAKER_BPS,TAKER_BPS")
    venue.add_argument("--bnb-fees", action=argparse.BooleanOptionalAction, default=None, help="pay fees in BNB")
    venue.add_argument("--latency", default=None, metavar="SPEC", help="zero, const:NS[,NS], lognormal:MU,SIGMA")
    venue.add_argument("--impact", default=None, metavar="Y", help="square-root impact coefficient")
    venue.add_argument("--impact-half-life", default=None, metavar="DUR", help="permanent impact half-life")
    venue.add_argument("--fill", default=None, metavar="l1|l2|auto", help="fill model (auto: l2 with depth streams)")
    venue.add_argument("--queue", default=None, metavar="RULE", help="risk-averse, prob:power:N or prob:log")
    venue.add_argument("--balance", action="append", default=None, metavar="ASSET=AMOUNT", help="starting balance")
    venue.add_argument("--exchange-info", default=None, metavar="FILE", help="symbol rules instead of the REST exchangeInfo")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The TOML session file; unknown keys and secrets are errors naming the file and key."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"--config {str(p)!r}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {str(p)!r}: not valid TOML: {exc}") from None
    secret = sorted(set(doc) & SECRET_KEYS)
    if secret:
        raise ConfigError(f"{p}: {', '.join(secret)} do not belong in a config file; use --secrets FILE (mode 0600) or $TICKLOOP_API_KEY/$TICKLOOP_API_SECRET")
    unknown = sorted(set(doc) - FILE_KEYS)
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(FILE_KEYS))}")
    for table in ("params", "risk_params", "venue"):
        if table in doc and not isinstance(doc[table], dict):
            raise ConfigError(f"{p}: {table} must be a table ([{table}])")
    return doc


def _csv(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise ConfigError(f"{where}: expected a comma-separated string or a list of strings, got {value!r}")
    items = [v for v in items if v]
    if not items:
        raise ConfigError(f"{where}: empty")
    return tuple(items)


def _pairs(table: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(f"{k}={v}" for k, v in table.items())


def _venue_flags(args: argparse.Namespace, file_table: Mapping[str, Any]) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for key, value in file_table.items():
        if key in ("balances", "balance") and isinstance(value, dict):
            flags["balances"] = [f"{a}={v}" for a, v in value.items()]
        elif key in ("balances", "balance"):
            flags["balances"] = value
        elif key in VENUE_FLAGS:
            flags[key] = value
        else:
            raise ConfigError(f"--config [venue]: unknown key {key!r}; known: {', '.join(VENUE_FLAGS)}, balances")
    for key in VENUE_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            flags["balances" if key == "balance" else key] = value
    return flags


def ws_api_default(ws_url: str) -> str:
    """The WebSocket API next to ``ws_url``: Binance's for Binance's stream host, else ``<ws_url>/ws-api/v3``.

    Why derived: the local venue server (``tickloop serve-venue``) serves both on one port, so a
    session pointed at it with ``--ws-url`` alone must not reach for Binance's WebSocket API.
    """
    return BINANCE_WS_API if ws_url == BINANCE_WS else ws_url.rstrip("/") + WS_API_PATH


def _user_stream(value: object) -> str:
    mode = str(value or "ws_api")
    if mode not in USER_STREAM_MODES:
        raise ConfigError(f"user_stream must be one of {', '.join(USER_STREAM_MODES)}, got {value!r}")
    return mode


def session_config(args: argparse.Namespace, mode: str, default_streams: Sequence[str] = DEFAULT_RECORD_STREAMS) -> SessionConfig:
    """The effective config of ``tickloop <mode>`` from ``--config`` and the flags."""
    doc = read_config_file(args.config) if getattr(args, "config", None) else {}

    def pick(flag: str, key: str | None = None) -> Any:
        value = getattr(args, flag, None)
        return value if value is not None else doc.get(key or flag)

    out = pick("out")
    if out is None:
        raise ConfigError(f"tickloop {mode}: --out SESSION is required (or `out` in --config)")
    symbols = pick("symbols")
    if symbols is None:
        raise ConfigError(f"tickloop {mode}: --symbols is required (or `symbols` in --config)")
    streams = pick("streams")
    strategy = pick("strategy")
    if mode != "record" and not strategy:
        raise ConfigError(f"tickloop {mode}: --strategy is required (or `strategy` in --config)")
    params = tuple(args.param) if getattr(args, "param", None) else _pairs(doc.get("params", {}))
    risk_params = tuple(args.risk_param) if getattr(args, "risk_param", None) else _pairs(doc.get("risk_params", {}))
    duration = pick("duration")
    max_events = pick("max_events")
    ws_url = str(pick("ws_url") or BINANCE_WS)
    return SessionConfig(
        mode=mode,
        out=Path(out),
        symbols=tuple(s.upper() for s in _csv(symbols, "--symbols")),
        streams=_csv(streams, "--streams") if streams is not None else tuple(default_streams),
        base_url=str(pick("base_url") or BINANCE_REST),
        ws_url=ws_url,
        ws_api_url=str(pick("ws_api_url") or ws_api_default(ws_url)),
        user_stream=_user_stream(pick("user_stream")),
        strategy=strategy,
        params=params,
        seed=int(pick("seed") or 0),
        risk_file=pick("risk"),
        risk_params=risk_params,
        venue_config=pick("venue_config"),
        venue_flags=_venue_flags(args, doc.get("venue", {})) if mode == "paper" else {},
        duration_s=float(duration) if duration is not None else None,
        max_events=int(max_events) if max_events is not None else None,
        kill_file=pick("kill_file"),
        secrets_file=getattr(args, "secrets", None),
    )
