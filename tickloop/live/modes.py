"""Wiring of the three session modes: a :class:`SessionConfig` -> a plan, a source, a session.

Each mode's kernel is built from the session's *config dict* by ``replay.audit.build_parts``,
the function the audit replay uses too; so what ran live and what the audit re-runs are
made by the same code from the same recorded data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.events import InstrumentUpdated
from engine.identifiers import InstrumentId
from engine.ports import OutputSink
from tickloop.live.config import SessionConfig
from tickloop.live.observer import SessionObserver
from tickloop.live.session import EventSource, LiveSession, SessionPlan
from tickloop.live.stream import StreamSource

DEFAULT_TRADING_STREAMS = ("trade", "bookTicker")
DEPTH_STREAMS = frozenset({"depth", "depth20"})


def spot_id(symbol: str) -> InstrumentId:
    return InstrumentId(f"{symbol.upper()}.SPOT")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def record_plan(cfg: SessionConfig) -> SessionPlan:
    return SessionPlan("record", info=_info(cfg))


def _info(cfg: SessionConfig) -> dict[str, Any]:
    return {
        "symbols": list(cfg.symbols),
        "streams": list(cfg.streams),
        "base_url": cfg.base_url,
        "ws_url": cfg.ws_url,
    }


def stream_source(cfg: SessionConfig) -> StreamSource:
    return StreamSource(cfg.ws_url, cfg.symbols, cfg.streams, base_url=cfg.base_url)


async def instrument_events(cfg: SessionConfig) -> tuple[InstrumentUpdated, ...]:
    """Each symbol's exchangeInfo entry as an input event: from ``--exchange-info`` or REST."""
    from tickloop.live.stream import fetch_exchange_info

    path = cfg.venue_flags.get("exchange_info")
    if path:
        from replay.venue_config import exchange_info_symbols

        by_id = exchange_info_symbols(Path(path))
        missing = [s for s in cfg.symbols if spot_id(s) not in by_id]
        if missing:
            raise ConfigError(f"--exchange-info {path}: no spot entry for {', '.join(missing)}")
        raws = {s: by_id[spot_id(s)] for s in cfg.symbols}
    else:
        raws = await fetch_exchange_info(cfg.base_url, cfg.symbols)
    return tuple(InstrumentUpdated(0, 0, 0, spot_id(s), _canonical(raws[s])) for s in cfg.symbols)


def _strategy_fields(cfg: SessionConfig) -> dict[str, Any]:
    from engine.strategy import config_dict
    from strategies.registry import build_config

    assert cfg.strategy is not None
    return {
        "strategy": cfg.strategy,
        "params": config_dict(build_config(cfg.strategy, cfg.params)),
        "seed": cfg.seed,
        "symbols": list(cfg.symbols),
        "streams": list(cfg.streams),
    }


async def paper_plan(cfg: SessionConfig) -> SessionPlan:
    """Live market data + the simulated venue (as a backtest's) + risk."""
    from replay.audit import build_parts, instrument_raws, paper_venue
    from replay.venue_config import load_risk_params, resolve_risk

    fields = _strategy_fields(cfg)  # a bad strategy/param fails before any network
    startup = await instrument_events(cfg)
    has_depth = bool(DEPTH_STREAMS & set(cfg.streams))
    source = cfg.venue_source()
    settings, symbols, bundle, effective = paper_venue(source, instrument_raws(startup), has_depth, cfg.seed)
    risk = resolve_risk(load_risk_params(cfg.risk_file, cfg.risk_params), settings, symbols)
    config = {"mode": "paper", **fields, "has_depth": has_depth, "venue": effective, "risk": risk.effective()}

    def build(sink: OutputSink, submit: Any) -> Any:
        return build_parts(config, bundle.venue, bundle.latency).kernel(sink)

    return SessionPlan("paper", config, startup, {**_info(cfg), "venue_source": source}, build)


def make_session(
    cfg: SessionConfig,
    plan: SessionPlan,
    source: EventSource | None,
    observers: Sequence[SessionObserver] = (),
    *,
    signals: bool = True,
) -> LiveSession:
    return LiveSession(
        cfg.out,
        plan,
        source,
        observers=observers,
        kill_file=cfg.kill_file,
        duration_s=cfg.duration_s,
        max_events=cfg.max_events,
        signals=signals,
    )


async def run_mode(
    cfg: SessionConfig,
    observers: Sequence[SessionObserver] = (),
    on_session: Callable[[LiveSession], None] | None = None,
) -> tuple[int, LiveSession]:
    """Build and run the session of ``cfg.mode``; (exit status, the finished session).

    ``on_session`` sees the session once it is built, before it runs (the dashboard binds to it).
    """
    if cfg.mode == "record":
        plan = record_plan(cfg)
    elif cfg.mode == "paper":
        plan = await paper_plan(cfg)
    elif cfg.mode == "live":
        from tickloop.live.livevenue import live_plan

        plan = await live_plan(cfg)
    else:
        raise ConfigError(f"unknown mode {cfg.mode!r}")
    session = make_session(cfg, plan, stream_source(cfg), observers)
    if on_session is not None:
        on_session(session)
    status = await session.run()
    return status, session
