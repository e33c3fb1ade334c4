"""Train/serve parity on the real Binance recordings: incremental == vectorised for every feature.

The raw hftbacktest files (``<local_ns> <json>`` per line, combined-stream wrapper) are read
by a tiny parser in this module (msgspec JSON + ``engine.fixed.parse_e8``), independent of the
importers. The book for the depth features is rebuilt naively with ``engine.book.L2Book``:
buffer diffs, apply the REST snapshot, drop diffs it already covers, apply the rest.

Serving side: each incremental object is driven the way a strategy would drive it, one
event at a time in file order (for as-of features, a merged stream). Training side: the
vectorised function over the whole columns. Every value must be bit-identical.

Stand-ins (said plainly): the developer recordings hold no open interest and no
liquidations, so ``OpenInterestChange`` runs on the USD-M cumulative traded quantity and
``LiquidationIntensity`` on the USD-M trades taken as if they were liquidation orders. The
funding features run on the freqtrade XRPUSDT funding history.
"""

from __future__ import annotations

import functools
import gzip
import heapq
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from engine.book import L2Book
from engine.events import Level
from engine.fixed import parse_e8
from strategies.features import incremental as inc
from strategies.features import vectorized as vec
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
from tests.conftest import binance_file

SPOT = ("spot/hftbacktest_2024-08-08/btcusdt_20240808.gz", "spot/hftbacktest_2024-08-08/btcusdt_20240809.gz")
USDM = ("usdm/hftbacktest_2024-08-08/btcusdt_20240808.gz",)
FUNDING = "usdm/freqtrade_2021-11/XRP_USDT-8h-funding_rate.json"
CANDLES = "usdm/freqtrade_2021-11/XRP_USDT-8h-mark.json"
MS = 1_000_000
SEC = 1_000_000_000
DEPTH = 20


# --------------------------------------------------------------------------- the private parser


_e8: Callable[[str], int] = functools.cache(parse_e8)
"""parse_e8, memoised: the same price/quantity strings recur ~10x in a recording."""


def _levels(raw: list[list[str]]) -> tuple[Level, ...]:
    return tuple([(_e8(p), _e8(q)) for p, q in raw])


@dataclass
class Market:
    """Columns of one recording: trades, bookTicker quotes, and the rebuilt book's top levels."""

    trades: dict[str, list[Any]] = field(
        default_factory=lambda: {"ts": [], "price": [], "qty": [], "maker": []}
    )
    quotes: dict[str, list[int]] = field(default_factory=lambda: {"bp": [], "bq": [], "ap": [], "aq": []})
    book_tops: list[tuple[tuple[Level, ...], tuple[Level, ...]]] = field(default_factory=list)

    def trade_cols(self) -> dict[str, np.ndarray]:
        t = self.trades
        return {
            "ts": np.array(t["ts"], dtype=np.int64),
            "price": np.array(t["price"], dtype=np.int64),
            "qty": np.array(t["qty"], dtype=np.int64),
            "maker": np.array(t["maker"], dtype=bool),
        }

    def quote_cols(self) -> dict[str, np.ndarray]:
        return {k: np.array(v, dtype=np.int64) for k, v in self.quotes.items()}


def _messages(paths: list[Path]) -> Iterator[tuple[int, dict[str, Any]]]:
    decode = msgspec.json.decode
    for path in paths:
        with gzip.open(path, "rb") as f:
            for line in f:
                local, _, body = line.partition(b" ")
                yield int(local), decode(body)


def load(relatives: tuple[str, ...]) -> Market:
    """Parse the files (one continuous session, in order) into a Market."""
    paths = [binance_file(r) for r in relatives]
    m = Market()
    book: L2Book | None = None
    pending: list[dict[str, Any]] = []
    for _local, msg in _messages(paths):
        if "lastUpdateId" in msg:  # the REST snapshot
            book = L2Book.from_levels(_levels(msg["bids"]), _levels(msg["asks"]))
            for d in pending:
                if d["u"] > msg["lastUpdateId"]:
                    book.apply(_levels(d["b"]), _levels(d["a"]))
            continue
        stream, data = msg["stream"], msg["data"]
        if stream.endswith("@trade"):
            m.trades["ts"].append(data["T"] * MS)
            m.trades["price"].append(_e8(data["p"]))
            m.trades["qty"].append(_e8(data["q"]))
            m.trades["maker"].append(bool(data["m"]))
        elif stream.endswith("@bookTicker"):
            for key, name in (("b", "bp"), ("B", "bq"), ("a", "ap"), ("A", "aq")):
                m.quotes[name].append(_e8(data[key]))
        elif "@depth" in stream:
            if book is None:
                pending.append(data)
                continue
            book.apply(_levels(data["b"]), _levels(data["a"]))
            m.book_tops.append(book.top(DEPTH))
    return m


