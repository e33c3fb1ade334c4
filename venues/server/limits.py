"""Binance's rate limits, sans-I/O: request weight per IP, order counts per account, 429 then 418.

Windows are fixed intervals aligned to the epoch, as Binance's counters are (the ``-1M`` weight
resets at each minute boundary, ``-10S`` orders every ten seconds, ``-1D`` at UTC midnight).
Every answer carries ``X-MBX-USED-WEIGHT-1M`` and, for order requests, ``X-MBX-ORDER-COUNT-10S``
and ``X-MBX-ORDER-COUNT-1D``. RAW_REQUESTS (every request, any weight, per IP per 5 minutes) has no
header. The order counts are of *unfilled* orders: an order's first fill gives one back.

Going over a limit gives HTTP 429 with ``Retry-After`` (seconds to the end of the window) and
-1003 (weight, raw requests) or -1015 (orders). A client that keeps sending while told to wait is refused
(429 again, with what is left of the wait) and collects strikes; at ``ban_after`` strikes its IP is banned: HTTP 418 -1003 "Way too many requests; IP(..)
banned until ..." with ``Retry-After`` for every request until the ban ends. Ban lengths
escalate per IP: ``ban_base_s``, doubled at each further ban, capped at ``ban_max_s`` (Binance:
"from 2 minutes up to 3 days").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn

from venues.server.errors import ApiError

MINUTE_MS = 60_000
TEN_S_MS = 10_000
DAY_MS = 86_400_000
FIVE_MIN_MS = 300_000


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """The limits the server enforces and advertises in exchangeInfo ``rateLimits``.

    Defaults are the reference's numbers (6,000 weight/min since 2023-08; 50 orders/10 s and
    160,000/day as in the docs example); tests lower them to reach 429/418 quickly.
    """

    weight_per_minute: int = 6000
    orders_per_10s: int = 50
    orders_per_day: int = 160_000
    raw_requests_per_5m: int = 300_000
    """Requests of any weight per IP per 5 minutes (300,000 since 2026-04-02; 61,000 before)."""
    ban_after: int = 3
    """Requests sent while a 429's Retry-After is still running before the IP is banned (418)."""
    ban_base_s: int = 120
    ban_max_s: int = 3 * 86_400

    def rate_limits_json(self) -> list[dict[str, object]]:
        """exchangeInfo's ``rateLimits`` array for these limits."""
        return [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self.weight_per_minute},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": self.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": self.orders_per_day},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": self.raw_requests_per_5m},
        ]


