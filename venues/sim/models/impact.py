"""Square-root market impact of *our* orders, on top of the plain book walk.

Model: an order of size Q moves the price by the relative amount ``I = Y * sigma * sqrt(Q / V)``
(the "square-root law"), where sigma is the volatility and V the traded volume over the same
horizon. sigma_T grows like sqrt(T) and V_T like T, so sigma/sqrt(V) does not depend on the
horizon as long as both are measured over the same window; that is why one window serves both.

How it is applied (``docs/sim-models.md``):
- The order itself pays the whole I: every fill of the book walk is moved by ``I * ref`` against
  us (up for a BUY, down for a SELL), ``ref`` being the first (best) fill price.
- Afterwards a permanent part ``permanent_share * I`` stays in the price and decays
  exponentially with ``half_life_ns``; the temporary rest vanishes at once. The permanent state
  (a signed relative shift) moves every later fill we get, taker or maker.
- Floats are used for I and the decay (sqrt/exp have no exact integer form); every price shift
  is then rounded to the nearest tick (ties to even) of the instrument, so fills stay exact e8
  prices on the grid. With Y = 0, I is exactly 0 and the book-walk fills come back unchanged.
- A limit order never fills beyond its limit price because of impact: shifted prices are clamped.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import msgspec

from engine.errors import ConfigError

Fill = tuple[int, int]
"""(price e8, quantity e8)."""


class MarketStats(Protocol):
    """Where sigma (relative, over the window) and V (base quantity e8, same window) come from."""

    def on_trade(self, ts_ns: int, price_e8: int, qty_e8: int) -> None: ...

    def estimate(self, ts_ns: int) -> tuple[float, int]:
        """(sigma, volume_e8) as of ``ts_ns``."""
        ...


class FixedStats(msgspec.Struct, frozen=True, gc=False):
    """sigma and V given by the user (e.g. daily volatility and daily volume)."""

    sigma: float
    volume_e8: int

    def on_trade(self, ts_ns: int, price_e8: int, qty_e8: int) -> None:
        """Given statistics ignore the tape."""

    def estimate(self, ts_ns: int) -> tuple[float, int]:
        return self.sigma, self.volume_e8


class _Bucket:
    __slots__ = ("close_log", "idx", "r2", "volume")

    def __init__(self, idx: int, close_log: float, volume: int, r2: float) -> None:
        self.idx = idx
        self.close_log = close_log
        self.volume = volume
        self.r2 = r2


class RollingStats:
    """sigma and V estimated online from the trade tape over the last ``window_ns``.

    Trades are bucketed every ``sample_ns`` (last price = the bucket's close). sigma is the
    realized volatility ``sqrt(sum of squared log returns between consecutive non-empty
    buckets)`` inside the window (sampling at a fixed step damps bid/ask bounce that
    trade-to-trade returns would add); V is the summed traded quantity inside the window.
    O(1) amortized per trade; sums are updated incrementally in one fixed order, so results
    are deterministic.
    """

    def __init__(self, window_ns: int, sample_ns: int = 1_000_000_000) -> None:
        if window_ns <= 0 or sample_ns <= 0 or sample_ns > window_ns:
            raise ConfigError(f"need 0 < sample_ns <= window_ns, got sample={sample_ns} window={window_ns}")
        self.window_ns = window_ns
        self.sample_ns = sample_ns
        self._buckets: deque[_Bucket] = deque()
        self._sum_r2 = 0.0
        self._volume = 0

    def on_trade(self, ts_ns: int, price_e8: int, qty_e8: int) -> None:
        if price_e8 <= 0 or qty_e8 < 0:
            raise ValueError(f"trade needs price > 0 and qty >= 0, got {price_e8}, {qty_e8}")
        idx = ts_ns // self.sample_ns
        lp = math.log(price_e8)
        b = self._buckets
        if b and b[-1].idx >= idx:  # same bucket (or a late trade): it updates the latest bucket
            last = b[-1]
            self._sum_r2 -= last.r2
            last.r2 = (lp - b[-2].close_log) ** 2 if len(b) > 1 else 0.0
            last.close_log = lp
            last.volume += qty_e8
        else:
            r2 = (lp - b[-1].close_log) ** 2 if b else 0.0
            b.append(_Bucket(idx, lp, qty_e8, r2))
        self._sum_r2 += b[-1].r2
        self._volume += qty_e8
        self._evict(ts_ns)

    def _evict(self, ts_ns: int) -> None:
        first_idx = (ts_ns - self.window_ns) // self.sample_ns + 1
        b = self._buckets
        while b and b[0].idx < first_idx:
            gone = b.popleft()
            self._volume -= gone.volume
            self._sum_r2 -= gone.r2
            if b:  # the return linking the evicted bucket to the next one leaves the window too
                self._sum_r2 -= b[0].r2
                b[0].r2 = 0.0
        if not b:
            self._sum_r2 = 0.0
        self._sum_r2 = max(self._sum_r2, 0.0)

    def estimate(self, ts_ns: int) -> tuple[float, int]:
        self._evict(ts_ns)
        return math.sqrt(self._sum_r2), self._volume


def round_to_tick(value_e8: float, tick_e8: int) -> int:
    """Nearest multiple of the tick (ties to even); a tick of 0 means the e8 grid."""
    tick = tick_e8 if tick_e8 > 0 else 1
    return round(value_e8 / tick) * tick


class ImpactModel(Protocol):
    """What the venue calls (``venues.sim.venue.SimVenue(impact=...)``).

    The venue walks the book itself (its walk also merges our own resting orders and
    checks funds), so it asks for the one price shift of an order *before* the walk
    (:meth:`shift_e8`, pure: the venue also uses it to size a MARKET BUY's lock) and says
    what traded afterwards (:meth:`record`). :meth:`apply` is the same rule on a list of
    fills, for callers that already have a plain walk.
    """

    def on_trade(self, ts_ns: int, price_e8: int, qty_e8: int) -> None:
        """A market trade (not ours): feeds the sigma/V estimates."""
        ...

    def shift_e8(self, ts_ns: int, side: str, qty_e8: int, ref_price_e8: int, tick_e8: int) -> int:
        """Signed shift (e8, on the tick grid) of every fill of an order of ``qty_e8``; no state change."""
        ...

    def record(self, ts_ns: int, side: str, qty_e8: int) -> None:
        """An order of ours traded ``qty_e8``: the permanent part of its impact stays."""
        ...

    def permanent_shift_e8(self, ts_ns: int, ref_price_e8: int, tick_e8: int) -> int: ...

    def apply(
        self, ts_ns: int, side: str, fills: Sequence[Fill], tick_e8: int, limit_price_e8: int | None = None
    ) -> list[Fill]: ...


class NoImpact:
    """Impact off: the book walk as is."""

    def on_trade(self, ts_ns: int, price_e8: int, qty_e8: int) -> None:
        """Nothing to estimate."""

    def shift_e8(self, ts_ns: int, side: str, qty_e8: int, ref_price_e8: int, tick_e8: int) -> int:
        return 0

    def record(self, ts_ns: int, side: str, qty_e8: int) -> None:
        """Nothing stays."""

    def permanent_shift_e8(self, ts_ns: int, ref_price_e8: int, tick_e8: int) -> int:
        return 0

    def apply(
        self, ts_ns: int, side: str, fills: Sequence[Fill], tick_e8: int, limit_price_e8: int | None = None
    ) -> list[Fill]:
        return list(fills)


class SquareRootImpact:
    """``I = y * sigma * sqrt(Q / V)``: the order pays I, ``permanent_share * I`` stays and decays.

    ``stats`` supplies sigma and V (``RollingStats`` fed from the tape via ``on_trade``, or
    ``FixedStats``). With no volume yet (V == 0) the impact is 0: there is nothing to scale by.
    """

    def __init__(
        self,
        y: float,
        stats: MarketStats,
        *,
        permanent_share: float = 0.5,
        half_life_ns: int = 60_000_000_000,
    ) -> None:
        if not math.isfinite(y) or y < 0:
            raise ConfigError(f"impact coefficient Y must be finite and >= 0, got {y}")
        if not 0.0 <= permanent_share <= 1.0:
            raise ConfigError(f"permanent_share must be within 0..1, got {permanent_share}")
        if half_life_ns <= 0:
            raise ConfigError(f"half_life_ns must be > 0, got {half_life_ns}")
        self.y = y
        self.stats = stats
        self.permanent_share = permanent_share
        self.half_life_ns = half_life_ns
        self._perm = 0.0  # signed relative shift at self._perm_ts
        self._perm_ts = 0

    def on_trade(self, ts_ns: int, price_e8: int, qty_e8: int) -> None:
        """Feed a market trade (not ours) to the statistics."""
        self.stats.on_trade(ts_ns, price_e8, qty_e8)

    def impact_fraction(self, ts_ns: int, qty_e8: int) -> float:
        """I for an order of ``qty_e8`` at ``ts_ns``, as a fraction of the price (>= 0)."""
        if self.y == 0.0 or qty_e8 <= 0:
            return 0.0
        sigma, volume = self.stats.estimate(ts_ns)
        if volume <= 0 or sigma <= 0.0:
            return 0.0
        return self.y * sigma * math.sqrt(qty_e8 / volume)

    def permanent_fraction(self, ts_ns: int) -> float:
        """The decayed signed permanent shift at ``ts_ns`` (positive = prices pushed up)."""
        if self._perm == 0.0:
            return 0.0
        dt = max(0, ts_ns - self._perm_ts)
        decay: float = 0.5 ** (dt / self.half_life_ns)
        return self._perm * decay

    def permanent_shift_e8(self, ts_ns: int, ref_price_e8: int, tick_e8: int) -> int:
        """The permanent shift in price e8 on the tick grid, for fills other than a book walk."""
        return round_to_tick(ref_price_e8 * self.permanent_fraction(ts_ns), tick_e8)

    def apply(
        self, ts_ns: int, side: str, fills: Sequence[Fill], tick_e8: int, limit_price_e8: int | None = None
    ) -> list[Fill]:
        """Move the book walk's fills by the permanent state plus this order's I, then record
        the permanent part this order leaves behind."""
        if not fills:
            return []
        sign = 1 if side == "BUY" else -1
        qty = sum(q for _, q in fills)
        shift = self.shift_e8(ts_ns, side, qty, fills[0][0], tick_e8)
        if shift == 0:
            out = list(fills)  # exactly the book walk: no clamping of anything we did not move
        else:
            out = [(self._clamp(p + shift, sign, tick_e8, limit_price_e8), q) for p, q in fills]
        self.record(ts_ns, side, qty)
        return out

    def shift_e8(self, ts_ns: int, side: str, qty_e8: int, ref_price_e8: int, tick_e8: int) -> int:
        """The permanent state plus this order's I, times ``ref``, on the tick grid (signed:
        a BUY pays up, a SELL down). Pure, so a venue can size a lock and then walk."""
        impact = self.impact_fraction(ts_ns, qty_e8)
        perm_now = self.permanent_fraction(ts_ns)
        if impact == 0.0 and perm_now == 0.0:
            return 0
        sign = 1 if side == "BUY" else -1
        return round_to_tick(ref_price_e8 * (perm_now + sign * impact), tick_e8)

    def record(self, ts_ns: int, side: str, qty_e8: int) -> None:
        """After an order of ``qty_e8`` traded: ``permanent_share * I`` joins the decayed state."""
        impact = self.impact_fraction(ts_ns, qty_e8)
        if impact:
            sign = 1 if side == "BUY" else -1
            self._perm = self.permanent_fraction(ts_ns) + sign * impact * self.permanent_share
            self._perm_ts = ts_ns

    @staticmethod
    def _clamp(price: int, sign: int, tick_e8: int, limit: int | None) -> int:
        if limit is not None:
            price = min(price, limit) if sign > 0 else max(price, limit)
        return max(price, tick_e8 if tick_e8 > 0 else 1)
