"""Latency between the strategy and the simulated venue: constant, seeded log-normal, recorded.

The kernel schedules an order's arrival at the venue at ``ts + order_latency_ns(ts)`` and the
venue's response at the strategy at ``ts_venue + response_latency_ns(ts_venue)``. Models are
sans-I/O and deterministic: randomness comes only from a numpy ``Generator`` that is either
injected or built here from an explicit seed, so a run's latencies depend on (seed, call order)
and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

from numpy.random import PCG64, Generator

from engine.errors import ConfigError, VenueError


class LatencyModel(Protocol):
    """Delays in int ns; ``ts`` is the event time the delay starts from (for time-varying models)."""

    def order_latency_ns(self, ts: int) -> int:
        """Strategy -> venue: how long a command takes to reach the matching engine."""
        ...

    def response_latency_ns(self, ts: int) -> int:
        """Venue -> strategy: how long a response or execution report takes to come back."""
        ...


class ConstantLatency:
    """The same delay every time; ``response_ns`` defaults to ``order_ns``."""

    def __init__(self, order_ns: int, response_ns: int | None = None) -> None:
        resp = order_ns if response_ns is None else response_ns
        if order_ns < 0 or resp < 0:
            raise ConfigError(f"latency must be >= 0 ns, got order={order_ns} response={resp}")
        self.order_ns = int(order_ns)
        self.response_ns = int(resp)

    def order_latency_ns(self, ts: int) -> int:
        return self.order_ns

    def response_latency_ns(self, ts: int) -> int:
        return self.response_ns


class LogNormalLatency:
    """Each delay is ``round(exp(N(mu, sigma)) * unit_ns)``, clamped to [floor_ns, cap_ns].

    ``mu``/``sigma`` are the mean and standard deviation of the log of the latency measured in
    ``unit_ns`` (default milliseconds: ``mu=log(5)`` means a 5 ms median). Order and response
    delays are drawn from the same generator in call order, so the sequence is fixed by the
    seed and the order of calls. Pass ``seed`` or an already seeded ``rng`` (never neither).
    """

    def __init__(
        self,
        mu: float,
        sigma: float,
        seed: int | None = None,
        *,
        rng: Generator | None = None,
        unit_ns: int = 1_000_000,
        floor_ns: int = 0,
        cap_ns: int | None = None,
    ) -> None:
        if not (math.isfinite(mu) and math.isfinite(sigma)) or sigma < 0:
            raise ConfigError(f"log-normal latency needs finite mu and sigma >= 0, got mu={mu} sigma={sigma}")
        if unit_ns <= 0 or floor_ns < 0 or (cap_ns is not None and cap_ns < floor_ns):
            raise ConfigError(f"bad latency bounds: unit_ns={unit_ns} floor_ns={floor_ns} cap_ns={cap_ns}")
        if rng is None:
            if seed is None:
                raise ConfigError("LogNormalLatency needs a seed or a seeded numpy Generator")
            rng = Generator(PCG64(seed))
        self.mu = mu
        self.sigma = sigma
        self.unit_ns = unit_ns
        self.floor_ns = floor_ns
        self.cap_ns = cap_ns
        self._rng = rng

    def _draw(self) -> int:
        value = round(math.exp(self.mu + self.sigma * float(self._rng.standard_normal())) * self.unit_ns)
        value = max(self.floor_ns, value)
        return value if self.cap_ns is None else min(self.cap_ns, value)

    def order_latency_ns(self, ts: int) -> int:
        return self._draw()

    def response_latency_ns(self, ts: int) -> int:
        return self._draw()


class RecordedLatency:
    """Replays recorded round trips: the i-th order delay is trip i's outbound part and the
    i-th response delay trip i's return part (each side keeps its own cursor).

    When a side runs out, ``on_exhausted="cycle"`` starts again from the first trip and
    ``"error"`` raises VenueError naming how many trips were recorded: a backtest that needs
    more latencies than were measured should fail loudly unless cycling was asked for.
    """

    def __init__(
        self,
        trips: Iterable[tuple[int, int]],
        *,
        on_exhausted: Literal["cycle", "error"] = "cycle",
    ) -> None:
        self.trips: tuple[tuple[int, int], ...] = tuple((int(a), int(b)) for a, b in trips)
        if not self.trips:
            raise ConfigError("RecordedLatency needs at least one round trip")
        bad = next(((i, t) for i, t in enumerate(self.trips) if t[0] < 0 or t[1] < 0), None)
        if bad is not None:
            raise ConfigError(f"recorded round trip #{bad[0]} has a negative latency: {bad[1]}")
        if on_exhausted not in ("cycle", "error"):
            raise ConfigError(f"on_exhausted must be 'cycle' or 'error', got {on_exhausted!r}")
        self.on_exhausted = on_exhausted
        self._next = [0, 0]

    @classmethod
    def from_timestamps(
        cls,
        rows: Iterable[tuple[int, int, int]],
        *,
        on_exhausted: Literal["cycle", "error"] = "cycle",
    ) -> RecordedLatency:
        """From (sent, venue, received) ns triples, e.g. request time, Binance ``transactTime``
        and response receive time from a live session's log."""
        trips = []
        for i, (sent, venue, received) in enumerate(rows):
            if not sent <= venue <= received:
                raise ConfigError(
                    f"round trip #{i}: need sent <= venue <= received, got {sent}, {venue}, {received}"
                )
            trips.append((venue - sent, received - venue))
        return cls(trips, on_exhausted=on_exhausted)

    @classmethod
    def from_round_trips(
        cls,
        rtts_ns: Sequence[int],
        *,
        outbound_share: float = 0.5,
        on_exhausted: Literal["cycle", "error"] = "cycle",
    ) -> RecordedLatency:
        """From total round-trip times only: each is split ``outbound_share`` / rest."""
        if not 0.0 <= outbound_share <= 1.0:
            raise ConfigError(f"outbound_share must be within 0..1, got {outbound_share}")
        trips = [(round(r * outbound_share), r - round(r * outbound_share)) for r in rtts_ns]
        return cls(trips, on_exhausted=on_exhausted)

    def _take(self, side: int) -> int:
        i = self._next[side]
        if i >= len(self.trips):
            if self.on_exhausted == "error":
                which = "order" if side == 0 else "response"
                raise VenueError(f"recorded latencies exhausted: all {len(self.trips)} {which} delays used")
            i = 0
        self._next[side] = i + 1
        return self.trips[i][side]

    def order_latency_ns(self, ts: int) -> int:
        return self._take(0)

    def response_latency_ns(self, ts: int) -> int:
        return self._take(1)
