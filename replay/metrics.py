"""Performance statistics of a run: pure functions over an equity curve and round trips.

Inputs: an equity curve (``ts_ns`` int ns, non-decreasing; ``equity`` e8 ints or floats,
any unit: ratios do not depend on it) and the run's round trips (:class:`RoundTrip`, or
anything with the same attributes). Money outputs (PnL, fees, notional, average trade)
are in the input's unit; the rest are unitless.

Conventions (the report and the tests rely on them):

- **Total return** ``E_last / E_first - 1``. **Annualised return** compounds it over the
  actual span, ``(E_last / E_first) ** (YEAR / span) - 1`` with ``YEAR`` = 365 days
  (crypto trades every day): -1 if the curve ends at or below zero, None for a zero span
  or when the result overflows a float (annualising a few minutes of a big move).
- **Periodic returns** resample the curve to a fixed grid ``start + k * period`` (value =
  last equity at or before each grid time; the final partial period is left out) and take
  simple returns. ``period_ns=None`` picks the longest of 1d, 4h, 1h, 15m, 5m, 1m, 10s, 1s
  giving at least 30 returns (else 1s). Annualising uses ``YEAR / period`` periods.
- **Sharpe** ``mean / std (ddof=1) * sqrt(periods per year)``, risk-free rate 0.
  **Sortino** ``mean / downside deviation * sqrt(ppy)``, downside deviation =
  ``sqrt(mean(min(r, 0)^2))`` over all periods (target 0). Both None with fewer than two
  returns, a zero denominator (flat curve; Sortino with no losing period), or a curve
  that is not positive at every grid point.
- **Max drawdown** on the raw curve: the largest ``1 - E / running peak`` (a fraction,
  0 when the curve never falls); its peak (last time at that peak), trough and recovery
  (first time back at or above the peak; None if never). **Max drawdown duration** is the
  longest time underwater, from a peak to its recovery or to the end of the curve.
  All None when the first equity is not positive.
- **Calmar** annualised return / max drawdown; None when either is None or drawdown is 0.
- **Trades** (net = gross - fees): win rate (net > 0; a zero trade is not a win), profit
  factor ``sum of net wins / |sum of net losses|`` (None without a losing trade), average
  trade (None without trades), fee share ``fees / gross PnL`` (how much of the gross
  profit fees took; None when gross PnL <= 0).
- **Turnover** traded notional / time-weighted mean equity (None if that mean <= 0).
  **Exposure** the fraction of the span with at least one round trip open (None for a
  zero span).

No ratio comes out NaN or infinite and nothing divides by zero: undefined values are None
(so are ratios that would overflow a float on extreme inputs, and a periodic return that
overflows makes the return series undefined). Money totals are plain sums of the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from engine.errors import InputError

SECOND_NS = 1_000_000_000
DAY_NS = 86_400 * SECOND_NS
YEAR_NS = 365 * DAY_NS
AUTO_PERIODS_NS: tuple[int, ...] = (
    DAY_NS, 4 * 3600 * SECOND_NS, 3600 * SECOND_NS, 900 * SECOND_NS, 300 * SECOND_NS, 60 * SECOND_NS,
    10 * SECOND_NS, SECOND_NS,
)  # fmt: skip
MIN_PERIODS = 30
_MAX_EXP = 700.0  # exp() of more overflows a float64

Number = int | float


class TradeLike(Protocol):
    """What the trade statistics read from a round trip."""

    @property
    def entry_ts(self) -> int: ...
    @property
    def exit_ts(self) -> int: ...
    @property
    def gross_pnl(self) -> Number: ...
    @property
    def fees(self) -> Number: ...
    @property
    def notional(self) -> Number: ...


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One entry/exit pair. ``gross_pnl`` before fees and ``fees`` of both legs, in the quote
    unit (the producer computes them: linear and inverse contracts differ); ``notional`` is
    the traded value of both legs (for turnover)."""

    instrument: str
    side: int
    qty: Number
    entry_ts: int
    exit_ts: int
    entry_price: Number
    exit_price: Number
    gross_pnl: Number
    fees: Number
    notional: Number

    @property
    def net_pnl(self) -> Number:
        """Gross PnL minus fees."""
        return self.gross_pnl - self.fees


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The deepest drawdown and the longest time underwater (see the module doc)."""

    max_drawdown: float
    peak_ts: int | None
    trough_ts: int | None
    recovery_ts: int | None
    longest_duration_ns: int


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Round-trip statistics (see the module doc for None cases)."""

    n_trades: int
    win_rate: float | None
    profit_factor: float | None
    avg_trade: float | None
    gross_pnl: Number
    fees: Number
    net_pnl: Number
    fee_share: float | None
    traded_notional: Number


