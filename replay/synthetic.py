"""A seeded synthetic Binance spot session, as a raw combined-stream recording.

What it produces is shaped like the real recordings in ``shared/data/binance/spot/hftbacktest_*``:
``<local_ns> <json>`` lines (gzip), combined-stream wrappers for ``<sym>@depth@100ms``
diffs, ``<sym>@bookTicker`` and ``<sym>@trade``, and one bare REST depth snapshot per
symbol arriving *after* the first diffs. Everything derives from one
``numpy.random.Generator`` seeded by the caller, and the gzip header carries no name and
mtime 0, so the same seed gives the same bytes.

The market model is a small exact L2 book per symbol (integer ticks and lots), driven by
a Poisson stream of order-book events in exchange time:

- **trades** take (part of) the best level on one side; the aggressor side follows a
  slowly varying buy/sell pressure so prices trend and revert (RSI has something to do);
- **adds** rest new quantity, sometimes inside the spread (improving the top), usually a
  few ticks behind it; **cancels** reduce or remove a level. Sides are replenished to a
  minimum depth; the book is never crossed.

Every change increments the symbol's update id by one. A ``bookTicker`` (with that id) is
sent whenever the top of book changes; every 100 ms a ``depthUpdate`` carries the final
quantity of every level changed in the window (0 = removed) with ``U`` = first and ``u`` =
last id of the window -- exactly Binance's semantics, so a local book built by the
documented procedure matches every bookTicker whose id ends a window.

The REST snapshot is taken ``SNAPSHOT_AT_MS`` into the session (its ``lastUpdateId`` usually
falls inside a diff window, so the bridging rule ``U <= lastUpdateId + 1 <= u`` is
exercised) and reaches the recorder ``SNAPSHOT_LATENCY_MS`` later. Because this file holds
two symbols' depth streams, each snapshot also names its ``symbol`` (as COIN-M snapshots
do); that is the importer's documented way to attribute a bare snapshot in a multi-symbol
recording.
"""

from __future__ import annotations

import gzip
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from engine.fixed import SCALE

MS = 1_000_000
SESSION_START_NS = 1_723_161_600_000_000_000  # 2024-08-09T00:00:00Z
DEPTH_INTERVAL_MS = 100
SNAPSHOT_AT_MS = 250
SNAPSHOT_LATENCY_MS = 180
MIN_LEVELS = 20
INITIAL_LEVELS = 40


def _binance_decimal(e8: int) -> str:
    """Non-negative e8 as Binance prints spot numbers: always 8 decimals ("61837.63000000")."""
    whole, frac = divmod(e8, SCALE)
    return f"{whole}.{frac:08d}"


