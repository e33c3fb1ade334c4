"""Session metrics: latency histograms, counters and feed state, as Prometheus text.

A :class:`SessionMetrics` is a :class:`~tickloop.live.observer.SessionObserver`: it learns
everything from the session's events (``LatencyRecorded`` for tick-to-order and order
round trip, venue events for fills and rejections, market events for feed lag and age), so
the numbers on ``/metrics`` are the numbers in the log. Histograms keep exact integer counts
in fixed log-spaced buckets (1 us .. ~17 s, doubling): fixed buckets make two sessions'
histograms comparable and let Prometheus aggregate them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.events import (
    MARKET_KINDS,
    CircuitBreakerTripped,
    CommandIssued,
    Event,
    FeedStatusChanged,
    KillSwitchEngaged,
    Kind,
    LatencyRecorded,
    OrderFilled,
    OrderRejected,
    RiskDenied,
    RiskReset,
)
from engine.orders import SubmitOrder, SubmitOrderList
from tickloop.live.observer import Source

# Upper bounds in ns: 1 us, 2 us, 4 us, ... 2**24 us (~16.8 s); +Inf is implicit.
BUCKETS_NS: tuple[int, ...] = tuple(1_000 * 2**i for i in range(25))


def seconds_text(ns: int) -> str:
    """``ns`` as exact decimal seconds text (no float rounding): 1500 -> ``0.0000015``."""
    sign = "-" if ns < 0 else ""
    whole, frac = divmod(abs(ns), 1_000_000_000)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")


@dataclass(slots=True)
class Histogram:
    """Exact counts per fixed bucket; ``sum_ns`` is exact too."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_NS) + 1))
    sum_ns: int = 0
    count: int = 0

    def observe(self, value_ns: int) -> None:
        lo, hi = 0, len(BUCKETS_NS)
        while lo < hi:  # first bucket whose bound >= value
            mid = (lo + hi) // 2
            if BUCKETS_NS[mid] < value_ns:
                lo = mid + 1
            else:
                hi = mid
        self.counts[lo] += 1
        self.sum_ns += value_ns
        self.count += 1

    def quantile_ns(self, q: float) -> int | None:
        """Upper bound of the bucket holding quantile ``q`` (None when empty or in +Inf)."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return BUCKETS_NS[i] if i < len(BUCKETS_NS) else None
        return None

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, cumulative count)`` rows as Prometheus wants them, +Inf last."""
        rows: list[tuple[str, int]] = []
        total = 0
        for bound, c in zip(BUCKETS_NS, self.counts, strict=False):
            total += c
            rows.append((seconds_text(bound), total))
        rows.append(("+Inf", total + self.counts[-1]))
        return rows


def stream_name(event: Event) -> str:
    """``btcusdt@trade``-like name of the stream a market event came from."""
    symbol = str(event.instrument).split(".")[0].lower()
    return f"{symbol}@{Kind(event.kind).name.lower()}"


