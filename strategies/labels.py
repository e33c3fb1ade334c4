"""Triple-barrier labels (take profit, stop loss, time limit), vectorised.

For each start row ``i`` (entry at ``price[i]``, time ``ts_ns[i]``) the window is the rows
``j > i`` with ``ts_ns[j] <= ts_ns[i] + horizon_ns``. For a long (``side=+1``) the upper
barrier is ``price[i] * (1 + tp)`` and the lower ``price[i] * (1 - sl)``; for a short
(``side=-1``) take profit is below, ``price[i] * (1 - tp)``, and the stop above,
``price[i] * (1 + sl)``. Conventions (chosen, and tested against a brute-force reference):

- **Touch** is inclusive: a price equal to a barrier touches it (comparisons are on the
  float64 barrier exactly as written above).
- **Label** is from the position's point of view: +1 when take profit is touched first,
  -1 when the stop is, 0 when neither is touched within the horizon (the vertical barrier
  gives 0, never the sign of the return; the return is still reported).
- **Order** is row order. Rows sharing a timestamp (including rows at the start's own
  timestamp after it) are taken in array order, which for trades is the venue's trade-id
  order, so "first" is well defined. If one row touches both barriers at once (only
  possible when ``1 + tp`` or ``1 - sl`` rounds to 1 in float64) the stop wins: -1.
- **t_hit** is the timestamp of the touching row, or of the last row in the window at the
  vertical barrier (the start's own time when the window is empty). **ret** is
  ``side * (price[j] / price[i] - 1)`` at that row.
- Near the end of the data a window can be cut short: a 0 there means "unknown", not
  "flat". :func:`censored` marks those rows; a dataset should drop them.

``tp`` and ``sl`` are positive fractions (``math.inf`` disables a barrier), scalars or one
per row (e.g. volatility-scaled); ``side`` is +1, -1 or one per row (meta-labelling).

Two algorithms give identical results: ``method="table"`` (default, numpy) finds each
first touch by descending a sparse table of range max/min, O(n log W) time for windows of
up to W rows, memory O((C + W) log W) per chunk of C starts; ``method="scan"`` walks each
window until the first touch, O(n * mean time-to-touch), compiled by numba when it is
installed (``"scan-python"`` forces the interpreted twin).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from engine.errors import ConfigError, InputError
from strategies.features._jit import kernel

Method = Literal["table", "scan", "scan-python"]
_INT64_MAX = np.iinfo(np.int64).max
_CHUNK = 1 << 16
_CHUNK_MAX = 1 << 20


class BarrierLabels(NamedTuple):
    """Per start row: label (int8: +1 take profit, -1 stop, 0 time limit), the time the
    position would close (int64 ns) and its return (float64, signed by side)."""

    label: np.ndarray
    t_hit: np.ndarray
    ret: np.ndarray


def triple_barrier(
    ts_ns: np.ndarray,
    price: np.ndarray,
    *,
    tp: float | np.ndarray,
    sl: float | np.ndarray,
    horizon_ns: int,
    side: int | np.ndarray = 1,
    method: Method = "table",
) -> BarrierLabels:
    """Label every row; see the module doc for the conventions."""
    ts = _timestamps(ts_ns)
    p = _prices(price, len(ts))
    n = len(p)
    horizon = _horizon(horizon_ns)
    s = _side(side, n)
    up_frac = np.where(s > 0, _fraction("tp", tp, n), _fraction("sl", sl, n))
    dn_frac = np.where(s > 0, _fraction("sl", sl, n), _fraction("tp", tp, n))
    upper = p * (1 + up_frac)
    lower = p * (1 - dn_frac)
    end = window_ends(ts, horizon)
    if method == "table":
        first_up = _first_touch_table(p, end, upper, upward=True)
        first_dn = _first_touch_table(p, end, lower, upward=False)
    elif method in ("scan", "scan-python"):
        first_up = np.empty(n, dtype=np.int64)
        first_dn = np.empty(n, dtype=np.int64)
        scan = _scan_first_touch if method == "scan" else _scan_first_touch.py_func
        scan(p, end, upper, lower, first_up, first_dn)
    else:
        raise ConfigError(f"unknown triple-barrier method {method!r}; expected table, scan or scan-python")
    return _combine(ts, p, s, end, first_up, first_dn)


def window_ends(ts_ns: np.ndarray, horizon_ns: int) -> np.ndarray:
    """Index of the last row with ``ts <= ts[i] + horizon`` (>= i) for each row ``i``."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    limit = np.minimum(ts, _INT64_MAX - horizon_ns) + horizon_ns  # saturate instead of wrapping
    ends: np.ndarray = np.searchsorted(ts, limit, side="right").astype(np.int64) - 1
    return ends


