"""Operator tools of a live session: metrics (Prometheus text), Telegram notifier, dashboard API.

Driven by a scripted fake session: real event objects, a fake SessionControl. The notifier
talks to a local aiohttp endpoint that checks every request like the Bot API would.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp import ClientSession, web

from engine.events import (
    CircuitBreakerTripped,
    Event,
    FeedStatusChanged,
    LatencyRecorded,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    TradeReceived,
)
from engine.identifiers import InstrumentId
from engine.orders import OrderSide, OrderStatus, OrderType, SelfTradePreventionMode, TimeInForce
from tickloop.live.dashboard import Dashboard, DashboardState
from tickloop.live.metrics import BUCKETS_NS, Histogram, SessionMetrics, seconds_text
from tickloop.live.notify import DailySummary, RateLimiter, TelegramConfig, TelegramNotifier

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
NONE = InstrumentId("")
E8 = 100_000_000
DAY = 86_400 * 10**9


def trade(ts: int, price: int, lag: int = 1_000_000) -> TradeReceived:
    return TradeReceived(0, ts - lag, ts, BTC, price, E8 // 100, ts, False)


def accepted(ts: int, coid: str, price: int) -> OrderAccepted:
    return OrderAccepted(
        0, ts, ts, BTC, 1, coid, OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, E8, price, 0, 0, 0, -1,
        OrderStatus.NEW, ts, SelfTradePreventionMode.NONE, 1,
    )  # fmt: skip


def filled(ts: int, coid: str, side: OrderSide, price: int, qty: int, status: OrderStatus) -> OrderFilled:
    quote = price * qty // E8
    return OrderFilled(
        0, ts, ts, BTC, 1, coid, side, price, qty, quote, qty, quote, status, quote // 1000, "USDT", 7,
        True, -1, 2,
    )  # fmt: skip


def script(t0: int) -> list[Event]:
    return [
        trade(t0, 100 * E8),
        accepted(t0 + 1, "a", 100 * E8),
        filled(t0 + 2, "a", OrderSide.BUY, 100 * E8, E8 // 2, OrderStatus.PARTIALLY_FILLED),
        LatencyRecorded(0, t0 + 2, t0 + 2, BTC, "tick_to_order", 150_000, "a"),
        LatencyRecorded(0, t0 + 3, t0 + 3, BTC, "tick_to_order", 3_000, "b"),
        trade(t0 + 2 * 10**9, 110 * E8),
        accepted(t0 + 3 * 10**9, "b", 90 * E8),
        OrderCanceled(0, t0 + 4 * 10**9, t0 + 4 * 10**9, BTC, 2, "b", "", 0, 0, -1, 3),
        FeedStatusChanged(0, t0 + 5 * 10**9, t0 + 5 * 10**9, NONE, "btcusdt@trade", "disconnected", "EOF"),
        CircuitBreakerTripped(0, t0 + 6 * 10**9, t0 + 6 * 10**9, NONE, "max_drawdown", 9 * E8, 10 * E8, E8, 500),
    ]


# --------------------------------------------------------------------------- metrics


def test_histogram_counts_exactly_and_quantiles_are_bucket_bounds() -> None:
    h = Histogram()
    for v in (1, 1_000, 1_001, 2_000, 10**12):
        h.observe(v)
    assert h.count == 5 and h.sum_ns == 1 + 1_000 + 1_001 + 2_000 + 10**12
    assert h.counts[0] == 2 and h.counts[1] == 2 and h.counts[-1] == 1
    assert h.quantile_ns(0.5) == 2_000 and h.quantile_ns(1.0) is None
    rows = h.cumulative()
    assert rows[-1] == ("+Inf", 5) and rows[0] == ("0.000001", 2)
    assert [c for _, c in rows] == sorted(c for _, c in rows)
    assert seconds_text(1_500) == "0.0000015" and seconds_text(2 * 10**9) == "2" and seconds_text(-5) == "-0.000000005"


def test_prometheus_text_follows_the_exposition_format() -> None:
    m = SessionMetrics()
    for ev in script(10**18):
        m.on_event(ev, "input")
    text = m.render(10**18 + 7 * 10**9)
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.e+Inf]+$')
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            typed[name] = typ
        elif not line.startswith("# HELP "):
            assert sample.match(line), line
            base = re.sub(r"(_bucket|_sum|_count)$", "", line.split("{")[0].split(" ")[0])
            assert base in typed, f"sample before its # TYPE: {line}"
    assert typed["tickloop_latency_seconds"] == "histogram" and typed["tickloop_fills_total"] == "counter"
    assert "tickloop_fills_total 1" in text and "tickloop_risk_halted 1" in text
    assert 'tickloop_latency_seconds_count{metric="tick_to_order"} 2' in text
    assert 'tickloop_latency_seconds_bucket{metric="tick_to_order",le="+Inf"} 2' in text
    assert 'tickloop_feed_lag_seconds_bucket{stream="btcusdt@trade",le="0.001024"} 2' in text
    assert 'tickloop_feed_age_seconds{stream="btcusdt@trade"} 5' in text
    assert len(BUCKETS_NS) == 25


# --------------------------------------------------------------------------- telegram


class FakeBot:
    """A local Bot API endpoint: checks path, token, chat id and JSON; can fail on purpose."""

    def __init__(self, token: str, chat: str) -> None:
        self.token, self.chat = token, chat
        self.texts: list[str] = []
        self.fail_next: list[int] = []

    async def handler(self, request: web.Request) -> web.Response:
        assert request.method == "POST"
        assert request.match_info["token"] == self.token
        body = await request.json()
        assert body["chat_id"] == self.chat and isinstance(body["text"], str) and body["text"]
        if self.fail_next:
            code = self.fail_next.pop(0)
            if code == 429:
                return web.json_response({"ok": False, "parameters": {"retry_after": 0.05}}, status=429)
            return web.json_response({"ok": False, "description": "boom"}, status=code)
        self.texts.append(body["text"])
        return web.json_response({"ok": True, "result": {}})


async def _serve(bot: FakeBot) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", bot.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def test_notifier_sends_fills_risk_and_feed_alerts_to_the_bot_api() -> None:
    async def go() -> tuple[FakeBot, TelegramNotifier]:
        bot = FakeBot("123:abc", "42")
        runner, url = await _serve(bot)
        n = TelegramNotifier(TelegramConfig("123:abc", "42", base_url=url, per_second=1000, per_minute=1000))
        n.start()
        bot.fail_next = [429, 500]  # a rate limit is retried; a 500 loses that message, never raises
        for ev in script(10**18):
            n.on_event(ev, "output")
            await asyncio.sleep(0.02)
        await n.aclose()
        await runner.cleanup()
        return bot, n

    bot, n = asyncio.run(go())
    text = "\n".join(bot.texts)
    assert n.failures == 2 and n.dropped == 0
    assert "RISK: breaker max_drawdown tripped" in text
    assert "feed btcusdt@trade: disconnected (EOF)" in text
    assert n.sent == len(bot.texts) >= 2


def test_a_dead_endpoint_never_raises_and_the_queue_is_bounded() -> None:
    async def go() -> TelegramNotifier:
        n = TelegramNotifier(TelegramConfig("t", "c", base_url="http://127.0.0.1:9", queue_size=3, per_second=1000))
        for i in range(10):
            n.on_event(filled(10**18 + i, f"o{i}", OrderSide.BUY, E8, E8, OrderStatus.FILLED), "output")
        assert n.dropped == 7
        n.start()
        await n.aclose(timeout_s=3)
        return n

    n = asyncio.run(go())
    assert n.failures >= 1 and n.sent == 0


def test_rate_limiter_spaces_sends_and_caps_a_minute() -> None:
    now = [0.0]
    lim = RateLimiter(1.0, 3, lambda: now[0])
    assert lim.wait_s() == 0
    lim.sent()
    assert lim.wait_s() == pytest.approx(1.0)
    now[0] = 1.0
    lim.sent()
    now[0] = 2.0
    lim.sent()
    now[0] = 3.0
    assert lim.wait_s() == pytest.approx(57.0)  # three in the last minute
    now[0] = 60.0
    assert lim.wait_s() == 0


def test_daily_summary_rolls_at_utc_midnight_of_event_time() -> None:
    d = DailySummary()
    assert d.roll(5 * DAY + 10) is None
    d.add_fill(filled(5 * DAY + 20, "x", OrderSide.BUY, 100 * E8, E8, OrderStatus.FILLED))
    assert d.roll(5 * DAY + 30) is None
    text = d.roll(6 * DAY)
    assert text is not None and "1 fills" in text and "bought 100" in text and "1970-01-06" in text
    assert d.fills == 0


# --------------------------------------------------------------------------- dashboard


class FakeControl:
    def __init__(self) -> None:
        self.kills: list[str] = []

    def request_kill(self, reason: str) -> None:
        self.kills.append(reason)

    def status(self) -> dict[str, Any]:
        return {"mode": "paper", "kills": len(self.kills)}


def test_dashboard_state_follows_fills_orders_and_risk() -> None:
    st = DashboardState(starting_cash=1000 * E8)
    for ev in script(10**18):
        st.on_event(ev, "input")
    snap = st.snapshot()
    assert snap["positions"] == [{"symbol": "BTCUSDT.SPOT", "qty": "0.5", "mark": "110"}]
    assert snap["open_orders"] == [
        {"client_order_id": "a", "symbol": "BTCUSDT.SPOT", "side": "BUY", "type": "LIMIT", "price": "100",
         "qty": "1", "filled": "0.5", "status": "PARTIALLY_FILLED"}
    ]  # fmt: skip
    # cash 1000 - 50 - fee 0.05, plus 0.5 BTC at 110
    assert st.equity_e8() == 1000 * E8 - 50 * E8 - 5_000_000 + 55 * E8
    assert snap["risk"]["state"] == "tripped" and len(snap["equity"]) >= 2


def test_dashboard_serves_state_metrics_and_a_token_guarded_kill() -> None:
    async def go() -> tuple[FakeControl, list[int], dict[str, Any], str, str]:
        st, m, ctl = DashboardState(), SessionMetrics(), FakeControl()
        for ev in script(10**18):
            st.on_event(ev, "input")
            m.on_event(ev, "input")
        dash = Dashboard(st, m, ctl, token="s3cret")
        url = await dash.start()
        codes = []
        async with ClientSession() as http:
            for headers, body in (({}, {}), ({"X-Tickloop-Token": "nope"}, {}), ({}, {"token": "s3cret"})):
                async with http.post(url + "api/kill", headers=headers, json=body) as r:
                    codes.append(r.status)
            async with http.get(url + "api/state") as r:
                state = await r.json()
            async with http.get(url + "metrics") as r:
                metrics = await r.text()
            async with http.get(url) as r:
                page = await r.text()
        await dash.aclose()
        return ctl, codes, state, metrics, page

    ctl, codes, state, metrics, page = asyncio.run(go())
    assert codes == [403, 403, 200] and ctl.kills == ["dashboard"]
    assert state["kill_enabled"] and state["session"]["mode"] == "paper"
    assert state["metrics"]["latency"]["tick_to_order"]["count"] == 2
    assert "tickloop_fills_total 1" in metrics
    assert "<canvas" in page and "http" not in re.sub(r"https?://www\.w3\.org", "", page)


def test_dashboard_without_a_token_refuses_every_kill() -> None:
    async def go() -> int:
        ctl = FakeControl()
        dash = Dashboard(DashboardState(), SessionMetrics(), ctl, token=None)
        url = await dash.start()
        async with ClientSession() as http, http.post(url + "api/kill", json={"token": ""}) as r:
            status = r.status
        await dash.aclose()
        assert not ctl.kills
        return status

    assert asyncio.run(go()) == 403
