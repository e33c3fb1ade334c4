"""Incremental (streaming) features: one small object per feature, O(1) per update.

A strategy feeds each object the numbers its events carry (e8 ints, int ns times) and gets
a float back, or None while the feature is warming up (or undefined, e.g. an empty book
side). Every class performs exactly the float operations of its kernel in
``strategies.features._kernels`` (the vectorised form), in the same order, so a dataset
built from the catalog and a strategy trading live see bit-identical numbers; the rules
are in that module's doc and in docs/features.md. Windowed features take either
``window_ns`` (a time window ``(t - W, t]``) or ``count`` (the last N updates).

Times may not go back: a timestamp below the last one seen is treated as the last one
(the window's clock never rewinds), identically in both forms.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from numbers import Integral
from operator import itemgetter
from typing import NamedTuple

from engine.errors import ConfigError, InputError
from engine.events import Level
from strategies.features._kernels import (
    DAY_F,
    DAY_NS,
    DEGENERATE,
    EPOCH_WEEKDAY,
    SCALE2_F,
    SCALE_F,
    TWO_PI,
)

FUNDING_INTERVAL_NS = 8 * 3_600_000_000_000
"""Binance USD-M's default funding interval (00:00, 08:00, 16:00 UTC)."""


def check_period(name: str, value: int, minimum: int = 1) -> int:
    """``value`` as an int when it is an integer (numpy's too) >= ``minimum``, else a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_window(window_ns: int | None, count: int | None) -> tuple[int, int]:
    """(window_ns, count) with exactly one of them set (the other 0), both positive ints."""
    if (window_ns is None) == (count is None):
        raise ConfigError(
            f"give exactly one of window_ns and count (got window_ns={window_ns}, count={count})"
        )
    if window_ns is not None:
        return check_period("window_ns", window_ns), 0
    assert count is not None
    return 0, check_period("count", count)


def check_width(k: float) -> float:
    """Bollinger's band width in standard deviations: a finite number >= 0."""
    if isinstance(k, bool) or not isinstance(k, int | float) or not math.isfinite(k) or k < 0.0:
        raise ConfigError(f"k must be a finite number >= 0, got {k!r}")
    return float(k)


# --------------------------------------------------------------------------- price series