@dataclass(frozen=True, slots=True)
class Metrics:
    """Everything the report shows; ``to_dict`` is its JSON form (None stays null)."""

    start_ts: int
    end_ts: int
    span_ns: int
    start_equity: float
    end_equity: float
    total_return: float | None
    annualised_return: float | None
    period_ns: int
    n_periods: int
    annualised_volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float | None
    max_drawdown_peak_ts: int | None
    max_drawdown_trough_ts: int | None
    max_drawdown_recovery_ts: int | None
    max_drawdown_duration_ns: int | None
    n_trades: int
    win_rate: float | None
    profit_factor: float | None
    avg_trade: float | None
    gross_pnl: Number
    fees: Number
    net_pnl: Number
    fee_share: float | None
    traded_notional: Number
    turnover: float | None
    exposure: float | None

    def to_dict(self) -> dict[str, Number | None]:
        """Field name -> value, for JSON."""
        return asdict(self)


def compute_metrics(
    ts_ns: Sequence[int] | np.ndarray,
    equity: Sequence[Number] | np.ndarray,
    trades: Sequence[TradeLike] = (),
    *,
    period_ns: int | None = None,
) -> Metrics:
    """All statistics of one run (see the module doc)."""
    ts, eq = equity_curve(ts_ns, equity)
    period = choose_period(int(ts[-1] - ts[0])) if period_ns is None else _positive_period(period_ns)
    returns = period_returns(ts, eq, period)
    ppy = YEAR_NS / period
    total = total_return(eq)
    annual = annualised_return(ts, eq)
    dd = drawdown(ts, eq)
    stats = trade_stats(trades)
    vol = _std(returns)
    return Metrics(
        start_ts=int(ts[0]),
        end_ts=int(ts[-1]),
        span_ns=int(ts[-1] - ts[0]),
        start_equity=float(eq[0]),
        end_equity=float(eq[-1]),
        total_return=total,
        annualised_return=annual,
        period_ns=period,
        n_periods=len(returns),
        annualised_volatility=None if vol is None else _finite(vol * math.sqrt(ppy)),
        sharpe=sharpe(returns, ppy),
        sortino=sortino(returns, ppy),
        calmar=calmar(annual, None if dd is None else dd.max_drawdown),
        max_drawdown=None if dd is None else dd.max_drawdown,
        max_drawdown_peak_ts=None if dd is None else dd.peak_ts,
        max_drawdown_trough_ts=None if dd is None else dd.trough_ts,
        max_drawdown_recovery_ts=None if dd is None else dd.recovery_ts,
        max_drawdown_duration_ns=None if dd is None else dd.longest_duration_ns,
        n_trades=stats.n_trades,
        win_rate=stats.win_rate,
        profit_factor=stats.profit_factor,
        avg_trade=stats.avg_trade,
        gross_pnl=stats.gross_pnl,
        fees=stats.fees,
        net_pnl=stats.net_pnl,
        fee_share=stats.fee_share,
        traded_notional=stats.traded_notional,
        turnover=turnover(ts, eq, stats.traded_notional),
        exposure=exposure(trades, int(ts[0]), int(ts[-1])),
    )


