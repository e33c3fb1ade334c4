"""Walk-forward analysis: pick parameters in-sample, judge them out-of-sample, window by window.

Over the log's time span (``ts_recv`` of its market events) rolling windows are laid out:
train ``[s, s + train)``, test ``[s + train, s + train + test)``, ``s`` advancing by ``step``
(default ``test``; it may not be shorter than ``test``, so out-of-sample stretches never
overlap and can be concatenated). In each train window every parameter set of the grid is
backtested (``replay.backtest.run_backtest``) and scored by the objective; the best one (ties:
the first in grid order) is then backtested on the following test window. The result lists,
per window, the in-sample (IS) and out-of-sample (OOS) metrics, and the aggregate: the OOS
equity curves chained end to end (each rescaled to start where the previous ended) and
measured as one run, plus the mean IS and OOS objective.

Time ranges. ``run_backtest`` has no time-range hook, so each window is cut into a temporary
log (:func:`slice_log`): every event with ``lo <= ts_recv < hi``, plus, from before ``lo``,
the events that only build state the venue needs (exchangeInfo ``InstrumentUpdated``, depth
snapshots, diffs and gaps: a window starting mid-session still has a synced L2 book, so
``--fill auto`` behaves the same in every window). The strategy sees only in-window market
data. Slices and runs live in a work directory (a temp dir removed afterwards unless one is
given).

Metrics come from the run's fills marked against its input, as ``tickloop report`` computes
them (same portfolio, same metric functions), at one return period for every run (the
longest automatic period giving 30 returns over the *test* length, or ``period_ns``), so IS
and OOS Sharpe/Sortino are comparable. Assets other than the quote asset and the traded
bases are left out of equity. Everything is deterministic: same log, grid, seed and settings
give the same JSON (it holds no path or wall time).
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError, InputError
from engine.events import MARKET_KINDS, Kind, OrderFilled
from engine.portfolio import Portfolio, RoundTrip, spot_pair
from replay.metrics import Metrics, choose_period, compute_metrics
from replay.venue_config import VenueSettings

OBJECTIVES: dict[str, str] = {
    "sharpe": "sharpe",
    "sortino": "sortino",
    "calmar": "calmar",
    "return": "total_return",
    "net_pnl": "net_pnl",
    "profit_factor": "profit_factor",
    "win_rate": "win_rate",
}
"""``--objective`` name -> the Metrics field it maximises (None counts as the worst score)."""

_WARMUP_KINDS = np.array(
    [int(Kind.INSTRUMENT), int(Kind.BOOK_SNAPSHOT), int(Kind.BOOK_DELTA), int(Kind.BOOK_GAP)]
)
_SPAN_KINDS = np.array(sorted(int(k) for k in MARKET_KINDS - {Kind.INSTRUMENT}))
MAX_POINTS = 1_000_000

Grid = tuple[tuple[str, tuple[str, ...]], ...]


# --------------------------------------------------------------------------- specification


def parse_grid(specs: Sequence[str]) -> Grid:
    """``["period=7,14", "lower=20,30"]`` -> ``(("period", ("7", "14")), ("lower", ("20", "30")))``."""
    out: list[tuple[str, tuple[str, ...]]] = []
    seen: set[str] = set()
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        vals = tuple(v.strip() for v in values.split(","))
        if not sep or not key or not all(vals):
            raise ConfigError(f"--grid {spec!r}: expected KEY=V1,V2,... with no empty value")
        if key in seen:
            raise ConfigError(f"--grid {spec!r}: {key!r} given twice")
        if len(set(vals)) != len(vals):
            raise ConfigError(f"--grid {spec!r}: a value is repeated")
        seen.add(key)
        out.append((key, vals))
    return tuple(out)


def grid_points(grid: Grid) -> list[tuple[str, ...]]:
    """Every parameter set as ``K=V`` strings, in grid order (the last key varies fastest)."""
    keys = [k for k, _ in grid]
    return [
        tuple(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
        for combo in itertools.product(*(v for _, v in grid))
    ]


@dataclass(frozen=True, slots=True)
class WalkForwardSpec:
    """What to run: strategy, window lengths (ns), grid, fixed params, objective, seed, symbol."""

    strategy: str
    train_ns: int
    test_ns: int
    step_ns: int | None = None
    grid: Grid = ()
    params: tuple[str, ...] = ()
    objective: str = "sharpe"
    seed: int = 0
    symbol: str | None = None
    period_ns: int | None = None

    def __post_init__(self) -> None:
        for name, v in (("train", self.train_ns), ("test", self.test_ns), ("step", self.step)):
            if v <= 0:
                raise ConfigError(f"--{name} must be a positive duration, got {v} ns")
        if self.step < self.test_ns:
            raise ConfigError(
                f"--step ({self.step} ns) must be >= --test ({self.test_ns} ns): out-of-sample windows may not overlap"
            )
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; known: {', '.join(OBJECTIVES)}")
        if self.period_ns is not None and self.period_ns <= 0:
            raise ConfigError(f"period must be positive, got {self.period_ns} ns")
        grid_keys = {k for k, _ in self.grid}
        fixed = {p.partition("=")[0].strip() for p in self.params}
        if grid_keys & fixed:
            raise ConfigError(
                f"parameters both fixed (--param) and in the grid: {', '.join(sorted(grid_keys & fixed))}"
            )

    @property
    def step(self) -> int:
        return self.step_ns if self.step_ns is not None else self.test_ns

    @property
    def period(self) -> int:
        return self.period_ns if self.period_ns is not None else choose_period(self.test_ns)

    def candidates(self) -> list[tuple[str, ...]]:
        """Every full parameter list (fixed params, then one grid point)."""
        return [self.params + point for point in grid_points(self.grid)]


@dataclass(frozen=True, slots=True)
class Window:
    """One train/test pair, half-open ``[start, end)`` ns of ``ts_recv``."""

    index: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int

    def to_json(self) -> dict[str, int]:
        return {
            "index": self.index,
            "train_start": self.train_start,
            "train_end": self.train_end,
            "test_start": self.test_start,
            "test_end": self.test_end,
        }


def plan_windows(first_ns: int, last_ns: int, spec: WalkForwardSpec) -> list[Window]:
    """Windows starting at ``first_ns`` every ``step`` whose test window ends by ``last_ns + 1``."""
    out: list[Window] = []
    s = first_ns
    while s + spec.train_ns + spec.test_ns <= last_ns + 1:
        mid = s + spec.train_ns
        out.append(Window(len(out), s, mid, mid, mid + spec.test_ns))
        s += spec.step
    if not out:
        raise ConfigError(
            f"the log's market data spans {(last_ns - first_ns) / 1e9:.3f} s: no room for one train "
            f"({spec.train_ns / 1e9:g} s) + test ({spec.test_ns / 1e9:g} s) window"
        )
    return out


# --------------------------------------------------------------------------- logs


def market_span(log_dir: Path) -> tuple[int, int]:
    """First and last ``ts_recv`` of the log's market events (exchangeInfo left out)."""
    from catalogs.log import LogReader

    lo, hi = None, None
    with LogReader(log_dir) as reader:
        for batch in reader.batches():
            ts = batch.ints["ts_recv"][np.isin(batch.kind, _SPAN_KINDS)]
            if ts.size:
                lo = int(ts.min()) if lo is None else min(lo, int(ts.min()))
                hi = int(ts.max()) if hi is None else max(hi, int(ts.max()))
    if lo is None or hi is None:
        raise InputError("the log has no market events to walk forward over", source=str(log_dir))
    return lo, hi


