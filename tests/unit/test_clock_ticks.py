"""Recorded clock ticks: a ClockTicked input runs what is due, replays identically, round-trips the log.

A live session writes ``ClockTicked`` into its input log when the wall clock passes the
kernel's next deadline (``Kernel.next_due_ns``) in a quiet market; these tests pin the kernel
side (what a tick does, that it is deterministic on every path, what ``next_due_ns`` says)
and the log side (the pure-Python writer and reader, pyarrow reading our segments).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogs.log import LogReader, LogWriter
from catalogs.schema import BatchBuilder, iter_events
from engine.clock import LiveClock
from engine.events import (
    CLASS_OF_KIND,
    ClockTicked,
    CommandIssued,
    Event,
    Kind,
    OrderAccepted,
    RunFinished,
    TimerFired,
    TradeReceived,
    with_seq,
)
from engine.identifiers import InstrumentId
from engine.kernel import Kernel, KernelStats
from engine.orders import (
    AnyCommand,
    OrderSide,
    OrderStatus,
    SelfTradePreventionMode,
    SubmitOrder,
    TimeInForce,
)
from engine.ports import EventListChunk, ListSink, OutputSink, chunked
from engine.strategy import NO_INSTRUMENT, Strategy, StrategyConfig
from replay.source import log_chunks
from tickloop.live.session import LiveSession, SessionPlan

BTC = InstrumentId("BTCUSDT.SPOT")
QTY = 1_000_000  # 0.01 BTC, e8
ORDER_LATENCY = 300
RESPONSE_LATENCY = 200


class _Cfg(StrategyConfig, frozen=True, kw_only=True):
    delay_ns: int = 1_000
    order_on_timer: bool = False


class TimedExit(Strategy[_Cfg]):
    """Sets timer ``exit`` ``delay_ns`` after the first trade; optionally sends an order when it fires.

    Records every callback, so a test can see that ticks never reach a strategy as market data.
    """

    name: ClassVar[str] = "timed_exit"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.TRADE})

    def __init__(self, config: _Cfg | None = None) -> None:
        super().__init__(config or _Cfg())
        self.calls: list[tuple[str, int, Any]] = []

    def on_trade(self, trade: TradeReceived) -> None:
        self.calls.append(("trade", trade.ts_recv, trade.seq))
        if len(self.calls) == 1:
            self.ctx.set_timer("exit", trade.ts_recv + self.config.delay_ns)

    def on_timer(self, name: str, now_ns: int) -> None:
        self.calls.append(("timer", now_ns, name))
        if self.config.order_on_timer:
            self.ctx.submit_order(BTC, OrderSide.SELL, QTY)

    def on_order_event(self, event: Event) -> None:
        self.calls.append(("order", self.ctx.clock.now_ns(), type(event).__name__))


class FixedLatency:
    """Every command reaches the venue ORDER_LATENCY ns after it is issued; answers take RESPONSE_LATENCY."""

    def order_latency_ns(self, ts: int) -> int:
        return ORDER_LATENCY

    def response_latency_ns(self, ts: int) -> int:
        return RESPONSE_LATENCY


class AcceptingVenue:
    """Accepts every order at the replay time it arrives (records the arrivals)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[int, AnyCommand]] = []

    @property
    def market_kinds(self) -> frozenset[int]:
        return frozenset()

    def handle(self, command: AnyCommand, ts: int) -> list[Event]:
        self.arrivals.append((ts, command))
        coid = getattr(command, "client_order_id", None) or ""
        assert isinstance(command, SubmitOrder)
        n = len(self.arrivals)
        return [OrderAccepted(0, ts, ts, command.instrument, n, coid, command.side, command.order_type,
                              TimeInForce.GTC, command.quantity, 0, 0, 0, 0, -1, OrderStatus.NEW, ts,
                              SelfTradePreventionMode.NONE, n)]  # fmt: skip

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        return []


def trade(seq: int, ts: int, price: int = 6_000_000_000_000) -> TradeReceived:
    return TradeReceived(seq, ts - 1, ts, BTC, price, QTY, seq, False)


def tick(seq: int, ts: int, due: int = 0) -> ClockTicked:
    return ClockTicked(seq, ts, ts, NO_INSTRUMENT, due)


