"""The feature spec language shared by dataset building (training) and strategies (trading).

A spec string such as ``"rsi:14,obi:5,tfi:100,vol:20"`` names the model's input columns, in
order. The *same* parsed :class:`FeatureSpec` gives

- its column name(s) (``rsi_14``, ``obi_5``, ``tfi_100``, ``vol_20``; ``hour`` gives two),
- an incremental form: :class:`FeatureSet` is fed a strategy's trades, quotes and book
  states and reads as one float vector (NaN while a feature warms up),
- a vectorised form: :func:`compute_features` over a :class:`MarketTable` (the per-kind
  columns of one instrument's events) gives one float64 column per name, one row per trade.

Why one module for both: train/serve parity is only as good as the agreement on *what* is
computed (which window, which price, which book depth, which event a value is "as of").
Here the spec decides it once; the numbers come from ``strategies.features`` whose two
forms are bit-identical, so the vector a strategy sees at a trade equals the dataset row of
that trade bit for bit (tested on the real recording).

Sampling rule: a row is a trade. Trade features are updated by that trade; quote and book
features hold the value after the last quote / book change *before* the trade in event
order (log order, which is the order a strategy sees them); time features use the trade's
time. Time windows run on the trades' ``ts_event`` (the venue's trade time).

Tokens (``N`` a positive integer, ``D`` a duration such as ``500ms``, ``5s``, ``2m``, ``1h``):

==================  ======  ===============================================================
token               source  column(s): definition (see docs/features.md)
==================  ======  ===============================================================
``rsi:N``           trade   ``rsi_N``: Wilder RSI over trade prices
``vol:N``           trade   ``vol_N``: sample std of the last N log returns
``boll:N``          trade   ``boll_N``: Bollinger %B, k = 2
``tfi:N|D``         trade   ``tfi_N``/``tfi_D``: trade-flow imbalance, last N trades or D
``vwap:N|D``        trade   ``vwap_N``/``vwap_D``: last price / VWAP - 1
``hour``            trade   ``hour_sin``, ``hour_cos``: UTC time of day
``dow``             trade   ``dow_sin``, ``dow_cos``: UTC weekday
``obi:N``           book    ``obi_N``: order-book imbalance over the top N levels (L2 book)
``depth:N``         book    ``depth_N``: bid depth / ask depth over the top N levels
``qobi``            quote   ``qobi``: top-of-book (bookTicker) imbalance
``spread_bps``      quote   ``spread_bps``: (ask - bid) in bps of the mid
``microprice_dev``  quote   ``microprice_dev``: (microprice / mid - 1) in bps
==================  ======  ===============================================================
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from engine.errors import ConfigError, InputError
from engine.events import Level
from strategies.features import incremental as inc
from strategies.features import vectorized as vec
from strategies.features._kernels import SCALE_F

Source = Literal["trade", "quote", "book"]
NAN = math.nan

_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION = re.compile(r"^([0-9]+)(ns|us|ms|s|m|h)$")
_COUNT = re.compile(r"^[0-9]+$")


def parse_duration(text: str, *, what: str = "duration") -> int:
    """``"500ms"``, ``"5s"``, ``"2m"``, ``"1h"``, ``"100us"``, ``"10ns"`` -> int ns (> 0), else ConfigError."""
    m = _DURATION.match(text.strip())
    if m is None or int(m.group(1)) <= 0:
        raise ConfigError(f"bad {what} {text!r}: expected a positive integer with a unit (ns, us, ms, s, m, h), e.g. 5s")
    return int(m.group(1)) * _UNITS_NS[m.group(2)]


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class MarketTable:
    """One instrument's events as columns, for the vectorised form.

    ``*_pos`` are the events' positions in one common order (log seq): they say which quote
    or book state is the latest *before* a trade. Book states are the top ``depth`` levels
    after each change of the synced book, as quantity matrices (rows, depth) best first,
    zero-padded (prices are not needed by the book features).
    """

    trade_pos: np.ndarray
    trade_ts: np.ndarray
    trade_price: np.ndarray
    trade_qty: np.ndarray
    trade_buyer_maker: np.ndarray
    quote_pos: np.ndarray
    quote_bid_price: np.ndarray
    quote_bid_qty: np.ndarray
    quote_ask_price: np.ndarray
    quote_ask_qty: np.ndarray
    book_pos: np.ndarray
    book_bid_qty: np.ndarray
    book_ask_qty: np.ndarray

    @property
    def n_trades(self) -> int:
        return len(self.trade_pos)


class TableBuilder:
    """Collects one instrument's events into a :class:`MarketTable` (row by row).

    ``depth`` is how many book levels to keep (the deepest level any spec reads); book
    states are added by the caller after each change of its synced book, as the kernel
    calls a strategy's ``on_book``.
    """

    def __init__(self, depth: int) -> None:
        self.depth = max(depth, 1)
        self._t: list[list[int]] = [[], [], [], [], []]
        self._q: list[list[int]] = [[], [], [], [], []]
        self._b_pos: list[int] = []
        self._b_bid: list[list[int]] = []
        self._b_ask: list[list[int]] = []

    def add_trade(self, pos: int, ts: int, price: int, qty: int, buyer_maker: bool) -> None:
        for col, v in zip(self._t, (pos, ts, price, qty, int(buyer_maker)), strict=True):
            col.append(v)

    def add_quote(self, pos: int, bid_price: int, bid_qty: int, ask_price: int, ask_qty: int) -> None:
        for col, v in zip(self._q, (pos, bid_price, bid_qty, ask_price, ask_qty), strict=True):
            col.append(v)

    def add_book(self, pos: int, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        d = self.depth
        self._b_pos.append(pos)
        self._b_bid.append(_padded(bids, d))
        self._b_ask.append(_padded(asks, d))

    def build(self) -> MarketTable:
        i64 = np.int64
        t = [np.asarray(c, dtype=i64) for c in self._t]
        q = [np.asarray(c, dtype=i64) for c in self._q]
        shape = (len(self._b_pos), self.depth)
        return MarketTable(
            trade_pos=t[0], trade_ts=t[1], trade_price=t[2], trade_qty=t[3], trade_buyer_maker=t[4] != 0,
            quote_pos=q[0], quote_bid_price=q[1], quote_bid_qty=q[2], quote_ask_price=q[3], quote_ask_qty=q[4],
            book_pos=np.asarray(self._b_pos, dtype=i64),
            book_bid_qty=np.asarray(self._b_bid, dtype=i64).reshape(shape),
            book_ask_qty=np.asarray(self._b_ask, dtype=i64).reshape(shape),
        )  # fmt: skip


def _padded(levels: Sequence[Level], depth: int) -> list[int]:
    out = [q for _p, q in levels[:depth]]
    out.extend([0] * (depth - len(out)))
    return out


# --------------------------------------------------------------------------- incremental slots


class _Slot:
    """One spec's incremental state: ``update`` takes the source's numbers, ``read`` its column values."""

    __slots__ = ("read", "update")

    def __init__(self, update: Callable[..., Any], read: Callable[[], tuple[float | None, ...]]) -> None:
        self.update = update
        self.read = read


def _value_slot(obj: Any, update: Callable[..., Any]) -> _Slot:
    return _Slot(update, lambda: (obj.value,))


def _time_slot(pair: int) -> _Slot:
    enc = inc.TimeEncoding()

    def read() -> tuple[float | None, ...]:
        v = enc.value
        if v is None:
            return (None, None)
        return (v[0], v[1]) if pair == 0 else (v[2], v[3])

    return _Slot(lambda ts, price, qty, bm: enc.update(ts), read)


def _microprice_dev_slot() -> _Slot:
    mp = inc.Microprice()
    state: list[float | None] = [None]

    def update(bp: int, bq: int, ap: int, aq: int) -> None:
        m = mp.update(bp, bq, ap, aq)
        state[0] = None if m is None else (m / ((float(bp) + float(ap)) / 2.0 / SCALE_F) - 1.0) * 10_000.0

    return _Slot(update, lambda: (state[0],))


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One parsed token: ``name`` (the feature), ``count`` or ``window_ns`` (its parameter).

    ``token`` is the canonical text (what :func:`specs_text` joins, and what a model's
    metadata stores); ``columns`` the dataset column names, in vector order.
    """

    token: str
    name: str
    source: Source
    columns: tuple[str, ...]
    count: int | None = None
    window_ns: int | None = None

    @property
    def levels(self) -> int:
        """Book levels read (book features), else 0."""
        return (self.count or 0) if self.source == "book" else 0

    def incremental(self) -> _Slot:
        """A fresh incremental state for this feature (see :class:`FeatureSet`)."""
        n, w = self.count, self.window_ns
        name = self.name
        if name == "rsi":
            o: Any = inc.Rsi(n or 0)
            return _value_slot(o, lambda ts, price, qty, bm: o.update(price))
        if name == "vol":
            o = inc.RealizedVolatility(n or 0)
            return _value_slot(o, lambda ts, price, qty, bm: o.update(price))
        if name == "boll":
            o = inc.Bollinger(n or 0, 2.0)
            return _value_slot(o, lambda ts, price, qty, bm: o.update(price))
        if name == "tfi":
            o = inc.TradeFlowImbalance(window_ns=w, count=n)
            return _value_slot(o, lambda ts, price, qty, bm: o.update(ts, qty, bm))
        if name == "vwap":
            o = inc.VwapDeviation(window_ns=w, count=n)
            return _value_slot(o, lambda ts, price, qty, bm: o.update(ts, price, qty))
        if name in ("hour", "dow"):
            return _time_slot(0 if name == "hour" else 1)
        if name == "obi":
            o = inc.OrderBookImbalance(n or 0)
            return _value_slot(o, o.update)
        if name == "depth":
            o = inc.DepthRatio(n or 0)
            return _value_slot(o, o.update)
        if name == "qobi":
            o = inc.OrderBookImbalance(1)
            return _value_slot(o, lambda bp, bq, ap, aq: o.update_top(bq, aq))
        if name == "spread_bps":
            o = inc.Spread(bps=True)
            return _value_slot(o, lambda bp, bq, ap, aq: o.update(bp, ap))
        assert name == "microprice_dev", name
        return _microprice_dev_slot()

    def compute(self, t: MarketTable) -> tuple[np.ndarray, ...]:
        """The vectorised columns of this feature, one float64 value per trade of ``t``."""
        if self.source == "trade":
            return self._trade_columns(t)
        if self.source == "quote":
            return tuple(_asof(c, t.quote_pos, t.trade_pos) for c in self._quote_columns(t))
        n = self.count or 0
        col = (vec.order_book_imbalance if self.name == "obi" else vec.depth_ratio)(
            t.book_bid_qty, t.book_ask_qty, n
        )
        return (_asof(col, t.book_pos, t.trade_pos),)

    def _trade_columns(self, t: MarketTable) -> tuple[np.ndarray, ...]:
        n, w = self.count, self.window_ns
        name = self.name
        if name == "rsi":
            return (vec.rsi(t.trade_price, n or 0),)
        if name == "vol":
            return (vec.realized_volatility(t.trade_price, n or 0),)
        if name == "boll":
            return (vec.bollinger(t.trade_price, n or 0, 2.0).pct_b,)
        if name == "tfi":
            return (vec.trade_flow_imbalance(t.trade_ts, t.trade_qty, t.trade_buyer_maker, window_ns=w, count=n),)
        if name == "vwap":
            return (vec.vwap_deviation(t.trade_ts, t.trade_price, t.trade_qty, window_ns=w, count=n),)
        enc = vec.time_encodings(t.trade_ts)
        return (enc.hour_sin, enc.hour_cos) if name == "hour" else (enc.dow_sin, enc.dow_cos)

    def _quote_columns(self, t: MarketTable) -> tuple[np.ndarray, ...]:
        bp, bq, ap, aq = t.quote_bid_price, t.quote_bid_qty, t.quote_ask_price, t.quote_ask_qty
        if self.name == "qobi":
            return (vec.order_book_imbalance(bq, aq, 1),)
        if self.name == "spread_bps":
            return (vec.spread(bp, ap, bps=True),)
        mp = vec.microprice(bp, bq, ap, aq)
        mid = (bp.astype(np.float64) + ap.astype(np.float64)) / 2.0 / SCALE_F
        out = np.full(len(mp), NAN)
        ok = ~np.isnan(mp)
        out[ok] = (mp[ok] / mid[ok] - 1.0) * 10_000.0
        return (out,)