def equity_curve(
    ts_ns: Sequence[int] | np.ndarray, equity: Sequence[Number] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(int64 ts, float64 equity)``; InputError on empty, ragged, unsorted or non-finite input."""
    ts = np.asarray(ts_ns)
    if ts.ndim != 1 or len(ts) == 0 or ts.dtype.kind not in "iu":
        raise InputError(
            f"equity curve timestamps must be a non-empty 1-D integer array, got {ts.shape} {ts.dtype}"
        )
    eq = np.asarray(equity, dtype=np.float64)
    if eq.shape != ts.shape:
        raise InputError(f"equity has shape {eq.shape} but timestamps {ts.shape}")
    ts = ts.astype(np.int64)
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputError(f"equity curve timestamps go back in time at point {i}: {ts[i]} < {ts[i - 1]}")
    bad = np.flatnonzero(~np.isfinite(eq))
    if bad.size:
        raise InputError(f"equity curve point {int(bad[0])} is not finite: {eq[bad[0]]}")
    return ts, eq


def choose_period(span_ns: int) -> int:
    """Longest of :data:`AUTO_PERIODS_NS` giving at least :data:`MIN_PERIODS` returns, else the shortest."""
    for period in AUTO_PERIODS_NS:
        if span_ns // period >= MIN_PERIODS:
            return period
    return AUTO_PERIODS_NS[-1]


def _positive_period(period_ns: int) -> int:
    if isinstance(period_ns, bool) or not isinstance(period_ns, int) or period_ns <= 0:
        raise InputError(f"period_ns must be a positive int, got {period_ns!r}")
    return period_ns


def resample(ts: np.ndarray, eq: np.ndarray, period_ns: int) -> np.ndarray:
    """Equity at ``ts[0] + k * period`` for each whole period (last value at or before)."""
    k = int(ts[-1] - ts[0]) // period_ns
    grid = ts[0] + period_ns * np.arange(k + 1, dtype=np.int64)
    out: np.ndarray = eq[np.searchsorted(ts, grid, side="right") - 1]
    return out


def period_returns(ts: np.ndarray, eq: np.ndarray, period_ns: int) -> np.ndarray:
    """Simple returns of the resampled curve; empty when it is not positive at every grid point."""
    values = resample(ts, eq, period_ns)
    if (values[:-1] <= 0).any():
        return np.zeros(0)
    with np.errstate(over="ignore"):
        out: np.ndarray = values[1:] / values[:-1] - 1.0
    return out if np.isfinite(out).all() else np.zeros(0)


def _finite(x: float) -> float | None:
    """``x`` unless it overflowed to infinity or NaN (extreme but finite inputs), else None."""
    return x if math.isfinite(x) else None


def total_return(eq: np.ndarray) -> float | None:
    """``E_last / E_first - 1``; None when the first equity is not positive."""
    if eq[0] <= 0:
        return None
    with np.errstate(over="ignore"):
        return _finite(float(eq[-1] / eq[0] - 1.0))


def annualised_return(ts: np.ndarray, eq: np.ndarray, year_ns: int = YEAR_NS) -> float | None:
    """Compound annual growth over the actual span (see the module doc)."""
    span = int(ts[-1] - ts[0])
    if span <= 0 or eq[0] <= 0:
        return None
    with np.errstate(over="ignore", under="ignore"):
        ratio = float(eq[-1] / eq[0])
    if ratio <= 0.0:  # ruined (or so close that the ratio underflows)
        return -1.0
    exponent = math.log(ratio) * (year_ns / span)
    return math.expm1(exponent) if exponent <= _MAX_EXP else None


def _std(returns: np.ndarray) -> float | None:
    if len(returns) < 2:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite(float(np.std(returns, ddof=1)))


def sharpe(returns: np.ndarray, periods_per_year: float) -> float | None:
    """Annualised Sharpe ratio of periodic returns, risk-free 0; None when undefined."""
    std = _std(returns)
    if std is None or std == 0.0:
        return None
    return _finite(float(np.mean(returns)) / std * math.sqrt(periods_per_year))


def sortino(returns: np.ndarray, periods_per_year: float) -> float | None:
    """Annualised Sortino ratio (target 0, downside over all periods); None when undefined."""
    if len(returns) < 2:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
        mean = float(np.mean(returns))
    if downside == 0.0 or not math.isfinite(downside):
        return None
    return _finite(mean / downside * math.sqrt(periods_per_year))


def calmar(annual: float | None, max_dd: float | None) -> float | None:
    """Annualised return over max drawdown; None when either is missing or the drawdown is 0."""
    if annual is None or max_dd is None or max_dd == 0.0:
        return None
    return _finite(annual / max_dd)


def drawdown(ts: np.ndarray, eq: np.ndarray) -> Drawdown | None:
    """Deepest drawdown and longest time underwater; None when the first equity is not positive."""
    if eq[0] <= 0:
        return None
    peak = np.maximum.accumulate(eq)
    under = eq < peak
    if not under.any():
        return Drawdown(0.0, None, None, None, 0)
    depth = 1.0 - eq / peak
    trough = int(np.argmax(depth))
    idx = np.arange(len(eq))
    last_high = np.maximum.accumulate(np.where(under, 0, idx))
    peak_i = int(last_high[trough])
    after = np.flatnonzero(eq[trough:] >= peak[trough])
    recovery = int(ts[trough + after[0]]) if after.size else None
    # time since the last high, counted on underwater points and on the point that recovers
    counted = under[1:] | under[:-1]
    durations = ts[1:] - ts[last_high[:-1]]
    longest = int(durations[counted].max()) if counted.any() else 0
    return Drawdown(float(depth[trough]), int(ts[peak_i]), int(ts[trough]), recovery, longest)


def trade_stats(trades: Sequence[TradeLike]) -> TradeStats:
    """Win rate, profit factor, average trade, PnL and fee totals, traded notional."""
    gross = [t.gross_pnl for t in trades]
    fees = [t.fees for t in trades]
    net = [g - f for g, f in zip(gross, fees, strict=True)]
    total_gross, total_fees, total_net = sum(gross), sum(fees), sum(net)
    wins = sum(x for x in net if x > 0)
    losses = -sum(x for x in net if x < 0)
    n = len(net)
    return TradeStats(
        n_trades=n,
        win_rate=sum(1 for x in net if x > 0) / n if n else None,
        profit_factor=float(wins / losses) if losses > 0 else None,
        avg_trade=float(total_net / n) if n else None,
        gross_pnl=total_gross,
        fees=total_fees,
        net_pnl=total_net,
        fee_share=_finite(float(total_fees / total_gross)) if total_gross > 0 else None,
        traded_notional=sum(t.notional for t in trades),
    )


def time_weighted_mean(ts: np.ndarray, eq: np.ndarray) -> float:
    """Mean of the step-function curve over its span (the single value for a zero span)."""
    span = int(ts[-1] - ts[0])
    if span == 0:
        return float(eq[-1])
    # weights first: span-relative durations keep the sum in range for any finite equity
    return float(np.sum(eq[:-1] * (np.diff(ts) / span)))


def turnover(ts: np.ndarray, eq: np.ndarray, traded_notional: Number) -> float | None:
    """Traded notional over time-weighted mean equity; None when that mean is not positive."""
    mean = time_weighted_mean(ts, eq)
    return _finite(float(traded_notional / mean)) if mean > 0 else None


def exposure(trades: Sequence[TradeLike], start_ts: int, end_ts: int) -> float | None:
    """Fraction of ``[start, end]`` with at least one round trip open; None for a zero span."""
    span = end_ts - start_ts
    if span <= 0:
        return None
    intervals = sorted((max(t.entry_ts, start_ts), min(t.exit_ts, end_ts)) for t in trades)
    covered = 0
    cur_start = cur_end = None
    for a, b in intervals:
        if b <= a:
            continue
        if cur_end is None or a > cur_end:
            if cur_end is not None and cur_start is not None:
                covered += cur_end - cur_start
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    if cur_end is not None and cur_start is not None:
        covered += cur_end - cur_start
    return covered / span
