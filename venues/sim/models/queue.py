"""Queue position of one resting limit order at its price level, from L2 (aggregate) data.

With market-by-price data we see only the total quantity at our price, never who is ahead of
us. Each model keeps ``ahead`` (e8 quantity in front of our order) and ``available`` (e8
quantity that market trades have already pushed past the front of the queue into our order and
that the venue may fill). All quantities are e8 ints.

Rules shared by every model (documented in ``docs/sim-models.md``):
- We join at the back: ``ahead`` starts at the level's visible quantity (``on_order_placed``).
- A trade *at* our price first eats ``ahead``; what is left of it reaches our order.
- A trade *through* our price (below a resting BUY, above a resting SELL) means the whole
  level traded: ``ahead`` becomes 0 and the trade's quantity reaches our order.
- What reaches our order is capped by our unfilled quantity; the venue calls ``consume``
  when it turns available quantity into a fill.
- ``ahead`` never grows and is never negative: new orders at our price join behind us, and the
  level's visible quantity is an upper bound on what can be in front of us.
- The level quantities we receive are market data only: our simulated order is never in them.

RiskAverseQueue: only trades move us forward (cancels are assumed to be behind us), apart from
the upper bound above. ProbabilisticQueue: a decrease of the level not explained by trades is
a cancel, split between ahead and behind with probability ``f(back) / (f(front) + f(back))``
of being behind, ``f`` a power ``x**n`` or ``log(1 + x)`` (the estimator family described by
Rigtorp and implemented by hftbacktest's probabilistic queue models).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from engine.errors import ConfigError

SCALE_F = 1e8


class QueuePosition(Protocol):
    """One resting order's queue state; the venue drives it from market data."""

    def on_order_placed(self, level_qty_ahead: int) -> None: ...

    def on_trade(self, price: int, qty: int) -> None: ...

    def on_level_change(self, new_qty: int) -> None: ...

    def filled_qty_available(self) -> int: ...

    def consume(self, qty: int) -> None: ...

    @property
    def ahead(self) -> int: ...


class _QueueBase:
    """Trade handling and bookkeeping common to both models."""

    def __init__(self, side: str, price: int, qty: int) -> None:
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, got {side!r}")
        if price <= 0 or qty <= 0:
            raise ValueError(f"resting order needs price > 0 and qty > 0, got {price}, {qty}")
        self.side = side
        self.price = price
        self._remaining = qty  # our unfilled quantity not yet made available
        self._ahead = 0
        self._available = 0
        self._level = 0  # visible level quantity we last saw
        self._traded_since_update = 0  # trades at our price not yet reflected in a level update

    @property
    def ahead(self) -> int:
        return self._ahead

    def on_order_placed(self, level_qty_ahead: int) -> None:
        """We join the back of a level showing ``level_qty_ahead``."""
        if level_qty_ahead < 0:
            raise ValueError(f"level quantity must be >= 0, got {level_qty_ahead}")
        self._ahead = level_qty_ahead
        self._level = level_qty_ahead
        self._traded_since_update = 0

    def _through(self, price: int) -> bool:
        return price < self.price if self.side == "BUY" else price > self.price

    def on_trade(self, price: int, qty: int) -> None:
        """A market trade print; only prints at or through our price matter."""
        if qty <= 0:
            return
        if self._through(price):
            self._ahead = 0
            reach = qty
        elif price == self.price:
            eaten = min(self._ahead, qty)
            self._ahead -= eaten
            self._traded_since_update += qty
            reach = qty - eaten
        else:
            return
        grant = min(reach, self._remaining)
        self._available += grant
        self._remaining -= grant

    def filled_qty_available(self) -> int:
        """Quantity the venue may fill now (trades have reached our order)."""
        return self._available

    def consume(self, qty: int) -> None:
        """The venue filled ``qty`` of what was available."""
        if not 0 <= qty <= self._available:
            raise ValueError(f"cannot consume {qty}: only {self._available} available")
        self._available -= qty