def _asof(values: np.ndarray, pos: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``values`` at the last ``pos`` strictly before each ``at`` (NaN before the first)."""
    idx = np.searchsorted(pos, at, side="left") - 1
    out = np.full(len(at), NAN)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


# --------------------------------------------------------------------------- parsing

_TRADE_COUNT = ("rsi", "vol", "boll")
_TRADE_WINDOW = ("tfi", "vwap")
_BOOK = ("obi", "depth")
_QUOTE = ("qobi", "spread_bps", "microprice_dev")
_TIME = ("hour", "dow")
KNOWN = (*_TRADE_COUNT, *_TRADE_WINDOW, *_TIME, *_BOOK, *_QUOTE)
_MIN_COUNT = {"vol": 2}


def parse_spec(token: str) -> FeatureSpec:
    """One token (``rsi:14``, ``tfi:5s``, ``spread_bps``...) -> FeatureSpec; ConfigError naming the token."""
    text = token.strip()
    name, colon, arg = text.partition(":")
    name, arg = name.strip().lower(), arg.strip()
    if name not in KNOWN:
        raise ConfigError(f"unknown feature {text!r} in the feature spec; known: {', '.join(KNOWN)}")
    if name in _TIME or name in _QUOTE:
        if colon:
            raise ConfigError(f"feature {text!r}: {name} takes no argument (write just {name!r})")
        columns = (f"{name}_sin", f"{name}_cos") if name in _TIME else (name,)
        return FeatureSpec(name, name, "quote" if name in _QUOTE else "trade", columns)
    if not arg:
        raise ConfigError(f"feature {text!r}: {name} needs an argument, e.g. {name}:{20 if name != 'tfi' else '100'}")
    source: Source = "book" if name in _BOOK else "trade"
    if _COUNT.match(arg):
        n = int(arg)
        low = _MIN_COUNT.get(name, 1)
        if n < low:
            raise ConfigError(f"feature {text!r}: the count must be >= {low}")
        return FeatureSpec(f"{name}:{n}", name, source, (f"{name}_{n}",), count=n)
    if name not in _TRADE_WINDOW:
        raise ConfigError(f"feature {text!r}: {name} takes a positive integer, got {arg!r}")
    w = parse_duration(arg, what=f"window in feature {text!r}")
    return FeatureSpec(f"{name}:{arg}", name, source, (f"{name}_{arg}",), window_ns=w)


def parse_specs(text: str | Sequence[str]) -> tuple[FeatureSpec, ...]:
    """``"rsi:14,obi:5,tfi:100,vol:20"`` (or a list of tokens) -> specs, in column order.

    Empty specs, empty tokens and two specs giving the same column are ConfigErrors.
    """
    tokens = text.split(",") if isinstance(text, str) else list(text)
    if not any(t.strip() for t in tokens):
        raise ConfigError("the feature spec is empty; give e.g. rsi:14,obi:5,tfi:100,vol:20")
    specs = []
    seen: dict[str, str] = {}
    for i, tok in enumerate(tokens):
        if not tok.strip():
            raise ConfigError(f"empty token at position {i + 1} of the feature spec {text!r}")
        spec = parse_spec(tok)
        for col in spec.columns:
            if col in seen:
                raise ConfigError(f"feature {tok.strip()!r} repeats column {col!r} (already from {seen[col]!r})")
            seen[col] = tok.strip()
        specs.append(spec)
    return tuple(specs)


def specs_text(specs: Sequence[FeatureSpec]) -> str:
    """The canonical spec string (what models store and strategies compare)."""
    return ",".join(s.token for s in specs)


def columns_of(specs: Sequence[FeatureSpec]) -> tuple[str, ...]:
    """Every column name, in vector order."""
    return tuple(c for s in specs for c in s.columns)


def book_depth(specs: Sequence[FeatureSpec]) -> int:
    """The deepest book level any spec reads (0: no book feature)."""
    return max((s.levels for s in specs), default=0)


# --------------------------------------------------------------------------- the two forms


class FeatureSet:
    """The incremental form of a spec list for one instrument, fed event by event.

    Call :meth:`on_quote` / :meth:`on_book` as those events arrive and :meth:`on_trade` for
    each trade, then :meth:`vector` reads the model's input row (NaN while warming up).
    """

    __slots__ = ("_book", "_quote", "_readers", "_trade", "columns", "specs")

    def __init__(self, specs: Sequence[FeatureSpec]) -> None:
        self.specs = tuple(specs)
        self.columns = columns_of(self.specs)
        slots = [(s.source, s.incremental()) for s in self.specs]
        self._trade = tuple(sl.update for src, sl in slots if src == "trade")
        self._quote = tuple(sl.update for src, sl in slots if src == "quote")
        self._book = tuple(sl.update for src, sl in slots if src == "book")
        self._readers = tuple(sl.read for _src, sl in slots)

    @property
    def needs_quotes(self) -> bool:
        return bool(self._quote)

    @property
    def needs_book(self) -> bool:
        return bool(self._book)

    def on_trade(self, ts: int, price: int, qty: int, buyer_maker: bool) -> None:
        for update in self._trade:
            update(ts, price, qty, buyer_maker)

    def on_quote(self, bid_price: int, bid_qty: int, ask_price: int, ask_qty: int) -> None:
        for update in self._quote:
            update(bid_price, bid_qty, ask_price, ask_qty)

    def on_book(self, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        for update in self._book:
            update(bids, asks)

    def vector(self) -> list[float]:
        """The current values in column order; NaN where a feature is not defined yet."""
        out: list[float] = []
        for read in self._readers:
            out.extend(NAN if v is None else v for v in read())
        return out


def compute_features(specs: Sequence[FeatureSpec], table: MarketTable) -> dict[str, np.ndarray]:
    """The vectorised form: column name -> float64 array, one value per trade of ``table``."""
    _check_table(table)
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        if spec.source == "book" and table.book_bid_qty.shape[1] < spec.levels and len(table.book_pos):
            raise InputError(
                f"feature {spec.token!r} reads {spec.levels} book levels but the table keeps "
                f"{table.book_bid_qty.shape[1]}",
                source="features",
            )
        for col, values in zip(spec.columns, spec.compute(table), strict=True):
            out[col] = values
    return out


def _check_table(t: MarketTable) -> None:
    for name, pos in (("trade_pos", t.trade_pos), ("quote_pos", t.quote_pos), ("book_pos", t.book_pos)):
        if pos.size > 1 and bool(np.any(pos[1:] <= pos[:-1])):
            raise InputError(f"{name} must be strictly increasing (event order)", source="features")