def _json(doc: dict[str, object]) -> str:
    """Compact JSON, keys in insertion order (Binance's field order)."""
    return msgspec.json.encode(doc).decode()


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One synthetic instrument: start price, tick and lot (e8), typical level size in lots."""

    symbol: str
    start_price_e8: int
    tick_e8: int
    lot_e8: int
    level_lots: int
    events_per_s: float


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTCUSDT", 60_000 * 10**8, 1_000_000, 1_000, 200, 60.0),  # tick 0.01, lot 0.00001
    SymbolSpec("ETHUSDT", 2_600 * 10**8, 1_000_000, 10_000, 300, 45.0),  # tick 0.01, lot 0.0001
)


@dataclass(slots=True)
class _Book:
    """Exact book in ticks/lots; ``changed`` collects levels touched since the last diff."""

    bids: dict[int, int] = field(default_factory=dict)  # price ticks -> qty lots
    asks: dict[int, int] = field(default_factory=dict)
    changed_bids: dict[int, int] = field(default_factory=dict)
    changed_asks: dict[int, int] = field(default_factory=dict)

    def best_bid(self) -> int:
        return max(self.bids)

    def best_ask(self) -> int:
        return min(self.asks)

    def set(self, bid_side: bool, price: int, qty: int) -> None:
        side = self.bids if bid_side else self.asks
        if qty > 0:
            side[price] = qty
        else:
            side.pop(price, None)
        (self.changed_bids if bid_side else self.changed_asks)[price] = qty

    def top(self) -> tuple[int, int, int, int]:
        b, a = self.best_bid(), self.best_ask()
        return b, self.bids[b], a, self.asks[a]


class _SymbolSession:
    """Generates one symbol's messages as (local_ns, order, line) in exchange-time order."""

    def __init__(self, spec: SymbolSpec, rng: np.random.Generator, duration_ms: int) -> None:
        self.spec = spec
        self.rng = rng
        self.duration_ms = duration_ms
        self.book = _Book()
        self.update_id = int(rng.integers(10**9, 10**10))
        self.trade_id = int(rng.integers(10**8, 10**9))
        self.window_first: int | None = None
        self.pressure = 0.0
        self.last_local = 0
        self.lines: list[tuple[int, str]] = []
        self.stream = spec.symbol.lower()
        self._seed_book()

    # ----------------------------------------------------------------- formatting

    def _px(self, ticks: int) -> str:
        return _binance_decimal(ticks * self.spec.tick_e8)

    def _qty(self, lots: int) -> str:
        return _binance_decimal(lots * self.spec.lot_e8)

    def _emit(self, exch_ms: int, stream: str, data: dict[str, object]) -> None:
        latency = int(self.rng.integers(1 * MS, 4 * MS))
        local = max(SESSION_START_NS + exch_ms * MS + latency, self.last_local + 1)
        self.last_local = local
        self.lines.append((local, _json({"stream": f"{self.stream}@{stream}", "data": data})))

    # ----------------------------------------------------------------- book changes

    def _seed_book(self) -> None:
        mid = self.spec.start_price_e8 // self.spec.tick_e8
        for i in range(INITIAL_LEVELS):
            self.book.bids[mid - 1 - i] = self._lots()
            self.book.asks[mid + 1 + i] = self._lots()
        self.book.changed_bids.clear()
        self.book.changed_asks.clear()

    def _lots(self) -> int:
        return 1 + int(self.rng.geometric(1.0 / self.spec.level_lots))

    def _change(self, bid_side: bool, price: int, qty: int) -> None:
        self.book.set(bid_side, price, qty)
        self.update_id += 1
        if self.window_first is None:
            self.window_first = self.update_id

    def _step(self, t_ms: int) -> None:
        """One order-book event at exchange time ``t_ms``; sends a bookTicker if the top moved."""
        before = self.book.top()
        r = float(self.rng.random())
        if r < 0.30:
            self._trade(t_ms)
        elif r < 0.65:
            self._add()
        else:
            self._cancel()
        self._replenish()
        after = self.book.top()
        if after != before:
            b, bq, a, aq = after
            self._emit(
                t_ms,
                "bookTicker",
                {
                    "u": self.update_id,
                    "s": self.spec.symbol,
                    "b": self._px(b),
                    "B": self._qty(bq),
                    "a": self._px(a),
                    "A": self._qty(aq),
                },
            )

    def _trade(self, t_ms: int) -> None:
        self.pressure = 0.97 * self.pressure + float(self.rng.normal(0.0, 0.25))
        buy = bool(self.rng.random() < 1.0 / (1.0 + np.exp(-self.pressure)))
        price = self.book.best_ask() if buy else self.book.best_bid()
        side = self.book.asks if buy else self.book.bids
        level = side[price]
        take = level if self.rng.random() < 0.35 else 1 + int(self.rng.integers(0, level))
        take = min(take, level)
        self._change(not buy, price, level - take)
        self.trade_id += 1
        self._emit(
            t_ms,
            "trade",
            {
                "e": "trade",
                "E": t_ms + int(self.rng.integers(0, 2)) + SESSION_START_NS // MS,
                "s": self.spec.symbol,
                "t": self.trade_id,
                "p": self._px(price),
                "q": self._qty(take),
                "T": t_ms + SESSION_START_NS // MS,
                "m": not buy,
                "M": True,
            },
        )

    def _add(self) -> None:
        bid_side = bool(self.rng.random() < 0.5)
        best_bid, best_ask = self.book.best_bid(), self.book.best_ask()
        spread = best_ask - best_bid
        if spread > 1 and self.rng.random() < 0.4:
            price = (
                best_bid + int(self.rng.integers(1, spread))
                if bid_side
                else best_ask - int(self.rng.integers(1, spread))
            )
        else:
            depth = int(self.rng.geometric(0.25)) - 1
            price = best_bid - depth if bid_side else best_ask + depth
        side = self.book.bids if bid_side else self.book.asks
        self._change(bid_side, price, side.get(price, 0) + self._lots())

    def _cancel(self) -> None:
        bid_side = bool(self.rng.random() < 0.5)
        side = self.book.bids if bid_side else self.book.asks
        if len(side) <= MIN_LEVELS:
            return
        prices = sorted(side, reverse=bid_side)  # best first
        idx = min(len(prices) - 1, int(self.rng.geometric(0.15)) - 1)
        price = prices[idx]
        qty = side[price]
        left = 0 if self.rng.random() < 0.5 else int(self.rng.integers(0, qty))
        self._change(bid_side, price, left)

    def _replenish(self) -> None:
        for bid_side in (True, False):
            side = self.book.bids if bid_side else self.book.asks
            while len(side) < MIN_LEVELS:
                worst = min(side) if bid_side else max(side)
                gap = 1 + int(self.rng.integers(0, 3))
                self._change(bid_side, worst - gap if bid_side else worst + gap, self._lots())

    # ----------------------------------------------------------------- diffs and snapshot

    def _diff(self, boundary_ms: int) -> None:
        if self.window_first is None:
            return  # Binance sends no empty diff
        b = self.book
        self._emit(
            boundary_ms,
            "depth@100ms",
            {
                "e": "depthUpdate",
                "E": boundary_ms + SESSION_START_NS // MS,
                "s": self.spec.symbol,
                "U": self.window_first,
                "u": self.update_id,
                "b": [[self._px(p), self._qty(q)] for p, q in sorted(b.changed_bids.items(), reverse=True)],
                "a": [[self._px(p), self._qty(q)] for p, q in sorted(b.changed_asks.items())],
            },
        )
        b.changed_bids.clear()
        b.changed_asks.clear()
        self.window_first = None

    def _snapshot(self, t_ms: int) -> None:
        b = self.book
        doc = {
            "lastUpdateId": self.update_id,
            "symbol": self.spec.symbol,
            "bids": [[self._px(p), self._qty(b.bids[p])] for p in sorted(b.bids, reverse=True)[:1000]],
            "asks": [[self._px(p), self._qty(b.asks[p])] for p in sorted(b.asks)[:1000]],
        }
        local = SESSION_START_NS + (t_ms + SNAPSHOT_LATENCY_MS) * MS + int(self.rng.integers(0, MS))
        self.lines.append((local, _json(doc)))

    def run(self) -> list[tuple[int, str]]:
        rate_per_ms = self.spec.events_per_s / 1000.0
        t = 0.0
        next_boundary = DEPTH_INTERVAL_MS
        snapshot_done = False
        while True:
            t += float(self.rng.exponential(1.0 / rate_per_ms))
            t_ms = int(t)
            while next_boundary <= min(t_ms, self.duration_ms):
                self._diff(next_boundary)
                next_boundary += DEPTH_INTERVAL_MS
            if not snapshot_done and t_ms >= SNAPSHOT_AT_MS:
                self._snapshot(SNAPSHOT_AT_MS)
                snapshot_done = True
            if t_ms >= self.duration_ms:
                break
            self._step(t_ms)
        self.lines.sort(key=lambda x: x[0])  # the snapshot arrives late; stable for equal times
        return self.lines


def generate_lines(
    seed: int, duration_s: float = 120.0, symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS
) -> Iterator[str]:
    """Every recorded line (``<local_ns> <json>``) of the session, in local-time order."""
    if duration_s <= 0:
        raise ValueError(f"duration must be positive, got {duration_s}")
    root = np.random.default_rng(seed)
    streams = []
    for i, spec in enumerate(symbols):
        rng = np.random.default_rng(root.integers(0, 2**63) + i)
        lines = _SymbolSession(spec, rng, int(duration_s * 1000)).run()
        streams.append([(local, i, body) for local, body in lines])
    for local, _, body in heapq.merge(*streams):
        yield f"{local} {body}"


def write_session(
    path: str | Path, seed: int, duration_s: float = 120.0, symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS
) -> int:
    """Write the session as a gzip recording (reproducible bytes); returns the line count."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        for line in generate_lines(seed, duration_s, symbols):
            gz.write(line.encode() + b"\n")
            n += 1
    return n
