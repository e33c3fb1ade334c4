"""Loop kernels of the stateful vectorised features (numba-compatible plain Python).

Each kernel performs, per row, exactly the float operations of its incremental twin in
``strategies.features.incremental``, in the same order, with the same accumulator rules:

- e8 ints are summed as ints (exact; int64 here, Python ints there, equal while in range);
- an int becomes a float only through ``float(x)`` (exact below 2**53), never through an
  int/int true division, which Python rounds differently from numba for large ints;
- rolling float sums add the new term, then subtract each evicted term, and are recomputed
  from the window (oldest first) once the number of evictions since the last recompute
  reaches the window's length: amortised O(1), and rounding drift never outlives a window.

Inputs arrive validated and with time columns already made non-decreasing (see
``vectorized``). Outputs are float64 arrays with NaN where the incremental form gives None.
The numba rule "same type on every path" is why counters start as ints and sums as floats.
"""

from __future__ import annotations

import math

import numpy as np

from strategies.features._jit import kernel

SCALE_F = 1e8
"""e8 scale as a float: ``float(e8) / SCALE_F`` is the value in units."""
SCALE2_F = 1e16
"""Scale of a price x qty product of two e8 ints."""
DAY_NS = 86_400_000_000_000
DAY_F = 86_400_000_000_000.0
TWO_PI = 2.0 * math.pi
EPOCH_WEEKDAY = 3
"""1970-01-01 was a Thursday; weekdays count Monday = 0."""
DEGENERATE = 1e-12
"""A centred sum of squares at or below this fraction of the raw sum of squares is treated as
zero variance (it is rounding noise), so beta and correlation are undefined there."""


@kernel
def rsi_kernel(price: np.ndarray, period: int) -> np.ndarray:
    """Wilder RSI: simple-average seed over the first ``period`` changes, then smoothing."""
    n = price.shape[0]
    out = np.full(n, np.nan)
    if n == 0:
        return out
    nf = float(period)
    nm1 = float(period - 1)
    prev = float(price[0]) / SCALE_F
    gain = 0.0
    loss = 0.0
    for i in range(1, n):
        px = float(price[i]) / SCALE_F
        change = px - prev
        prev = px
        up = change if change > 0.0 else 0.0
        down = -change if change < 0.0 else 0.0
        if i <= period:
            gain += up / nf
            loss += down / nf
            if i < period:
                continue
        else:
            gain = (gain * nm1 + up) / nf
            loss = (loss * nm1 + down) / nf
        out[i] = 100.0 if loss == 0.0 else 100.0 - 100.0 / (1.0 + gain / loss)
    return out


