"""Telegram notifications for a live session, through the Bot API's ``sendMessage``.

Trading must never wait for a chat message: :meth:`TelegramNotifier.on_event` only formats
and enqueues (a bounded queue that drops the oldest message and counts it); one sender task
drains it, coalescing whatever is queued into one message (Telegram allows about one message
per second per chat and 20 per minute in groups, so bursts are joined rather than dropped),
honours ``retry_after`` on 429, and logs failures instead of raising.

What is sent: fills, risk trips (breaker, kill switch, reset), feed disconnects and
reconnects, signals whose name is in ``signals`` (none by default: strategies emit many),
and a daily summary when event time crosses 00:00 UTC (fills, buy/sell notional and
commission per asset during the day, breaker state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from engine.events import (
    CircuitBreakerTripped,
    Event,
    FeedStatusChanged,
    KillSwitchEngaged,
    OrderFilled,
    RiskReset,
    SignalEmitted,
)
from engine.fixed import format_e8
from tickloop.live.observer import Source

log = logging.getLogger("tickloop.notify")

DAY_NS = 86_400 * 1_000_000_000
MAX_TEXT = 4000  # Telegram's limit is 4096 characters per message
FEED_ALERTS = frozenset({"disconnected", "reconnecting", "connected", "banned", "resynced"})

Post = Callable[[str, dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    """Where and how often to send; ``token`` and ``chat_id`` come from the session's secrets."""

    token: str
    chat_id: str
    base_url: str = "https://api.telegram.org"
    per_second: float = 1.0
    per_minute: int = 20
    queue_size: int = 256
    signals: frozenset[str] = frozenset()
    session: str = "tickloop"


class RateLimiter:
    """At most ``per_second`` sends per second and ``per_minute`` per rolling minute."""

    def __init__(self, per_second: float, per_minute: int, clock: Callable[[], float]) -> None:
        self._gap = 1.0 / per_second if per_second > 0 else 0.0
        self._per_minute = per_minute
        self._clock = clock
        self._sent: deque[float] = deque()

    def wait_s(self) -> float:
        """Seconds to wait before the next send is allowed (0: now)."""
        now = self._clock()
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()
        wait = 0.0
        if self._sent:
            wait = max(wait, self._sent[-1] + self._gap - now)
        if len(self._sent) >= self._per_minute:
            wait = max(wait, self._sent[0] + 60.0 - now)
        return max(wait, 0.0)

    def sent(self) -> None:
        self._sent.append(self._clock())


class DailySummary:
    """Per UTC day (of event time): fills, notional bought/sold and commission per asset."""

    def __init__(self) -> None:
        self.day: int | None = None
        self.fills = 0
        self.bought: Counter[str] = Counter()
        self.sold: Counter[str] = Counter()
        self.fees: Counter[str] = Counter()
        self.risk = "ok"

    def roll(self, ts: int) -> str | None:
        """The previous day's summary text when ``ts`` starts a new UTC day."""
        day = ts // DAY_NS
        if self.day is None:
            self.day = day
            return None
        if day <= self.day:
            return None
        text = self.text()
        self.day, self.fills = day, 0
        self.bought.clear()
        self.sold.clear()
        self.fees.clear()
        return text

    def add_fill(self, fill: OrderFilled) -> None:
        self.fills += 1
        side = self.bought if fill.side.name == "BUY" else self.sold
        side[str(fill.instrument)] += fill.quote_qty
        self.fees[fill.commission_asset] += fill.commission

    def text(self) -> str:
        day = time.strftime("%Y-%m-%d", time.gmtime((self.day or 0) * 86_400))
        lines = [f"Daily summary {day} UTC: {self.fills} fills, risk {self.risk}"]
        for iid in sorted(set(self.bought) | set(self.sold)):
            lines.append(f"  {iid}: bought {format_e8(self.bought[iid])}, sold {format_e8(self.sold[iid])} (quote)")
        for asset, fee in sorted(self.fees.items()):
            lines.append(f"  fees {format_e8(fee)} {asset}")
        return "\n".join(lines)


