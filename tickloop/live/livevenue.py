"""``tickloop live`` wiring: the live adapter (``venues.binance.LiveVenue``) behind risk.

Startup, in order: credentials (environment or a 0600 file; never logged), the symbols'
exchangeInfo entries, the adapter's start (server-time offset, user data stream), then
reconciliation (balances and open orders). The entries and the reconciliation events are
the session's first inputs, so the audit replay starts from the same account state; risk's
starting equity and positions come from the reconciled balances unless ``--risk`` sets them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.errors import ConfigError
from engine.events import BalanceUpdated, Event
from engine.ports import OutputSink
from tickloop.live.config import SessionConfig
from tickloop.live.modes import _info, _strategy_fields, instrument_events
from tickloop.live.secrets import load_credentials
from tickloop.live.session import SessionPlan


class _Relay:
    """The venue's ``on_events`` until the session exists: holds events, then forwards them."""

    def __init__(self) -> None:
        self.held: list[Event] = []
        self.submit: Callable[[Event], None] | None = None

    def __call__(self, events: list[Event]) -> None:
        if self.submit is None:
            self.held.extend(events)
            return
        for ev in events:
            self.submit(ev)

    def connect(self, submit: Callable[[Event], None]) -> None:
        self.submit = submit
        held, self.held = self.held, []
        for ev in held:
            submit(ev)


def balances_of(events: list[Event]) -> tuple[tuple[str, int], ...]:
    """Free + locked per asset from the reconciliation's BalanceUpdated (sorted; zero ones dropped)."""
    out: dict[str, int] = {}
    for ev in events:
        if isinstance(ev, BalanceUpdated):
            for asset, free, locked in ev.balances:
                out[asset] = free + locked
    return tuple(sorted((a, v) for a, v in out.items() if v))


async def live_plan(cfg: SessionConfig) -> SessionPlan:
    from replay.audit import build_parts, instrument_raws
    from replay.venue_config import SymbolChoice, VenueSettings, load_risk_params, resolve_risk
    from venues.binance.venue import LiveConfig, LiveVenue

    creds = load_credentials(cfg.secrets_file)
    if creds is None:
        raise ConfigError("tickloop live needs API credentials: $TICKLOOP_API_KEY and $TICKLOOP_API_SECRET, or --secrets FILE")
    fields = _strategy_fields(cfg)
    instruments = await instrument_events(cfg)
    relay = _Relay()
    venue = LiveVenue(LiveConfig(creds.api_key, creds.api_secret, rest_url=cfg.base_url, ws_url=cfg.ws_url,
                                 ws_api_url=cfg.ws_api_url, user_stream_mode=cfg.user_stream), relay)
    await venue.start()
    try:
        reconciled = await venue.reconcile()
    except Exception:
        await venue.close()
        raise
    symbols = {iid: SymbolChoice("log", raw) for iid, raw in instrument_raws(instruments).items()}
    settings = VenueSettings(balances=balances_of(reconciled))
    risk = resolve_risk(load_risk_params(cfg.risk_file, cfg.risk_params), settings, symbols)
    config = {
        "mode": "live",
        **fields,
        "venue": {"name": "binance", "base_url": cfg.base_url, "ws_url": cfg.ws_url, "ws_api_url": cfg.ws_api_url,
                  "user_stream": cfg.user_stream},
        "risk": risk.effective(),
    }

    def build(sink: OutputSink, submit: Callable[[Event], None]) -> Any:
        kernel = build_parts(config, venue).kernel(sink)
        relay.connect(submit)
        return kernel

    def before_feed(ev: Event) -> None:
        venue.set_market_recv_ns(ev.ts_recv)

    return SessionPlan(
        "live", config, (*instruments, *reconciled), _info(cfg), build, closers=(venue.close,), before_feed=before_feed
    )