def slice_log(src: Path, dst: Path, lo: int, hi: int) -> int:
    """Write ``[lo, hi)`` of ``src`` (by ``ts_recv``) plus the state-only warm-up rows before ``lo``
    into the new log ``dst``; returns the number of in-window events."""
    from catalogs.log import FlushPolicy, LogReader, LogWriter
    from catalogs.schema import iter_events
    from replay.source import take_rows

    n = 0
    with LogReader(src) as reader:
        meta: dict[str, Any] = {"walkforward_slice": {"from_ns": lo, "to_ns": hi}}
        if "instruments" in reader.manifest.meta:
            meta["instruments"] = reader.manifest.meta["instruments"]
        with LogWriter(dst, meta=meta, policy=FlushPolicy(fsync=False), monotonic_ns=None) as writer:
            for batch in reader.batches():
                ts = batch.ints["ts_recv"]
                inside = (ts >= lo) & (ts < hi)
                keep = inside | ((ts < lo) & np.isin(batch.kind, _WARMUP_KINDS))
                rows = np.flatnonzero(keep)
                n += int(inside.sum())
                if rows.size:
                    for ev in iter_events(take_rows(batch, rows)):
                        writer.append(ev)
    return n


# --------------------------------------------------------------------------- one run's metrics


@dataclass(frozen=True, slots=True)
class RunEval:
    """A run's metrics and the curve they came from (None/empty when nothing could be priced)."""

    metrics: Metrics | None
    ts: np.ndarray
    equity: np.ndarray
    trades: tuple[RoundTrip, ...]
    run_hash: str
    fills: int


