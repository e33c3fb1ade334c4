"""Backtest reports: a run directory -> a self-contained HTML page and the metrics as JSON.

What is read
------------
- The run's **output log** (RUNDIR): its manifest ``meta["run"]`` (config, seed, input log path
  and digest, run hash) and, decoded, only the rows that matter here: ``OrderFilled``,
  ``BalanceUpdated``, ``RunStarted``/``RunFinished``; every other kind is only counted.
- The run's **input log** (path from the manifest, or ``input_log=``), streamed batch by batch
  and vectorised over its columns: trade/aggTrade prices and bookTicker mids of the instruments
  that matter (traded ones, and ``<asset><quote>.SPOT`` for every other asset held) give the
  marks. Its digest must equal the one the run recorded (``check_input=False`` skips that).

Accounting
----------
:class:`engine.portfolio.Portfolio` applies the fills exactly (ints); the equity curve between
fills is evaluated in float64 from the portfolio's exact balances and the marks (reports are
where floats are allowed). Fills are applied in venue time order (``ts_event``, then log
order); a fill stamped ``T`` is applied after the market events received at ``T`` (kernel
time: the running maximum of ``ts_recv``). Marks follow the portfolio's rule (last trade;
a quote mid only before an instrument's first trade).

Initial balances, in order of precedence: ``initial=`` (CLI ``--initial``), the run config's
``venue.balances`` (asset -> decimal string or e8 int), else inferred from the venue's
``BalanceUpdated`` reports (absolute free + locked) minus the fills before them. Later
reports that disagree with the portfolio are listed as warnings (first 10).

Size
----
Long series are reduced deterministically in two steps. While streaming, each series keeps
the first, last, minimum and maximum point of every time bucket ``(t0 + (k-1) w, t0 + k w]``
(``t0`` its first point), and the equity curve also each bucket's deepest point below the
running peak and the point that set that peak; ``w`` = 1 s, widened along 1 s, 10 s, 1 min,
5 min, 15 min, 1 h, 4 h, 1 d, 2 d, 4 d... whenever a series passes ``max_points``. Returns are
measured on a grid of whole buckets (:func:`metrics_period`), so the returns, Sharpe, Sortino,
volatility and maximum drawdown depth of the reduced curve are exactly those of the full
curve; drawdown times are exact to within ``w``; turnover's time-weighted mean equity is
taken over the kept points. The charts then keep first/last/min/max per pixel column
(``chart_buckets`` columns), and at most ``max_markers`` fill markers per instrument (beyond
that, one per column and side, at the volume-weighted price). The page's size therefore does
not grow with the run: about 300 kB at the default 800 columns (2M-event run measured).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from catalogs.log import LogReader
from catalogs.manifest import read_manifest
from catalogs.schema import ColumnBatch, iter_events
from engine.errors import ConfigError, InputError, LogError
from engine.events import BalanceUpdated, Kind, OrderFilled, RunFinished, RunStarted
from engine.fixed import SCALE, format_e8, parse_e8
from engine.portfolio import AssetPair, Portfolio, RoundTrip, market_value, spot_pair
from replay.metrics import AUTO_PERIODS_NS, SECOND_NS, Metrics, choose_period, compute_metrics
from replay.source import input_digest, log_chunks, symbol_matcher, take_rows

TEMPLATE_NAME = "report_template.html"
DEFAULT_HTML = "report.html"
DEFAULT_JSON = "report.json"
REPORT_FORMAT = "tickloop-report"
REPORT_VERSION = 1
MAX_WARNINGS = 10
TABLE_TRADES = 200

_TRADE, _AGG, _QUOTE = int(Kind.TRADE), int(Kind.AGG_TRADE), int(Kind.QUOTE)
_DECODED = frozenset(
    {int(Kind.ORDER_FILLED), int(Kind.BALANCE_UPDATED), int(Kind.RUN_STARTED), int(Kind.RUN_FINISHED)}
)
_WIDTHS: tuple[int, ...] = tuple(sorted(AUTO_PERIODS_NS))
_MONEY_METRICS = (
    "start_equity",
    "end_equity",
    "avg_trade",
    "gross_pnl",
    "fees",
    "net_pnl",
    "traded_notional",
)


# --------------------------------------------------------------------------- options and run info


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """How to build a report; the defaults are what ``tickloop report`` uses."""

    input_log: Path | None = None
    initial: Mapping[str, int] | None = None
    check_input: bool = True
    chart_buckets: int = 800
    max_points: int = 1_000_000
    max_markers: int = 1_500

    def __post_init__(self) -> None:
        if self.chart_buckets < 10:
            raise ConfigError(f"chart_buckets must be >= 10, got {self.chart_buckets}")
        if self.max_points < 1_000:
            raise ConfigError(f"max_points must be >= 1000, got {self.max_points}")
        if self.max_markers < 1:
            raise ConfigError(f"max_markers must be >= 1, got {self.max_markers}")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What ran: the run manifest's ``meta["run"]``."""

    run_dir: Path
    strategy: str | None
    seed: int | None
    config: dict[str, Any]
    config_json: str
    config_hash: str
    input_log: str
    input_digest: str
    code_version: str
    run_hash: str | None
    events_in: int | None
    outputs: int | None
    final_balances: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "strategy": self.strategy,
            "seed": self.seed,
            "config": self.config,
            "config_hash": self.config_hash,
            "input_log": self.input_log,
            "input_digest": self.input_digest,
            "code_version": self.code_version,
            "run_hash": self.run_hash,
            "events_in": self.events_in,
            "outputs": self.outputs,
        }


