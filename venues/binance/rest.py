"""Async REST client: one keep-alive session, rate-limit accounting, 429/418/5xx/-1021 handling.

The sans-I/O part is :class:`RateLimiter`: Binance reports what an IP (``X-MBX-USED-WEIGHT-1M``)
and an account (``X-MBX-ORDER-COUNT-10S``/``-1D``) used in the *current fixed window* of each
interval (windows start at multiples of the interval since the epoch). We keep, per limit, the
window we are in and the larger of the venue's count and our own (requests sent since the last
answer count locally), and hold a request back until the window rolls over when it would push a
count past ``headroom`` x the limit -- so a well-behaved client never sees a 429.

:class:`RestClient` is the thin I/O shell (aiohttp):

- **429**: the venue refused the request (it was not executed): wait ``Retry-After`` (every
  request waits: the limit is per IP), report ``throttled``, and re-send, re-signed -- a
  request signed before the wait would be stale. After ``max_429`` in a row, raise
  :class:`Throttled`.
- **418**: the IP is banned: stop at once and raise :class:`IpBanned` (every later request
  raises too until ``Retry-After`` has passed). Continuing would extend the ban.
- **5xx, timeout, dropped connection**: the outcome is unknown. Idempotent requests (queries,
  cancels) are retried with exponential backoff and jitter; others raise :class:`UnknownOutcome`
  for the caller to reconcile (``venues.binance.orders``): re-sending an order blindly could
  place it twice.
- **-1021** (timestamp outside recvWindow): the server-time offset is re-measured and the
  request re-signed once; a second -1021 raises :class:`ClockRejected` saying by how much the
  clocks disagree. **-1022** (bad signature) and **-2014/-2015** (bad key) raise
  :class:`CredentialsRejected`: they are our configuration's fault, never retried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.clock import Clock, LiveClock
from engine.errors import RequestRejected, VenueError
from engine.events import FeedStatusChanged
from engine.identifiers import InstrumentId
from venues.binance.requests import RequestBuilder, SignedRequest, api_error, decode_body
from venues.binance.signing import ServerTime

if TYPE_CHECKING:
    import aiohttp

NS_PER_S = 1_000_000_000
_UNIT_NS = {"S": NS_PER_S, "M": 60 * NS_PER_S, "H": 3600 * NS_PER_S, "D": 86_400 * NS_PER_S}
WEIGHT_HEADER = "x-mbx-used-weight-"
ORDER_HEADER = "x-mbx-order-count-"
DEFAULT_RETRY_AFTER_S = 1.0


class Throttled(VenueError):
    """HTTP 429 kept coming back: the request was not executed."""


class IpBanned(VenueError):
    """HTTP 418: Binance banned this IP until ``until_ns``; nothing may be sent before then."""

    def __init__(self, message: str, until_ns: int) -> None:
        super().__init__(message)
        self.until_ns = until_ns


class UnknownOutcome(VenueError):
    """A non-idempotent request may or may not have been executed (timeout, 5xx, connection lost)."""


class ClockRejected(RequestRejected):
    """``-1021``: our timestamp is outside the venue's recvWindow even after re-measuring the offset."""


class CredentialsRejected(RequestRejected):
    """``-1022`` bad signature, ``-2014``/``-2015`` bad API key: a configuration error, never retried."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One Binance limiter: ``kind`` ``weight`` (per IP), ``orders`` (per account) or ``requests`` (raw, per IP)."""

    kind: str
    interval: str
    limit: int

    @property
    def interval_ns(self) -> int:
        return int(self.interval[:-1]) * _UNIT_NS[self.interval[-1]]


DEFAULT_LIMITS = (RateLimit("weight", "1M", 6000), RateLimit("orders", "10S", 50), RateLimit("orders", "1D", 160_000),
                  RateLimit("requests", "5M", 300_000))
"""Binance's published spot limits (read the real ones from exchangeInfo's ``rateLimits``)."""


def limits_from_exchange_info(doc: Mapping[str, Any]) -> tuple[RateLimit, ...]:
    """``exchangeInfo.rateLimits`` -> limits (RAW_REQUESTS has no header: only our own count tracks it)."""
    kinds = {"REQUEST_WEIGHT": "weight", "ORDERS": "orders", "RAW_REQUESTS": "requests"}
    letters = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}
    return tuple(
        RateLimit(kinds[r["rateLimitType"]], f"{r['intervalNum']}{letters[r['interval']]}", int(r["limit"]))
        for r in doc.get("rateLimits", ())
        if r.get("rateLimitType") in kinds
    )


@dataclass(slots=True)
class _Window:
    limit: RateLimit
    start_ns: int = 0
    used: int = 0