def kernel_with(strategy: Strategy[Any], sink: ListSink, *, venue: Any = None, **kw: Any) -> Kernel:
    if venue is not None:
        kw.update(venue=venue, latency=FixedLatency())
    kernel = Kernel(sink, **kw)
    kernel.add_strategy(strategy)
    return kernel


def push(events: Sequence[Event], strategy: Strategy[Any], *, venue: Any = None) -> tuple[KernelStats, ListSink]:
    """A live session's way: start, one event per feed, finish."""
    sink = ListSink()
    kernel = kernel_with(strategy, sink, venue=venue)
    kernel.start(first_ts=events[0].ts_recv)
    for ev in events:
        kernel.feed(EventListChunk([ev]))
    return kernel.finish(), sink


def backtest(
    events: Sequence[Event], strategy: Strategy[Any], *, chunk: int, vectorised: bool = True, venue: Any = None
) -> tuple[KernelStats, ListSink]:
    """A backtest's (and the audit's chunked) way: ``Kernel.run`` over chunks."""
    sink = ListSink()
    kernel = kernel_with(strategy, sink, venue=venue, vectorised=vectorised)
    return kernel.run(chunked(events, chunk)), sink


# --------------------------------------------------------------------------- the event type


@pytest.mark.edge
def test_clock_ticked_is_a_registered_input_kind_without_market_data() -> None:
    assert int(Kind.CLOCK_TICKED) == int(Kind.OPERATOR_REQUESTED) + 1
    assert CLASS_OF_KIND[Kind.CLOCK_TICKED] is ClockTicked
    ev = tick(0, 5_000, due=4_000)
    assert (ev.ts_event, ev.ts_recv, ev.instrument, ev.due) == (5_000, 5_000, NO_INSTRUMENT, 4_000)
    assert ClockTicked(0, 1, 1, NO_INSTRUMENT).due == 0  # the field is optional


# --------------------------------------------------------------------------- the kernel


@pytest.mark.edge
def test_a_timer_due_in_a_quiet_market_fires_at_its_due_time_when_a_tick_comes() -> None:
    t0, delay = 1_000_000, 2_500
    strat = TimedExit(_Cfg(delay_ns=delay))
    stats, sink = push([trade(1, t0), tick(2, t0 + delay + 700, due=t0 + delay)], strat)
    fired = [e for e in sink.events if isinstance(e, TimerFired)]
    assert [(e.ts_event, e.ts_recv, e.name) for e in fired] == [(t0 + delay, t0 + delay, "timed_exit:exit")]
    assert ("timer", t0 + delay, "exit") in strat.calls
    # the tick is an input (counted in events_in) but never reaches a strategy as market data
    assert [c[0] for c in strat.calls] == ["trade", "timer"]
    assert stats.events_in == 2 and stats.timers == 1 and stats.dropped == 0
    finished = sink.events[-1]
    assert isinstance(finished, RunFinished) and finished.events_in == 2
    assert finished.ts_recv == t0 + delay + 700  # the clock reached the tick's time


@pytest.mark.edge
def test_without_a_tick_the_same_timer_never_fires_before_the_run_ends() -> None:
    t0, delay = 1_000_000, 2_500
    stats, sink = push([trade(1, t0)], TimedExit(_Cfg(delay_ns=delay)))
    assert not any(isinstance(e, TimerFired) for e in sink.events)
    assert stats.timers == 0 and stats.dropped == 1


@pytest.mark.edge
def test_a_tick_before_the_deadline_fires_nothing_and_one_after_runs_arrivals_and_responses() -> None:
    t0, delay = 1_000_000, 1_000
    due = t0 + delay
    venue = AcceptingVenue()
    strat = TimedExit(_Cfg(delay_ns=delay, order_on_timer=True))
    events = [trade(1, t0), tick(2, due - 1, due), tick(3, due, due), tick(4, due + ORDER_LATENCY, due + ORDER_LATENCY),
              tick(5, due + ORDER_LATENCY + RESPONSE_LATENCY, due + ORDER_LATENCY + RESPONSE_LATENCY)]  # fmt: skip
    stats, sink = push(events, strat, venue=venue)
    kinds = [(type(e).__name__, e.ts_recv) for e in sink.events[1:-1]]
    assert kinds == [
        ("TimerFired", due),
        ("CommandIssued", due),
        ("OrderAccepted", due + ORDER_LATENCY + RESPONSE_LATENCY),
    ]
    assert [ts for ts, _ in venue.arrivals] == [due + ORDER_LATENCY]  # the arrival ran at its own due time
    assert strat.calls[-1] == ("order", due + ORDER_LATENCY + RESPONSE_LATENCY, "OrderAccepted")
    assert stats.events_in == len(events)


