"""Vectorised features: functions over catalog columns, for building training sets.

Inputs are numpy columns as the catalog stores them: int64 e8 prices/quantities, int64 ns
times, bool flags; book depth as 2-D int64 matrices (row = one book state, column = level,
best first, zero-padded; see :func:`level_matrix`). Outputs are float64 arrays, one value
per input row, NaN where the incremental twin (``strategies.features.incremental``) returns
None. Each value equals the incremental one bit for bit: the stateful features run the loop
kernels of ``_kernels`` (numba-compiled when numba is installed, the same Python otherwise);
the stateless ones are numpy expressions doing the same float operations in the same order.

Time columns are made non-decreasing first (``np.maximum.accumulate``), which is what the
incremental forms do with a timestamp that goes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from engine.errors import InputError
from engine.events import Level
from strategies.features import _kernels as K
from strategies.features.incremental import FUNDING_INTERVAL_NS, check_period, check_width, check_window

F64 = np.float64


class Bands(NamedTuple):
    """Bollinger bands and %B, one value per row."""

    mid: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    pct_b: np.ndarray


class TimeArrays(NamedTuple):
    """Cyclical time encodings, one value per row (see incremental.TimeEncoding)."""

    hour_sin: np.ndarray
    hour_cos: np.ndarray
    dow_sin: np.ndarray
    dow_cos: np.ndarray


# --------------------------------------------------------------------------- input checks


def _ints(name: str, a: Any, ndim: int = 1) -> np.ndarray:
    """``a`` as a contiguous int64 array of ``ndim`` dimensions, or an InputError naming it."""
    arr = np.asarray(a)
    if arr.ndim != ndim:
        raise InputError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}", source="features")
    if arr.size and arr.dtype.kind not in "iu":
        raise InputError(f"{name}: expected integers (e8 or ns), got dtype {arr.dtype}", source="features")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise InputError(f"{name}: values exceed int64", source="features")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _flags(name: str, a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "biu"):
        raise InputError(f"{name}: expected a 1-D bool array, got {arr.dtype} {arr.shape}", source="features")
    return np.ascontiguousarray(arr != 0)


def _same_length(**cols: np.ndarray) -> int:
    lengths = {name: len(c) for name, c in cols.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(f"columns differ in length: {lengths}", source="features")
    return next(iter(lengths.values()), 0)


def _positive(name: str, a: np.ndarray) -> None:
    if a.size and int(a.min()) <= 0:
        bad = int(np.argmax(a <= 0))
        raise InputError(f"{name}: prices must be > 0 (row {bad} is {int(a[bad])})", source="features")


def _sorted(name: str, a: np.ndarray) -> None:
    if a.size > 1 and bool(np.any(a[1:] < a[:-1])):
        bad = int(np.argmax(a[1:] < a[:-1])) + 1
        raise InputError(f"{name}: times must be non-decreasing (row {bad} goes back)", source="features")


def clock(ts: Any, name: str = "ts") -> np.ndarray:
    """A time column made non-decreasing, as the incremental forms see it."""
    t = _ints(name, ts)
    return np.maximum.accumulate(t) if t.size else t


# --------------------------------------------------------------------------- helpers


def level_matrix(sides: Sequence[Sequence[Level]], depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(prices, quantities) int64 matrices of shape (rows, depth) from best-first level lists.

    Missing levels are 0 (an empty level adds nothing to a depth sum).
    """
    check_period("depth", depth)
    prices = np.zeros((len(sides), depth), dtype=np.int64)
    qtys = np.zeros((len(sides), depth), dtype=np.int64)
    for i, levels in enumerate(sides):
        for j, (price, qty) in enumerate(levels[:depth]):
            prices[i, j] = price
            qtys[i, j] = qty
    return prices, qtys


def asof_index(at: Any, ts: Any) -> np.ndarray:
    """Index of the last ``ts`` row at or before each ``at`` (-1 before the first); ``ts`` sorted."""
    t = _ints("ts", ts)
    _sorted("ts", t)
    return np.searchsorted(t, _ints("at", at), side="right").astype(np.int64) - 1


# --------------------------------------------------------------------------- price series


def rsi(price: Any, period: int = 14) -> np.ndarray:
    """Wilder RSI per row (see incremental.Rsi); NaN for the first ``period`` rows."""
    return K.rsi_kernel(_ints("price", price), check_period("period", period))