def censored(ts_ns: np.ndarray, label: np.ndarray, horizon_ns: int) -> np.ndarray:
    """True where the label is 0 only because the data ends before the horizon does."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    if len(ts) == 0:
        return np.zeros(0, dtype=np.bool_)
    out: np.ndarray = (np.asarray(label) == 0) & (ts > ts[-1] - _horizon(horizon_ns))
    return out


def _combine(
    ts: np.ndarray, p: np.ndarray, s: np.ndarray, end: np.ndarray, first_up: np.ndarray, first_dn: np.ndarray
) -> BarrierLabels:
    """Turn first-touch indices (``len(p)`` = never) into labels, times and returns."""
    n = len(p)
    hit = np.minimum(first_up, first_dn)
    touched = hit < n
    j = np.where(touched, hit, end)
    up_first = first_up < first_dn
    dn_first = first_dn < first_up
    label = np.zeros(n, dtype=np.int8)
    label[up_first] = s[up_first]  # the upper barrier is a long's take profit, a short's stop
    label[dn_first] = -s[dn_first]
    label[touched & (first_up == first_dn)] = -1  # one row touching both: the stop wins
    ret: np.ndarray = (s * (p[j] / p - 1.0)).astype(np.float64)
    return BarrierLabels(label, ts[j], ret)


def _first_touch_table(p: np.ndarray, end: np.ndarray, barrier: np.ndarray, *, upward: bool) -> np.ndarray:
    """First ``j`` in ``(i, end[i]]`` with ``p[j] >= barrier[i]`` (upward) or ``<=`` (downward); n if none.

    Starts are processed in chunks; each chunk builds a sparse table of range maxima over
    the rows its windows cover (on ``-p`` for the downward case) and every start descends
    it from the largest block down, skipping blocks that stay strictly below its barrier.
    """
    n = len(p)
    out = np.full(n, n, dtype=np.int64)
    if n == 0:
        return out
    values = p if upward else -p
    target = barrier if upward else -barrier
    longest = int(np.max(end - np.arange(n)))
    chunk = max(_CHUNK, min(longest, _CHUNK_MAX))
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        hi = int(end[b - 1])  # ends are non-decreasing
        if hi <= a:
            continue
        out[a:b] = _descend(values[a + 1 : hi + 1], end[a:b] - (a + 1), target[a:b], a, n)
    return out


def _descend(q: np.ndarray, hi_rel: np.ndarray, target: np.ndarray, a: int, n: int) -> np.ndarray:
    """The descent for starts ``a..a+len(target)``: positions are relative to ``q[0] = p[a + 1]``."""
    widths = hi_rel - np.arange(len(target)) + 1  # window lengths, >= 0
    top = int(widths.max()).bit_length() - 1  # largest block that fits the longest window
    table = [q]
    for k in range(1, top + 1):
        prev, half = table[-1], 1 << (k - 1)
        table.append(np.maximum(prev[:-half], prev[half:]))
    pos = np.arange(len(target), dtype=np.int64)
    for k in range(top, -1, -1):
        step = 1 << k
        level = table[k]
        fits = pos + (step - 1) <= hi_rel
        below = level[np.minimum(pos, len(level) - 1)] < target
        pos += step * (fits & below)
    found = pos <= hi_rel
    result: np.ndarray = np.where(found, pos + a + 1, n)
    return result


@kernel
def _scan_first_touch(
    p: np.ndarray,
    end: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    first_up: np.ndarray,
    first_dn: np.ndarray,
) -> None:
    """Walk each window to its first touch; len(p) marks "never" (numba-compilable)."""
    n = p.shape[0]
    for i in range(n):
        fu = n
        fd = n
        u = upper[i]
        d = lower[i]
        for j in range(i + 1, end[i] + 1):
            x = p[j]
            if x >= u:
                fu = j
            if x <= d:
                fd = j
            if fu < n or fd < n:
                break
        first_up[i] = fu
        first_dn[i] = fd


def _timestamps(ts_ns: np.ndarray) -> np.ndarray:
    ts = np.asarray(ts_ns)
    if ts.ndim != 1 or (ts.size and ts.dtype.kind not in "iu"):
        raise InputError(f"ts_ns must be a 1-D integer array of ns, got shape {ts.shape} dtype {ts.dtype}")
    ts = ts.astype(np.int64)
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputError(f"ts_ns must be non-decreasing: ts_ns[{i}]={ts[i]} < ts_ns[{i - 1}]={ts[i - 1]}")
    return ts


def _prices(price: np.ndarray, n: int) -> np.ndarray:
    p = np.asarray(price)
    if p.shape != (n,) or (p.size and p.dtype.kind not in "iuf"):
        raise InputError(
            f"price must be a 1-D numeric array of the timestamps' length {n}, got {p.shape} {p.dtype}"
        )
    p = p.astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(p) & (p > 0)))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"prices must be finite and > 0: price[{i}]={p[i]}")
    return p


def _horizon(horizon_ns: int) -> int:
    if isinstance(horizon_ns, bool) or not isinstance(horizon_ns, int | np.integer) or horizon_ns < 0:
        raise ConfigError(f"horizon_ns must be an int >= 0 (ns), got {horizon_ns!r}")
    return int(horizon_ns)


def _side(side: int | np.ndarray, n: int) -> np.ndarray:
    s = np.broadcast_to(np.asarray(side), (n,)) if np.ndim(side) == 0 else np.asarray(side)
    if s.shape != (n,) or not np.isin(s, (-1, 1)).all():
        raise ConfigError(f"side must be +1, -1 or one of them per row ({n} rows), got {side!r}")
    out: np.ndarray = s.astype(np.int8)
    return out


def _fraction(name: str, value: float | np.ndarray, n: int) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64)
    if v.ndim not in (0, 1) or (v.ndim == 1 and v.shape != (n,)):
        raise ConfigError(f"{name} must be a scalar or one value per row ({n}), got shape {v.shape}")
    if not (v > 0).all():  # also rejects NaN
        raise ConfigError(f"{name} must be > 0 (math.inf disables the barrier), got {value!r}")
    out: np.ndarray = np.broadcast_to(v, (n,))
    return out
