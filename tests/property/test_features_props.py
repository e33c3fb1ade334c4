"""Hypothesis: features on arbitrary inputs — parity, warm-up lengths and value bounds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.features import incremental as inc
from strategies.features import vectorized as vec
from strategies.features._kernels import bollinger_kernel, comoments_kernel, flow_kernel, vwap_kernel

E8 = 100_000_000
MAX_PRICE = 10**13  # 100,000.00000000: BTC-sized prices, float-exact e8 ints (< 2**53)

SETTINGS = settings(max_examples=60, deadline=None)


def stream(update: Callable[..., Any], *cols: np.ndarray) -> np.ndarray:
    out = [update(*row) for row in zip(*(c.tolist() for c in cols), strict=True)]
    return np.array([np.nan if v is None else v for v in out], dtype=np.float64)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


@st.composite
def prices(draw: st.DrawFn, min_size: int = 0, max_size: int = 120) -> np.ndarray:
    """Either a tick walk (small moves, many repeats) or arbitrary positive levels (huge jumps)."""
    n = draw(st.integers(min_size, max_size))
    if draw(st.booleans()):
        start = draw(st.integers(E8, MAX_PRICE // 2))
        tick = draw(st.sampled_from([1, 100, E8 // 100, 50 * E8]))
        steps = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
        return np.maximum(1, start + np.cumsum(np.array(steps, dtype=np.int64)) * tick).astype(np.int64)
    return np.array(draw(st.lists(st.integers(1, MAX_PRICE), min_size=n, max_size=n)), dtype=np.int64)


@st.composite
def trades(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """ts (with ties and the odd step back), price, qty (zero allowed), buyer_maker."""
    p = draw(prices(min_size=1))
    n = len(p)
    steps = draw(st.lists(st.integers(-2_000, 5_000), min_size=n, max_size=n))
    return {
        "ts": 10**18 + np.cumsum(np.array(steps, dtype=np.int64)) * 1_000_000,
        "price": p,
        "qty": np.array(draw(st.lists(st.integers(0, 10**11), min_size=n, max_size=n)), dtype=np.int64),
        "maker": np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
    }


windows = st.one_of(
    st.builds(lambda c: {"count": c}, st.integers(1, 40)),
    st.builds(lambda w: {"window_ns": w}, st.integers(1, 3 * 10**9)),
)


# --------------------------------------------------------------------------- price series


@pytest.mark.edge
@SETTINGS
@given(prices(), st.integers(1, 30))
def test_rsi_parity_warmup_and_bounds(p: np.ndarray, period: int) -> None:
    got = vec.rsi(p, period)
    assert same(stream(inc.Rsi(period).update, p), got)
    assert np.isnan(got[: min(period, len(p))]).all()
    assert np.isfinite(got[period:]).all()
    assert ((got[period:] >= 0.0) & (got[period:] <= 100.0)).all()


@pytest.mark.edge
@SETTINGS
@given(prices(), st.integers(1, 30), st.floats(0.0, 5.0))
def test_bollinger_parity_warmup_and_finite_pct_b(p: np.ndarray, window: int, k: float) -> None:
    bands = vec.bollinger(p, window, k)
    boll = inc.Bollinger(window, k)
    rows = []
    for x in p.tolist():
        b = boll.update(x)
        rows.append(
            [np.nan if v is None else v for v in (boll.mid, boll.upper, boll.lower, b)]
            if b is not None
            else [np.nan] * 4
        )
    assert same(np.array(rows).reshape(-1, 4), np.column_stack(bands).reshape(-1, 4))
    assert np.isnan(bands.pct_b[: window - 1]).all()
    ready = bands.pct_b[window - 1 :]
    assert np.isfinite(ready).all()
    assert (bands.lower[window - 1 :] <= bands.upper[window - 1 :]).all()


@pytest.mark.edge
@SETTINGS
@given(prices(), st.integers(2, 30))
def test_realized_volatility_parity_warmup_and_sign(p: np.ndarray, window: int) -> None:
    got = vec.realized_volatility(p, window)
    assert same(stream(inc.RealizedVolatility(window).update, p), got)
    assert np.isnan(got[: min(window, len(p))]).all()
    assert (got[window:] >= 0.0).all()


@pytest.mark.edge
@SETTINGS
@given(st.data(), st.integers(2, 25))
def test_beta_and_correlation_parity_and_bounds(data: st.DataObject, window: int) -> None:
    x = data.draw(prices())
    y = data.draw(prices(min_size=len(x), max_size=len(x)))
    beta = vec.rolling_beta(x, y, window)
    corr = vec.rolling_correlation(x, y, window)
    assert same(stream(inc.RollingBeta(window).update, x, y), beta)
    assert same(stream(inc.RollingCorrelation(window).update, x, y), corr)
    assert np.isnan(beta[: min(window, len(x))]).all()
    c = corr[np.isfinite(corr)]
    assert ((c >= -1.0) & (c <= 1.0)).all()
    assert (np.isfinite(corr) <= np.isfinite(beta)).all()  # a correlation needs a beta


# --------------------------------------------------------------------------- trades


@pytest.mark.edge
@SETTINGS
@given(trades(), windows)
def test_trade_flow_imbalance_parity_and_bounds(t: dict[str, np.ndarray], window: dict[str, int]) -> None:
    got = vec.trade_flow_imbalance(t["ts"], t["qty"], t["maker"], **window)
    assert same(stream(inc.TradeFlowImbalance(**window).update, t["ts"], t["qty"], t["maker"]), got)
    v = got[np.isfinite(got)]
    assert ((v >= -1.0) & (v <= 1.0)).all()
    if "count" in window:
        assert np.isnan(got[: window["count"] - 1]).all()


@pytest.mark.edge
@SETTINGS
@given(trades(), windows)
def test_vwap_deviation_parity(t: dict[str, np.ndarray], window: dict[str, int]) -> None:
    got = vec.vwap_deviation(t["ts"], t["price"], t["qty"], **window)
    assert same(stream(inc.VwapDeviation(**window).update, t["ts"], t["price"], t["qty"]), got)
    assert (got[np.isfinite(got)] > -1.0).all()  # a positive price is never 100 % below a VWAP


@pytest.mark.edge
@SETTINGS
@given(trades(), windows)
def test_open_interest_change_parity_and_warmup(t: dict[str, np.ndarray], window: dict[str, int]) -> None:
    got = vec.open_interest_change(t["ts"], t["price"], **window)
    assert same(stream(inc.OpenInterestChange(**window).update, t["ts"], t["price"]), got)
    if "count" in window:
        assert np.isnan(got[: window["count"]]).all()
        assert np.isfinite(got[window["count"] :]).all()


@pytest.mark.edge
@SETTINGS
@given(trades(), st.integers(1, 3 * 10**9), st.data())
def test_liquidation_intensity_parity_with_interleaved_reads(
    t: dict[str, np.ndarray], window_ns: int, data: st.DataObject
) -> None:
    events = vec.clock(t["ts"])
    at = np.sort(np.array(data.draw(st.lists(st.sampled_from(events.tolist()), max_size=60)), dtype=np.int64))
    at = at + np.array(
        data.draw(st.lists(st.integers(-3, 3), min_size=len(at), max_size=len(at))), dtype=np.int64
    )
    at = np.maximum.accumulate(at) if len(at) else at
    want = vec.liquidation_intensity(events, t["price"], t["qty"], window_ns=window_ns, at=at)
    lq = inc.LiquidationIntensity(window_ns)
    order = sorted(
        [(e, 0, i) for i, e in enumerate(events.tolist())] + [(a, 1, i) for i, a in enumerate(at.tolist())]
    )
    got = []
    for ts, is_target, i in order:
        if is_target:
            got.append(lq.value_at(ts))
        else:
            lq.update(ts, int(t["price"][i]), int(t["qty"][i]))
    assert same(np.array([np.nan if v is None else v for v in got], dtype=np.float64), want)
    assert (want[np.isfinite(want)] >= 0.0).all()


# --------------------------------------------------------------------------- book / quotes / calendar


sides = st.lists(st.lists(st.integers(1, 10**12), max_size=25), min_size=1, max_size=40)


@pytest.mark.edge
@SETTINGS
@given(sides, sides, st.integers(1, 25))
def test_book_imbalance_and_depth_ratio_parity_and_bounds(
    bids: list[list[int]], asks: list[list[int]], n: int
) -> None:
    rows = min(len(bids), len(asks))
    bl = [tuple((10**9 - j, q) for j, q in enumerate(b)) for b in bids[:rows]]
    al = [tuple((10**9 + j, q) for j, q in enumerate(a)) for a in asks[:rows]]
    _, bq = vec.level_matrix(bl, 25)
    _, aq = vec.level_matrix(al, 25)
    obi, dr = vec.order_book_imbalance(bq, aq, n), vec.depth_ratio(bq, aq, n)
    o, d = inc.OrderBookImbalance(n), inc.DepthRatio(n)
    assert same(
        np.array([np.nan if (v := o.update(b, a)) is None else v for b, a in zip(bl, al, strict=True)]), obi
    )
    assert same(
        np.array([np.nan if (v := d.update(b, a)) is None else v for b, a in zip(bl, al, strict=True)]), dr
    )
    v = obi[np.isfinite(obi)]
    assert ((v >= -1.0) & (v <= 1.0)).all()
    assert (dr[np.isfinite(dr)] >= 0.0).all()


quotes = st.lists(
    st.tuples(
        st.integers(0, MAX_PRICE), st.integers(0, 10**12), st.integers(0, MAX_PRICE), st.integers(0, 10**12)
    ),
    max_size=80,
)


@pytest.mark.edge
@SETTINGS
@given(quotes)
def test_microprice_and_spread_parity(q: list[tuple[int, int, int, int]]) -> None:
    bp, bq, ap, aq = (
        (np.array(c, dtype=np.int64).reshape(-1) for c in zip(*q, strict=True))
        if q
        else [np.zeros(0, np.int64)] * 4
    )
    micro = vec.microprice(bp, bq, ap, aq)
    assert same(stream(inc.Microprice().update, bp, bq, ap, aq), micro)
    assert same(stream(inc.Spread().update, bp, ap), vec.spread(bp, ap))
    assert same(stream(inc.Spread(bps=True).update, bp, ap), vec.spread(bp, ap, bps=True))
    ok = np.isfinite(micro)
    lo, hi = np.minimum(bp, ap)[ok] / E8, np.maximum(bp, ap)[ok] / E8
    assert ((micro[ok] >= lo * (1 - 1e-12)) & (micro[ok] <= hi * (1 + 1e-12))).all()


@pytest.mark.edge
@SETTINGS
@given(st.lists(st.integers(-(2**62), 2**62), max_size=60))
def test_time_encoding_parity_and_unit_circle(ts: list[int]) -> None:
    t = np.array(ts, dtype=np.int64)
    enc = inc.TimeEncoding()
    got = np.array([enc.update(x) for x in ts]).reshape(-1, 4)
    want = np.column_stack(vec.time_encodings(t)).reshape(-1, 4)
    assert same(got, want)
    assert np.allclose(want[:, 0] ** 2 + want[:, 1] ** 2, 1.0)
    assert np.allclose(want[:, 2] ** 2 + want[:, 3] ** 2, 1.0)


# --------------------------------------------------------------------------- numba == Python


@SETTINGS
@given(trades(), st.integers(1, 30), st.integers(1, 3 * 10**9))
def test_numba_kernels_equal_python_on_random_inputs(
    t: dict[str, np.ndarray], window: int, window_ns: int
) -> None:
    pytest.importorskip("numba")
    ts = vec.clock(t["ts"])
    w2 = max(window, 2)
    runs: list[tuple[Any, tuple[Any, ...]]] = [
        (bollinger_kernel, (t["price"], window, 2.0)),
        (comoments_kernel, (t["price"], t["price"][::-1].copy(), w2)),
        (flow_kernel, (ts, t["qty"], t["maker"], window_ns, 0)),
        (flow_kernel, (ts, t["qty"], t["maker"], 0, window)),
        (vwap_kernel, (ts, t["price"], t["qty"], window_ns, 0)),
        (vwap_kernel, (ts, t["price"], t["qty"], 0, window)),
    ]
    for kern, args in runs:
        jit, py = kern(*args), kern.py_func(*args)
        for a, b in zip(*((r,) if isinstance(r, np.ndarray) else r for r in (jit, py)), strict=True):
            assert same(a, b), kern.py_func.__name__