@dataclass(slots=True)
class RateLimiter:
    """Usage per limit and window (see module doc). Sans-I/O: every method takes ``now_ns``."""

    limits: tuple[RateLimit, ...] = DEFAULT_LIMITS
    headroom: float = 0.9
    blocked_until_ns: int = 0
    _windows: dict[tuple[str, str], _Window] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for lim in self.limits:
            self._windows[(lim.kind, lim.interval.upper())] = _Window(lim)

    def _roll(self, w: _Window, now_ns: int) -> None:
        start = now_ns - now_ns % w.limit.interval_ns
        if start != w.start_ns:
            w.start_ns, w.used = start, 0

    def used(self, kind: str, interval: str, now_ns: int) -> int:
        """What we believe is used in the current window."""
        w = self._windows[(kind, interval.upper())]
        self._roll(w, now_ns)
        return w.used

    def observe(self, headers: Mapping[str, str], now_ns: int) -> None:
        """Take the venue's counts from a response's headers."""
        for name, value in headers.items():
            low = name.lower()
            if low.startswith(WEIGHT_HEADER):
                key = ("weight", low[len(WEIGHT_HEADER):].upper())
            elif low.startswith(ORDER_HEADER):
                key = ("orders", low[len(ORDER_HEADER):].upper())
            else:
                continue
            w = self._windows.get(key)
            if w is not None and value.strip().isdigit():
                self._roll(w, now_ns)
                w.used = max(w.used, int(value))

    def wait_ns(self, weight: int, order: bool, now_ns: int) -> int:
        """How long to hold a request back (0: send now)."""
        wait = max(0, self.blocked_until_ns - now_ns)
        for w in self._windows.values():
            cost = _cost(w.limit.kind, weight, order)
            if not cost:
                continue
            self._roll(w, now_ns)
            if w.used + cost > w.limit.limit * self.headroom:
                wait = max(wait, w.start_ns + w.limit.interval_ns - now_ns)
        return wait

    def note_sent(self, weight: int, order: bool, now_ns: int) -> None:
        """Count a request we are sending (the venue's next headers correct the estimate)."""
        for w in self._windows.values():
            self._roll(w, now_ns)
            w.used += _cost(w.limit.kind, weight, order)

    def block(self, until_ns: int) -> None:
        """Nothing may be sent before ``until_ns`` (429 Retry-After)."""
        self.blocked_until_ns = max(self.blocked_until_ns, until_ns)


def _cost(kind: str, weight: int, order: bool) -> int:
    """What one request counts in a window of ``kind``: its weight, 1 if it places an order, always 1."""
    if kind == "weight":
        return weight
    return int(order) if kind == "orders" else 1


