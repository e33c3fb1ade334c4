"""Vectorised features: parity with the incremental forms, numba vs plain Python, input checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.errors import ConfigError, InputError
from strategies.features import incremental as inc
from strategies.features import vectorized as vec
from strategies.features._jit import Kernel
from strategies.features._kernels import (
    bollinger_kernel,
    comoments_kernel,
    flow_kernel,
    liquidation_kernel,
    oi_change_kernel,
    realized_vol_kernel,
    rsi_kernel,
    time_encoding_kernel,
    vwap_kernel,
)

ROOT = Path(__file__).resolve().parents[2]
E8 = 100_000_000
SEC = 1_000_000_000


def stream(update: Callable[..., Any], *cols: np.ndarray) -> np.ndarray:
    """Feed rows to an incremental ``update``; None -> NaN, as the vectorised form writes it."""
    out = [update(*row) for row in zip(*(c.tolist() for c in cols), strict=True)]
    return np.array([np.nan if v is None else v for v in out], dtype=np.float64)


def data(n: int = 3000, seed: int = 3) -> dict[str, np.ndarray]:
    """Synthetic market columns with the awkward cases: repeated prices and times, a time going back."""
    rng = np.random.default_rng(seed)
    price = 60_000 * E8 + np.cumsum(rng.integers(-3, 4, n)) * (E8 // 10)
    ts = 1_723_161_255 * SEC + np.cumsum(rng.integers(0, 400_000_000, n))
    ts[n // 2] -= 5 * SEC  # one out-of-order time
    depth = 8
    return {
        "ts": ts.astype(np.int64),
        "price": price.astype(np.int64),
        "ref": (30_000 * E8 + np.cumsum(rng.integers(-3, 4, n)) * (E8 // 10)).astype(np.int64),
        "qty": rng.integers(0, 3 * E8, n).astype(np.int64),
        "maker": rng.integers(0, 2, n).astype(bool),
        "bid_qty": _side(rng, n, depth),
        "ask_qty": _side(rng, n, depth),
    }


def _side(rng: np.random.Generator, n: int, depth: int) -> np.ndarray:
    """(n, depth) level quantities, best first; a side has 0..depth levels (zero padding after)."""
    filled = np.arange(depth)[None, :] < rng.integers(0, depth + 1, n)[:, None]
    return np.where(filled, rng.integers(1, 9 * E8, (n, depth)), 0).astype(np.int64)


def levels(qty_row: np.ndarray) -> tuple[tuple[int, int], ...]:
    """A best-first side from a row of quantities (the zero padding is not a level)."""
    return tuple((1000 - j, int(q)) for j, q in enumerate(qty_row.tolist()) if q)


def bid_ask(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    bid = d["price"]
    return bid, bid + d["qty"] % (E8 // 2) - E8 // 8  # some crossed and locked quotes too


def _cases() -> dict[str, Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]]:
    """feature -> data -> (incremental column, vectorised column)."""
    W = 3 * SEC

    def book(
        feature: Any, fn: Callable[..., np.ndarray], n: int
    ) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
        def run(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            rows = zip(d["bid_qty"], d["ask_qty"], strict=True)
            got = [feature.update(levels(b), levels(a)) for b, a in rows]
            return np.array([np.nan if v is None else v for v in got]), fn(d["bid_qty"], d["ask_qty"], n)

        return run

    def time_enc(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        enc = inc.TimeEncoding()
        return np.array([enc.update(t) for t in d["ts"].tolist()]), np.column_stack(
            vec.time_encodings(d["ts"])
        )

    def liq_at(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        ts = vec.clock(d["ts"])
        events, at = ts[::3], ts[1::2] + 1
        lq = inc.LiquidationIntensity(W)
        merged = sorted(
            [(t, 0, i) for i, t in enumerate(events.tolist())]
            + [(t, 1, i) for i, t in enumerate(at.tolist())]
        )
        got = []
        for t, is_target, i in merged:
            if is_target:
                got.append(lq.value_at(t))
            else:
                lq.update(t, int(d["price"][::3][i]), int(d["qty"][::3][i]))
        want = vec.liquidation_intensity(events, d["price"][::3], d["qty"][::3], window_ns=W, at=at)
        return np.array([np.nan if v is None else v for v in got]), want

    def funding(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        ts = vec.clock(d["ts"])
        fts, rates, at = ts[::50], (d["qty"][::50] - E8).astype(np.int64) // 1000, ts + 7
        rate, ttf = inc.FundingRate(), inc.TimeToFunding(SEC)
        merged = sorted(
            [(t, 0, i) for i, t in enumerate(fts.tolist())] + [(t, 1, i) for i, t in enumerate(at.tolist())]
        )
        got = []
        for t, is_target, i in merged:
            if is_target:
                got.append((np.nan if rate.value is None else rate.value, ttf.update(t)))
            else:
                rate.update(int(rates[i]))
                ttf.set_next(t + 2 * SEC + 1)
        want = np.column_stack(
            [
                vec.funding_rate(at, fts, rates),
                vec.time_to_funding(at, interval_ns=SEC, next_ts=fts, next_funding=fts + 2 * SEC + 1),
            ]
        )
        return np.array(got), want

    return {
        "rsi": lambda d: (stream(inc.Rsi(14).update, d["price"]), vec.rsi(d["price"], 14)),
        "bollinger": lambda d: (
            stream(inc.Bollinger(20, 2.0).update, d["price"]),
            vec.bollinger(d["price"], 20).pct_b,
        ),
        "bollinger_mid": lambda d: (
            stream(_mid(inc.Bollinger(7, 1.5)), d["price"]),
            vec.bollinger(d["price"], 7, 1.5).mid,
        ),
        "realized_vol": lambda d: (
            stream(inc.RealizedVolatility(20).update, d["price"]),
            vec.realized_volatility(d["price"]),
        ),
        "beta": lambda d: (
            stream(inc.RollingBeta(30).update, d["price"], d["ref"]),
            vec.rolling_beta(d["price"], d["ref"], 30),
        ),
        "correlation": lambda d: (
            stream(inc.RollingCorrelation(30).update, d["price"], d["ref"]),
            vec.rolling_correlation(d["price"], d["ref"], 30),
        ),
        "tfi_count": lambda d: (
            stream(inc.TradeFlowImbalance(count=50).update, d["ts"], d["qty"], d["maker"]),
            vec.trade_flow_imbalance(d["ts"], d["qty"], d["maker"], count=50),
        ),
        "tfi_time": lambda d: (
            stream(inc.TradeFlowImbalance(window_ns=W).update, d["ts"], d["qty"], d["maker"]),
            vec.trade_flow_imbalance(d["ts"], d["qty"], d["maker"], window_ns=W),
        ),
        "vwap_count": lambda d: (
            stream(inc.VwapDeviation(count=50).update, d["ts"], d["price"], d["qty"]),
            vec.vwap_deviation(d["ts"], d["price"], d["qty"], count=50),
        ),
        "vwap_time": lambda d: (
            stream(inc.VwapDeviation(window_ns=W).update, d["ts"], d["price"], d["qty"]),
            vec.vwap_deviation(d["ts"], d["price"], d["qty"], window_ns=W),
        ),
        "obi_top1": lambda d: (
            stream(inc.OrderBookImbalance(1).update_top, d["bid_qty"][:, 0], d["ask_qty"][:, 0]),
            vec.order_book_imbalance(d["bid_qty"][:, 0], d["ask_qty"][:, 0], 1),
        ),
        "obi_top5": book(inc.OrderBookImbalance(5), vec.order_book_imbalance, 5),
        "depth_ratio": book(inc.DepthRatio(8), vec.depth_ratio, 8),
        "microprice": lambda d: (
            stream(
                inc.Microprice().update, bid_ask(d)[0], d["bid_qty"][:, 0], bid_ask(d)[1], d["ask_qty"][:, 0]
            ),
            vec.microprice(bid_ask(d)[0], d["bid_qty"][:, 0], bid_ask(d)[1], d["ask_qty"][:, 0]),
        ),
        "spread": lambda d: (stream(inc.Spread().update, *bid_ask(d)), vec.spread(*bid_ask(d))),
        "spread_bps": lambda d: (
            stream(inc.Spread(bps=True).update, *bid_ask(d)),
            vec.spread(*bid_ask(d), bps=True),
        ),
        "time_encoding": time_enc,
        "funding": funding,
        "oi_count": lambda d: (
            stream(inc.OpenInterestChange(count=20).update, d["ts"], d["qty"]),
            vec.open_interest_change(d["ts"], d["qty"], count=20),
        ),
        "oi_time": lambda d: (
            stream(inc.OpenInterestChange(window_ns=W).update, d["ts"], d["qty"]),
            vec.open_interest_change(d["ts"], d["qty"], window_ns=W),
        ),
        "liquidation": lambda d: (
            stream(inc.LiquidationIntensity(W).update, d["ts"], d["price"], d["qty"]),
            vec.liquidation_intensity(d["ts"], d["price"], d["qty"], window_ns=W),
        ),
        "liquidation_at": liq_at,
    }


def _mid(boll: inc.Bollinger) -> Callable[[int], float | None]:
    def update(price: int) -> float | None:
        boll.update(price)
        return boll.mid

    return update


CASES = _cases()


def outputs(n: int = 1500) -> dict[str, list[str]]:
    """Every vectorised column as float.hex strings (what the subprocess tests compare)."""
    d = data(n)
    return {name: [float(v).hex() for v in np.ravel(run(d)[1])] for name, run in CASES.items()}


# --------------------------------------------------------------------------- parity


@pytest.mark.edge
@pytest.mark.parametrize("name", sorted(CASES))
def test_vectorised_equals_incremental_bit_for_bit(name: str) -> None:
    got, want = CASES[name](data())
    assert got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True), (
        f"{name}: first difference at {np.argmax(~((got == want) | (np.isnan(got) & np.isnan(want))))}"
    )
    assert np.isfinite(want).sum() > len(want) // 2, "the case must exercise real values, not only warm-up"


def _run_child(env_extra: dict[str, str], prelude: str) -> dict[str, list[str]]:
    code = f"{prelude}\nimport json\nfrom tests.unit.test_features_vectorized import outputs\nprint(json.dumps(outputs()))\n"
    env = {**os.environ, **env_extra}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.edge
def test_numba_missing_gives_the_same_columns() -> None:
    """A process where ``import numba`` fails (the riscv64 board) computes identical columns."""
    prelude = (
        "import sys; sys.modules['numba'] = None\n"
        "from strategies.features._jit import numba_available\n"
        "assert not numba_available()"
    )
    assert _run_child({}, prelude) == outputs()


@pytest.mark.edge
def test_numba_disable_jit_gives_the_same_columns() -> None:
    assert _run_child({"NUMBA_DISABLE_JIT": "1"}, "") == outputs()


KERNEL_ARGS: list[tuple[Kernel[..., Any], Callable[[dict[str, np.ndarray]], tuple[Any, ...]]]] = [
    (rsi_kernel, lambda d: (d["price"], 14)),
    (bollinger_kernel, lambda d: (d["price"], 20, 2.0)),
    (realized_vol_kernel, lambda d: (d["price"], 20)),
    (comoments_kernel, lambda d: (d["price"], d["ref"], 30)),
    (flow_kernel, lambda d: (vec.clock(d["ts"]), d["qty"], d["maker"], 3 * SEC, 0)),
    (flow_kernel, lambda d: (vec.clock(d["ts"]), d["qty"], d["maker"], 0, 40)),
    (vwap_kernel, lambda d: (vec.clock(d["ts"]), d["price"], d["qty"], 3 * SEC, 0)),
    (vwap_kernel, lambda d: (vec.clock(d["ts"]), d["price"], d["qty"], 0, 40)),
    (time_encoding_kernel, lambda d: (d["ts"],)),
    (oi_change_kernel, lambda d: (vec.clock(d["ts"]), d["qty"], 3 * SEC, 0)),
    (oi_change_kernel, lambda d: (vec.clock(d["ts"]), d["qty"], 0, 25)),
    (
        liquidation_kernel,
        lambda d: (vec.clock(d["ts"]), d["price"], d["qty"], np.zeros(0, np.int64), 3 * SEC, False),
    ),
    (
        liquidation_kernel,
        lambda d: (vec.clock(d["ts"])[::4], d["price"][::4], d["qty"][::4], vec.clock(d["ts"]), SEC, True),
    ),
]


@pytest.mark.parametrize(
    ("kern", "args"), KERNEL_ARGS, ids=[f"{k.py_func.__name__}-{i}" for i, (k, _a) in enumerate(KERNEL_ARGS)]
)
@pytest.mark.parametrize("seed", [1, 2])
def test_numba_kernel_equals_its_python_function(
    kern: Kernel[..., Any], args: Callable[[dict[str, np.ndarray]], tuple[Any, ...]], seed: int
) -> None:
    pytest.importorskip("numba")
    a = args(data(4000, seed))
    jit = kern(*a)
    py = kern.py_func(*a)
    for j, p in zip(*(r if isinstance(r, tuple) else (r,) for r in (jit, py)), strict=True):
        assert np.array_equal(j, p, equal_nan=True)


# --------------------------------------------------------------------------- inputs


@pytest.mark.edge
def test_float_columns_are_refused_with_the_column_name() -> None:
    with pytest.raises(InputError, match="price: expected integers"):
        vec.rsi(np.array([1.5, 2.5]))


@pytest.mark.edge
def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(InputError, match="differ in length"):
        vec.trade_flow_imbalance(np.arange(3), np.arange(4), np.zeros(3, bool), count=2)


@pytest.mark.edge
def test_log_return_features_refuse_non_positive_prices() -> None:
    with pytest.raises(InputError, match="row 2 is 0"):
        vec.realized_volatility(np.array([5, 6, 0, 7]), 2)


@pytest.mark.edge
def test_window_parameters_are_checked_like_the_incremental_ones() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        vec.vwap_deviation(np.arange(3), np.arange(3), np.arange(3))
    with pytest.raises(ConfigError, match="window"):
        vec.bollinger(np.arange(3), 0)


@pytest.mark.edge
def test_asof_needs_sorted_source_times() -> None:
    assert vec.asof_index([0, 5, 10, 11], [5, 10]).tolist() == [-1, 0, 1, 1]
    with pytest.raises(InputError, match="non-decreasing"):
        vec.asof_index([1], [3, 2])


@pytest.mark.edge
def test_level_matrix_pads_missing_levels_with_zero() -> None:
    prices, qtys = vec.level_matrix([((10, 1), (9, 2)), ()], 3)
    assert prices.tolist() == [[10, 9, 0], [0, 0, 0]]
    assert qtys.tolist() == [[1, 2, 0], [0, 0, 0]]
    assert np.isnan(vec.order_book_imbalance(qtys, qtys, 3)[1])


@pytest.mark.edge
def test_empty_columns_give_empty_results() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert vec.rsi(empty).shape == (0,)
    assert vec.liquidation_intensity(empty, empty, empty, window_ns=SEC, at=empty).shape == (0,)
    assert vec.liquidation_intensity(empty, empty, empty, window_ns=SEC, at=[5, 6]).shape == (2,)
