"""Composing the local venue server from logs, the demo market and the venue config.

``venues.server`` is sans-I/O plus aiohttp and may not read logs or generate the demo market
(those are ``catalogs`` and ``replay``); this module, in the layer that may import all of
them, builds its :class:`~venues.server.app.ServerSetup`. ``tickloop serve-venue`` and every
test or script that wants a server in a thread (:func:`serve_in_thread`) come through here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.events import MARKET_KINDS, Event
from engine.identifiers import InstrumentId, instrument_id
from venues.server.app import ServerSetup
from venues.server.auth import Credentials
from venues.server.faults import Faults
from venues.server.testing import ServerConfig, ServerInfo
from venues.server.testing import serve_in_thread as _serve_setup

__all__ = ["ServerConfig", "ServerInfo", "build_setup", "serve_in_thread"]

DEMO_BALANCES = ("USDT=1000000", "BTC=10", "ETH=100")



def build_setup(config: ServerConfig) -> ServerSetup:
    """Venue, market source, credentials, faults and log writer for ``config``."""
    from replay.venue_config import build_venue, load_settings

    if config.speed < 0:
        raise ConfigError(f"--speed must be >= 0, got {config.speed}")
    creds = (Credentials(config.api_key, config.api_secret) if config.api_key and config.api_secret
             else Credentials.demo(config.seed))
    balances = list(config.balances) or (list(DEMO_BALANCES) if config.log is None else None)
    settings = load_settings(config.venue_config, {"balances": balances})
    if config.log is not None:
        settings, symbols, source = _log_market(config.log, settings)
        raw = {iid: dict(choice.raw) for iid, choice in symbols.items()}
    else:
        settings, symbols, source, raw = _demo_market(config, settings)
    bundle = build_venue(settings, symbols, config.seed)
    faults = Faults()
    faults.update(dict(config.faults))
    sink = _open_sink(config, settings.effective(symbols), creds) if config.out is not None else None
    return ServerSetup(bundle.venue, raw, creds, source, sink, config.speed, config.limits, faults,
                       wait_for_client=config.wait_for_client)


def _log_market(log: Path, settings: Any) -> tuple[Any, Any, Any]:
    from replay.source import log_chunks, open_log
    from replay.venue_config import resolve_venue

    reader = open_log(log)
    try:
        settings, symbols = resolve_venue(settings, reader)
    finally:
        reader.close()
    if not symbols:
        raise ConfigError(f"{log}: no spot instrument in the log; the server serves spot symbols only")

    def source() -> Iterator[Event]:
        r = open_log(log)
        try:
            for chunk in log_chunks(r):
                for ev in chunk.events():
                    if ev.kind in MARKET_KINDS:
                        yield ev
        finally:
            r.close()

    return settings, symbols, source


def _demo_market(config: ServerConfig, settings: Any) -> tuple[Any, Any, Any, dict[InstrumentId, dict[str, Any]]]:
    from catalogs.importers.binance_stream import BinanceStreamParser
    from replay.synthetic import DEFAULT_SYMBOLS, generate_lines
    from replay.venue_config import SymbolChoice, default_symbol_dict, with_fill_resolved

    symbols = {}
    raw: dict[InstrumentId, dict[str, Any]] = {}
    for spec in DEFAULT_SYMBOLS:
        d = default_symbol_dict(spec.symbol, spec.tick_e8, spec.lot_e8)
        d["filters"].append({"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5})
        iid = instrument_id(spec.symbol)
        symbols[iid] = SymbolChoice("default", d)
        raw[iid] = d
    settings = with_fill_resolved(settings, True)
    seed, duration = config.seed, config.demo_duration_s

    def source() -> Iterator[Event]:
        parser = BinanceStreamParser()
        for line in generate_lines(seed, duration):
            yield from parser.feed(line)

    return settings, symbols, source, raw


def _open_sink(config: ServerConfig, effective: dict[str, Any], creds: Credentials) -> Any:
    from catalogs.log import LogWriter

    assert config.out is not None
    meta = {"serve_venue": {"source": str(config.log) if config.log else f"demo:seed={config.seed}",
                            "speed": config.speed, "venue": effective, "api_key": creds.api_key}}
    return LogWriter(config.out, meta=meta)


@contextmanager
def serve_in_thread(config: ServerConfig | None = None) -> Iterator[ServerInfo]:
    """A venue server for ``config`` in a background thread; yields its :class:`ServerInfo`."""
    config = config or ServerConfig()
    with _serve_setup(config, setup=build_setup(config)) as info:
        yield info