@pytest.mark.edge
def test_runs_fed_the_same_inputs_with_ticks_give_identical_outputs_and_run_hashes() -> None:
    t0 = 5_000_000
    events: list[Event] = [trade(1, t0), trade(2, t0 + 100), tick(3, t0 + 1_250, t0 + 1_000), trade(4, t0 + 1_300),
                           tick(5, t0 + 1_700, t0 + 1_550), tick(6, t0 + 2_000, t0 + 1_750), trade(7, t0 + 2_100)]  # fmt: skip

    def one(how: str) -> tuple[KernelStats, ListSink]:
        strat = TimedExit(_Cfg(delay_ns=1_000, order_on_timer=True))
        if how == "push":
            return push(events, strat, venue=AcceptingVenue())
        return backtest(events, strat, chunk=3, vectorised=how == "vectorised", venue=AcceptingVenue())

    first, first_sink = one("push")
    again, again_sink = one("push")
    assert first_sink.events == again_sink.events and first.run_hash == again.run_hash
    assert any(isinstance(e, CommandIssued) for e in first_sink.events)
    for how in ("vectorised", "per_event"):
        other, other_sink = one(how)
        assert other_sink.events == first_sink.events, how
        assert other.run_hash == first.run_hash


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.tuples(st.integers(1, 900), st.booleans()), min_size=1, max_size=30),
    delay=st.integers(0, 3_000),
    chunk=st.integers(1, 7),
)
@pytest.mark.edge
def test_property_ticks_give_the_same_run_on_the_push_chunked_and_per_event_paths(
    gaps: list[tuple[int, bool]], delay: int, chunk: int
) -> None:
    ts = 1_000_000
    events: list[Event] = [trade(1, ts)]
    for seq, (gap, is_tick) in enumerate(gaps, start=2):
        ts += gap
        events.append(tick(seq, ts, ts) if is_tick else trade(seq, ts, 6_000_000_000_000 + seq))

    def strat() -> TimedExit:
        return TimedExit(_Cfg(delay_ns=delay, order_on_timer=True))

    live, live_sink = push(events, strat(), venue=AcceptingVenue())
    for vectorised in (True, False):
        bt, bt_sink = backtest(events, strat(), chunk=chunk, vectorised=vectorised, venue=AcceptingVenue())
        assert bt_sink.events == live_sink.events
        assert bt.run_hash == live.run_hash
    assert live.events_in == len(events)
    for ev in live_sink.events:  # everything scheduled ran at its own due time, never at the tick's
        if isinstance(ev, TimerFired):
            assert ev.ts_recv == 1_000_000 + delay


@pytest.mark.edge
def test_next_due_ns_follows_set_cancel_replace_and_firing() -> None:
    sink = ListSink()
    strat = TimedExit()
    kernel = kernel_with(strat, sink, venue=AcceptingVenue())
    assert kernel.next_due_ns() is None
    kernel.start(first_ts=1_000)
    assert kernel.next_due_ns() is None
    ctx = strat.ctx
    ctx.set_timer("b", 5_000)
    assert kernel.next_due_ns() == 5_000
    ctx.set_timer("a", 3_000)
    assert kernel.next_due_ns() == 3_000
    assert ctx.cancel_timer("a")
    assert kernel.next_due_ns() == 5_000  # the cancelled timer still in the heap is skipped
    ctx.set_timer("b", 7_000)  # replaces b: the 5,000 entry is stale
    assert kernel.next_due_ns() == 7_000
    ctx.set_timer("a", 500)  # in the past: due now
    assert kernel.next_due_ns() == 1_000
    kernel.feed(EventListChunk([tick(1, 1_000)]))
    assert kernel.next_due_ns() == 7_000
    kernel.feed(EventListChunk([tick(2, 7_000)]))
    assert kernel.next_due_ns() is None
    ctx.cancel_timer("nothing")
    assert kernel.next_due_ns() is None
    fired = [(e.ts_recv, e.name) for e in sink.events if isinstance(e, TimerFired)]
    assert fired == [(1_000, "timed_exit:a"), (7_000, "timed_exit:b")]