class RiskAverseQueue(_QueueBase):
    """Only trades at our price move us forward; a level shrinking below ``ahead`` caps it."""

    def on_level_change(self, new_qty: int) -> None:
        if new_qty < 0:
            raise ValueError(f"level quantity must be >= 0, got {new_qty}")
        self._ahead = min(self._ahead, new_qty)
        self._level = new_qty
        self._traded_since_update = 0


def power_queue_fn(n: float) -> Callable[[float], float]:
    """f(x) = x**n (n = 1: cancels uniform through the queue; larger n: mostly behind us)."""
    if not math.isfinite(n) or n <= 0:
        raise ConfigError(f"power queue exponent must be > 0, got {n}")
    return lambda x: x**n


def log_queue_fn(x: float) -> float:
    """f(x) = log(1 + x), x in natural units of the base asset (the log is not scale-free)."""
    return math.log1p(x)


def behind_share(f: Callable[[float], float], front: int, back: int) -> float:
    """``f(back) / (f(front) + f(back))`` with quantities in natural units; degenerate cases:
    nothing in front -> 1 (all behind), nothing behind -> 0."""
    fb = f(back / SCALE_F)
    ff = f(front / SCALE_F)
    total = ff + fb
    if not math.isfinite(total) or total <= 0.0:
        return 1.0 if front == 0 else 0.0
    return min(1.0, max(0.0, fb / total))


def probabilistic_ahead(
    f: Callable[[float], float], ahead: int, old_qty: int, new_qty: int, traded: int
) -> int:
    """``ahead`` after the level went from ``old_qty`` to ``new_qty`` with ``traded`` of that
    explained by trades at our price already applied to ``ahead``. Never grows, never < 0."""
    cancelled = old_qty - new_qty - traded
    if cancelled > 0:
        back = max(0, old_qty - ahead)
        behind = min(back, math.floor(cancelled * behind_share(f, ahead, back)))
        ahead = max(0, ahead - (cancelled - behind))
    return min(ahead, max(0, new_qty))


class ProbabilisticQueue(_QueueBase):
    """Cancels (level decreases beyond the trades seen at our price) split ahead/behind.

    With ``front = ahead`` and ``back = previous level - ahead``, the share of a cancel that is
    behind us is ``p = f(back) / (f(front) + f(back))`` (just joined: back = 0 -> all cancels are
    in front; at the front: front = 0 -> all behind). The behind share is capped by ``back``; the
    rest comes off ``ahead``. Integer rounding: the behind share is floored to e8, so the
    rounding unit of doubt goes to the ahead side (it moves us forward by at most 1e-8 more).
    """

    def __init__(self, side: str, price: int, qty: int, f: Callable[[float], float] | None = None) -> None:
        super().__init__(side, price, qty)
        self.f = f if f is not None else power_queue_fn(2.0)

    def on_level_change(self, new_qty: int) -> None:
        if new_qty < 0:
            raise ValueError(f"level quantity must be >= 0, got {new_qty}")
        self._ahead = probabilistic_ahead(
            self.f, self._ahead, self._level, new_qty, self._traded_since_update
        )
        self._traded_since_update = 0
        self._level = new_qty


class ProbabilisticQueueRule:
    """The probabilistic split as a stateless rule over numbers, for a matching engine that keeps
    ``ahead`` on the order itself: ``initial(level)``, ``on_trade(ahead, qty)`` and
    ``on_level_change(ahead, old, new)`` where the change is not a trade."""

    def __init__(self, f: Callable[[float], float] | None = None) -> None:
        self.f = f if f is not None else power_queue_fn(2.0)

    def initial(self, level_qty: int) -> int:
        return max(0, level_qty)

    def on_trade(self, ahead: int, trade_qty: int) -> int:
        return ahead - trade_qty if ahead > trade_qty else 0

    def on_level_change(self, ahead: int, old_qty: int, new_qty: int) -> int:
        return probabilistic_ahead(self.f, ahead, old_qty, new_qty, 0)