@kernel
def bollinger_kernel(
    price: np.ndarray, window: int, k: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bands (population std) from deviations to an anchor: exact int sum, float sum of squares."""
    n = price.shape[0]
    mid = np.full(n, np.nan)
    upper = np.full(n, np.nan)
    lower = np.full(n, np.nan)
    pct_b = np.full(n, np.nan)
    if n == 0:
        return mid, upper, lower, pct_b
    nf = float(window)
    anchor = price[0]
    s = 0
    q = 0.0
    since = 0
    for i in range(n):
        d = price[i] - anchor
        fd = float(d)
        s += d
        q += fd * fd
        if i >= window:
            do = price[i - window] - anchor
            fo = float(do)
            s -= do
            q -= fo * fo
            since += 1
            if since >= window:
                anchor = price[i]
                s = 0
                q = 0.0
                for j in range(i - window + 1, i + 1):
                    dj = price[j] - anchor
                    fj = float(dj)
                    s += dj
                    q += fj * fj
                since = 0
        if i + 1 >= window:
            m = float(s) / nf
            var = q / nf - m * m
            if var < 0.0:
                var = 0.0
            sd = math.sqrt(var) / SCALE_F
            c = (float(anchor) + m) / SCALE_F
            u = c + k * sd
            lo = c - k * sd
            w = u - lo
            mid[i] = c
            upper[i] = u
            lower[i] = lo
            pct_b[i] = (float(price[i]) / SCALE_F - lo) / w if w > 0.0 else 0.5
    return mid, upper, lower, pct_b


@kernel
def realized_vol_kernel(price: np.ndarray, window: int) -> np.ndarray:
    """Sample std (ddof=1) of the last ``window`` log returns; first value at row ``window``."""
    n = price.shape[0]
    out = np.full(n, np.nan)
    if n < 2:
        return out
    r = np.empty(n - 1)
    for i in range(1, n):
        r[i - 1] = math.log(float(price[i]) / float(price[i - 1]))
    nf = float(window)
    s = 0.0
    q = 0.0
    since = 0
    for j in range(n - 1):
        x = r[j]
        s += x
        q += x * x
        if j >= window:
            o = r[j - window]
            s -= o
            q -= o * o
            since += 1
            if since >= window:
                s = 0.0
                q = 0.0
                for m in range(j - window + 1, j + 1):
                    s += r[m]
                    q += r[m] * r[m]
                since = 0
        if j + 1 >= window:
            var = (q - s * s / nf) / (nf - 1.0)
            if var < 0.0:
                var = 0.0
            out[j + 1] = math.sqrt(var)
    return out


@kernel
def comoments_kernel(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(beta of x on y, correlation) over the last ``window`` aligned log-return pairs."""
    n = x.shape[0]
    beta = np.full(n, np.nan)
    corr = np.full(n, np.nan)
    if n < 2:
        return beta, corr
    rx = np.empty(n - 1)
    ry = np.empty(n - 1)
    for i in range(1, n):
        rx[i - 1] = math.log(float(x[i]) / float(x[i - 1]))
        ry[i - 1] = math.log(float(y[i]) / float(y[i - 1]))
    nf = float(window)
    sx = 0.0
    sy = 0.0
    sxx = 0.0
    syy = 0.0
    sxy = 0.0
    since = 0
    for j in range(n - 1):
        a = rx[j]
        b = ry[j]
        sx += a
        sy += b
        sxx += a * a
        syy += b * b
        sxy += a * b
        if j >= window:
            a = rx[j - window]
            b = ry[j - window]
            sx -= a
            sy -= b
            sxx -= a * a
            syy -= b * b
            sxy -= a * b
            since += 1
            if since >= window:
                sx = 0.0
                sy = 0.0
                sxx = 0.0
                syy = 0.0
                sxy = 0.0
                for m in range(j - window + 1, j + 1):
                    a = rx[m]
                    b = ry[m]
                    sx += a
                    sy += b
                    sxx += a * a
                    syy += b * b
                    sxy += a * b
                since = 0
        if j + 1 >= window:
            dx = sxx - sx * sx / nf
            dy = syy - sy * sy / nf
            cxy = sxy - sx * sy / nf
            if dy > DEGENERATE * syy:
                beta[j + 1] = cxy / dy
                if dx > DEGENERATE * sxx:
                    c = cxy / math.sqrt(dx * dy)
                    corr[j + 1] = 1.0 if c > 1.0 else -1.0 if c < -1.0 else c
    return beta, corr


@kernel
def flow_kernel(
    ts: np.ndarray, qty: np.ndarray, buyer_maker: np.ndarray, window_ns: int, count: int
) -> np.ndarray:
    """(taker buy qty - taker sell qty) / total qty over a count or time window; exact ints."""
    n = ts.shape[0]
    out = np.full(n, np.nan)
    if n == 0:
        return out
    t0 = ts[0]
    lo = 0
    signed = 0
    total = 0
    for i in range(n):
        q = qty[i]
        signed += -q if buyer_maker[i] else q
        total += q
        if count > 0:
            while i - lo + 1 > count:
                q = qty[lo]
                signed -= -q if buyer_maker[lo] else q
                total -= q
                lo += 1
            ready = i + 1 >= count
        else:
            cut = ts[i] - window_ns
            while ts[lo] <= cut:
                q = qty[lo]
                signed -= -q if buyer_maker[lo] else q
                total -= q
                lo += 1
            ready = ts[i] - t0 >= window_ns
        if ready and total != 0:
            out[i] = float(signed) / float(total)
    return out


@kernel
def vwap_kernel(ts: np.ndarray, price: np.ndarray, qty: np.ndarray, window_ns: int, count: int) -> np.ndarray:
    """last price / VWAP - 1 over a count or time window (float notional sum, int qty sum)."""
    n = ts.shape[0]
    out = np.full(n, np.nan)
    if n == 0:
        return out
    t0 = ts[0]
    lo = 0
    sq = 0
    spq = 0.0
    since = 0
    for i in range(n):
        spq += float(price[i]) * float(qty[i])
        sq += qty[i]
        if count > 0:
            while i - lo + 1 > count:
                spq -= float(price[lo]) * float(qty[lo])
                sq -= qty[lo]
                lo += 1
                since += 1
            ready = i + 1 >= count
        else:
            cut = ts[i] - window_ns
            while ts[lo] <= cut:
                spq -= float(price[lo]) * float(qty[lo])
                sq -= qty[lo]
                lo += 1
                since += 1
            ready = ts[i] - t0 >= window_ns
        if since >= i - lo + 1:
            spq = 0.0
            for j in range(lo, i + 1):
                spq += float(price[j]) * float(qty[j])
            since = 0
        if ready and spq > 0.0:
            out[i] = float(price[i]) * float(sq) / spq - 1.0
    return out


@kernel
def time_encoding_kernel(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """sin/cos of the time of day (continuous) and of the weekday (Monday = 0), UTC."""
    n = ts.shape[0]
    hs = np.empty(n)
    hc = np.empty(n)
    ds = np.empty(n)
    dc = np.empty(n)
    for i in range(n):
        t = ts[i]
        a = TWO_PI * float(t % DAY_NS) / DAY_F
        b = TWO_PI * float((t // DAY_NS + EPOCH_WEEKDAY) % 7) / 7.0
        hs[i] = math.sin(a)
        hc[i] = math.cos(a)
        ds[i] = math.sin(b)
        dc[i] = math.cos(b)
    return hs, hc, ds, dc


@kernel
def oi_change_kernel(ts: np.ndarray, oi: np.ndarray, window_ns: int, count: int) -> np.ndarray:
    """oi / oi_then - 1, oi_then being ``count`` updates back or the last value at or before t - W."""
    n = ts.shape[0]
    out = np.full(n, np.nan)
    lo = 0
    for i in range(n):
        if count > 0:
            if i < count:
                continue
            old = oi[i - count]
        else:
            cut = ts[i] - window_ns
            while lo + 1 <= i and ts[lo + 1] <= cut:
                lo += 1
            if ts[lo] > cut:
                continue
            old = oi[lo]
        if old != 0:
            out[i] = float(oi[i] - old) / float(old)
    return out


@kernel
def liquidation_kernel(
    ets: np.ndarray, price: np.ndarray, qty: np.ndarray, at: np.ndarray, window_ns: int, targets: bool
) -> np.ndarray:
    """Liquidated notional in (now - W, now], at each event or at each target time.

    Events and targets are merged in time order (an event at a target's time comes first),
    exactly the call sequence ``update``/``value_at`` of the incremental form sees.
    """
    ne = ets.shape[0]
    na = at.shape[0] if targets else 0
    out = np.full(na if targets else ne, np.nan)
    if ne == 0 and na == 0:
        return out
    t0 = ets[0] if ne > 0 and (na == 0 or ets[0] <= at[0]) else at[0]
    lo = 0
    hi = 0
    k = 0
    s = 0.0
    since = 0
    while hi < ne or k < na:
        event = hi < ne and (k >= na or ets[hi] <= at[k])
        if event:
            now = ets[hi]
            s += float(price[hi]) * float(qty[hi])
            hi += 1
        else:
            now = at[k]
        cut = now - window_ns
        while lo < hi and ets[lo] <= cut:
            s -= float(price[lo]) * float(qty[lo])
            lo += 1
            since += 1
        if since >= hi - lo:
            s = 0.0
            for j in range(lo, hi):
                s += float(price[j]) * float(qty[j])
            since = 0
        value = s / SCALE2_F if now - t0 >= window_ns else np.nan
        if event:
            if not targets:
                out[hi - 1] = value
        else:
            out[k] = value
            k += 1
    return out