@pytest.mark.edge
def test_next_due_ns_sees_scheduled_arrivals_and_responses() -> None:
    sink = ListSink()
    strat = TimedExit(_Cfg(delay_ns=10_000, order_on_timer=True))
    kernel = kernel_with(strat, sink, venue=AcceptingVenue())
    kernel.start(first_ts=1_000)
    kernel.feed(EventListChunk([trade(1, 1_000)]))
    assert kernel.next_due_ns() == 11_000  # the timer
    kernel.feed(EventListChunk([tick(2, 11_000)]))
    assert kernel.next_due_ns() == 11_000 + ORDER_LATENCY  # the order's arrival at the venue
    kernel.feed(EventListChunk([tick(3, 11_000 + ORDER_LATENCY)]))
    assert kernel.next_due_ns() == 11_000 + ORDER_LATENCY + RESPONSE_LATENCY  # the venue's answer
    kernel.feed(EventListChunk([tick(4, 20_000)]))
    assert kernel.next_due_ns() is None
    assert strat.calls[-1] == ("order", 11_000 + ORDER_LATENCY + RESPONSE_LATENCY, "OrderAccepted")


@pytest.mark.edge
def test_next_due_ns_is_read_only() -> None:
    """Asking for the deadline (as a live session does after every input) never changes a run."""
    events = [trade(1, 1_000), trade(2, 1_500), tick(3, 2_600, 2_000), trade(4, 3_000)]

    def one(ask: bool) -> str:
        sink = ListSink()
        strat = TimedExit(_Cfg(delay_ns=1_000))
        kernel = kernel_with(strat, sink)
        kernel.start(first_ts=1_000)
        for ev in events:
            if ask:
                kernel.next_due_ns()
            kernel.feed(EventListChunk([ev]))
            if ask:
                strat.ctx.set_timer("stale", 10**9)
                strat.ctx.cancel_timer("stale")
                kernel.next_due_ns()
        return kernel.finish().run_hash

    assert one(True) != "" and one(True) == one(False)


# --------------------------------------------------------------------------- the log


def ticked_stream() -> list[Event]:
    return [trade(0, 1_000), tick(0, 2_500, 2_000), trade(0, 3_000), tick(0, 9_000_000_000, 8_999_999_000)]


@pytest.mark.edge
def test_clock_ticked_round_trips_the_batch_codec() -> None:
    builder = BatchBuilder()
    events = ticked_stream()
    for seq, ev in enumerate(events, start=1):
        builder.add(ev, seq)
    batch = builder.build()
    assert batch.kind.tolist() == [int(e.kind) for e in events]
    back = list(iter_events(batch))
    assert back == [with_seq(e, i) for i, e in enumerate(events, start=1)]
    assert isinstance(back[1], ClockTicked) and back[1].due == 2_000


@pytest.mark.edge
def test_clock_ticked_round_trips_the_pure_python_log_writer_and_reader(tmp_path: Path) -> None:
    events = ticked_stream()
    with LogWriter(tmp_path / "log", meta={"test": "ticks"}) as writer:
        seqs = [writer.append(ev) for ev in events]
    assert seqs == [1, 2, 3, 4]
    with LogReader(tmp_path / "log") as reader:
        reader.verify()
        back = list(reader.events())
        assert back == [with_seq(e, i) for i, e in enumerate(events, start=1)]
    with LogReader(tmp_path / "log") as reader:  # the audit's and the backtest's path: log chunks
        strat = TimedExit(_Cfg(delay_ns=1_000))
        sink = ListSink()
        stats = kernel_with(strat, sink).run(log_chunks(reader))
    fired = [e.ts_recv for e in sink.events if isinstance(e, TimerFired)]
    assert fired == [2_000] and stats.events_in == 4
    direct, _ = push(back, TimedExit(_Cfg(delay_ns=1_000)))
    assert direct.run_hash == stats.run_hash