def read_run_info(run_dir: Path) -> RunInfo:
    """The run manifest's ``meta["run"]``; InputError when ``run_dir`` is not a backtest run."""
    manifest = read_manifest(run_dir)
    run = manifest.meta.get("run")
    where = run_dir / "manifest.json"
    if not isinstance(run, Mapping):
        raise InputError("not a backtest run directory (no meta.run in the manifest)", source=str(where))
    for key in ("input_log", "input_digest", "config"):
        if key not in run:
            raise InputError(f"meta.run has no {key!r}", source=str(where))
    config = run["config"]
    if not isinstance(config, Mapping):
        raise InputError("meta.run.config is not an object", source=str(where))
    return RunInfo(
        run_dir=run_dir,
        strategy=run.get("strategy"),
        seed=run.get("seed"),
        config=dict(config),
        config_json=str(run.get("config_json", "")),
        config_hash=str(run.get("config_hash", "")),
        input_log=str(run["input_log"]),
        input_digest=str(run["input_digest"]),
        code_version=str(run.get("code_version", "")),
        run_hash=run.get("run_hash"),
        events_in=run.get("events_in"),
        outputs=run.get("outputs"),
        final_balances=_decimal_map(run.get("balances"), f"{where}: meta.run.balances"),
    )


def _decimal_map(value: Any, where: str) -> dict[str, int] | None:
    """``{"USDT": "9950.1"}`` -> e8 ints; None when absent."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError(f"{where} is not an object")
    try:
        return {str(a): parse_e8(str(v), signed=True) for a, v in value.items()}
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- the run's own events


@dataclass(slots=True)
class RunEvents:
    """The output log's account events (log order) and a count of every kind."""

    account: list[OrderFilled | BalanceUpdated] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    started: bool = False
    finished: bool = False

    @property
    def fills(self) -> list[OrderFilled]:
        return [e for e in self.account if isinstance(e, OrderFilled)]


def read_run_events(run_dir: Path) -> RunEvents:
    """Decode only the account and run rows of the output log; count the rest by kind."""
    out = RunEvents()
    counts = np.zeros(256, dtype=np.int64)
    with LogReader(run_dir) as reader:
        if reader.torn_tail:
            raise LogError(
                f"{run_dir}: the run log has a torn tail (the run did not finish); `tickloop log repair` it"
            )
        for batch in reader.batches():
            counts += np.bincount(batch.kind, minlength=256)
            rows = np.flatnonzero(np.isin(batch.kind, np.fromiter(_DECODED, dtype=np.uint8)))
            if not rows.size:
                continue
            for ev in iter_events(take_rows(batch, rows)):
                if isinstance(ev, OrderFilled | BalanceUpdated):
                    out.account.append(ev)
                elif isinstance(ev, RunStarted):
                    out.started = True
                elif isinstance(ev, RunFinished):
                    out.finished = True
    out.counts = {Kind(k).name.lower(): int(counts[k]) for k in np.flatnonzero(counts).tolist()}
    return out


def account_order(events: Sequence[OrderFilled | BalanceUpdated]) -> list[OrderFilled | BalanceUpdated]:
    """Venue time order: ``ts_event``, ties in log order (responses may arrive out of venue order)."""
    return sorted(events, key=lambda e: e.ts_event)  # stable: ties keep log order


def config_balances(config: Mapping[str, Any]) -> dict[str, int] | None:
    """``config["venue"]["balances"]`` as e8 ints (decimal strings parsed, ints taken as e8), if present."""
    venue = config.get("venue")
    if not isinstance(venue, Mapping) or not isinstance(venue.get("balances"), Mapping):
        return None
    out: dict[str, int] = {}
    for asset, value in venue["balances"].items():
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise InputError(
                f"run config venue.balances.{asset} is not a decimal string or an e8 int: {value!r}"
            )
        try:
            out[str(asset)] = parse_e8(value) if isinstance(value, str) else value
        except ValueError as exc:
            raise InputError(f"run config venue.balances.{asset}: {exc}") from None
    return out


def infer_initial(
    events: Sequence[OrderFilled | BalanceUpdated],
    pairs: Mapping[str, AssetPair],
    given: Mapping[str, int] | None,
) -> tuple[dict[str, int], list[str]]:
    """Initial balances (``given``, completed by the venue's reports) and report/portfolio mismatches.

    Walks the account events in venue order keeping each asset's change from the fills; a
    ``BalanceUpdated`` reports absolute free + locked, so ``initial = reported - change`` the
    first time an asset is reported, and any later report that disagrees is a warning.
    """
    initial = dict(given or {})
    known = set(initial)
    change: dict[str, int] = {}
    warnings: list[str] = []
    for ev in events:
        if isinstance(ev, OrderFilled):
            p = pairs[ev.instrument]
            y = ev.quote_qty or ev.price * ev.qty // SCALE
            buy = ev.side.value == "BUY"
            change[p.base] = change.get(p.base, 0) + (ev.qty if buy else -ev.qty)
            change[p.quote] = change.get(p.quote, 0) + (-y if buy else y)
            if ev.commission:
                change[ev.commission_asset] = change.get(ev.commission_asset, 0) - ev.commission
            continue
        for asset, free, locked in ev.balances:
            implied = free + locked - change.get(asset, 0)
            if asset not in known:
                known.add(asset)
                initial[asset] = implied
            elif implied != initial.get(asset, 0) and len(warnings) < MAX_WARNINGS:
                warnings.append(
                    f"balance of {asset} reported at seq {ev.seq} is {format_e8(free + locked)}, "
                    f"the fills give {format_e8(initial.get(asset, 0) + change.get(asset, 0))}"
                )
    return {a: v for a, v in sorted(initial.items()) if v}, warnings


# --------------------------------------------------------------------------- series reduction