@dataclass(frozen=True, slots=True)
class RestResponse:
    """One answer: HTTP status, headers, raw body and its JSON (None if not JSON), and timings."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    doc: Any
    sent_ns: int
    received_ns: int


Build = Callable[[int], SignedRequest]
"""Builds (and signs) the request for local time ``ns``: called again for every re-send."""


class RestClient:
    """Async Binance REST client over one aiohttp session (see module doc)."""

    def __init__(
        self,
        base_url: str,
        builder: RequestBuilder,
        *,
        clock: Clock | None = None,
        limiter: RateLimiter | None = None,
        on_status: Callable[[FeedStatusChanged], None] | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        max_429: int = 5,
        backoff_s: float = 0.2,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.builder = builder
        self.server_time: ServerTime = builder.signer.server_time
        self.clock = clock or LiveClock()
        self.limiter = limiter or RateLimiter()
        self.on_status = on_status
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_429 = max_429
        self.backoff_s = backoff_s
        self.rng = rng or random.Random(0)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._banned: IpBanned | None = None
        self.throttle_waits = 0
        self.requests_sent = 0

    # ----------------------------------------------------------------- session

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def session(self) -> aiohttp.ClientSession:
        """The keep-alive session (created on first use, on the running loop)."""
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _status(self, status: str, detail: str) -> None:
        if self.on_status is not None:
            now = self.clock.now_ns()
            self.on_status(FeedStatusChanged(0, now, now, InstrumentId(""), "rest", status, detail))

    # ----------------------------------------------------------------- time

    async def sync_time(self) -> int:
        """Measure the server-time offset from one ``/api/v3/time`` round trip; returns it (ms)."""
        resp = await self._once(RequestBuilder.public("/api/v3/time"))
        if resp.status != 200 or not isinstance(resp.doc, dict) or "serverTime" not in resp.doc:
            raise VenueError(f"GET /api/v3/time answered HTTP {resp.status}: {resp.body[:200]!r}")
        self.server_time.observe(resp.sent_ns, int(resp.doc["serverTime"]), resp.received_ns)
        return self.server_time.offset_ms

    async def ensure_time(self) -> None:
        """Re-measure the offset when it is due (first use, after -1021, periodically)."""
        if self.server_time.due(self.clock.now_ns()):
            await self.sync_time()

    # ----------------------------------------------------------------- sending

    async def send(self, request: SignedRequest | Build) -> RestResponse:
        """Send with throttling and the retry rules of the module doc; returns the final answer.

        API errors other than those the module doc names come back as responses (the caller maps
        ``{"code", "msg"}`` to events).
        """
        signed = callable(request)
        build: Build = request if callable(request) else _constant(request)
        if signed:
            await self.ensure_time()
        attempt = throttled = 0
        resynced = False
        while True:
            req = build(self.clock.now_ns())
            try:
                resp = await self._throttled_once(req)
            except UnknownOutcome:
                if not req.idempotent or attempt >= self.retries:
                    raise
                attempt += 1
                await self._sleep(self._backoff(attempt))
                continue
            if resp.status == 429:
                throttled += 1
                self._on_429(resp, req, throttled)
                continue
            if resp.status >= 500:
                if not req.idempotent:
                    raise UnknownOutcome(f"{req.method} {req.path}: HTTP {resp.status}; execution status unknown")
                if attempt >= self.retries:
                    raise VenueError(f"{req.method} {req.path}: HTTP {resp.status} after {attempt + 1} attempts")
                attempt += 1
                await self._sleep(self._backoff(attempt))
                continue
            err = api_error(resp.status, resp.doc)
            if err is not None and err.code == -1021:
                if signed and not resynced:
                    resynced = True
                    self.server_time.invalidate()
                    self._status("resync_started", "-1021: re-measuring server time")
                    await self.sync_time()
                    continue
                raise ClockRejected(err.code, f"{err.msg} ({req.method} {req.path}: timestamp {req.timestamp_ms} ms, "
                                    f"recvWindow {req.recv_window_ms} ms, measured server offset "
                                    f"{self.server_time.offset_ms} ms)")
            if err is not None and err.code in (-1022, -2014, -2015):
                raise CredentialsRejected(err.code, f"{err.msg} ({req.method} {req.path}: check the API key and "
                                          "secret this process was given)")
            return resp

    def _on_429(self, resp: RestResponse, req: SignedRequest, count: int) -> None:
        retry_after = _retry_after_s(resp.headers)
        until = resp.received_ns + int(retry_after * NS_PER_S)
        self.limiter.block(until)
        self._status("throttled", f"HTTP 429 on {req.method} {req.path}; backing off {retry_after:g} s")
        if count > self.max_429:
            raise Throttled(f"{req.method} {req.path}: HTTP 429 {count} times in a row; giving up")

    def _backoff(self, attempt: int) -> float:
        base: float = self.backoff_s * 2 ** (attempt - 1)
        return base * (0.5 + self.rng.random())

    async def _throttled_once(self, req: SignedRequest) -> RestResponse:
        if self._banned is not None:
            if self.clock.now_ns() < self._banned.until_ns:
                raise self._banned
            self._banned = None
        wait = self.limiter.wait_ns(req.weight, req.order, self.clock.now_ns())
        if wait > 0:
            self.throttle_waits += 1
            await self._sleep(wait / NS_PER_S)
        self.limiter.note_sent(req.weight, req.order, self.clock.now_ns())
        resp = await self._once(req)
        self.limiter.observe(resp.headers, resp.received_ns)
        if resp.status == 418:
            until = resp.received_ns + int(_retry_after_s(resp.headers) * NS_PER_S)
            self._banned = IpBanned(
                f"HTTP 418 on {req.method} {req.path}: Binance banned this IP for {_retry_after_s(resp.headers):g} s "
                "after repeated 429s; stopped sending", until)
            self._status("banned", str(self._banned))
            raise self._banned
        return resp

    async def _once(self, req: SignedRequest) -> RestResponse:
        """One HTTP exchange; transport failures become :class:`UnknownOutcome`."""
        import aiohttp

        url = self.base_url + req.target
        sent = self.clock.now_ns()
        self.requests_sent += 1
        try:
            async with self.session().request(req.method, url, data=req.body or None, headers=dict(req.headers)) as r:
                body = await r.read()
                received = self.clock.now_ns()
                return RestResponse(r.status, dict(r.headers), body, decode_body(body), sent, received)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UnknownOutcome(f"{req.method} {req.path}: {type(exc).__name__}: {exc}") from exc


def _constant(request: SignedRequest) -> Build:
    def build(_ns: int) -> SignedRequest:
        return request

    return build


def _retry_after_s(headers: Mapping[str, str]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return DEFAULT_RETRY_AFTER_S


def latency_ns(resp: RestResponse) -> int:
    """Round trip of one answer (sent -> parsed), for ``order_round_trip`` latencies."""
    return resp.received_ns - resp.sent_ns


__all__ = [
    "DEFAULT_LIMITS",
    "Build",
    "ClockRejected",
    "CredentialsRejected",
    "IpBanned",
    "RateLimit",
    "RateLimiter",
    "RestClient",
    "RestResponse",
    "Throttled",
    "UnknownOutcome",
    "latency_ns",
    "limits_from_exchange_info",
]