@dataclass(slots=True)
class _Window:
    """A counter over one fixed window: ``start`` is the window's index (now // length)."""

    length_ms: int
    start: int = -1
    used: int = 0

    def current(self, now_ms: int) -> int:
        idx = now_ms // self.length_ms
        if idx != self.start:
            self.start, self.used = idx, 0
        return self.used

    def seconds_left(self, now_ms: int) -> int:
        end = (now_ms // self.length_ms + 1) * self.length_ms
        return max(1, -(-(end - now_ms) // 1000))


@dataclass(slots=True)
class _IpState:
    weight: _Window = field(default_factory=lambda: _Window(MINUTE_MS))
    raw: _Window = field(default_factory=lambda: _Window(FIVE_MIN_MS))
    blocked_until_ms: int = 0
    """End of the last 429's Retry-After: requests before it are strikes."""
    strikes: int = 0
    early: int = 0
    """Every request that arrived before a Retry-After had run out (never reset: what tests read)."""
    banned_until_ms: int = 0
    bans: int = 0


class RateLimiter:
    """Counts weight per IP and orders for the account; raises ApiError 429/418 when over."""

    def __init__(self, config: LimitsConfig | None = None) -> None:
        self.config = config or LimitsConfig()
        self._ips: dict[str, _IpState] = {}
        self._orders_10s = _Window(TEN_S_MS)
        self._orders_day = _Window(DAY_MS)

    def charge(self, ip: str, weight: int, now_ms: int) -> None:
        """Count a request of ``weight`` from ``ip``; 418 while banned, 429 over the minute's limit."""
        st = self._ips.setdefault(ip, _IpState())
        if now_ms < st.banned_until_ms:
            raise self._banned(ip, st, now_ms)
        if now_ms < st.blocked_until_ms:
            st.early += 1
            st.strikes += 1
            if st.strikes >= self.config.ban_after:
                self._ban(ip, st, now_ms)
            left = max(1, -(-(st.blocked_until_ms - now_ms) // 1000))
            raise ApiError(-1003, f"Too many requests; IP({ip}) must wait {left} s (Retry-After) before the next request.",
                           429, left)
        self._spend(ip, st, st.raw, 1, self.config.raw_requests_per_5m, "5 minutes", now_ms)
        self._spend(ip, st, st.weight, weight, self.config.weight_per_minute, "minute", now_ms)

    def _spend(self, ip: str, st: _IpState, window: _Window, cost: int, limit: int, per: str, now_ms: int) -> None:
        """Add ``cost`` to one of the IP's windows; over ``limit``: block the IP to the window's end, 429."""
        window.used = window.current(now_ms) + cost
        if window.used > limit:
            self._block(st, now_ms, window.seconds_left(now_ms))
            raise ApiError(
                -1003,
                f"Too many requests; current limit of IP({ip}) is {limit} requests per {per}."
                " Please use WebSocket Streams for live updates to avoid polling the API.",
                429,
                window.seconds_left(now_ms),
            )

    def block(self, ip: str, now_ms: int, seconds: int) -> None:
        """A 429 was answered outside the weight count (an injected fault): its Retry-After binds too.

        Binance bans an IP that keeps sending through a Retry-After; an injected 429 must count the
        same way, or a client that ignores it would pass every fault test.
        """
        self._block(self._ips.setdefault(ip, _IpState()), now_ms, seconds)

    def early_requests(self, ip: str) -> int:
        """How many requests from ``ip`` arrived while a 429's Retry-After was still running."""
        st = self._ips.get(ip)
        return 0 if st is None else st.early

    def _block(self, st: _IpState, now_ms: int, seconds: int) -> None:
        if now_ms >= st.blocked_until_ms:
            st.strikes = 0
        st.blocked_until_ms = max(st.blocked_until_ms, now_ms + seconds * 1000)

    def _ban(self, ip: str, st: _IpState, now_ms: int) -> NoReturn:
        cfg = self.config
        st.bans += 1
        length = min(cfg.ban_max_s, cfg.ban_base_s * 2 ** (st.bans - 1))
        st.banned_until_ms = now_ms + length * 1000
        st.strikes = 0
        st.blocked_until_ms = 0
        raise self._banned(ip, st, now_ms)

    @staticmethod
    def _banned(ip: str, st: _IpState, now_ms: int) -> ApiError:
        left = max(1, -(-(st.banned_until_ms - now_ms) // 1000))
        return ApiError(
            -1003,
            f"Way too many requests; IP({ip}) banned until {st.banned_until_ms}."
            " Please use WebSocket Streams for live updates to avoid bans.",
            418,
            left,
        )

    def refund(self, ip: str, weight: int, now_ms: int) -> None:
        """Give back the weight of a request that turned out free (a successful order placement)."""
        st = self._ips.get(ip)
        if st is not None and st.weight.current(now_ms) >= weight:
            st.weight.used -= weight

    def check_order(self, ip: str, now_ms: int, n: int = 1) -> None:
        """Before placing ``n`` orders: 429 -1015 if the 10 s or daily count would go over."""
        cfg = self.config
        for window, limit, label in (
            (self._orders_10s, cfg.orders_per_10s, "10 SECOND"),
            (self._orders_day, cfg.orders_per_day, "1 DAY"),
        ):
            if window.current(now_ms) + n > limit:
                st = self._ips.setdefault(ip, _IpState())
                self._block(st, now_ms, window.seconds_left(now_ms))
                raise ApiError(
                    -1015, f"Too many new orders; current limit is {limit} orders per {label}.", 429,
                    window.seconds_left(now_ms),
                )

    def count_orders(self, now_ms: int, n: int = 1) -> None:
        """Count ``n`` accepted orders (an OCO list counts 2)."""
        self._orders_10s.current(now_ms)
        self._orders_day.current(now_ms)
        self._orders_10s.used += n
        self._orders_day.used += n

    def order_first_filled(self, now_ms: int) -> None:
        """An order's first fill gives one back in every order-count window (Binance's decrement rule).

        Why: the ORDERS limit counts *unfilled* orders, so a maker whose quotes trade can keep
        quoting; without the decrement the server would throttle a strategy Binance lets through.
        """
        for window in (self._orders_10s, self._orders_day):
            if window.current(now_ms) > 0:
                window.used -= 1

    def headers(self, ip: str, now_ms: int, orders: bool) -> list[tuple[str, str]]:
        """The usage headers Binance puts on every answer (order counts on order requests)."""
        st = self._ips.get(ip)
        used = st.weight.current(now_ms) if st is not None else 0
        out = [("X-MBX-USED-WEIGHT-1M", str(used))]
        if orders:
            out.append(("X-MBX-ORDER-COUNT-10S", str(self._orders_10s.current(now_ms))))
            out.append(("X-MBX-ORDER-COUNT-1D", str(self._orders_day.current(now_ms))))
        return out