class SessionMetrics:
    """Counters, histograms and per-stream feed state of one session (a SessionObserver)."""

    def __init__(self) -> None:
        self.latency: dict[str, Histogram] = {}
        self.feed_lag: dict[str, Histogram] = {}
        self.last_recv: dict[str, int] = {}
        self.last_lag_ns: dict[str, int] = {}
        self.feed_status: dict[str, str] = {}
        self.counters: Counter[str] = Counter()
        self.risk_state = "ok"
        self.risk_detail = ""

    def on_event(self, event: Event, source: Source) -> None:
        kind = event.kind
        if kind in MARKET_KINDS:
            self._market(event)
            return
        self.counters[f"{source}_other"] += 1
        if isinstance(event, LatencyRecorded):
            self.latency.setdefault(event.metric, Histogram()).observe(event.value_ns)
        elif isinstance(event, FeedStatusChanged):
            self.feed_status[event.stream] = event.status
            self.counters[f"feed_{event.status}"] += 1
        elif isinstance(event, OrderFilled):
            self.counters["fills"] += 1
        elif isinstance(event, RiskDenied):
            self.counters["risk_denials"] += 1
        elif isinstance(event, OrderRejected):
            self.counters["rejections"] += 1
        elif isinstance(event, CommandIssued) and isinstance(event.command, SubmitOrder | SubmitOrderList):
            self.counters["orders"] += 1
        elif isinstance(event, CircuitBreakerTripped):
            self.risk_state, self.risk_detail = "tripped", event.rule
        elif isinstance(event, KillSwitchEngaged):
            self.risk_state, self.risk_detail = "killed", event.reason
        elif isinstance(event, RiskReset):
            self.risk_state, self.risk_detail = "ok", ""

    def _market(self, event: Event) -> None:
        name = stream_name(event)
        self.counters["market_events"] += 1
        self.last_recv[name] = event.ts_recv
        if event.ts_event > 0:
            lag = event.ts_recv - event.ts_event
            self.last_lag_ns[name] = lag
            self.feed_lag.setdefault(name, Histogram()).observe(max(lag, 0))

    async def aclose(self) -> None:
        return None

    def snapshot(self, now_ns: int) -> dict[str, Any]:
        """JSON-able view for the dashboard: percentiles in microseconds, ages in ms."""
        lat = {
            name: {
                "count": h.count,
                **{f"p{q}": _us(h.quantile_ns(q / 100)) for q in (50, 90, 99)},
                "p99.9": _us(h.quantile_ns(0.999)),
                "buckets_us": [[b / 1000, c] for b, c in zip(BUCKETS_NS, h.counts, strict=False) if c],
            }
            for name, h in sorted(self.latency.items())
        }
        feeds = {
            name: {
                "lag_ms": self.last_lag_ns.get(name, 0) / 1e6,
                "age_ms": (now_ns - ts) / 1e6,
                "status": self.feed_status.get(name, "live"),
            }
            for name, ts in sorted(self.last_recv.items())
        }
        return {
            "latency": lat,
            "feeds": feeds,
            "feed_status": dict(sorted(self.feed_status.items())),
            "counters": dict(sorted(self.counters.items())),
            "risk": {"state": self.risk_state, "detail": self.risk_detail},
        }

    def render(self, now_ns: int) -> str:
        """The Prometheus text exposition (format 0.0.4) of everything above."""
        out: list[str] = []
        for name in ("orders", "fills", "rejections", "risk_denials", "market_events"):
            metric = f"tickloop_{name}_total"
            out += [f"# HELP {metric} {name.replace('_', ' ')} seen by this session", f"# TYPE {metric} counter"]
            out.append(f"{metric} {self.counters[name]}")
        _histograms(out, "tickloop_latency_seconds", "metric", self.latency,
                    "live latencies: tick_to_order, order_round_trip")
        _histograms(out, "tickloop_feed_lag_seconds", "stream", self.feed_lag,
                    "receive time minus the venue's event time, per stream")
        out += ["# HELP tickloop_feed_age_seconds time since the last event of each stream",
                "# TYPE tickloop_feed_age_seconds gauge"]
        for name, ts in sorted(self.last_recv.items()):
            out.append(f'tickloop_feed_age_seconds{{stream="{_label(name)}"}} {seconds_text(now_ns - ts)}')
        out += ["# HELP tickloop_risk_halted 1 while a breaker or the kill switch halts new risk",
                "# TYPE tickloop_risk_halted gauge",
                f"tickloop_risk_halted {0 if self.risk_state == 'ok' else 1}"]
        return "\n".join(out) + "\n"


def _histograms(out: list[str], metric: str, label: str, hists: dict[str, Histogram], help_text: str) -> None:
    out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} histogram"]
    for key, h in sorted(hists.items()):
        lv = f'{label}="{_label(key)}"'
        for le, cum in h.cumulative():
            out.append(f'{metric}_bucket{{{lv},le="{le}"}} {cum}')
        out.append(f"{metric}_sum{{{lv}}} {seconds_text(h.sum_ns)}")
        out.append(f"{metric}_count{{{lv}}} {h.count}")


def _label(value: str) -> str:
    """Escape a label value as the exposition format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _us(ns: int | None) -> float | None:
    return None if ns is None else ns / 1000
