"""Triple-barrier labels against a brute-force reference on generated paths.

Paths live on a coarse price lattice (multiples of 1/8) with dyadic barrier fractions so
exact touches are common, timestamps advance by 0..3 ns so ties are common, and windows
are short enough that empty, truncated and full windows all occur.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.labels import BarrierLabels, triple_barrier

pytestmark = pytest.mark.edge

FRACTIONS = st.one_of(
    st.sampled_from([0.125, 0.25, 0.5, 0.0625, math.inf]),
    st.floats(min_value=1e-4, max_value=0.9, allow_nan=False),
)


def brute_force(
    ts: list[int], px: list[float], tp: list[float], sl: list[float], h: int, side: list[int]
) -> BarrierLabels:
    """The definition, one start at a time, in plain Python."""
    n = len(px)
    label, t_hit, ret = [], [], []
    for i in range(n):
        s = side[i]
        upper = px[i] * (1 + (tp[i] if s > 0 else sl[i]))
        lower = px[i] * (1 - (sl[i] if s > 0 else tp[i]))
        j, lab = i, 0
        for k in range(i + 1, n):
            if ts[k] > ts[i] + h:
                break
            j = k
            hit_up, hit_dn = px[k] >= upper, px[k] <= lower
            if hit_up and hit_dn:
                lab = -1
            elif hit_up:
                lab = 1 if s > 0 else -1
            elif hit_dn:
                lab = -1 if s > 0 else 1
            if hit_up or hit_dn:
                break
        label.append(lab)
        t_hit.append(ts[j])
        ret.append(s * (px[j] / px[i] - 1))
    return BarrierLabels(np.array(label, dtype=np.int8), np.array(t_hit, dtype=np.int64), np.array(ret))


@st.composite
def paths(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(min_value=0, max_value=40))
    steps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    ts = list(np.cumsum(steps).tolist()) if n else []
    px = [k / 8 for k in draw(st.lists(st.integers(1, 64), min_size=n, max_size=n))]
    per_row = draw(st.booleans())
    if per_row:
        tp = draw(st.lists(FRACTIONS, min_size=n, max_size=n))
        sl = draw(st.lists(FRACTIONS, min_size=n, max_size=n))
        side = draw(st.lists(st.sampled_from([-1, 1]), min_size=n, max_size=n))
    else:
        tp, sl, side = [draw(FRACTIONS)] * n, [draw(FRACTIONS)] * n, [draw(st.sampled_from([-1, 1]))] * n
    return {
        "ts": ts,
        "px": px,
        "tp": tp,
        "sl": sl,
        "h": draw(st.integers(0, 12)),
        "side": side,
        "per_row": per_row,
    }


def _run(case: dict[str, object], method: str) -> BarrierLabels:
    ts = np.array(case["ts"], dtype=np.int64)
    px = np.array(case["px"], dtype=np.float64)
    tp, sl, side = (np.array(case[k]) for k in ("tp", "sl", "side"))
    if not case["per_row"] and len(ts):
        tp, sl, side = float(tp[0]), float(sl[0]), int(side[0])
    return triple_barrier(ts, px, tp=tp, sl=sl, horizon_ns=case["h"], side=side, method=method)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(paths())
def test_every_method_equals_the_brute_force_reference(case: dict[str, object]) -> None:
    want = brute_force(case["ts"], case["px"], case["tp"], case["sl"], case["h"], case["side"])  # type: ignore[arg-type]
    for method in ("table", "scan", "scan-python"):
        got = _run(case, method)
        assert np.array_equal(got.label, want.label), method
        assert np.array_equal(got.t_hit, want.t_hit), method
        assert np.array_equal(got.ret, want.ret), method


@settings(max_examples=100, deadline=None)
@given(paths())
def test_outputs_stay_inside_the_barriers_box(case: dict[str, object]) -> None:
    out = _run(case, "table")
    ts = np.array(case["ts"], dtype=np.int64)
    assert set(out.label.tolist()) <= {-1, 0, 1}
    assert (out.t_hit >= ts).all() and (out.t_hit <= ts + case["h"]).all()  # type: ignore[operator]
    px = np.array(case["px"])
    side = np.array(case["side"])
    tp, sl = np.array(case["tp"]), np.array(case["sl"])
    exit_px = px * (1 + out.ret * side)
    # a take profit closes at or beyond its barrier (ret >= tp); a stop at or beyond the stop
    win, loss, flat = out.label == 1, out.label == -1, out.label == 0
    assert (out.ret[win] >= tp[win] * (1 - 1e-9)).all()
    assert (out.ret[loss] <= -np.minimum(sl[loss], 1.0) * (1 - 1e-9)).all()
    # a time-limit exit lies between the two barriers
    upper = px * (1 + np.where(side > 0, tp, sl))
    lower = px * (1 - np.where(side > 0, sl, tp))
    assert (exit_px[flat] <= upper[flat] * (1 + 1e-12)).all()
    assert (exit_px[flat] >= lower[flat] * (1 - 1e-12) - 1e-12).all()