def bucket_extremes(
    ts: np.ndarray,
    val: np.ndarray,
    origin: int,
    width: int,
    *,
    drawdown: bool = False,
    peak_before: float = -math.inf,
) -> np.ndarray:
    """Ascending indices of the points to keep from each bucket ``(origin + (k-1)w, origin + kw]``.

    Always the first, last, minimum and maximum point. Buckets end on the grid, so the last
    point at or before a grid time (what ``replay.metrics.resample`` reads) is kept.
    ``drawdown=True`` also keeps each bucket's deepest point below the running peak (which
    starts at ``peak_before``) and the point that set that peak: the maximum drawdown of the
    kept points is then exactly that of the whole series (min/max alone are not enough: a
    new peak inside a bucket, before its minimum, is neither).
    """
    n = len(ts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    b = (ts - origin + (width - 1)) // width
    starts = np.flatnonzero(np.concatenate(([True], b[1:] != b[:-1])))
    lengths = np.diff(np.append(starts, n))
    idx = np.arange(n, dtype=np.int64)
    picks = [starts, starts + lengths - 1]

    def first_at(values: np.ndarray, reduce: np.ufunc) -> np.ndarray:
        ext = np.repeat(reduce.reduceat(values, starts), lengths)
        return np.asarray(np.minimum.reduceat(np.where(values == ext, idx, n), starts))

    picks += [first_at(val, np.minimum), first_at(val, np.maximum)]
    if drawdown:
        peak = np.maximum.accumulate(np.maximum(val, peak_before))
        depth = np.where(peak > 0, 1.0 - val / np.where(peak > 0, peak, 1.0), 0.0)
        deepest = first_at(depth, np.maximum)
        peak_at = np.maximum.accumulate(np.where(val >= peak, idx, -1))[deepest]
        picks += [deepest, peak_at[peak_at >= 0]]  # -1: the peak came in an earlier push (kept there)
    mask = np.zeros(n, dtype=bool)
    for p in picks:
        mask[p] = True
    return np.flatnonzero(mask)


class SeriesReducer:
    """Streaming first/last/min/max-per-bucket reduction with a widening bucket (module doc).

    ``drawdown=True`` (the equity curve) keeps the drawdown points too (:func:`bucket_extremes`).
    """

    def __init__(self, max_points: int, *, drawdown: bool = False) -> None:
        self.origin: int | None = None  # the first point's time: bucket ends fall on the metrics grid
        self.max_points = max_points
        self.drawdown = drawdown
        self.width = SECOND_NS
        self._peak = -math.inf
        self._ts: list[np.ndarray] = []
        self._val: list[np.ndarray] = []
        self._count = 0

    def push(self, ts: np.ndarray, val: np.ndarray) -> None:
        """Add points (``ts`` non-decreasing, and not before anything pushed earlier)."""
        if not len(ts):
            return
        if self.origin is None:
            self.origin = int(ts[0])
        keep = self._keep(ts, val, self._peak)
        if self.drawdown:
            self._peak = max(self._peak, float(np.max(val)))
        self._ts.append(np.asarray(ts[keep], dtype=np.int64))
        self._val.append(np.asarray(val[keep], dtype=np.float64))
        self._count += len(keep)
        if self._count > self.max_points:
            self._coarsen()

    def push_point(self, ts: int, val: float) -> None:
        self.push(np.array([ts], dtype=np.int64), np.array([val], dtype=np.float64))

    def _keep(self, ts: np.ndarray, val: np.ndarray, peak_before: float) -> np.ndarray:
        origin = self.origin if self.origin is not None else int(ts[0])
        return bucket_extremes(ts, val, origin, self.width, drawdown=self.drawdown, peak_before=peak_before)

    def _coarsen(self) -> None:
        ts, val = self._joined()
        while len(ts) > self.max_points // 2:
            self.width = _next_width(self.width)
            keep = self._keep(ts, val, -math.inf)
            ts, val = ts[keep], val[keep]
        self._ts, self._val, self._count = [ts], [val], len(ts)

    def _joined(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._ts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(self._ts), np.concatenate(self._val)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """The reduced series (one final pass merges buckets split across pushes)."""
        ts, val = self._joined()
        keep = self._keep(ts, val, -math.inf)
        return ts[keep], val[keep]


def _next_width(width: int) -> int:
    for w in _WIDTHS:
        if w > width:
            return w
    return width * 2


# --------------------------------------------------------------------------- the market pass


@dataclass(slots=True)
class _Fill:
    ts: int
    price: int
    qty: int
    buy: bool


@dataclass(slots=True)
class MarketPass:
    """Everything the streaming pass over the input log produces."""

    t0: int
    t_end: int
    equity: tuple[np.ndarray, np.ndarray]
    equity_width: int
    prices: dict[str, tuple[np.ndarray, np.ndarray]]
    positions: dict[str, list[tuple[int, int]]]
    fills: dict[str, list[_Fill]]
    events: int
    first_equity: int | None


class _Replayer:
    """Streams the input log, applies fills between market rows, and feeds the reducers."""

    def __init__(
        self,
        portfolio: Portfolio,
        fills: list[OrderFilled],
        pricing: dict[str, str],
        chart: list[str],
        max_points: int,
    ) -> None:
        self.pf = portfolio
        self.fills = fills
        self.fill_ts = np.array([f.ts_event for f in fills], dtype=np.int64)
        self.next_fill = 0
        self.pricing = pricing  # asset -> pricing instrument
        self.chart = list(chart)
        self.interest: list[str] = sorted(set(pricing.values()) | set(chart))
        self.max_points = max_points
        self.equity: SeriesReducer | None = None
        self.prices: dict[str, SeriesReducer] = {}
        self.positions: dict[str, list[tuple[int, int]]] = {}
        self.markers: dict[str, list[_Fill]] = {}
        self.traded_seen: set[str] = set()
        self.carry: int | None = None
        self.t0: int | None = None
        self.t_end = 0
        self.events = 0
        self.first_equity: int | None = None

    # -- per batch

    def batch(self, b: ColumnBatch) -> None:
        ts = b.ints["ts_recv"]
        t = np.maximum.accumulate(ts)
        if self.carry is not None:
            t = np.maximum(t, self.carry)
        self.carry = int(t[-1])
        self.events += b.length
        if self.t0 is None:
            self._start(int(t[0]))
        if not self.chart:
            self._pick_chart(b)
        self.t_end = int(t[-1])
        rows, ks, prices = self._price_rows(b)
        t_rows = t[rows]
        for k, name in enumerate(self.interest):
            red = self.prices.get(name)
            if red is not None:
                sel = ks == k
                if sel.any():
                    red.push(t_rows[sel], prices[sel].astype(np.float64))
        before = np.searchsorted(self.fill_ts, t_rows, side="left")
        cuts = np.flatnonzero(np.diff(before)) + 1
        for lo, hi in zip(np.concatenate(([0], cuts)), np.append(cuts, len(rows)), strict=True):
            if lo == hi:
                continue
            self._apply_fills_until(int(before[lo]))
            self._equity_rows(t_rows[lo:hi], ks[lo:hi], prices[lo:hi])

    def _start(self, t0: int) -> None:
        self.t0 = t0
        self.equity = SeriesReducer(self.max_points, drawdown=True)
        for name in self.chart:
            self._add_chart(name, t0)
        self._point(t0)

    def _add_chart(self, name: str, t0: int) -> None:
        self.prices[name] = SeriesReducer(self.max_points)
        self.positions[name] = [(t0, 0)]
        self.markers[name] = []

    def _pick_chart(self, b: ColumnBatch) -> None:
        """No fills: chart the first instrument with prices in the (filtered) input."""
        kind = b.kind
        rows = np.flatnonzero((kind == _TRADE) | (kind == _AGG) | (kind == _QUOTE))
        if rows.size and self.t0 is not None:
            name = b.instrument_dict[int(b.instrument[rows[0]])]
            self.chart = [name]
            self.interest = sorted(set(self.interest) | {name})
            self._add_chart(name, self.t0)

    def _price_rows(self, b: ColumnBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows that mark an instrument of interest: (row, interest index, price e8), in row order."""
        kind, inst, ints = b.kind, b.instrument, b.ints
        codes = {name: c for c, name in enumerate(b.instrument_dict)}
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for k, name in enumerate(self.interest):
            c = codes.get(name)
            if c is None:
                continue
            mine = inst == c
            trades = np.flatnonzero(mine & ((kind == _TRADE) | (kind == _AGG)))
            if name in self.traded_seen:
                rows = trades
            else:
                q = np.flatnonzero(
                    mine & (kind == _QUOTE) & (ints["bid_price"] > 0) & (ints["ask_price"] > 0)
                )
                if trades.size:
                    q = q[q < trades[0]]
                    self.traded_seen.add(name)
                rows = np.sort(np.concatenate((q, trades)))
            if not rows.size:
                continue
            is_quote = kind[rows] == _QUOTE
            mid = (ints["bid_price"][rows] + ints["ask_price"][rows]) // 2
            px = np.where(is_quote, mid, ints["price"][rows])
            parts.append((rows, np.full(rows.size, k, dtype=np.int64), px))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        rows = np.concatenate([p[0] for p in parts])
        order = np.argsort(rows, kind="stable")
        return (
            rows[order],
            np.concatenate([p[1] for p in parts])[order],
            np.concatenate([p[2] for p in parts])[order],
        )

    # -- fills and equity

    def _apply_fills_until(self, upto: int) -> None:
        while self.next_fill < upto:
            f = self.fills[self.next_fill]
            self.next_fill += 1
            self.pf.apply_fill(f)
            name = f.instrument
            if name in self.positions:
                self.positions[name].append((f.ts_event, self.pf.position(name).qty))
                self.markers[name].append(_Fill(f.ts_event, f.price, f.qty, f.side.value == "BUY"))
            self._point(f.ts_event)

    def _waiting(self) -> bool:
        """Some held asset has a price source in the input but no price yet (the curve waits for it)."""
        pf = self.pf
        return any(a in self.pricing and pf.price_of(a) is None for a in pf.unpriced_assets())

    def _point(self, ts: int) -> None:
        """One exact equity point (skipped while :meth:`_waiting`)."""
        if self.equity is not None and not self._waiting():
            value = self.pf.equity()
            if self.first_equity is None:
                self.first_equity = value
            self.equity.push_point(ts, float(value))

    def _equity_rows(self, t: np.ndarray, ks: np.ndarray, px: np.ndarray) -> None:
        """Float equity at each market row of a stretch without fills, then mark the portfolio."""
        pf = self.pf
        quote = pf.quote_asset
        m = len(t)
        eq = np.full(m, float(pf.balance(quote)))
        ok = np.ones(m, dtype=bool)
        idx_all = np.arange(m, dtype=np.int64)
        held: list[tuple[int, np.ndarray | None, int | None]] = []  # (balance, last row of its price, mark)
        for asset, bal in pf.balances.items():
            if asset == quote:
                continue
            cur = pf.price_of(asset)
            name = self.pricing.get(asset)
            k = self.interest.index(name) if name in self.interest else -1
            if k < 0:  # no price in the input: left out, as Portfolio.equity leaves it out
                if cur is not None:
                    eq += bal * (cur / SCALE)
                    held.append((bal, None, cur))
                continue
            last = np.maximum.accumulate(np.where(ks == k, idx_all, -1))
            seen = last >= 0
            if cur is None:
                ok &= seen
            p = np.where(seen, px[np.maximum(last, 0)], 0 if cur is None else cur).astype(np.float64)
            eq += bal * (p / SCALE)
            held.append((bal, last, cur))
        if self.equity is not None and ok.any():
            if self.first_equity is None:
                self.first_equity = self._exact_at(int(np.argmax(ok)), held, px)
            self.equity.push(t[ok], eq[ok])
        for k in np.unique(ks).tolist():
            i = int(np.flatnonzero(ks == k)[-1])
            pf.mark(self.interest[k], int(px[i]))  # the row rule above already chose trade vs quote

    def _exact_at(self, j: int, held: list[tuple[int, np.ndarray | None, int | None]], px: np.ndarray) -> int:
        """The exact equity at row ``j`` of a stretch (what the float curve shows there)."""
        total = self.pf.balance(self.pf.quote_asset)
        for bal, last, cur in held:
            price = int(px[last[j]]) if last is not None and last[j] >= 0 else cur
            if price is not None:
                total += market_value(bal, price)
        return total

    def finish(self) -> MarketPass:
        if self.t0 is None:
            raise InputError("the input log has no market events to mark the run against")
        self._apply_fills_until(len(self.fills))
        t_end = max(self.t_end, int(self.fill_ts[-1]) if len(self.fill_ts) else self.t_end)
        self._point(t_end)
        for name, pts in self.positions.items():
            pts.append((t_end, self.pf.position(name).qty))
        assert self.equity is not None
        return MarketPass(
            t0=self.t0,
            t_end=t_end,
            equity=self.equity.result(),
            equity_width=self.equity.width,
            prices={n: r.result() for n, r in self.prices.items()},
            positions=self.positions,
            fills=self.markers,
            events=self.events,
            first_equity=self.first_equity,
        )


def replay_market(
    reader: LogReader,
    portfolio: Portfolio,
    fills: list[OrderFilled],
    pricing: dict[str, str],
    chart: list[str],
    *,
    symbol: str | None,
    max_points: int,
) -> MarketPass:
    """Stream the input log (restricted to ``symbol`` as the run was) and mark the portfolio."""
    rep = _Replayer(portfolio, fills, pricing, chart, max_points)
    for chunk in log_chunks(reader, symbol=symbol or None):  # (hands read pages back to the OS)
        rep.batch(chunk.batch)
    return rep.finish()


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class Report:
    """A built report: exact portfolio figures, metrics, chart data and warnings.

    ``initial_equity`` is the exact equity at the curve's first point: the initial balances at
    the first prices (None when no point could be priced).
    """

    run: RunInfo
    quote_asset: str
    initial: dict[str, int]
    initial_equity: int | None
    portfolio: dict[str, Any]
    metrics: Metrics | None
    trades: tuple[RoundTrip, ...]
    counts: dict[str, int]
    charts: dict[str, Any]
    warnings: tuple[str, ...]
    equity_points: int
    equity_width_ns: int
    t0: int
    t_end: int

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report (money as exact decimal strings, metrics in quote units)."""
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "run": self.run.to_json(),
            "quote_asset": self.quote_asset,
            "initial_balances": {a: format_e8(v) for a, v in self.initial.items()},
            "initial_equity": None if self.initial_equity is None else format_e8(self.initial_equity),
            "portfolio": self.portfolio,
            "metrics": metrics_json(self.metrics),
            "counts": self.counts,
            "span": {"start_ts": self.t0, "end_ts": self.t_end},
            "equity_curve": {"points": self.equity_points, "bucket_ns": self.equity_width_ns},
            "trades": [trade_json(t) for t in self.trades],
            "warnings": list(self.warnings),
        }

    def to_html(self) -> str:
        return render_html(self)


def metrics_json(m: Metrics | None) -> dict[str, Any] | None:
    """``Metrics.to_dict`` with money fields converted from e8 to quote units."""
    if m is None:
        return None
    d: dict[str, Any] = dict(m.to_dict())
    for key in _MONEY_METRICS:
        v = d[key]
        d[key] = None if v is None else float(v) / SCALE
    return d


def trade_json(t: RoundTrip) -> dict[str, Any]:
    return {
        "instrument": t.instrument,
        "side": "long" if t.side > 0 else "short",
        "qty": format_e8(t.qty),
        "entry_ts": t.entry_ts,
        "exit_ts": t.exit_ts,
        "entry_price": format_e8(t.entry_price),
        "exit_price": format_e8(t.exit_price),
        "gross_pnl": format_e8(t.gross_pnl),
        "fees": format_e8(t.fees),
        "net_pnl": format_e8(t.net_pnl),
        "notional": format_e8(t.notional),
        "entry_order_id": t.entry_order_id,
        "exit_order_id": t.exit_order_id,
    }


def build_report(run_dir: str | Path, options: ReportOptions = ReportOptions()) -> Report:
    """Read a run directory (and its input log) and compute everything the report shows."""
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    events = read_run_events(run_dir)
    warnings: list[str] = []
    if not events.finished:
        warnings.append("the run log has no RunFinished: the run did not complete")
    if info.run_hash is None:
        warnings.append("the run manifest has no run hash")
    account = account_order(events.account)
    fills = [e for e in account if isinstance(e, OrderFilled)]
    quote = _quote_asset(fills, info.config)
    pairs: dict[str, AssetPair] = {str(f.instrument): spot_pair(f.instrument) for f in fills}
    given = dict(options.initial) if options.initial is not None else config_balances(info.config)
    initial, mismatches = infer_initial(account, pairs, given)
    warnings.extend(mismatches)
    if not initial:
        warnings.append(
            "initial balances unknown (no config balances, no balance reports): equity starts at 0"
        )
    portfolio = Portfolio(quote, initial, pairs)
    traded = sorted(pairs)
    assets = (
        set(initial) | {p.base for p in pairs.values()} | {f.commission_asset for f in fills if f.commission}
    )
    wanted = {a: _pricing_instrument(a, quote, pairs) for a in sorted(assets - {quote})}
    input_path = options.input_log if options.input_log is not None else Path(info.input_log)
    market = _market_pass(info, input_path, options, portfolio, fills, wanted, traded, warnings)
    metrics = _metrics(market, portfolio, warnings)
    warnings.extend(_check_final(info, portfolio))
    ts, eq = market.equity
    return Report(
        run=info,
        quote_asset=quote,
        initial=initial,
        initial_equity=market.first_equity,
        portfolio=portfolio.summary(),
        metrics=metrics,
        trades=portfolio.round_trips,
        counts=events.counts,
        charts=chart_data(market, options),
        warnings=tuple(warnings),
        equity_points=len(ts),
        equity_width_ns=market.equity_width,
        t0=market.t0,
        t_end=market.t_end,
    )


def _check_final(info: RunInfo, portfolio: Portfolio) -> list[str]:
    """The venue's final balances (run manifest) against the portfolio's, asset by asset."""
    if info.final_balances is None:
        return []
    ours = portfolio.balances
    out = []
    for asset in sorted(set(ours) | set(info.final_balances)):
        venue, mine = info.final_balances.get(asset, 0), ours.get(asset, 0)
        if venue != mine:
            out.append(
                f"final {asset}: the venue reports {format_e8(venue)}, the fills give {format_e8(mine)}"
            )
    return out[:MAX_WARNINGS]


def _quote_asset(fills: Sequence[OrderFilled], config: Mapping[str, Any]) -> str:
    """The fills' quote asset (they must agree), else the config's symbol's, else USDT."""
    return quote_asset_of([spot_pair(f.instrument) for f in fills], config, "a report")


def quote_asset_of(pairs: Iterable[AssetPair], config: Mapping[str, Any], who: str) -> str:
    """The one quote asset of ``pairs`` (``who`` values one, so they must agree), else the
    config's symbol's, else USDT."""
    quotes = sorted({p.quote for p in pairs})
    if len(quotes) > 1:
        raise InputError(
            f"the run traded instruments quoted in {', '.join(quotes)}; {who} values one quote asset"
        )
    if quotes:
        return quotes[0]
    symbol = config.get("symbol")
    if isinstance(symbol, str) and symbol:
        try:
            return spot_pair(symbol if "." in symbol else f"{symbol}.SPOT").quote
        except InputError:
            pass
    return "USDT"


def _pricing_instrument(asset: str, quote: str, pairs: Mapping[str, AssetPair]) -> str:
    for name, p in sorted(pairs.items()):
        if p.base == asset and p.quote == quote:
            return name
    return f"{asset}{quote}.SPOT"


def _market_pass(
    info: RunInfo,
    input_path: Path,
    options: ReportOptions,
    portfolio: Portfolio,
    fills: list[OrderFilled],
    wanted: dict[str, str],
    traded: list[str],
    warnings: list[str],
) -> MarketPass:
    if not input_path.is_dir():
        raise InputError(
            f"the run's input log {input_path} is not there (moved?); pass its new place with --input LOGDIR",
            source=str(info.run_dir / "manifest.json"),
        )
    with LogReader(input_path) as reader:
        digest = input_digest(reader)
        if digest != info.input_digest:
            msg = f"input log {input_path} has digest {digest}, the run was made from {info.input_digest}"
            if options.check_input:
                raise InputError(msg + " (pass --no-input-check to report anyway)")
            warnings.append(msg)
        symbol = info.config.get("symbol")
        symbol = symbol if isinstance(symbol, str) and symbol else None
        present = log_instruments(reader, symbol) | set(traded)
        pricing = {a: i for a, i in wanted.items() if i in present}
        missing = sorted(set(wanted) - set(pricing))
        if missing:
            warnings.append(f"no price source in the input for {', '.join(missing)}: left out of equity")
        return replay_market(
            reader,
            portfolio,
            fills,
            pricing,
            traded,
            symbol=symbol,
            max_points=options.max_points,
        )


def log_instruments(reader: LogReader, symbol: str | None) -> set[str]:
    """Instruments of a log (the importer's ``meta.instruments``, else the last batch's dictionary,
    which holds every instrument seen), restricted to ``symbol`` as a run restricts its replay."""
    listed = reader.manifest.meta.get("instruments")
    if isinstance(listed, list) and all(isinstance(x, str) for x in listed):
        names = set(listed)
    else:
        names = set()
        for batch in reader.batches(start_seq=max(1, reader.manifest.last_seq)):
            names = set(batch.instrument_dict)
    if symbol is None:
        return names
    s, exact = symbol_matcher(symbol)
    return {n for n in names if (n.upper() == s if exact else n.upper().rpartition(".")[0] == s)}


def _metrics(market: MarketPass, portfolio: Portfolio, warnings: list[str]) -> Metrics | None:
    ts, eq = market.equity
    if not len(ts):
        warnings.append("no priced equity point: metrics are not available")
        return None
    period = metrics_period(int(ts[-1] - ts[0]), market.equity_width)
    if period != choose_period(int(ts[-1] - ts[0])):
        warnings.append(
            f"returns measured every {fmt_duration(period)} (the equity curve was reduced to that)"
        )
    return compute_metrics(ts, eq, portfolio.round_trips, period_ns=period)


def metrics_period(span_ns: int, width_ns: int) -> int:
    """``replay.metrics.choose_period``, but never finer than the curve's reduction width.

    Every width divides every longer automatic period, so returns on the reduced curve are
    those of the full curve.
    """
    return max(choose_period(span_ns), width_ns)


# --------------------------------------------------------------------------- chart data


def _round(values: np.ndarray, digits: int = 10) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in values.tolist()]


def _seconds(ts: np.ndarray, t0: int) -> list[float]:
    return [round(x, 6) for x in ((ts - t0) / SECOND_NS).tolist()]


def pixel_reduce(
    ts: np.ndarray, val: np.ndarray, t0: int, t_end: int, buckets: int
) -> tuple[np.ndarray, np.ndarray]:
    """First/last/min/max per pixel column: what a line chart ``buckets`` wide can show."""
    if len(ts) <= 4 * buckets:
        return ts, val
    width = max(1, -(-(t_end - t0) // buckets))
    keep = bucket_extremes(ts, val, t0, width)
    return ts[keep], val[keep]


def _series(
    ts: np.ndarray, val: np.ndarray, t0: int, t_end: int, buckets: int, scale: float = 1.0
) -> dict[str, Any]:
    t, v = pixel_reduce(ts, val, t0, t_end, buckets)
    return {"t": _seconds(t, t0), "v": _round(v / scale)}


def _markers(fills: list[_Fill], t0: int, t_end: int, buckets: int, cap: int) -> list[list[Any]]:
    """``[t_s, price, side (1 buy / -1 sell), count, qty]``; aggregated per pixel column and side past ``cap``."""
    if len(fills) <= cap:
        return [
            [round((f.ts - t0) / SECOND_NS, 6), f.price / SCALE, 1 if f.buy else -1, 1, f.qty / SCALE]
            for f in fills
        ]
    width = max(1, -(-(t_end - t0) // buckets))
    groups: dict[tuple[int, bool], list[_Fill]] = {}
    for f in fills:
        groups.setdefault(((f.ts - t0) // width, f.buy), []).append(f)
    out = []
    for (_, buy), fs in sorted(groups.items(), key=lambda kv: (kv[1][0].ts, not kv[0][1])):
        qty = sum(f.qty for f in fs)
        vwap = sum(f.price * f.qty for f in fs) / qty / SCALE
        out.append(
            [
                round((fs[0].ts - t0) / SECOND_NS, 6),
                float(f"{vwap:.10g}"),
                1 if buy else -1,
                len(fs),
                qty / SCALE,
            ]
        )
    return out


def chart_data(market: MarketPass, options: ReportOptions) -> dict[str, Any]:
    """Everything the page's script draws, downsampled, times in seconds from ``t0``."""
    t0, t_end, n = market.t0, market.t_end, options.chart_buckets
    ts, eq = market.equity
    if len(eq):
        peak = np.maximum.accumulate(eq)
        dd = np.where(peak > 0, eq / np.where(peak > 0, peak, 1.0) - 1.0, 0.0) * 100.0
    else:
        dd = eq
    instruments = []
    for name, (pt, pv) in sorted(market.prices.items()):
        pos = market.positions.get(name, [])
        pos_t = np.array([p[0] for p in pos], dtype=np.int64)
        pos_v = np.array([p[1] for p in pos], dtype=np.float64)
        instruments.append(
            {
                "instrument": name,
                "price": _series(pt, pv, t0, t_end, n, SCALE),
                "position": _series(pos_t, pos_v, t0, t_end, n, SCALE),
                "fills": _markers(market.fills.get(name, []), t0, t_end, n, options.max_markers),
                "n_fills": len(market.fills.get(name, [])),
            }
        )
    return {
        "t0_ms": t0 // 1_000_000,
        "span_s": (t_end - t0) / SECOND_NS,
        "equity": _series(ts, eq, t0, t_end, n, SCALE),
        "drawdown": _series(ts, dd, t0, t_end, n),
        "instruments": instruments,
    }


# --------------------------------------------------------------------------- HTML


def load_template() -> str:
    """The page template shipped beside this module."""
    try:
        return resources.files("replay").joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise ConfigError(
            f"report template {TEMPLATE_NAME} is missing from the installed package: {exc}"
        ) from exc


def _script_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no HTML specials)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.2f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def _money(x: float | int | None, quote: str, *, e8: bool = True) -> str:
    if x is None:
        return "—"
    v = float(x) / SCALE if e8 else float(x)
    return f"{v:,.2f} {quote}"


def fmt_duration(ns: int | None) -> str:
    """``3d 04:05:06`` / ``04:05:06.250`` style, for drawdown durations and spans."""
    if ns is None:
        return "—"
    total_ms = ns // 1_000_000
    days, rem = divmod(total_ms, 86_400_000)
    h, rem = divmod(rem, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    clock = f"{h:02d}:{m:02d}:{s:02d}" + (f".{ms:03d}" if ms and not days else "")
    return f"{days}d {clock}" if days else clock


def fmt_time(ns: int | None) -> str:
    """UTC ``YYYY-MM-DD HH:MM:SS.mmm`` without reading any clock or timezone database."""
    if ns is None:
        return "—"
    days, rem = divmod(ns // 1_000_000, 86_400_000)
    y, mo, d = _civil(days)
    h, rem = divmod(rem, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _civil(days: int) -> tuple[int, int, int]:
    """Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (Hinnant's algorithm)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d


def metric_rows(r: Report) -> list[tuple[str, str]]:
    """The metrics table: (label, formatted value)."""
    m, q = r.metrics, r.quote_asset
    rows: list[tuple[str, str]] = []
    if m is not None:
        rows += [
            ("Start", fmt_time(m.start_ts)),
            ("End", fmt_time(m.end_ts)),
            ("Span", fmt_duration(m.span_ns)),
            ("Start equity", _money(m.start_equity, q)),
            ("End equity", _money(m.end_equity, q)),
            ("Total return", _pct(m.total_return)),
            ("Annualised return", _pct(m.annualised_return)),
            ("Annualised volatility", _pct(m.annualised_volatility)),
            ("Sharpe", _num(m.sharpe)),
            ("Sortino", _num(m.sortino)),
            ("Calmar", _num(m.calmar)),
            ("Max drawdown", _pct(m.max_drawdown)),
            ("Max drawdown peak", fmt_time(m.max_drawdown_peak_ts)),
            ("Max drawdown trough", fmt_time(m.max_drawdown_trough_ts)),
            ("Max drawdown recovery", _recovery(m)),
            ("Longest drawdown", fmt_duration(m.max_drawdown_duration_ns)),
            ("Return period", f"{fmt_duration(m.period_ns)} × {m.n_periods}"),
            ("Round trips", str(m.n_trades)),
            ("Win rate", _pct(m.win_rate)),
            ("Profit factor", _num(m.profit_factor)),
            ("Average trade (net)", _money(m.avg_trade, q)),
            ("Gross PnL (closed)", _money(m.gross_pnl, q)),
            ("Fees (closed)", _money(m.fees, q)),
            ("Net PnL (closed)", _money(m.net_pnl, q)),
            ("Fee share of gross PnL", _pct(m.fee_share)),
            ("Traded notional (closed)", _money(m.traded_notional, q)),
            ("Turnover", "—" if m.turnover is None else f"{m.turnover:,.2f}×"),
            ("Time in market", _pct(m.exposure)),
        ]
    p = r.portfolio
    rows += [
        ("Realised PnL (net)", f"{p['realised_pnl']} {q}"),
        ("Unrealised PnL", f"{p['unrealised_pnl']} {q}"),
        ("Fees paid (valued)", f"{p['fees_value']} {q}"),
        ("Fees paid by asset", ", ".join(f"{v} {a}" for a, v in p["fees_paid"].items()) or "—"),
        ("Traded notional (all fills)", f"{p['traded_notional']} {q}"),
        ("Gross exposure (end)", f"{p['gross_exposure']} {q}"),
        ("Fills", str(p["fills"])),
    ]
    return rows


def _recovery(m: Metrics) -> str:
    if m.max_drawdown_peak_ts is None:
        return "—"
    return "not recovered" if m.max_drawdown_recovery_ts is None else fmt_time(m.max_drawdown_recovery_ts)


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], cls: str = "") -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _trades_html(r: Report) -> str:
    trades = r.trades
    shown = trades[:TABLE_TRADES]
    head = (
        "#",
        "Instrument",
        "Side",
        "Qty",
        "Entry",
        "Entry price",
        "Exit",
        "Exit price",
        "Gross",
        "Fees",
        "Net",
    )
    rows = [
        (
            i + 1, t.instrument, "long" if t.side > 0 else "short", format_e8(t.qty), fmt_time(t.entry_ts),
            format_e8(t.entry_price), fmt_time(t.exit_ts), format_e8(t.exit_price), format_e8(t.gross_pnl),
            format_e8(t.fees), format_e8(t.net_pnl),
        )
        for i, t in enumerate(shown)
    ]  # fmt: skip
    note = (
        f'<p class="note">First {len(shown)} of {len(trades)} round trips; all are in the JSON report.</p>'
        if len(trades) > len(shown)
        else ""
    )
    if not trades:
        return '<p class="note">No closed round trips.</p>'
    return note + _table(head, rows, "trades")


def _positions_html(r: Report) -> str:
    pos = r.portfolio["positions"]
    if not pos:
        return '<p class="note">Flat at the end of the run.</p>'
    head = ("Instrument", "Qty", "Avg price", "Mark", "Market value", "Unrealised PnL")
    rows = [
        (i, p["qty"], p["avg_price"], p["mark"] or "—", p["market_value"], p["unrealised_pnl"])
        for i, p in pos.items()
    ]
    return _table(head, rows)


def _balances_html(r: Report) -> str:
    assets = sorted(set(r.initial) | set(r.portfolio["balances"]))
    rows = [(a, format_e8(r.initial.get(a, 0)), r.portfolio["balances"].get(a, "0")) for a in assets]
    return _table(("Asset", "Initial", "Final"), rows)


def render_html(r: Report) -> str:
    """Fill the template: tables rendered here (readable without script), charts drawn by its script."""
    info = r.run
    title = f"{info.strategy or 'run'} · {info.run_dir.name}"
    m = r.metrics
    cards = [
        ("Total return", _pct(m.total_return) if m else "—"),
        ("Sharpe", _num(m.sharpe) if m else "—"),
        ("Max drawdown", _pct(m.max_drawdown) if m else "—"),
        ("Round trips", str(len(r.trades))),
        ("Win rate", _pct(m.win_rate) if m else "—"),
        ("Fees", _money(parse_e8(r.portfolio["fees_value"], signed=True), r.quote_asset)),
    ]
    cards_html = "".join(
        f'<div class="card"><div class="k">{_esc(k)}</div><div class="v">{_esc(v)}</div></div>'
        for k, v in cards
    )
    warnings = "".join(f"<li>{_esc(w)}</li>" for w in r.warnings)
    run_rows = [
        ("Run hash", info.run_hash or "—"),
        ("Strategy", info.strategy or "—"),
        ("Seed", "—" if info.seed is None else str(info.seed)),
        ("Config hash", info.config_hash or "—"),
        ("Input log", info.input_log),
        ("Input digest", info.input_digest),
        ("Code version", info.code_version or "—"),
        ("Input events", "—" if info.events_in is None else f"{info.events_in:,}"),
        ("Output events", "—" if info.outputs is None else f"{info.outputs:,}"),
        ("Quote asset", r.quote_asset),
    ]
    counts = ", ".join(f"{k}: {v:,}" for k, v in sorted(r.counts.items()))
    config = json.dumps(info.config, indent=2, sort_keys=True)
    parts = {
        "@@TITLE@@": _esc(title),
        "@@RUN_HASH@@": _esc(info.run_hash or "no run hash"),
        "@@PERIOD@@": _esc(f"{fmt_time(r.t0)} → {fmt_time(r.t_end)} UTC"),
        "@@CARDS@@": cards_html,
        "@@WARNINGS@@": f'<ul class="warnings">{warnings}</ul>' if warnings else "",
        "@@METRICS@@": _table(("Metric", "Value"), metric_rows(r), "metrics"),
        "@@POSITIONS@@": _positions_html(r),
        "@@BALANCES@@": _balances_html(r),
        "@@TRADES@@": _trades_html(r),
        "@@RUN@@": _table(("Field", "Value"), run_rows, "run"),
        "@@COUNTS@@": _esc(counts),
        "@@CONFIG@@": _esc(config),
        "@@DATA@@": _script_json(r.charts),
    }
    page = load_template()
    for token, value in parts.items():
        if token not in page:
            raise ConfigError(f"report template has no {token} placeholder")
        page = page.replace(token, value)
    return page


# --------------------------------------------------------------------------- entry point


@dataclass(frozen=True, slots=True)
class Written:
    """Where a report went."""

    html: Path
    json: Path | None
    report: Report


def write_report(
    run_dir: str | Path,
    *,
    html_out: str | Path | None = None,
    json_out: str | Path | None | bool = True,
    options: ReportOptions = ReportOptions(),
) -> Written:
    """Build the report and write ``html_out`` (default RUNDIR/report.html) and the JSON.

    ``json_out``: True -> RUNDIR/report.json, a path -> there, False/None -> not written.
    """
    run_dir = Path(run_dir)
    report = build_report(run_dir, options)
    html_path = Path(html_out) if html_out is not None else run_dir / DEFAULT_HTML
    _write_text(html_path, report.to_html())
    json_path: Path | None = None
    if json_out is True:
        json_path = run_dir / DEFAULT_JSON
    elif json_out:
        json_path = Path(json_out)
    if json_path is not None:
        _write_text(json_path, dumps_json(report) + "\n")
    return Written(html_path, json_path, report)


def dumps_json(report: Report) -> str:
    """The JSON report text (sorted keys; NaN never appears: undefined metrics are null)."""
    return json.dumps(report.to_json(), sort_keys=True, indent=1, allow_nan=False)


def _write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from exc


def parse_initial(pairs: Sequence[str]) -> dict[str, int]:
    """``["USDT=10000", "BNB=1.5"]`` -> e8 ints (ConfigError naming the bad item)."""
    out: dict[str, int] = {}
    for item in pairs:
        asset, eq, amount = item.partition("=")
        asset = asset.strip().upper()
        if not eq or not asset:
            raise ConfigError(f"--initial {item!r}: expected ASSET=AMOUNT (e.g. USDT=10000)")
        try:
            out[asset] = parse_e8(amount.strip())
        except ValueError as exc:
            raise ConfigError(f"--initial {item!r}: {exc}") from None
    return out


__all__ = [
    "MarketPass",
    "Report",
    "ReportOptions",
    "RunEvents",
    "RunInfo",
    "SeriesReducer",
    "Written",
    "account_order",
    "bucket_extremes",
    "build_report",
    "chart_data",
    "config_balances",
    "dumps_json",
    "fmt_duration",
    "fmt_time",
    "infer_initial",
    "log_instruments",
    "metrics_period",
    "parse_initial",
    "pixel_reduce",
    "read_run_events",
    "read_run_info",
    "replay_market",
    "write_report",
]