def evaluate_run(run_dir: Path, period_ns: int, start_ns: int | None = None) -> RunEval:
    """Mark a run's fills against its input log (as ``replay.report`` does) and measure it.

    ``start_ns``: the window's start; the curve is cut there (the warm-up rows before it carry
    no trading, and would stretch the span and dilute the returns), starting from the equity
    held at that time."""
    from catalogs.log import LogReader
    from replay.report import (
        account_order,
        config_balances,
        infer_initial,
        quote_asset_of,
        read_run_events,
        read_run_info,
        replay_market,
    )

    info = read_run_info(run_dir)
    account = account_order(read_run_events(run_dir).account)
    fills = [e for e in account if isinstance(e, OrderFilled)]
    pairs = {str(f.instrument): spot_pair(f.instrument) for f in fills}
    quote = quote_asset_of(pairs.values(), info.config, "walk-forward")
    initial, _ = infer_initial(account, pairs, config_balances(info.config))
    portfolio = Portfolio(quote, initial, pairs)
    pricing = {p.base: name for name, p in sorted(pairs.items()) if p.quote == quote}
    symbol = info.config.get("symbol") or None
    empty = np.zeros(0, dtype=np.int64)
    try:
        with LogReader(info.input_log) as reader:
            market = replay_market(
                reader, portfolio, fills, pricing, sorted(pairs), symbol=symbol, max_points=MAX_POINTS
            )
    except InputError:  # no market event in the window: nothing to measure
        return RunEval(None, empty, empty.astype(np.float64), (), info.run_hash or "", len(fills))
    ts, eq = market.equity
    if start_ns is not None:
        ts, eq = cut_curve(ts, eq, start_ns)
    metrics = None
    if len(ts):
        metrics = compute_metrics(
            ts, eq, portfolio.round_trips, period_ns=max(period_ns, market.equity_width)
        )
    return RunEval(metrics, ts, eq, tuple(portfolio.round_trips), info.run_hash or "", len(fills))