def bollinger(price: Any, window: int = 20, k: float = 2.0) -> Bands:
    """Bollinger bands and %B per row (see incremental.Bollinger)."""
    width = check_width(k)
    mid, upper, lower, pct_b = K.bollinger_kernel(
        _ints("price", price), check_period("window", window), width
    )
    return Bands(mid, upper, lower, pct_b)


def realized_volatility(price: Any, window: int = 20) -> np.ndarray:
    """Sample std of the last ``window`` log returns per row (see incremental.RealizedVolatility)."""
    p = _ints("price", price)
    _positive("price", p)
    return K.realized_vol_kernel(p, check_period("window", window, 2))


def _comoments(price: Any, ref_price: Any, window: int) -> tuple[np.ndarray, np.ndarray]:
    x = _ints("price", price)
    y = _ints("ref_price", ref_price)
    _same_length(price=x, ref_price=y)
    _positive("price", x)
    _positive("ref_price", y)
    return K.comoments_kernel(x, y, check_period("window", window, 2))


def rolling_beta(price: Any, ref_price: Any, window: int = 60) -> np.ndarray:
    """Beta of aligned log returns on the reference's (see incremental.RollingBeta)."""
    return _comoments(price, ref_price, window)[0]


def rolling_correlation(price: Any, ref_price: Any, window: int = 60) -> np.ndarray:
    """Correlation of aligned log returns, in [-1, 1] (see incremental.RollingCorrelation)."""
    return _comoments(price, ref_price, window)[1]


# --------------------------------------------------------------------------- trades


def trade_flow_imbalance(
    ts: Any, qty: Any, buyer_maker: Any, *, window_ns: int | None = None, count: int | None = None
) -> np.ndarray:
    """Taker buy/sell imbalance per trade (see incremental.TradeFlowImbalance)."""
    w, c = check_window(window_ns, count)
    t = clock(ts)
    q = _ints("qty", qty)
    bm = _flags("buyer_maker", buyer_maker)
    _same_length(ts=t, qty=q, buyer_maker=bm)
    return K.flow_kernel(t, q, bm, w, c)


def vwap_deviation(
    ts: Any, price: Any, qty: Any, *, window_ns: int | None = None, count: int | None = None
) -> np.ndarray:
    """last price / VWAP - 1 per trade (see incremental.VwapDeviation)."""
    w, c = check_window(window_ns, count)
    t = clock(ts)
    p = _ints("price", price)
    q = _ints("qty", qty)
    _same_length(ts=t, price=p, qty=q)
    return K.vwap_kernel(t, p, q, w, c)


# --------------------------------------------------------------------------- book / quotes