class Rsi:
    """Wilder RSI over prices (e8): the peer benchmark's and the ``rsi`` strategy's numbers.

    The first ``period`` changes are averaged (``avg += x / period``), then
    ``avg = (avg * (period - 1) + x) / period``; RSI = 100 when the average loss is 0.
    The first value comes with the ``period + 1``-th price. (``price / 1e8`` converts the int
    exactly as ``float(price)`` does; adding the peer's ``+ 0.0`` for the side that did not
    move is a no-op on a non-negative average, so the branches below skip it.)
    """

    __slots__ = ("_count", "_gain", "_loss", "_nf", "_nm1", "_prev", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period("period", period)
        self._nf = float(self.period)
        self._nm1 = float(self.period - 1)
        self._prev = 0.0
        self._count = -1  # changes seen; -1 until the first price
        self._gain = 0.0
        self._loss = 0.0
        self.value: float | None = None

    def update(self, price: int) -> float | None:
        px = price / SCALE_F
        change = px - self._prev
        self._prev = px
        count = self._count
        if count >= self.period:  # steady state: Wilder smoothing
            nf = self._nf
            nm1 = self._nm1
            if change > 0.0:
                gain = self._gain = (self._gain * nm1 + change) / nf
                loss = self._loss = self._loss * nm1 / nf
            elif change < 0.0:
                gain = self._gain = self._gain * nm1 / nf
                loss = self._loss = (self._loss * nm1 - change) / nf
            else:
                gain = self._gain = self._gain * nm1 / nf
                loss = self._loss = self._loss * nm1 / nf
        else:  # the first price, then the seeding average
            count = self._count = count + 1
            if count == 0:
                return None
            if change > 0.0:
                self._gain += change / self._nf
            elif change < 0.0:
                self._loss += -change / self._nf
            if count < self.period:
                return None
            gain, loss = self._gain, self._loss
        v = self.value = 100.0 if loss == 0.0 else 100.0 - 100.0 / (1.0 + gain / loss)
        return v


class Bollinger:
    """Bollinger bands (mean +- k population std of the last ``window`` prices) and %B.

    ``update`` returns %B = (price - lower) / (upper - lower), 0.5 when the bands have zero
    width; ``mid``/``upper``/``lower`` hold the bands (in price units). The mean comes from
    an exact int sum of deviations to an anchor price, the variance from a float sum of
    squared deviations (anchored, so no cancellation against the price level).
    """

    __slots__ = ("_anchor", "_count", "_nf", "_pos", "_q", "_ring", "_s", "_since", "k", "lower", "mid",
                 "upper", "value", "window")  # fmt: skip

    def __init__(self, window: int = 20, k: float = 2.0) -> None:
        self.window = check_period("window", window)
        self.k = check_width(k)
        self._nf = float(window)
        self._ring = [0] * window
        self._pos = 0
        self._count = 0
        self._anchor = 0
        self._s = 0
        self._q = 0.0
        self._since = 0
        self.mid: float | None = None
        self.upper: float | None = None
        self.lower: float | None = None
        self.value: float | None = None

    def update(self, price: int) -> float | None:
        if not self._count:
            self._anchor = price
        anchor = self._anchor
        n = self.window
        d = price - anchor
        fd = float(d)
        self._s += d
        self._q += fd * fd
        ring = self._ring
        pos = self._pos
        self._count += 1
        if self._count > n:
            do = ring[pos] - anchor
            fo = float(do)
            self._s -= do
            self._q -= fo * fo
            ring[pos] = price
            self._since += 1
            if self._since >= n:
                self._recompute(price, pos)
        else:
            ring[pos] = price
        self._pos = pos + 1 if pos + 1 < n else 0
        if self._count < n:
            return None
        m = float(self._s) / self._nf
        var = self._q / self._nf - m * m
        if var < 0.0:
            var = 0.0
        sd = math.sqrt(var) / SCALE_F
        c = (float(self._anchor) + m) / SCALE_F
        u = c + self.k * sd
        lo = c - self.k * sd
        w = u - lo
        self.mid, self.upper, self.lower = c, u, lo
        v = self.value = (float(price) / SCALE_F - lo) / w if w > 0.0 else 0.5
        return v

    def _recompute(self, anchor: int, newest: int) -> None:
        """Re-anchor at the newest price; re-sum the window oldest first (see _kernels doc)."""
        ring = self._ring
        n = self.window
        s = 0
        q = 0.0
        for j in range(newest + 1, newest + 1 + n):
            dj = ring[j % n] - anchor
            fj = float(dj)
            s += dj
            q += fj * fj
        self._anchor, self._s, self._q, self._since = anchor, s, q, 0


class RealizedVolatility:
    """Sample standard deviation (ddof=1, like pandas) of the last ``window`` log returns.

    Log returns are ``math.log(float(p) / float(prev))``; the first value comes with the
    ``window + 1``-th price. Not annualised: multiply by sqrt(updates per year) if needed.
    """

    __slots__ = ("_count", "_nf", "_pos", "_prev", "_q", "_ring", "_s", "_since", "value", "window")

    def __init__(self, window: int = 20) -> None:
        self.window = check_period("window", window, 2)
        self._nf = float(window)
        self._ring = [0.0] * window
        self._pos = 0
        self._count = 0
        self._prev: int | None = None
        self._s = 0.0
        self._q = 0.0
        self._since = 0
        self.value: float | None = None

    def update(self, price: int) -> float | None:
        if price <= 0:
            raise InputError(f"price must be > 0, got {price}", source="RealizedVolatility")
        prev = self._prev
        self._prev = price
        if prev is None:
            return None
        x = math.log(float(price) / float(prev))
        n = self.window
        self._s += x
        self._q += x * x
        ring = self._ring
        pos = self._pos
        self._count += 1
        if self._count > n:
            o = ring[pos]
            self._s -= o
            self._q -= o * o
            ring[pos] = x
            self._since += 1
            if self._since >= n:
                s = 0.0
                q = 0.0
                for j in range(pos + 1, pos + 1 + n):
                    r = ring[j % n]
                    s += r
                    q += r * r
                self._s, self._q, self._since = s, q, 0
        else:
            ring[pos] = x
        self._pos = pos + 1 if pos + 1 < n else 0
        if self._count < n:
            return None
        var = (self._q - self._s * self._s / self._nf) / (self._nf - 1.0)
        if var < 0.0:
            var = 0.0
        v = self.value = math.sqrt(var)
        return v


class _Comoments:
    """Rolling sums of two aligned log-return series (x = the asset, y = the reference)."""

    __slots__ = ("_count", "_nf", "_pos", "_prev", "_ring", "_since", "_sums", "value", "window")

    def __init__(self, window: int) -> None:
        self.window = check_period("window", window, 2)
        self._nf = float(window)
        self._ring: list[tuple[float, float]] = [(0.0, 0.0)] * window
        self._pos = 0
        self._count = 0
        self._prev: tuple[int, int] | None = None
        self._sums = [0.0, 0.0, 0.0, 0.0, 0.0]  # sx, sy, sxx, syy, sxy
        self._since = 0
        self.value: float | None = None

    def _push(self, price: int, ref_price: int) -> bool:
        """Add one aligned pair of prices (e8, > 0); True once ``window`` returns are in."""
        if price <= 0 or ref_price <= 0:
            raise InputError(f"prices must be > 0, got {price} and {ref_price}", source=type(self).__name__)
        prev = self._prev
        self._prev = (price, ref_price)
        if prev is None:
            return False
        a = math.log(float(price) / float(prev[0]))
        b = math.log(float(ref_price) / float(prev[1]))
        sm = self._sums
        sm[0] += a
        sm[1] += b
        sm[2] += a * a
        sm[3] += b * b
        sm[4] += a * b
        n = self.window
        ring = self._ring
        pos = self._pos
        self._count += 1
        if self._count > n:
            oa, ob = ring[pos]
            sm[0] -= oa
            sm[1] -= ob
            sm[2] -= oa * oa
            sm[3] -= ob * ob
            sm[4] -= oa * ob
            ring[pos] = (a, b)
            self._since += 1
            if self._since >= n:
                self._recompute(pos)
        else:
            ring[pos] = (a, b)
        self._pos = pos + 1 if pos + 1 < n else 0
        return self._count >= n

    def _recompute(self, newest: int) -> None:
        sx = sy = sxx = syy = sxy = 0.0
        n = self.window
        for j in range(newest + 1, newest + 1 + n):
            a, b = self._ring[j % n]
            sx += a
            sy += b
            sxx += a * a
            syy += b * b
            sxy += a * b
        self._sums = [sx, sy, sxx, syy, sxy]
        self._since = 0

    def _centred(self) -> tuple[float, float, float, bool, bool]:
        """(dx, dy, cxy, x has variance, y has variance) of the current window."""
        sx, sy, sxx, syy, sxy = self._sums
        nf = self._nf
        dx = sxx - sx * sx / nf
        dy = syy - sy * sy / nf
        cxy = sxy - sx * sy / nf
        return dx, dy, cxy, dx > DEGENERATE * sxx, dy > DEGENERATE * syy


class RollingBeta(_Comoments):
    """Beta of the asset's log returns on the reference's (e.g. BTC) over ``window`` aligned returns.

    ``update(price, ref_price)`` takes both prices sampled at the same instant (a timer, a
    bar close). None until ``window`` returns, or while the reference does not move.
    """

    __slots__ = ()

    def __init__(self, window: int = 60) -> None:
        super().__init__(window)

    def update(self, price: int, ref_price: int) -> float | None:
        if not self._push(price, ref_price):
            return None
        _dx, dy, cxy, _hx, hy = self._centred()
        v = self.value = cxy / dy if hy else None
        return v


class RollingCorrelation(_Comoments):
    """Pearson correlation of aligned log returns (asset vs reference), clamped to [-1, 1]."""

    __slots__ = ()

    def __init__(self, window: int = 60) -> None:
        super().__init__(window)

    def update(self, price: int, ref_price: int) -> float | None:
        if not self._push(price, ref_price):
            return None
        dx, dy, cxy, hx, hy = self._centred()
        if not (hx and hy):
            self.value = None
            return None
        c = cxy / math.sqrt(dx * dy)
        v = self.value = 1.0 if c > 1.0 else -1.0 if c < -1.0 else c
        return v


# --------------------------------------------------------------------------- trades


class TradeFlowImbalance:
    """(taker buy qty - taker sell qty) / total qty over a time or count window, in [-1, 1].

    ``buyer_maker`` True means the taker sold. Sums are exact ints. Warm-up: ``count``
    trades, or (time window) until ``window_ns`` has passed since the first trade.
    """

    __slots__ = ("_count", "_last", "_q", "_signed", "_t0", "_total", "_w", "value")

    def __init__(self, window_ns: int | None = None, count: int | None = None) -> None:
        self._w, self._count = check_window(window_ns, count)
        self._q: deque[tuple[int, int, int]] = deque()
        self._signed = 0
        self._total = 0
        self._t0: int | None = None
        self._last = 0
        self.value: float | None = None

    def update(self, ts: int, qty: int, buyer_maker: bool) -> float | None:
        if self._t0 is None:
            self._t0 = self._last = ts
        elif ts < self._last:
            ts = self._last
        else:
            self._last = ts
        signed = -qty if buyer_maker else qty
        self._signed += signed
        self._total += qty
        q = self._q
        q.append((ts, signed, qty))
        if self._count:
            if len(q) > self._count:
                _t, old, x = q.popleft()
                self._signed -= old
                self._total -= x
            ready = len(q) >= self._count
        else:
            cut = ts - self._w
            while q[0][0] <= cut:
                _t, old, x = q.popleft()
                self._signed -= old
                self._total -= x
            ready = ts - self._t0 >= self._w
        v = self.value = float(self._signed) / float(self._total) if ready and self._total != 0 else None
        return v


class VwapDeviation:
    """last price / VWAP - 1 over a time or count window (0.001 = 10 bps above VWAP).

    Quantity sum exact (int); notional sum float (``float(p) * float(q)`` per trade,
    re-summed once per window's worth of evictions). Warm-up as TradeFlowImbalance.
    """

    __slots__ = ("_count", "_last", "_q", "_since", "_spq", "_sq", "_t0", "_w", "value")

    def __init__(self, window_ns: int | None = None, count: int | None = None) -> None:
        self._w, self._count = check_window(window_ns, count)
        self._q: deque[tuple[int, int, int]] = deque()
        self._sq = 0
        self._spq = 0.0
        self._since = 0
        self._t0: int | None = None
        self._last = 0
        self.value: float | None = None

    def update(self, ts: int, price: int, qty: int) -> float | None:
        if self._t0 is None:
            self._t0 = self._last = ts
        elif ts < self._last:
            ts = self._last
        else:
            self._last = ts
        self._spq += float(price) * float(qty)
        self._sq += qty
        q = self._q
        q.append((ts, price, qty))
        if self._count:
            while len(q) > self._count:
                _t, p, x = q.popleft()
                self._spq -= float(p) * float(x)
                self._sq -= x
                self._since += 1
            ready = len(q) >= self._count
        else:
            cut = ts - self._w
            while q[0][0] <= cut:
                _t, p, x = q.popleft()
                self._spq -= float(p) * float(x)
                self._sq -= x
                self._since += 1
            ready = ts - self._t0 >= self._w
        if self._since >= len(q):
            spq = 0.0
            for _t, p, x in q:
                spq += float(p) * float(x)
            self._spq, self._since = spq, 0
        spq = self._spq
        v = self.value = float(price) * float(self._sq) / spq - 1.0 if ready and spq > 0.0 else None
        return v


# --------------------------------------------------------------------------- book / quotes


_qty_of = itemgetter(1)


def _depth(levels: Sequence[Level], n: int) -> int:
    """Total quantity of the first ``n`` levels (exact int)."""
    return sum(map(_qty_of, levels[:n] if len(levels) > n else levels))


class OrderBookImbalance:
    """(bid qty - ask qty) / (bid qty + ask qty) over the top ``levels`` of each side, in [-1, 1].

    ``update`` takes the sides best-first as (price e8, qty e8) levels (fewer than
    ``levels`` is fine); ``update_top`` is the top-of-book (bookTicker) form. None when both
    sides are empty.
    """

    __slots__ = ("levels", "value")

    def __init__(self, levels: int = 5) -> None:
        self.levels = check_period("levels", levels)
        self.value: float | None = None

    def update(self, bids: Sequence[Level], asks: Sequence[Level]) -> float | None:
        return self.update_top(_depth(bids, self.levels), _depth(asks, self.levels))

    def update_top(self, bid_qty: int, ask_qty: int) -> float | None:
        total = bid_qty + ask_qty
        v = self.value = float(bid_qty - ask_qty) / float(total) if total != 0 else None
        return v


class DepthRatio:
    """bid qty / ask qty summed over the top ``levels`` (default 20) of each side; None if no asks."""

    __slots__ = ("levels", "value")

    def __init__(self, levels: int = 20) -> None:
        self.levels = check_period("levels", levels)
        self.value: float | None = None

    def update(self, bids: Sequence[Level], asks: Sequence[Level]) -> float | None:
        bid = _depth(bids, self.levels)
        ask = _depth(asks, self.levels)
        v = self.value = float(bid) / float(ask) if ask != 0 else None
        return v


class Microprice:
    """Size-weighted mid (bid x ask_qty + ask x bid_qty) / (bid_qty + ask_qty), in price units.

    None when a side has no price or both quantities are 0.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float | None = None

    def update(self, bid_price: int, bid_qty: int, ask_price: int, ask_qty: int) -> float | None:
        total = bid_qty + ask_qty
        if bid_price <= 0 or ask_price <= 0 or total == 0:
            self.value = None
            return None
        v = self.value = (
            (float(bid_price) * float(ask_qty) + float(ask_price) * float(bid_qty)) / float(total) / SCALE_F
        )
        return v


class Spread:
    """ask - bid in price units, or in basis points of the mid with ``bps=True``.

    Kept signed (a crossed book gives a negative spread); None when a side has no price.
    """

    __slots__ = ("bps", "value")

    def __init__(self, bps: bool = False) -> None:
        self.bps = bool(bps)
        self.value: float | None = None

    def update(self, bid_price: int, ask_price: int) -> float | None:
        if bid_price <= 0 or ask_price <= 0:
            self.value = None
            return None
        diff = float(ask_price - bid_price)
        v = self.value = diff / float(ask_price + bid_price) * 20_000.0 if self.bps else diff / SCALE_F
        return v


# --------------------------------------------------------------------------- calendar


class TimeFeatures(NamedTuple):
    """Cyclical encodings of a UTC time: time of day (continuous) and weekday (Monday = 0)."""

    hour_sin: float
    hour_cos: float
    dow_sin: float
    dow_cos: float


class TimeEncoding:
    """sin/cos of the time of day (fraction of 24 h, so 12:30 is 12.5 h) and of the weekday.

    The weekday pair is computed once per UTC day (same expression, cached).
    """

    __slots__ = ("_day", "_dow", "value")

    def __init__(self) -> None:
        self._day: int | None = None
        self._dow = (0.0, 1.0)
        self.value: TimeFeatures | None = None

    def update(self, ts: int) -> TimeFeatures:
        day = ts // DAY_NS
        if day != self._day:
            b = TWO_PI * float((day + EPOCH_WEEKDAY) % 7) / 7.0
            self._day, self._dow = day, (math.sin(b), math.cos(b))
        a = TWO_PI * float(ts - day * DAY_NS) / DAY_F  # == ts % DAY_NS (floor division)
        v = self.value = _new_tuple(TimeFeatures, (math.sin(a), math.cos(a), *self._dow))
        return v


_new_tuple = tuple.__new__
"""Builds a NamedTuple without its Python-level ``__new__`` (3x faster on the hot path)."""


# --------------------------------------------------------------------------- futures


class FundingRate:
    """The last funding rate seen (a fraction: 0.0001 = 0.01 % per interval).

    Feed it settled rates (``FundingRateReceived``) or the predicted rate of mark-price
    updates; ``value`` is what a dataset row at a later time sees (as of, inclusive).
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float | None = None

    def update(self, rate_e8: int) -> float:
        v = self.value = float(rate_e8) / SCALE_F
        return v


class TimeToFunding:
    """Seconds until the next funding time.

    When a mark-price update told us ``next_funding_time`` (``set_next``) and it is still
    ahead, that is the answer; otherwise the fixed schedule: the next multiple of
    ``interval_ns`` after ``ts`` (UTC midnight-aligned, as Binance's 8 h funding).
    """

    __slots__ = ("_next", "interval_ns", "value")

    def __init__(self, interval_ns: int = FUNDING_INTERVAL_NS) -> None:
        self.interval_ns = check_period("interval_ns", interval_ns)
        self._next = 0
        self.value: float | None = None

    def set_next(self, next_funding_ns: int) -> None:
        self._next = next_funding_ns

    def update(self, ts: int) -> float:
        nxt = self._next if self._next > ts else (ts // self.interval_ns + 1) * self.interval_ns
        v = self.value = float(nxt - ts) / 1e9
        return v


class OpenInterestChange:
    """oi / oi_then - 1: relative change of open interest (e8) over a time or count window.

    ``oi_then`` is the value ``count`` updates back, or the last value at or before
    ``ts - window_ns``; None until such a value exists (or when it is 0).
    """

    __slots__ = ("_count", "_last", "_q", "_w", "value")

    def __init__(self, window_ns: int | None = None, count: int | None = None) -> None:
        self._w, self._count = check_window(window_ns, count)
        self._q: deque[tuple[int, int]] = deque()
        self._last: int | None = None
        self.value: float | None = None

    def update(self, ts: int, oi: int) -> float | None:
        if self._last is not None and ts < self._last:
            ts = self._last
        self._last = ts
        q = self._q
        q.append((ts, oi))
        if self._count:
            if len(q) > self._count + 1:
                q.popleft()
            old = q[0][1] if len(q) > self._count else 0
        else:
            cut = ts - self._w
            while len(q) > 1 and q[1][0] <= cut:
                q.popleft()
            old = q[0][1] if q[0][0] <= cut else 0
        v = self.value = float(oi - old) / float(old) if old != 0 else None
        return v


class LiquidationIntensity:
    """Liquidated notional (quote units, price x qty) in the time window ``(t - W, t]``.

    ``update`` adds one liquidation; ``value_at`` reads the window at any later time (a
    dataset row, a timer) and lets old liquidations expire. None until ``window_ns`` has
    passed since the first call of either.
    """

    __slots__ = ("_now", "_q", "_s", "_since", "_t0", "_w", "value")

    def __init__(self, window_ns: int) -> None:
        self._w = check_period("window_ns", window_ns)
        self._q: deque[tuple[int, int, int]] = deque()
        self._s = 0.0
        self._since = 0
        self._t0: int | None = None
        self._now = 0
        self.value: float | None = None

    def _clock(self, ts: int) -> int:
        if self._t0 is None:
            self._t0 = self._now = ts
        elif ts > self._now:
            self._now = ts
        return self._now

    def update(self, ts: int, price: int, qty: int) -> float | None:
        now = self._clock(ts)
        self._s += float(price) * float(qty)
        self._q.append((now, price, qty))
        return self._expire(now)

    def value_at(self, ts: int) -> float | None:
        return self._expire(self._clock(ts))

    def _expire(self, now: int) -> float | None:
        q = self._q
        cut = now - self._w
        while q and q[0][0] <= cut:
            _t, p, x = q.popleft()
            self._s -= float(p) * float(x)
            self._since += 1
        if self._since >= len(q):
            s = 0.0
            for _t, p, x in q:
                s += float(p) * float(x)
            self._s, self._since = s, 0
        assert self._t0 is not None
        v = self.value = self._s / SCALE2_F if now - self._t0 >= self._w else None
        return v