def cut_curve(ts: np.ndarray, eq: np.ndarray, start_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The curve from ``start_ns`` on, its first point the value held at ``start_ns``."""
    i = int(np.searchsorted(ts, start_ns, side="right"))
    if i == 0:
        return ts, eq
    head_ts = np.array([start_ns], dtype=np.int64)
    return np.concatenate((head_ts, ts[i:])), np.concatenate((eq[i - 1 : i], eq[i:]))


def score(metrics: Metrics | None, objective: str) -> float:
    """The objective's value; -inf when undefined (no trades, flat curve, nothing priced)."""
    if metrics is None:
        return -math.inf
    value = getattr(metrics, OBJECTIVES[objective])
    return -math.inf if value is None else float(value)


# --------------------------------------------------------------------------- the walk


@dataclass(frozen=True, slots=True)
class Candidate:
    """One parameter set scored on one train window."""

    params: tuple[str, ...]
    score: float
    run_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "params": _params_json(self.params),
            "objective": _finite(self.score),
            "run_hash": self.run_hash,
        }


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One window: the candidates, the chosen parameters, IS and OOS evaluations."""

    window: Window
    train_events: int
    test_events: int
    candidates: tuple[Candidate, ...]
    best: tuple[str, ...]
    in_sample: RunEval
    out_of_sample: RunEval

    def to_json(self, objective: str) -> dict[str, Any]:
        return {
            **self.window.to_json(),
            "train_events": self.train_events,
            "test_events": self.test_events,
            "best_params": _params_json(self.best),
            "is_objective": _finite(score(self.in_sample.metrics, objective)),
            "oos_objective": _finite(score(self.out_of_sample.metrics, objective)),
            "is": _metrics_json(self.in_sample),
            "oos": _metrics_json(self.out_of_sample),
            "candidates": [c.to_json() for c in self.candidates],
        }


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    """Every window and the aggregate; ``to_json`` is what ``tickloop walkforward`` prints."""

    spec: WalkForwardSpec
    span: tuple[int, int]
    windows: tuple[WindowResult, ...]
    aggregate: Metrics | None
    aggregate_trades: int = field(default=0)

    def to_json(self) -> dict[str, Any]:
        from replay.report import metrics_json

        obj = self.spec.objective
        is_scores = [score(w.in_sample.metrics, obj) for w in self.windows]
        oos_scores = [score(w.out_of_sample.metrics, obj) for w in self.windows]
        return {
            "strategy": self.spec.strategy,
            "objective": obj,
            "train_ns": self.spec.train_ns,
            "test_ns": self.spec.test_ns,
            "step_ns": self.spec.step,
            "period_ns": self.spec.period,
            "seed": self.spec.seed,
            "symbol": self.spec.symbol,
            "params": _params_json(self.spec.params),
            "grid": {k: list(v) for k, v in self.spec.grid},
            "span": {"start_ts": self.span[0], "end_ts": self.span[1]},
            "windows": [w.to_json(obj) for w in self.windows],
            "aggregate": {
                "oos": metrics_json(self.aggregate),
                "oos_trades": self.aggregate_trades,
                "is_objective_mean": _mean(is_scores),
                "oos_objective_mean": _mean(oos_scores),
            },
        }


ProgressFn = Callable[[str], None]


def run_walkforward(
    log_dir: str | Path,
    spec: WalkForwardSpec,
    *,
    venue: VenueSettings | None = None,
    work_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> WalkForwardResult:
    """Walk ``spec`` forward over ``log_dir`` (see the module doc). ``work_dir`` keeps the slices
    and runs (must not exist); None uses a temp dir removed at the end."""
    from replay.source import open_log
    from strategies.registry import build_config

    src = Path(log_dir)
    open_log(src).close()  # a LogError naming the directory if it is not a log
    candidates = spec.candidates()
    for params in candidates:  # every grid point valid before any backtest
        build_config(spec.strategy, params)
    span = market_span(src)
    windows = plan_windows(span[0], span[1], spec)
    if work_dir is not None:
        root = Path(work_dir)
        if root.exists():
            raise ConfigError(f"work directory {root} already exists")
        root.mkdir(parents=True)
        results = _walk(src, spec, windows, candidates, root, venue, progress)
    else:
        with tempfile.TemporaryDirectory(prefix="tickloop-wf-") as tmp:
            results = _walk(src, spec, windows, candidates, Path(tmp), venue, progress)
    ts, eq, trades = chain_curves([w.out_of_sample for w in results])
    aggregate = compute_metrics(ts, eq, trades, period_ns=spec.period) if len(ts) else None
    return WalkForwardResult(spec, span, tuple(results), aggregate, len(trades))


def _walk(
    src: Path,
    spec: WalkForwardSpec,
    windows: Sequence[Window],
    candidates: Sequence[tuple[str, ...]],
    root: Path,
    venue: VenueSettings | None,
    progress: ProgressFn | None,
) -> list[WindowResult]:
    from replay.backtest import run_backtest

    def backtest(log: Path, params: tuple[str, ...], out: Path, start: int) -> RunEval:
        run_backtest(log, spec.strategy, params, seed=spec.seed, symbol=spec.symbol, out=out, venue=venue)
        return evaluate_run(out, spec.period, start)

    results = []
    for w in windows:
        base = root / f"w{w.index:03d}"
        train_log, test_log = base / "train", base / "test"
        n_train = slice_log(src, train_log, w.train_start, w.train_end)
        n_test = slice_log(src, test_log, w.test_start, w.test_end)
        evals = [
            backtest(train_log, p, base / f"is-{i:03d}", w.train_start) for i, p in enumerate(candidates)
        ]
        scored = [
            Candidate(p, score(e.metrics, spec.objective), e.run_hash)
            for p, e in zip(candidates, evals, strict=True)
        ]
        best_i = max(range(len(scored)), key=lambda i: (scored[i].score, -i))
        oos = backtest(test_log, candidates[best_i], base / "oos", w.test_start)
        results.append(
            WindowResult(w, n_train, n_test, tuple(scored), candidates[best_i], evals[best_i], oos)
        )
        if progress is not None:
            progress(
                f"window {w.index + 1}/{len(windows)}: best {' '.join(candidates[best_i]) or '(defaults)'} "
                f"IS {spec.objective}={_fmt(scored[best_i].score)} OOS {spec.objective}="
                f"{_fmt(score(oos.metrics, spec.objective))}"
            )
    return results


def chain_curves(evals: Sequence[RunEval]) -> tuple[np.ndarray, np.ndarray, list[RoundTrip]]:
    """The OOS equity curves end to end, each rescaled to start where the previous one ended
    (compounding the windows' returns), and all their round trips. Curves that do not start
    positive cannot be rescaled and are left out."""
    ts_parts: list[np.ndarray] = []
    eq_parts: list[np.ndarray] = []
    trades: list[RoundTrip] = []
    level: float | None = None
    last_ts: int | None = None
    for ev in evals:
        if not len(ev.ts) or ev.equity[0] <= 0:
            continue
        start = float(ev.equity[0])
        level = start if level is None else level
        ts = ev.ts if last_ts is None else np.maximum(ev.ts, last_ts)
        ts_parts.append(ts)
        eq_parts.append(ev.equity * (level / start))
        level = float(eq_parts[-1][-1])
        last_ts = int(ts[-1])
        trades.extend(ev.trades)
    if not ts_parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0), trades
    return np.concatenate(ts_parts), np.concatenate(eq_parts), trades


# --------------------------------------------------------------------------- JSON helpers


def _params_json(params: Sequence[str]) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in params)}


def _metrics_json(ev: RunEval) -> dict[str, Any] | None:
    from replay.report import metrics_json

    out = metrics_json(ev.metrics)
    if out is not None:
        out["fills"] = ev.fills
        out["run_hash"] = ev.run_hash
    return out


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _mean(xs: Sequence[float]) -> float | None:
    fin = [x for x in xs if math.isfinite(x)]
    return sum(fin) / len(fin) if fin else None


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "n/a"


def table(result: WalkForwardResult) -> str:
    """A plain-text table of the windows (for stderr)."""
    obj = result.spec.objective
    head = f"{'win':>3}  {'train start':>19}  {'test start':>19}  {'best params':<32} {'IS ' + obj:>12} {'OOS ' + obj:>12} {'IS ret':>9} {'OOS ret':>9}"
    lines = [head, "-" * len(head)]
    for w in result.windows:
        is_m, oos_m = w.in_sample.metrics, w.out_of_sample.metrics
        lines.append(
            f"{w.window.index:>3}  {_utc(w.window.train_start):>19}  {_utc(w.window.test_start):>19}  "
            f"{' '.join(w.best) or '(defaults)':<32} {_fmt(score(is_m, obj)):>12} {_fmt(score(oos_m, obj)):>12} "
            f"{_pct(is_m):>9} {_pct(oos_m):>9}"
        )
    agg = result.aggregate
    lines.append(
        f"aggregate OOS: return {_pct(agg)}, {obj} {_fmt(score(agg, obj))}, "
        f"max drawdown {'n/a' if agg is None or agg.max_drawdown is None else f'{agg.max_drawdown:.4%}'}, "
        f"{result.aggregate_trades} round trips"
    )
    return "\n".join(lines)


def _pct(m: Metrics | None) -> str:
    return "n/a" if m is None or m.total_return is None else f"{m.total_return:.4%}"


def _utc(ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
