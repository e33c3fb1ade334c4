"""Latency models: constant, seeded log-normal (deterministic per seed), recorded round trips."""

from __future__ import annotations

import math
import statistics

import pytest
from numpy.random import PCG64, Generator

from engine.errors import ConfigError, VenueError
from venues.sim.models.latency import ConstantLatency, LogNormalLatency, RecordedLatency

pytestmark = pytest.mark.edge

MS = 1_000_000


def test_constant() -> None:
    lat = ConstantLatency(3 * MS)
    assert [lat.order_latency_ns(t) for t in (0, 10**18)] == [3 * MS, 3 * MS]
    assert lat.response_latency_ns(0) == 3 * MS
    assert ConstantLatency(1, 2).response_latency_ns(0) == 2
    with pytest.raises(ConfigError):
        ConstantLatency(-1)


def _draws(lat: LogNormalLatency, n: int) -> list[int]:
    out = []
    for i in range(n):
        out.append(lat.order_latency_ns(i))
        out.append(lat.response_latency_ns(i))
    return out


def test_lognormal_same_seed_same_sequence_other_seed_other() -> None:
    a = _draws(LogNormalLatency(math.log(5), 0.5, seed=7), 100)
    b = _draws(LogNormalLatency(math.log(5), 0.5, seed=7), 100)
    c = _draws(LogNormalLatency(math.log(5), 0.5, seed=8), 100)
    assert a == b
    assert a != c
    assert all(isinstance(x, int) and x > 0 for x in a)


def test_lognormal_injected_generator_equals_seeded() -> None:
    seeded = _draws(LogNormalLatency(1.0, 0.3, seed=42), 20)
    injected = _draws(LogNormalLatency(1.0, 0.3, rng=Generator(PCG64(42))), 20)
    assert seeded == injected


def test_lognormal_distribution_median_and_spread() -> None:
    """Seeded, so this is a fixed computation, not a flaky statistical test."""
    draws = _draws(LogNormalLatency(math.log(5), 0.4, seed=1), 5000)
    logs = [math.log(x / MS) for x in draws]
    assert statistics.median(draws) == pytest.approx(5 * MS, rel=0.03)
    assert statistics.pstdev(logs) == pytest.approx(0.4, rel=0.05)


def test_lognormal_sigma_zero_is_constant_and_bounds_clamp() -> None:
    assert set(_draws(LogNormalLatency(math.log(2), 0.0, seed=3), 10)) == {2 * MS}
    clamped = _draws(LogNormalLatency(math.log(5), 2.0, seed=3, floor_ns=4 * MS, cap_ns=6 * MS), 200)
    assert min(clamped) == 4 * MS and max(clamped) == 6 * MS
    assert set(_draws(LogNormalLatency(0.0, 0.0, seed=0, unit_ns=1000), 3)) == {1000}


def test_lognormal_config_errors() -> None:
    with pytest.raises(ConfigError, match="seed"):
        LogNormalLatency(1.0, 0.1)
    with pytest.raises(ConfigError):
        LogNormalLatency(1.0, -0.1, seed=1)
    with pytest.raises(ConfigError):
        LogNormalLatency(float("nan"), 0.1, seed=1)
    with pytest.raises(ConfigError):
        LogNormalLatency(1.0, 0.1, seed=1, floor_ns=10, cap_ns=5)


def test_recorded_replays_and_cycles() -> None:
    lat = RecordedLatency([(1, 10), (2, 20), (3, 30)])
    assert [lat.order_latency_ns(0) for _ in range(5)] == [1, 2, 3, 1, 2]
    assert [lat.response_latency_ns(0) for _ in range(4)] == [10, 20, 30, 10]


def test_recorded_errors_when_exhausted_if_asked() -> None:
    lat = RecordedLatency([(1, 10), (2, 20)], on_exhausted="error")
    assert [lat.order_latency_ns(0), lat.order_latency_ns(0)] == [1, 2]
    with pytest.raises(VenueError, match="all 2 order delays used"):
        lat.order_latency_ns(0)
    assert lat.response_latency_ns(0) == 10  # the other side keeps its own cursor


def test_recorded_constructors_and_validation() -> None:
    lat = RecordedLatency.from_timestamps([(100, 130, 150), (200, 200, 260)])
    assert lat.trips == ((30, 20), (0, 60))
    assert RecordedLatency.from_round_trips([10, 7], outbound_share=0.5).trips == ((5, 5), (4, 3))
    with pytest.raises(ConfigError, match="sent <= venue <= received"):
        RecordedLatency.from_timestamps([(100, 90, 150)])
    with pytest.raises(ConfigError, match="at least one"):
        RecordedLatency([])
    with pytest.raises(ConfigError, match="negative"):
        RecordedLatency([(1, -1)])
    with pytest.raises(ConfigError):
        RecordedLatency([(1, 1)], on_exhausted="wrap")  # type: ignore[arg-type]
