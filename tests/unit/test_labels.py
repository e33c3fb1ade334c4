"""Triple-barrier labels: hand-worked examples for each convention in strategies/labels.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import ConfigError, InputError
from strategies import labels
from strategies.labels import censored, triple_barrier, window_ends

pytestmark = pytest.mark.edge

METHODS = ("table", "scan", "scan-python")
TS = np.array([0, 1, 2, 3, 4, 5], dtype=np.int64)
PX = np.array([100.0, 101.0, 99.0, 102.0, 98.0, 100.0])


@pytest.mark.parametrize("method", METHODS)
def test_long_labels_worked_by_hand(method: str) -> None:
    # barriers at +-1.5%; windows of 3 ns: row 0 sees rows 1..3, row 4 sees row 5, row 5 sees nothing
    out = triple_barrier(TS, PX, tp=0.015, sl=0.015, horizon_ns=3, method=method)  # type: ignore[arg-type]
    assert out.label.tolist() == [1, -1, 1, -1, 1, 0]
    assert out.t_hit.tolist() == [3, 2, 3, 4, 5, 5]
    want = [102 / 100 - 1, 99 / 101 - 1, 102 / 99 - 1, 98 / 102 - 1, 100 / 98 - 1, 0.0]
    assert out.ret.tolist() == pytest.approx(want, rel=1e-15)
    assert (out.label.dtype, out.t_hit.dtype, out.ret.dtype) == (np.int8, np.int64, np.float64)


@pytest.mark.parametrize("method", METHODS)
def test_short_side_swaps_the_barriers(method: str) -> None:
    # short: take profit 1.5% below, stop 1.5% above; label and return are the short's
    out = triple_barrier(TS, PX, tp=0.015, sl=0.015, horizon_ns=3, side=-1, method=method)  # type: ignore[arg-type]
    assert out.label.tolist() == [-1, 1, -1, 1, -1, 0]
    assert out.ret[0] == pytest.approx(-(102 / 100 - 1))
    assert out.ret[1] == pytest.approx(1 - 99 / 101)
    # a short stop 3% above with take profit 1% below: row 0 hits the take profit at 99
    out = triple_barrier(TS, PX, tp=0.01, sl=0.03, horizon_ns=3, side=-1, method=method)  # type: ignore[arg-type]
    assert (out.label[0], out.t_hit[0]) == (1, 2)


@pytest.mark.parametrize("method", METHODS)
def test_touching_a_barrier_exactly_counts(method: str) -> None:
    ts = np.arange(3, dtype=np.int64)
    # 4 * 1.25 = 5 and 4 * 0.75 = 3 exactly in binary floating point
    up = triple_barrier(ts, np.array([4.0, 5.0, 4.0]), tp=0.25, sl=0.25, horizon_ns=5, method=method)  # type: ignore[arg-type]
    down = triple_barrier(ts, np.array([4.0, 3.0, 4.0]), tp=0.25, sl=0.25, horizon_ns=5, method=method)  # type: ignore[arg-type]
    near = triple_barrier(
        ts, np.array([4.0, 4.999999, 3.000001]), tp=0.25, sl=0.25, horizon_ns=5, method=method
    )  # type: ignore[arg-type]
    assert (up.label[0], up.t_hit[0], up.ret[0]) == (1, 1, 0.25)
    assert (down.label[0], down.t_hit[0], down.ret[0]) == (-1, 1, -0.25)
    assert (near.label[0], near.t_hit[0]) == (0, 2)


@pytest.mark.parametrize("method", METHODS)
def test_vertical_barrier_is_zero_at_the_last_row_inside_the_horizon(method: str) -> None:
    ts = np.array([0, 10, 20, 30], dtype=np.int64)
    px = np.array([100.0, 100.5, 100.2, 110.0])
    out = triple_barrier(ts, px, tp=0.05, sl=0.05, horizon_ns=20, method=method)  # type: ignore[arg-type]
    assert (out.label[0], out.t_hit[0]) == (0, 20)  # 110 at t=30 is past the horizon
    assert out.ret[0] == pytest.approx(100.2 / 100 - 1)
    assert (out.label[1], out.t_hit[1]) == (1, 30)  # 110 is inside row 1's horizon (t <= 30)


@pytest.mark.parametrize("method", METHODS)
def test_rows_sharing_a_timestamp_are_taken_in_row_order(method: str) -> None:
    ts = np.array([0, 0, 0, 1], dtype=np.int64)
    stop_first = triple_barrier(
        ts, np.array([100.0, 99.0, 102.0, 100.0]), tp=0.01, sl=0.01, horizon_ns=0, method=method
    )  # type: ignore[arg-type]
    profit_first = triple_barrier(
        ts, np.array([100.0, 102.0, 99.0, 100.0]), tp=0.01, sl=0.01, horizon_ns=0, method=method
    )  # type: ignore[arg-type]
    assert (stop_first.label[0], stop_first.t_hit[0]) == (-1, 0)
    assert (profit_first.label[0], profit_first.t_hit[0]) == (1, 0)
    # horizon 0 still sees the later rows of the same timestamp, never the next timestamp
    assert stop_first.label[2] == 0 and stop_first.t_hit[2] == 0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("side", [1, -1])
def test_one_row_touching_both_barriers_is_a_stop(method: str, side: int) -> None:
    # 1 + 1e-17 rounds to 1: both barriers sit at the entry price, and the next row equals it
    out = triple_barrier(
        np.arange(2), np.array([100.0, 100.0]), tp=1e-17, sl=1e-17, horizon_ns=1, side=side, method=method
    )  # type: ignore[arg-type]
    assert out.label[0] == -1


@pytest.mark.parametrize("method", METHODS)
def test_infinite_barriers_are_disabled(method: str) -> None:
    out = triple_barrier(TS, PX, tp=math.inf, sl=0.015, horizon_ns=3, method=method)  # type: ignore[arg-type]
    assert out.label.tolist() == [0, -1, 0, -1, 0, 0]
    assert out.t_hit[0] == 3  # vertical barrier: last row within 3 ns
    flat = triple_barrier(TS, PX, tp=math.inf, sl=math.inf, horizon_ns=100, method=method)  # type: ignore[arg-type]
    assert not flat.label.any() and flat.t_hit.tolist() == [5] * 6
    assert flat.ret.tolist() == pytest.approx(list(100.0 / PX - 1))


@pytest.mark.parametrize("method", METHODS)
def test_per_row_barriers_and_sides(method: str) -> None:
    tp = np.array([0.015, 0.05, 0.015, 0.015, 0.015, 0.015])
    side = np.array([1, 1, -1, 1, 1, 1])
    out = triple_barrier(TS, PX, tp=tp, sl=0.015, horizon_ns=3, side=side, method=method)  # type: ignore[arg-type]
    base = triple_barrier(TS, PX, tp=0.015, sl=0.015, horizon_ns=3, method=method)  # type: ignore[arg-type]
    assert out.label[0] == base.label[0] == 1
    assert out.label[1] == -1  # 99 still hits row 1's stop first
    assert out.label[2] == -1  # short from 99: stop at 100.485 hit by 102
    assert out.label.tolist()[3:] == base.label.tolist()[3:]


def test_censored_marks_zero_labels_whose_horizon_outruns_the_data() -> None:
    ts = np.array([0, 10, 20, 30], dtype=np.int64)
    px = np.array([100.0, 100.0, 130.0, 100.0])
    out = triple_barrier(ts, px, tp=0.1, sl=0.1, horizon_ns=15)
    assert out.label.tolist() == [0, 1, -1, 0]
    # rows 2 and 3 have horizons ending after t=30; only row 3 is a 0 there
    assert censored(ts, out.label, 15).tolist() == [False, False, False, True]
    assert censored(ts[:0], out.label[:0], 15).tolist() == []


def test_window_ends_saturate_instead_of_overflowing() -> None:
    ts = np.array([0, 5, 2**62], dtype=np.int64)
    assert window_ends(ts, 2**63 - 1).tolist() == [2, 2, 2]
    assert window_ends(ts, 4).tolist() == [0, 1, 2]


def test_empty_input_gives_empty_output() -> None:
    out = triple_barrier(np.zeros(0, dtype=np.int64), np.zeros(0), tp=0.1, sl=0.1, horizon_ns=1)
    assert [len(a) for a in out] == [0, 0, 0]


def test_integer_e8_prices_are_accepted() -> None:
    px = (PX * 10**8).astype(np.int64)
    a = triple_barrier(TS, px, tp=0.015, sl=0.015, horizon_ns=3)
    b = triple_barrier(TS, PX, tp=0.015, sl=0.015, horizon_ns=3)
    assert a.label.tolist() == b.label.tolist() and a.t_hit.tolist() == b.t_hit.tolist()


def test_bad_inputs_name_what_is_wrong() -> None:
    with pytest.raises(InputError, match=r"ts_ns\[2\]=1 < ts_ns\[1\]=5"):
        triple_barrier(np.array([0, 5, 1]), np.ones(3), tp=0.1, sl=0.1, horizon_ns=1)
    with pytest.raises(InputError, match="integer"):
        triple_barrier(np.array([0.0, 1.0]), np.ones(2), tp=0.1, sl=0.1, horizon_ns=1)
    with pytest.raises(InputError, match=r"price\[1\]=nan"):
        triple_barrier(np.arange(2), np.array([1.0, np.nan]), tp=0.1, sl=0.1, horizon_ns=1)
    with pytest.raises(InputError, match=r"price\[0\]=0.0"):
        triple_barrier(np.arange(2), np.array([0.0, 1.0]), tp=0.1, sl=0.1, horizon_ns=1)
    with pytest.raises(InputError, match="length 3"):
        triple_barrier(np.arange(3), np.ones(2), tp=0.1, sl=0.1, horizon_ns=1)
    with pytest.raises(ConfigError, match="tp must be > 0"):
        triple_barrier(np.arange(2), np.ones(2), tp=0.0, sl=0.1, horizon_ns=1)
    with pytest.raises(ConfigError, match="sl must be > 0"):
        triple_barrier(np.arange(2), np.ones(2), tp=0.1, sl=np.array([0.1, np.nan]), horizon_ns=1)
    with pytest.raises(ConfigError, match="one value per row"):
        triple_barrier(np.arange(2), np.ones(2), tp=np.ones(3), sl=0.1, horizon_ns=1)
    with pytest.raises(ConfigError, match="horizon_ns must be an int >= 0"):
        triple_barrier(np.arange(2), np.ones(2), tp=0.1, sl=0.1, horizon_ns=-1)
    with pytest.raises(ConfigError, match="horizon_ns"):
        triple_barrier(np.arange(2), np.ones(2), tp=0.1, sl=0.1, horizon_ns=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="side must be"):
        triple_barrier(np.arange(2), np.ones(2), tp=0.1, sl=0.1, horizon_ns=1, side=0)
    with pytest.raises(ConfigError, match="unknown triple-barrier method"):
        triple_barrier(np.arange(2), np.ones(2), tp=0.1, sl=0.1, horizon_ns=1, method="fast")  # type: ignore[arg-type]


def _walk(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(0, 4, n)).astype(np.int64)
    px = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    return ts, px


def test_the_methods_agree_on_a_long_walk() -> None:
    ts, px = _walk(20_000, 1)
    side = np.where(np.arange(len(ts)) % 3 == 0, -1, 1)
    runs = [triple_barrier(ts, px, tp=0.004, sl=0.003, horizon_ns=60, side=side, method=m) for m in METHODS]  # type: ignore[arg-type]
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            assert np.array_equal(a, b)
    assert set(np.unique(runs[0].label).tolist()) == {-1, 0, 1}


def test_chunk_boundaries_do_not_change_the_table_result(monkeypatch: pytest.MonkeyPatch) -> None:
    ts, px = _walk(3_000, 2)
    want = triple_barrier(ts, px, tp=0.003, sl=0.003, horizon_ns=40)
    monkeypatch.setattr(labels, "_CHUNK", 7)
    monkeypatch.setattr(labels, "_CHUNK_MAX", 7)
    got = triple_barrier(ts, px, tp=0.003, sl=0.003, horizon_ns=40)
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(a, b)