@pytest.fixture(scope="module")
def spot() -> Market:
    return load(SPOT)


@pytest.fixture(scope="module")
def usdm() -> Market:
    return load(USDM)


# --------------------------------------------------------------------------- helpers


def stream(update: Callable[..., Any], *cols: np.ndarray) -> np.ndarray:
    """Drive an incremental ``update`` row by row with Python ints; None -> NaN."""
    out = [update(*row) for row in zip(*(c.tolist() for c in cols), strict=True)]
    return np.array([np.nan if v is None else v for v in out], dtype=np.float64)


def assert_parity(served: np.ndarray, trained: np.ndarray, min_values: int) -> None:
    assert served.shape == trained.shape
    same = (served == trained) | (np.isnan(served) & np.isnan(trained))
    assert same.all(), f"{(~same).sum()} differing rows, first at {int(np.argmax(~same))}"
    assert int(np.isfinite(trained).sum()) >= min_values, "too few real values to mean anything"


W = 5 * SEC

TRADE_FEATURES: dict[
    str, tuple[Callable[[], Any], Callable[[dict[str, np.ndarray]], np.ndarray], tuple[str, ...]]
] = {
    "rsi": (lambda: inc.Rsi(14).update, lambda c: vec.rsi(c["price"], 14), ("price",)),
    "bollinger_pct_b": (
        lambda: inc.Bollinger(20, 2.0).update,
        lambda c: vec.bollinger(c["price"], 20, 2.0).pct_b,
        ("price",),
    ),
    "realized_vol": (
        lambda: inc.RealizedVolatility(20).update,
        lambda c: vec.realized_volatility(c["price"], 20),
        ("price",),
    ),
    "tfi_count": (
        lambda: inc.TradeFlowImbalance(count=100).update,
        lambda c: vec.trade_flow_imbalance(c["ts"], c["qty"], c["maker"], count=100),
        ("ts", "qty", "maker"),
    ),
    "tfi_time": (
        lambda: inc.TradeFlowImbalance(window_ns=W).update,
        lambda c: vec.trade_flow_imbalance(c["ts"], c["qty"], c["maker"], window_ns=W),
        ("ts", "qty", "maker"),
    ),
    "vwap_count": (
        lambda: inc.VwapDeviation(count=200).update,
        lambda c: vec.vwap_deviation(c["ts"], c["price"], c["qty"], count=200),
        ("ts", "price", "qty"),
    ),
    "vwap_time": (
        lambda: inc.VwapDeviation(window_ns=W).update,
        lambda c: vec.vwap_deviation(c["ts"], c["price"], c["qty"], window_ns=W),
        ("ts", "price", "qty"),
    ),
}


# --------------------------------------------------------------------------- trades