def _depths(bid_qty: Any, ask_qty: Any, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row quantity sums over the first ``levels`` columns (a 1-D column is one level)."""
    check_period("levels", levels)
    b = np.asarray(bid_qty)
    a = np.asarray(ask_qty)
    bm = _ints("bid_qty", b if b.ndim == 2 else b.reshape(-1, 1), ndim=2)
    am = _ints("ask_qty", a if a.ndim == 2 else a.reshape(-1, 1), ndim=2)
    _same_length(bid_qty=bm, ask_qty=am)
    return bm[:, :levels].sum(axis=1), am[:, :levels].sum(axis=1)


def _ratio(num: np.ndarray, den: np.ndarray, ok: np.ndarray) -> np.ndarray:
    out = np.full(len(num), np.nan)
    np.divide(num, den, out=out, where=ok)
    return out


def order_book_imbalance(bid_qty: Any, ask_qty: Any, levels: int = 5) -> np.ndarray:
    """(bid - ask) / (bid + ask) depth over the top ``levels`` (see incremental.OrderBookImbalance).

    ``bid_qty``/``ask_qty``: (rows, depth) matrices best first, or 1-D top-of-book columns.
    """
    sb, sa = _depths(bid_qty, ask_qty, levels)
    total = sb + sa
    return _ratio((sb - sa).astype(F64), total.astype(F64), total != 0)


def depth_ratio(bid_qty: Any, ask_qty: Any, levels: int = 20) -> np.ndarray:
    """bid depth / ask depth over the top ``levels`` (see incremental.DepthRatio)."""
    sb, sa = _depths(bid_qty, ask_qty, levels)
    return _ratio(sb.astype(F64), sa.astype(F64), sa != 0)


def microprice(bid_price: Any, bid_qty: Any, ask_price: Any, ask_qty: Any) -> np.ndarray:
    """Size-weighted mid per quote, in price units (see incremental.Microprice)."""
    bp, bq, ap, aq = (_ints(n, c) for n, c in
                      (("bid_price", bid_price), ("bid_qty", bid_qty), ("ask_price", ask_price), ("ask_qty", ask_qty)))  # fmt: skip
    _same_length(bid_price=bp, bid_qty=bq, ask_price=ap, ask_qty=aq)
    total = bq + aq
    num = bp.astype(F64) * aq.astype(F64) + ap.astype(F64) * bq.astype(F64)
    out = _ratio(num, total.astype(F64), (bp > 0) & (ap > 0) & (total != 0))
    return out / K.SCALE_F


def spread(bid_price: Any, ask_price: Any, bps: bool = False) -> np.ndarray:
    """ask - bid in price units, or bps of the mid (see incremental.Spread)."""
    bp = _ints("bid_price", bid_price)
    ap = _ints("ask_price", ask_price)
    _same_length(bid_price=bp, ask_price=ap)
    diff = (ap - bp).astype(F64)
    ok = (bp > 0) & (ap > 0)
    if bps:
        return _ratio(diff, (ap + bp).astype(F64), ok) * 20_000.0
    return np.where(ok, diff / K.SCALE_F, np.nan)


# --------------------------------------------------------------------------- calendar / futures


def time_encodings(ts: Any) -> TimeArrays:
    """hour-of-day and day-of-week sin/cos per row (see incremental.TimeEncoding)."""
    hs, hc, ds, dc = K.time_encoding_kernel(_ints("ts", ts))
    return TimeArrays(hs, hc, ds, dc)


def funding_rate(at: Any, funding_ts: Any, rate_e8: Any) -> np.ndarray:
    """The last funding rate at or before each ``at`` time, as a fraction (NaN before the first)."""
    idx = asof_index(at, funding_ts)
    rates = _ints("rate_e8", rate_e8)
    _same_length(funding_ts=_ints("funding_ts", funding_ts), rate_e8=rates)
    out = np.full(len(idx), np.nan)
    ok = idx >= 0
    out[ok] = rates[idx[ok]].astype(F64) / K.SCALE_F
    return out


def time_to_funding(
    at: Any,
    *,
    interval_ns: int = FUNDING_INTERVAL_NS,
    next_ts: Any = None,
    next_funding: Any = None,
) -> np.ndarray:
    """Seconds to the next funding at each ``at`` (see incremental.TimeToFunding).

    ``next_ts``/``next_funding``: when mark-price updates announced ``next_funding_time``
    (the update's time and the announced time); without them the fixed schedule is used.
    """
    check_period("interval_ns", interval_ns)
    t = _ints("at", at)
    nxt = (t // interval_ns + 1) * interval_ns
    if next_ts is not None or next_funding is not None:
        if next_ts is None or next_funding is None:
            raise InputError("give both next_ts and next_funding, or neither", source="features")
        known_all = _ints("next_funding", next_funding)
        _same_length(next_ts=_ints("next_ts", next_ts), next_funding=known_all)
        idx = asof_index(t, next_ts)
        known = np.where(idx >= 0, known_all[np.maximum(idx, 0)] if known_all.size else 0, 0)
        nxt = np.where(known > t, known, nxt)
    out: np.ndarray = (nxt - t).astype(F64) / 1e9
    return out


def open_interest_change(
    ts: Any, oi: Any, *, window_ns: int | None = None, count: int | None = None
) -> np.ndarray:
    """Relative open-interest change per row (see incremental.OpenInterestChange)."""
    w, c = check_window(window_ns, count)
    t = clock(ts)
    o = _ints("oi", oi)
    _same_length(ts=t, oi=o)
    return K.oi_change_kernel(t, o, w, c)


def liquidation_intensity(ts: Any, price: Any, qty: Any, *, window_ns: int, at: Any = None) -> np.ndarray:
    """Liquidated notional in ``(t - window_ns, t]`` (see incremental.LiquidationIntensity).

    One value per liquidation row, or per ``at`` time when given (a liquidation at exactly
    ``t`` counts at ``t``).
    """
    check_period("window_ns", window_ns)
    t = clock(ts)
    p = _ints("price", price)
    q = _ints("qty", qty)
    _same_length(ts=t, price=p, qty=q)
    targets = at is not None
    a = clock(at, "at") if targets else np.zeros(0, dtype=np.int64)
    return K.liquidation_kernel(t, p, q, a, window_ns, targets)
