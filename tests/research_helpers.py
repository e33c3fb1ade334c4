"""Helpers for the research-loop tests: the serving side of feature parity, driven by the real kernel.

:class:`FeatureRecorder` is a strategy that keeps one :class:`FeatureSet` per instrument,
updated from exactly the callbacks the ``model`` strategy uses (``on_trade``, ``on_quote``,
``on_book`` with the kernel's own synced book), and records the vector at every trade.
:func:`serve_vectors` runs it over a log through :class:`engine.kernel.Kernel`, so the
incremental side of the parity tests is what a strategy sees in a backtest, not a
re-implementation of the kernel's book handling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engine.book import L2Book
from engine.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    Kind,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import InstrumentId
from engine.kernel import Kernel
from engine.ports import ListSink
from engine.strategy import Strategy, StrategyConfig
from replay.source import log_chunks, open_log
from strategies.features.spec import FeatureSet, FeatureSpec, book_depth

E8 = 100_000_000
SEC = 1_000_000_000
T0 = 1_723_161_600_000_000_000


class _NoConfig(StrategyConfig, frozen=True, kw_only=True):
    """The recorder takes its specs in the constructor."""


class FeatureRecorder(Strategy[_NoConfig]):
    """Records ``FeatureSet.vector()`` after every trade, per instrument."""

    name: ClassVar[str] = "recorder"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset(
        {Kind.TRADE, Kind.QUOTE, Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT}
    )

    def __init__(self, specs: tuple[FeatureSpec, ...]) -> None:
        super().__init__(_NoConfig())
        self.specs = specs
        self.depth = max(book_depth(specs), 1)
        self.sets: dict[str, FeatureSet] = {}
        self.rows: dict[str, list[list[float]]] = {}

    def _set(self, iid: str) -> FeatureSet:
        fs = self.sets.get(iid)
        if fs is None:
            fs = self.sets[iid] = FeatureSet(self.specs)
            self.rows[iid] = []
        return fs

    def on_trade(self, trade: TradeReceived) -> None:
        fs = self._set(trade.instrument)
        fs.on_trade(trade.ts_event, trade.price, trade.qty, trade.buyer_maker)
        self.rows[trade.instrument].append(fs.vector())

    def on_quote(self, quote: QuoteReceived) -> None:
        self._set(quote.instrument).on_quote(quote.bid_price, quote.bid_qty, quote.ask_price, quote.ask_qty)

    def on_book(self, event: BookDeltaReceived | BookSnapshotReceived, book: L2Book) -> None:
        bids, asks = book.top(self.depth)
        self._set(event.instrument).on_book(bids, asks)


def serve_vectors(log: Path, specs: tuple[FeatureSpec, ...]) -> dict[str, np.ndarray]:
    """Per instrument, the (trades, columns) matrix a strategy sees, from a kernel run over ``log``."""
    rec = FeatureRecorder(specs)
    kernel = Kernel(ListSink())
    kernel.add_strategy(rec)
    with open_log(log) as reader:
        kernel.run(log_chunks(reader))
    width = sum(len(s.columns) for s in specs)
    return {k: np.array(v, dtype=np.float64).reshape(-1, width) for k, v in rec.rows.items()}


def assert_bit_identical(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Same shape, NaN in the same places, every other float equal bit for bit."""
    assert a.shape == b.shape, f"{what}: shapes {a.shape} != {b.shape}"
    na, nb = np.isnan(a), np.isnan(b)
    assert np.array_equal(na, nb), f"{what}: NaN at different rows (first {np.argmax(na != nb)})"
    ia = np.where(na, 0.0, a).view(np.int64)
    ib = np.where(nb, 0.0, b).view(np.int64)
    diff = np.flatnonzero(ia != ib)
    assert diff.size == 0, f"{what}: {diff.size} values differ, first at row {diff[0]}: {a[diff[0]]!r} != {b[diff[0]]!r}"


def stack(columns: dict[str, Any], names: tuple[str, ...]) -> np.ndarray:
    """The named columns as one (rows, k) float64 matrix."""
    return np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in names])


def synthetic_session(seed: int, start: int = T0) -> list[Event]:
    """Two instruments: trades, quotes (some degenerate), a spot book with a gap and a re-snapshot."""
    rng = np.random.default_rng(seed)
    out: list[Event] = []
    t = start
    px = {"BTCUSDT.SPOT": 60_000 * E8, "ETHUSDT.SPOT": 3_000 * E8}
    mid = dict(px)  # book levels sit around a fixed centre, so diffs never cross the book
    uid = {k: 1000 for k in px}
    book_started = dict.fromkeys(px, False)
    for i in range(1500):
        t += int(rng.integers(1, 300)) * 1_000_000
        iid = InstrumentId("BTCUSDT.SPOT" if rng.random() < 0.7 else "ETHUSDT.SPOT")
        p = px[iid] = max(px[iid] + int(rng.integers(-5, 6)) * E8 // 100, E8)
        r = rng.random()
        if i in (300, 900) or (r < 0.15 and not book_started[iid]):  # (re-)snapshot
            book_started[iid] = True
            c = mid[iid]
            bids = tuple((c - k * E8 // 100, int(rng.integers(1, 9)) * E8 // 10) for k in range(1, 8))
            asks = tuple((c + k * E8 // 100, int(rng.integers(1, 9)) * E8 // 10) for k in range(1, 8))
            out.append(BookSnapshotReceived(0, t, t, iid, uid[iid], bids, asks))
        elif r < 0.35 and book_started[iid]:
            first = uid[iid] + 1 + (5 if i == 600 else 0)  # one gap in the diff sequence
            uid[iid] = first + int(rng.integers(0, 3))
            c = mid[iid] + int(rng.integers(-3, 4)) * E8 // 100
            side = tuple((c - k * E8 // 100, int(rng.integers(0, 9)) * E8 // 10) for k in range(4, 7))
            other = tuple((c + k * E8 // 100, int(rng.integers(0, 9)) * E8 // 10) for k in range(4, 7))
            out.append(BookDeltaReceived(0, t, t, iid, first, uid[iid], -1, side, other))
        elif r < 0.6:
            bp = 0 if rng.random() < 0.03 else p - E8 // 100
            bq, aq = (0, 0) if rng.random() < 0.03 else (int(rng.integers(1, 50)) * E8 // 100, int(rng.integers(1, 50)) * E8 // 100)
            out.append(QuoteReceived(0, t, t, iid, i, bp, bq, p + E8 // 100, aq))
        else:
            back = int(rng.integers(0, 400)) * 1_000_000 if rng.random() < 0.05 else 0  # trade time going back
            out.append(TradeReceived(0, t - back, t, iid, p, int(rng.integers(1, 200)) * 100_000, i, bool(rng.random() < 0.5)))  # fmt: skip
    return out