@pytest.mark.edge
@pytest.mark.parametrize("market", ["spot", "usdm"])
@pytest.mark.parametrize("name", sorted(TRADE_FEATURES))
def test_trade_features_parity(request: pytest.FixtureRequest, market: str, name: str) -> None:
    cols = request.getfixturevalue(market).trade_cols()
    assert len(cols["ts"]) > 9_000
    make, vectorised, inputs = TRADE_FEATURES[name]
    assert_parity(stream(make(), *(cols[k] for k in inputs)), vectorised(cols), len(cols["ts"]) // 2)


@pytest.mark.edge
def test_bollinger_bands_parity(spot: Market) -> None:
    price = spot.trade_cols()["price"]
    boll = inc.Bollinger(50, 2.5)
    rows = []
    for p in price.tolist():
        ready = boll.update(p) is not None
        rows.append((boll.mid, boll.upper, boll.lower) if ready else (np.nan,) * 3)
    bands = vec.bollinger(price, 50, 2.5)
    for j, col in enumerate((bands.mid, bands.upper, bands.lower)):
        assert_parity(np.array([r[j] for r in rows], dtype=np.float64), col, len(price) - 49)


@pytest.mark.edge
def test_time_encodings_parity(spot: Market) -> None:
    ts = spot.trade_cols()["ts"]
    enc = inc.TimeEncoding()
    served = np.array([enc.update(t) for t in ts.tolist()])
    trained = np.column_stack(vec.time_encodings(ts))
    assert_parity(served, trained, 4 * len(ts))
    assert len(np.unique(trained[:, 2])) == 2  # the session spans Thursday -> Friday midnight UTC


# --------------------------------------------------------------------------- quotes and book


@pytest.mark.edge
@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_quote_features_parity(request: pytest.FixtureRequest, market: str) -> None:
    q = request.getfixturevalue(market).quote_cols()
    n = len(q["bp"])
    assert n > 25_000
    assert_parity(stream(inc.Microprice().update, q["bp"], q["bq"], q["ap"], q["aq"]),
                  vec.microprice(q["bp"], q["bq"], q["ap"], q["aq"]), n)  # fmt: skip
    assert_parity(stream(inc.Spread().update, q["bp"], q["ap"]), vec.spread(q["bp"], q["ap"]), n)
    assert_parity(
        stream(inc.Spread(bps=True).update, q["bp"], q["ap"]), vec.spread(q["bp"], q["ap"], bps=True), n
    )
    assert_parity(stream(inc.OrderBookImbalance(1).update_top, q["bq"], q["aq"]),
                  vec.order_book_imbalance(q["bq"], q["aq"], 1), n)  # fmt: skip


@pytest.mark.edge
@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_book_features_parity(request: pytest.FixtureRequest, market: str) -> None:
    tops = request.getfixturevalue(market).book_tops
    assert len(tops) > 3_000
    assert all(len(b) == DEPTH and len(a) == DEPTH for b, a in tops)
    _, bid_qty = vec.level_matrix([b for b, _a in tops], DEPTH)
    _, ask_qty = vec.level_matrix([a for _b, a in tops], DEPTH)
    for levels in (1, 5, DEPTH):
        obi = inc.OrderBookImbalance(levels)
        served = np.array([obi.update(b, a) for b, a in tops], dtype=np.float64)
        assert_parity(served, vec.order_book_imbalance(bid_qty, ask_qty, levels), len(tops))
    ratio = inc.DepthRatio(DEPTH)
    served = np.array([ratio.update(b, a) for b, a in tops], dtype=np.float64)
    assert_parity(served, vec.depth_ratio(bid_qty, ask_qty, DEPTH), len(tops))


# --------------------------------------------------------------------------- cross-asset: perp vs spot BTC


GRID = 250 * MS


def _grid(spot_ts: np.ndarray, perp_ts: np.ndarray) -> np.ndarray:
    start = max(int(spot_ts[0]), int(perp_ts[0]))
    return np.arange(start, min(int(spot_ts[-1]), int(perp_ts[-1])), GRID, dtype=np.int64)


@pytest.mark.edge
@pytest.mark.parametrize("window", [20, 120])
def test_beta_and_correlation_to_spot_btc_parity(spot: Market, usdm: Market, window: int) -> None:
    """Serving: a merged event stream keeps each market's last trade price and samples both on a
    250 ms timer. Training: the same grid sampled with as-of joins over the columns."""
    s, p = spot.trade_cols(), usdm.trade_cols()
    grid = _grid(s["ts"], p["ts"])
    beta, corr = inc.RollingBeta(window), inc.RollingCorrelation(window)
    last = {0: 0, 1: 0}
    served: list[tuple[float, float]] = []
    events = heapq.merge(
        ((t, 0, 0, px) for t, px in zip(s["ts"].tolist(), s["price"].tolist(), strict=True)),
        ((t, 0, 1, px) for t, px in zip(p["ts"].tolist(), p["price"].tolist(), strict=True)),
        ((t, 1, -1, 0) for t in grid.tolist()),
    )
    for _t, is_timer, market, px in events:
        if not is_timer:
            last[market] = px
            continue
        b, c = beta.update(last[1], last[0]), corr.update(last[1], last[0])
        served.append((np.nan if b is None else b, np.nan if c is None else c))
    perp_px = p["price"][vec.asof_index(grid, p["ts"])]
    spot_px = s["price"][vec.asof_index(grid, s["ts"])]
    assert (vec.asof_index(grid, p["ts"]) >= 0).all() and (vec.asof_index(grid, s["ts"]) >= 0).all()
    got = np.array(served)
    assert_parity(got[:, 0], vec.rolling_beta(perp_px, spot_px, window), len(grid) // 2)
    assert_parity(got[:, 1], vec.rolling_correlation(perp_px, spot_px, window), len(grid) // 2)
    assert np.nanmean(got[:, 1]) > 0.5  # perp and spot BTC move together


# --------------------------------------------------------------------------- futures: funding, OI, liquidations


def _json_exact(path: Path) -> list[list[str]]:
    """The freqtrade JSON with numbers kept as their literal text (exact e8 parsing)."""
    rows: list[list[str]] = json.loads(path.read_text(), parse_float=str, parse_int=str)
    return rows


@pytest.mark.edge
def test_funding_rate_and_time_to_funding_parity() -> None:
    funding = _json_exact(binance_file(FUNDING))
    candles = _json_exact(binance_file(CANDLES))
    fts = np.array([int(r[0]) * MS for r in funding], dtype=np.int64)
    rates = np.array([parse_e8(r[1], signed=True) for r in funding], dtype=np.int64)
    hours = np.arange(int(candles[0][0]) * MS, int(candles[-1][0]) * MS, 3_600 * SEC, dtype=np.int64)
    at = np.sort(
        np.concatenate([np.array([int(r[0]) * MS for r in candles], dtype=np.int64), hours + 17 * MS])
    )
    rate, ttf = inc.FundingRate(), inc.TimeToFunding()
    served = []
    for t, is_target, i in heapq.merge(((t, 0, i) for i, t in enumerate(fts.tolist())),
                                       ((t, 1, i) for i, t in enumerate(at.tolist()))):  # fmt: skip
        if is_target:
            served.append((np.nan if rate.value is None else rate.value, ttf.update(t)))
        else:
            rate.update(int(rates[i]))
    got = np.array(served)
    assert_parity(got[:, 0], vec.funding_rate(at, fts, rates), len(at) - 2)
    assert_parity(got[:, 1], vec.time_to_funding(at), len(at))
    assert len(set(got[:, 0][np.isfinite(got[:, 0])].tolist())) > 5  # real, varying rates


@pytest.mark.edge
@pytest.mark.parametrize("window", [{"count": 100}, {"window_ns": 10 * SEC}])
def test_open_interest_change_parity_on_a_stand_in_series(usdm: Market, window: dict[str, int]) -> None:
    c = usdm.trade_cols()
    oi = np.cumsum(c["qty"])  # stand-in: positive, growing, with real timing and ties
    assert_parity(stream(inc.OpenInterestChange(**window).update, c["ts"], oi),
                  vec.open_interest_change(c["ts"], oi, **window), len(oi) // 2)  # fmt: skip


@pytest.mark.edge
def test_liquidation_intensity_parity_on_stand_in_events(usdm: Market) -> None:
    c = usdm.trade_cols()
    assert_parity(stream(inc.LiquidationIntensity(W).update, c["ts"], c["price"], c["qty"]),
                  vec.liquidation_intensity(c["ts"], c["price"], c["qty"], window_ns=W), len(c["ts"]) // 2)  # fmt: skip
    at = np.arange(int(c["ts"][0]) - SEC, int(c["ts"][-1]) + 10 * SEC, 100 * MS, dtype=np.int64)
    liq = inc.LiquidationIntensity(W)
    served = []
    events = heapq.merge(
        ((t, 0, i) for i, t in enumerate(c["ts"].tolist())), ((t, 1, i) for i, t in enumerate(at.tolist()))
    )
    price, qty = c["price"].tolist(), c["qty"].tolist()
    for t, is_target, i in events:
        if is_target:
            v = liq.value_at(t)
            served.append(np.nan if v is None else v)
        else:
            liq.update(t, price[i], qty[i])
    trained = vec.liquidation_intensity(c["ts"], c["price"], c["qty"], window_ns=W, at=at)
    assert_parity(np.array(served), trained, len(at) // 2)
    assert trained[-1] == 0.0  # 10 s after the last event the window is empty, with no float residue


# --------------------------------------------------------------------------- numba == Python on real columns


def test_numba_kernels_equal_python_on_real_columns(spot: Market, usdm: Market) -> None:
    pytest.importorskip("numba")
    s, p = spot.trade_cols(), usdm.trade_cols()
    grid = _grid(s["ts"], p["ts"])
    perp_px = p["price"][vec.asof_index(grid, p["ts"])]
    spot_px = s["price"][vec.asof_index(grid, s["ts"])]
    ts = vec.clock(s["ts"])
    runs: list[tuple[Any, tuple[Any, ...]]] = [
        (rsi_kernel, (s["price"], 14)),
        (bollinger_kernel, (s["price"], 20, 2.0)),
        (realized_vol_kernel, (s["price"], 20)),
        (comoments_kernel, (perp_px, spot_px, 60)),
        (flow_kernel, (ts, s["qty"], s["maker"], W, 0)),
        (flow_kernel, (ts, s["qty"], s["maker"], 0, 100)),
        (vwap_kernel, (ts, s["price"], s["qty"], W, 0)),
        (vwap_kernel, (ts, s["price"], s["qty"], 0, 200)),
        (time_encoding_kernel, (ts,)),
        (oi_change_kernel, (vec.clock(p["ts"]), np.cumsum(p["qty"]), 10 * SEC, 0)),
        (liquidation_kernel, (vec.clock(p["ts"]), p["price"], p["qty"], grid, W, True)),
    ]
    for kern, args in runs:
        jit, py = kern(*args), kern.py_func(*args)
        for a, b in zip(*((r,) if isinstance(r, np.ndarray) else r for r in (jit, py)), strict=True):
            assert np.array_equal(a, b, equal_nan=True), kern.py_func.__name__