def test_pyarrow_reads_clock_ticked_rows_written_by_the_pure_python_writer(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from catalogs.arrow_pa import read_rows

    events = ticked_stream()
    with LogWriter(tmp_path / "log") as writer:
        writer.extend(events)
    with LogReader(tmp_path / "log") as reader:
        rows = [r for seg in reader.segments for r in read_rows((tmp_path / "log" / seg).read_bytes())]
    ticks = [r for r in rows if r["kind"] == int(Kind.CLOCK_TICKED)]
    assert [(r["seq"], r["ts_event"], r["ts_recv"], r["instrument"]) for r in ticks] == [
        (2, 2_500, 2_500, ""),
        (4, 9_000_000_000, 9_000_000_000, ""),
    ]
    decoded = [msgspec.json.decode(r["payload"], type=ClockTicked) for r in ticks]
    assert [d.due for d in decoded] == [2_000, 8_999_999_000]


# --------------------------------------------------------------------------- the session's wake-up


class SteppingClock(LiveClock):
    """Wall time from a fixed origin: real elapsed time, so the loop's timers line up with it."""

    def __init__(self, origin_ns: int = 1_700_000_000_000_000_000) -> None:
        self.origin = origin_ns
        self.m0 = time.monotonic_ns()

    def now_ns(self) -> int:
        return self.origin + time.monotonic_ns() - self.m0


class OneTradeThenQuiet:
    """An EventSource: ``trades`` trades (unstamped, the session stamps them), then nothing until closed."""

    def __init__(self, trades: int = 1) -> None:
        self.trades = trades
        self._closed = asyncio.Event()

    async def run(self, emit: Callable[[Event], None]) -> None:
        for i in range(self.trades):
            emit(TradeReceived(0, 0, 0, BTC, 6_000_000_000_000, QTY, i + 1, False))
            await asyncio.sleep(0)
        await self._closed.wait()

    async def aclose(self) -> None:
        self._closed.set()


def run_session(tmp_path: Path, delay_ns: int, duration_s: float, trades: int = 1) -> tuple[LiveSession, Path]:
    def build(sink: OutputSink, submit: Callable[[Event], None]) -> Kernel:
        kernel = Kernel(sink)
        kernel.add_strategy(TimedExit(_Cfg(delay_ns=delay_ns)))
        return kernel

    plan = SessionPlan("paper", {"strategy": "timed_exit"}, build_kernel=build)
    out = tmp_path / "session"
    session = LiveSession(out, plan, OneTradeThenQuiet(trades), duration_s=duration_s, signals=False,
                          clock=SteppingClock())  # fmt: skip
    assert asyncio.run(session.run()) == 0
    return session, out


def read(log: Path) -> list[Event]:
    with LogReader(log) as reader:
        return list(reader.events())


@pytest.mark.edge
def test_a_session_ticks_once_when_its_timer_falls_due_in_a_quiet_market(tmp_path: Path) -> None:
    session, out = run_session(tmp_path, delay_ns=30_000_000, duration_s=0.3)
    inputs, outputs = read(out / "input"), read(out / "out")
    assert [type(e).__name__ for e in inputs] == ["TradeReceived", "ClockTicked"]
    trade_in, tick_in = inputs
    assert isinstance(tick_in, ClockTicked)
    due = trade_in.ts_recv + 30_000_000
    assert tick_in.due == due and tick_in.ts_event == tick_in.ts_recv >= due
    fired = [e for e in outputs if isinstance(e, TimerFired)]
    assert [e.ts_recv for e in fired] == [due]
    assert session.clock_ticks == 1 and session.market_events == 1 and session.inputs == 2
    assert session.status()["clock_ticks"] == 1


@pytest.mark.edge
def test_a_session_with_nothing_due_writes_no_tick(tmp_path: Path) -> None:
    _, out = run_session(tmp_path, delay_ns=0, duration_s=0.25, trades=0)
    assert read(out / "input") == []


@pytest.mark.edge
def test_no_tick_is_written_for_a_deadline_after_the_session_stopped(tmp_path: Path) -> None:
    session, out = run_session(tmp_path, delay_ns=60 * 10**9, duration_s=0.2)
    assert [type(e).__name__ for e in read(out / "input")] == ["TradeReceived"]
    assert not any(isinstance(e, TimerFired) for e in read(out / "out"))
    assert session.clock_ticks == 0 and session.kernel is not None and session.kernel.stats().dropped == 1
