"""The live dashboard: one local page that shows a running session and can pull its kill switch.

:class:`DashboardState` is a :class:`~tickloop.live.observer.SessionObserver`: it keeps what
the page shows (equity over time, positions, open orders, recent fills, risk state) from the
session's own events, so the page never disagrees with the log. :class:`Dashboard` serves it
with aiohttp on 127.0.0.1 by default:

- ``GET /`` the page (``dashboard.html``, no CDN: it works on an offline board);
- ``GET /api/state`` everything as JSON; ``GET /api/stream`` the same as Server-Sent Events
  every ``push_s`` seconds (SSE rather than a WebSocket: one direction is all the page needs
  and it reconnects by itself);
- ``GET /metrics`` Prometheus text (:mod:`tickloop.live.metrics`);
- ``POST /api/kill`` with the token (header ``X-Tickloop-Token`` or form/JSON field ``token``)
  calls :meth:`SessionControl.request_kill`; a wrong or missing token is 403. No token
  configured means the button is disabled (403 always): a kill switch anyone on the network
  can press is worse than none.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections import deque
from importlib import resources
from typing import Any

from engine.errors import InputError
from engine.events import (
    AggTradeReceived,
    CircuitBreakerTripped,
    Event,
    KillSwitchEngaged,
    MarkPriceReceived,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderTradePrevented,
    RiskReset,
    TradeReceived,
)
from engine.fixed import format_e8
from engine.orders import OrderStatus
from engine.portfolio import Portfolio
from tickloop.live.metrics import SessionMetrics
from tickloop.live.observer import SessionControl, Source

E8 = 100_000_000
EQUITY_POINTS = 2000
SAMPLE_NS = 1_000_000_000  # at most one equity point per second of event time from marks alone


class DashboardState:
    """Equity, positions, open orders, fills and risk state of a session, from its events.

    Money is the project's exact spot :class:`~engine.portfolio.Portfolio` (fills, commissions
    in any asset, marks from trades and mark prices); this class adds only what the page needs
    on top: open orders, the recent fills list, the risk state and an equity series sampled on
    every fill and at most once a second of event time from marks while a position is open.
    """

    def __init__(self, starting_cash: int = 0, quote_asset: str = "USDT") -> None:
        self.portfolio = Portfolio(quote_asset, {quote_asset: starting_cash})
        self.open_orders: dict[str, dict[str, Any]] = {}
        self.fills: deque[dict[str, Any]] = deque(maxlen=50)
        self.equity: deque[tuple[int, int]] = deque(maxlen=EQUITY_POINTS)
        self.risk: dict[str, Any] = {"state": "ok", "detail": "", "since_ns": 0}
        self.unvalued_events = 0
        self.last_ts = 0
        self._last_sample = 0

    def on_event(self, event: Event, source: Source) -> None:
        self.last_ts = max(self.last_ts, event.ts_recv)
        t = type(event)
        if t is TradeReceived or t is AggTradeReceived or t is MarkPriceReceived:
            self._apply(event)
            if event.ts_recv - self._last_sample >= SAMPLE_NS and self.portfolio.positions():  # cheap test first
                self._sample(event.ts_recv)
        elif t is OrderAccepted:
            assert isinstance(event, OrderAccepted)
            self.open_orders[event.client_order_id] = {
                "client_order_id": event.client_order_id, "symbol": str(event.instrument),
                "side": event.side.name, "type": event.order_type.name, "price": format_e8(event.price),
                "qty": format_e8(event.quantity), "filled": "0", "status": event.status.name,
            }
        elif t is OrderFilled:
            assert isinstance(event, OrderFilled)
            self._fill(event)
        elif t is OrderCanceled or t is OrderExpired:
            self.open_orders.pop(event.client_order_id, None)  # type: ignore[attr-defined]
        elif t is OrderTradePrevented:
            assert isinstance(event, OrderTradePrevented)
            if event.status is OrderStatus.EXPIRED_IN_MATCH:
                self.open_orders.pop(event.client_order_id, None)
        elif t is CircuitBreakerTripped:
            assert isinstance(event, CircuitBreakerTripped)
            self.risk = {"state": "tripped", "detail": event.rule, "since_ns": event.ts_recv}
        elif t is KillSwitchEngaged:
            assert isinstance(event, KillSwitchEngaged)
            self.risk = {"state": "killed", "detail": event.reason, "since_ns": event.ts_recv}
        elif t is RiskReset:
            self.risk = {"state": "ok", "detail": "", "since_ns": event.ts_recv}

    async def aclose(self) -> None:
        return None

    def _apply(self, event: Event) -> None:
        """Into the portfolio; an instrument it cannot value (not spot, other quote) is counted, not fatal."""
        try:
            self.portfolio.apply(event)
        except InputError:
            self.unvalued_events += 1

    def _fill(self, f: OrderFilled) -> None:
        self._apply(f)
        order = self.open_orders.get(f.client_order_id)
        if order is not None:
            order["filled"] = format_e8(f.cum_qty)
            order["status"] = f.status.name
            if f.status is OrderStatus.FILLED:
                del self.open_orders[f.client_order_id]
        self.fills.appendleft({
            "ts_ns": f.ts_recv, "symbol": str(f.instrument), "side": f.side.name, "price": format_e8(f.price),
            "qty": format_e8(f.qty), "fee": f"{format_e8(f.commission)} {f.commission_asset}",
            "maker": f.maker, "client_order_id": f.client_order_id,
        })
        self._sample(f.ts_recv)

    def equity_e8(self) -> int:
        """Quote balance + every priced asset at its mark (quote asset, e8)."""
        return self.portfolio.equity()

    def _sample(self, ts: int) -> None:
        self._last_sample = ts
        self.equity.append((ts, self.equity_e8()))

    def snapshot(self) -> dict[str, Any]:
        return {
            "equity": [[ts // 1_000_000, e / E8] for ts, e in self.equity],
            "equity_now": format_e8(self.equity_e8()),
            "positions": [
                {"symbol": iid, "qty": format_e8(p.qty), "mark": format_e8(p.mark or 0)}
                for iid, p in sorted(self.portfolio.positions().items())
            ],
            "open_orders": list(self.open_orders.values()),
            "fills": list(self.fills),
            "risk": self.risk,
            "last_event_ns": self.last_ts,
        }


class Dashboard:
    """The HTTP side: page, JSON, SSE, Prometheus and the guarded kill button."""

    def __init__(
        self,
        state: DashboardState,
        metrics: SessionMetrics,
        control: SessionControl,
        *,
        token: str | None,
        host: str = "127.0.0.1",
        port: int = 0,
        push_s: float = 0.5,
    ) -> None:
        self.state, self.metrics, self.control = state, metrics, control
        self._token = token or None
        self.host, self.port, self.push_s = host, port, push_s
        self._runner: Any = None
        self.url = ""

    def payload(self) -> dict[str, Any]:
        now = time.time_ns()
        return {
            **self.state.snapshot(),
            "metrics": self.metrics.snapshot(now),
            "session": self.control.status(),
            "kill_enabled": self._token is not None,
        }

    async def start(self) -> str:
        """Serve on host:port (0 = ephemeral); returns the page URL."""
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/stream", self._stream)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/api/kill", self._kill)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.port
        self.url = f"http://{self.host}:{self.port}/"
        return self.url

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _page(self, request: Any) -> Any:
        from aiohttp import web

        html = resources.files("tickloop.live").joinpath("dashboard.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html")

    async def _state(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(self.payload())

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(text=self.metrics.render(time.time_ns()), content_type="text/plain", charset="utf-8")

    async def _stream(self, request: Any) -> Any:
        from aiohttp import web

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            while True:
                await resp.write(f"data: {json.dumps(self.payload())}\n\n".encode())
                await asyncio.sleep(self.push_s)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    async def _kill(self, request: Any) -> Any:
        from aiohttp import web

        given = request.headers.get("X-Tickloop-Token", "")
        reason = "dashboard"
        if not given:
            if request.content_type == "application/json":
                body = await request.json()
                given, reason = str(body.get("token", "")), str(body.get("reason") or reason)
            else:
                form = await request.post()
                given, reason = str(form.get("token", "")), str(form.get("reason") or reason)
        if self._token is None or not hmac.compare_digest(given.encode(), self._token.encode()):
            return web.json_response({"ok": False, "error": "bad or missing token"}, status=403)
        self.control.request_kill(reason)
        return web.json_response({"ok": True})