class TelegramNotifier:
    """A SessionObserver that turns notable events into Telegram messages, off the trading path."""

    def __init__(
        self,
        config: TelegramConfig,
        *,
        post: Post | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self._limiter = RateLimiter(config.per_second, config.per_minute, clock)
        self._post = post
        self._task: asyncio.Task[None] | None = None
        self._http: Any = None
        self._daily = DailySummary()
        self._busy = False
        self.dropped = 0
        self.sent = 0
        self.failures = 0

    # ------------------------------------------------------------- observer side (never blocks)

    def on_event(self, event: Event, source: Source) -> None:
        summary = self._daily.roll(event.ts_recv)
        if summary:
            self._enqueue(summary)
        text = self._format(event)
        if text is not None:
            self._enqueue(f"[{self.config.session}] {text}")

    def _format(self, ev: Event) -> str | None:
        if isinstance(ev, OrderFilled):
            self._daily.add_fill(ev)
            return (f"fill {ev.side.name} {format_e8(ev.qty)} {ev.instrument} @ {format_e8(ev.price)}"
                    f" ({ev.status.name}, fee {format_e8(ev.commission)} {ev.commission_asset})")
        if isinstance(ev, CircuitBreakerTripped):
            self._daily.risk = f"tripped ({ev.rule})"
            return f"RISK: breaker {ev.rule} tripped, equity {format_e8(ev.equity)}, loss {format_e8(ev.loss)}"
        if isinstance(ev, KillSwitchEngaged):
            self._daily.risk = "killed"
            return f"RISK: kill switch engaged ({ev.reason}), {len(ev.commands)} commands"
        if isinstance(ev, RiskReset):
            self._daily.risk = "ok"
            return "RISK: reset, trading resumes"
        if isinstance(ev, FeedStatusChanged) and ev.status in FEED_ALERTS:
            return f"feed {ev.stream}: {ev.status}" + (f" ({ev.detail})" if ev.detail else "")
        if isinstance(ev, SignalEmitted) and ev.name in self.config.signals:
            return f"signal {ev.strategy}.{ev.name} = {ev.value:.6g} on {ev.instrument}"
        return None

    def _enqueue(self, text: str) -> None:
        if len(self._queue) >= self.config.queue_size:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(text)
        self._wake.set()

    # ------------------------------------------------------------- sender side

    def start(self) -> None:
        """Start the sender task on the running loop (the session calls this once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sender())

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within ``timeout_s``), then stop."""
        if self._task is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(self._drained(), timeout_s)
            except TimeoutError:
                log.warning("telegram: %d messages not sent at shutdown", len(self._queue))
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _drained(self) -> None:
        while self._queue or self._busy:
            await asyncio.sleep(0.01)

    async def _sender(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue  # woken by aclose with nothing queued, or by a message: look again
            wait = self._limiter.wait_s()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            text = self._batch()
            self._limiter.sent()
            self._busy = True
            try:
                await self._send(text)
            finally:
                self._busy = False

    def _batch(self) -> str:
        """Join queued messages into one (bursts coalesce) up to Telegram's length limit."""
        parts = [self._queue.popleft()]
        size = len(parts[0])
        while self._queue and size + 1 + len(self._queue[0]) <= MAX_TEXT:
            nxt = self._queue.popleft()
            parts.append(nxt)
            size += 1 + len(nxt)
        return "\n".join(parts)[:MAX_TEXT]

    async def _send(self, text: str) -> None:
        url = f"{self.config.base_url.rstrip('/')}/bot{self.config.token}/sendMessage"
        payload = {"chat_id": self.config.chat_id, "text": text, "disable_web_page_preview": True}
        try:
            status, body = await (self._post or self._aiohttp_post)(url, payload)
        except Exception as exc:  # never let a chat outage touch trading
            self.failures += 1
            log.warning("telegram: send failed: %s", str(exc).replace(self.config.token, "<token>"))
            return
        if status == 429:
            retry = float((body.get("parameters") or {}).get("retry_after", 1))
            self.failures += 1
            log.warning("telegram: rate limited, retrying in %.1f s", retry)
            self._queue.appendleft(text)
            await asyncio.sleep(retry)
        elif status != 200 or not body.get("ok", False):
            self.failures += 1
            log.warning("telegram: HTTP %s: %s", status, body.get("description", ""))
        else:
            self.sent += 1

    async def _aiohttp_post(self, url: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        import aiohttp

        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        async with self._http.post(url, json=payload) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = {}
            return resp.status, body if isinstance(body, dict) else {}
