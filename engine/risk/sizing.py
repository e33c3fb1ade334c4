"""Position sizing: how much to buy, as an exact e8 quantity that never overshoots.

Each helper turns a fraction of equity into a quantity at a price, rounded **down** to the
instrument's step, so ``quantity x price <= fraction x equity`` holds exactly (the
arithmetic is on :class:`fractions.Fraction`, so a float fraction is taken at its exact
binary value, never rounded up). Fractions are plain floats because they come from
estimates (win rates, volatilities) that are floats anyway; money stays integer.

- :func:`fixed_fraction_qty`: a constant share of equity per position.
- :func:`kelly_fraction` / :func:`kelly_qty`: fractional Kelly; full Kelly maximises log
  growth but is far too aggressive with estimated edges, hence the default 0.25 of it.
- :func:`vol_target_fraction` / :func:`vol_target_qty`: scale exposure so the position's
  volatility matches a target, capped by a maximum leverage (1 = no leverage, spot).
"""

from __future__ import annotations

import math
from fractions import Fraction

from engine.fixed import SCALE

DEFAULT_KELLY_SCALE = 0.25
"""Fraction of the full Kelly bet :func:`kelly_qty` stakes by default."""


def _fraction(name: str, value: float | int | Fraction, upper: float | None = None) -> Fraction:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    exact = Fraction(value)
    if exact < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    if upper is not None and exact > Fraction(upper):
        raise ValueError(f"{name} must be <= {upper}, got {value!r}")
    return exact


def fixed_fraction_qty(equity: int, fraction: float | Fraction, price: int, step: int = 1) -> int:
    """Largest multiple of ``step`` (e8) whose value at ``price`` (e8) is <= ``fraction`` x ``equity`` (e8).

    Zero when equity is not positive. ``fraction`` may exceed 1 (leverage) but not be
    negative; ``price`` and ``step`` must be positive.
    """
    if price <= 0:
        raise ValueError(f"price must be > 0 e8, got {price}")
    if step <= 0:
        raise ValueError(f"step must be > 0 e8, got {step}")
    f = _fraction("fraction", fraction)
    if equity <= 0 or f == 0:
        return 0
    # value(qty) = qty * price / SCALE (e8 quote); budget = f * equity (e8 quote)
    max_qty = (f * equity * SCALE) // price
    return int(max_qty // step * step)


def _kelly_exact(win_prob: float, win_loss_ratio: float, scale: float) -> Fraction:
    p = _fraction("win_prob", win_prob, 1.0)
    if not (isinstance(win_loss_ratio, int | float) and math.isfinite(win_loss_ratio) and win_loss_ratio > 0):
        raise ValueError(f"win_loss_ratio must be a finite number > 0, got {win_loss_ratio!r}")
    s = _fraction("scale", scale, 1.0)
    full = p - (1 - p) / Fraction(win_loss_ratio)
    return min(max(full, Fraction(0)), Fraction(1)) * s


def kelly_fraction(win_prob: float, win_loss_ratio: float, scale: float = DEFAULT_KELLY_SCALE) -> float:
    """``scale`` x the Kelly fraction ``p - (1 - p) / b``, clipped to ``[0, scale]`` (for display).

    ``win_prob`` is p in [0, 1]; ``win_loss_ratio`` is b > 0, the average win over the
    average loss; ``scale`` in [0, 1]. A bet without edge (Kelly <= 0) gets 0; full Kelly is
    capped at 1 (no leverage). :func:`kelly_qty` sizes from the exact value, not this float.
    """
    return float(_kelly_exact(win_prob, win_loss_ratio, scale))


def kelly_qty(
    equity: int,
    price: int,
    win_prob: float,
    win_loss_ratio: float,
    *,
    scale: float = DEFAULT_KELLY_SCALE,
    step: int = 1,
) -> int:
    """Quantity for a fractional-Kelly stake: worth at most ``scale`` x Kelly x equity <= ``scale`` x equity."""
    return fixed_fraction_qty(equity, _kelly_exact(win_prob, win_loss_ratio, scale), price, step)


def _vol_target_exact(volatility: float, target: float, max_leverage: float) -> Fraction:
    t = _fraction("target", target)
    cap = _fraction("max_leverage", max_leverage)
    if not math.isfinite(volatility):
        raise ValueError(f"volatility must be finite, got {volatility!r}")
    if volatility <= 0:
        return Fraction(0)
    return min(t / Fraction(volatility), cap)


def vol_target_fraction(volatility: float, target: float, max_leverage: float = 1.0) -> float:
    """``target / volatility`` capped at ``max_leverage``; 0 when the volatility is unknown (<= 0).

    Both volatilities must be measured over the same horizon (e.g. both daily). Without a
    positive volatility estimate there is nothing to scale by, so nothing is staked.
    """
    return float(_vol_target_exact(volatility, target, max_leverage))


def vol_target_qty(
    equity: int,
    price: int,
    volatility: float,
    target: float,
    *,
    max_leverage: float = 1.0,
    step: int = 1,
) -> int:
    """Quantity worth at most ``min(target / volatility, max_leverage)`` x equity, rounded down to ``step``."""
    return fixed_fraction_qty(equity, _vol_target_exact(volatility, target, max_leverage), price, step)
