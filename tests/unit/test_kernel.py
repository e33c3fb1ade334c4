"""The kernel: queue ordering and tie-breaks, timers, the one event path, the fast path, output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from engine.clock import LiveClock, ReplayClock
from engine.errors import ConfigError
from engine.events import (
    BalanceUpdated,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelRejected,
    CommandIssued,
    Event,
    Kind,
    OrderRejected,
    OrderStatusReported,
    QuoteReceived,
    RunFinished,
    RunStarted,
    SignalEmitted,
    TimerFired,
    TradeReceived,
)
from engine.identifiers import InstrumentId
from engine.kernel import Kernel
from engine.orders import AnyCommand, CancelOrder, OrderSide, OrderType, QueryOrder, SubmitOrder
from engine.ports import NO_VENUE_CODE, EventListChunk, ListSink, chunked
from engine.runhash import canonical_bytes, run_hash
from engine.strategy import Strategy, StrategyConfig

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
ETH = InstrumentId("ETHUSDT.SPOT")


class _Cfg(StrategyConfig, frozen=True, kw_only=True):
    pass


def trade(seq: int, ts: int, price: int = 100, iid: InstrumentId = BTC) -> TradeReceived:
    return TradeReceived(seq, ts - 1, ts, iid, price, 1, seq, False)


def quote(seq: int, ts: int, bid: int = 99, iid: InstrumentId = BTC) -> QuoteReceived:
    return QuoteReceived(seq, ts, ts, iid, seq, bid, 1, bid + 2, 1)


class Recorder(Strategy[_Cfg]):
    """Logs every callback as (what, replay time, detail); optionally runs a script per callback."""

    name: ClassVar[str] = "rec"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.TRADE, Kind.QUOTE})

    def __init__(self, script: dict[tuple[str, Any], Any] | None = None) -> None:
        super().__init__(_Cfg())
        self.calls: list[tuple[str, int, Any]] = []
        self.script = script or {}

    def _run(self, key: tuple[str, Any]) -> None:
        action = self.script.get(key)
        if action is not None:
            action(self)

    def on_start(self) -> None:
        self.calls.append(("start", self.ctx.clock.now_ns(), None))
        self._run(("start", None))

    def on_trade(self, t: TradeReceived) -> None:
        self.calls.append(("trade", self.ctx.clock.now_ns(), t.seq))
        self._run(("trade", t.seq))

    def on_quote(self, q: QuoteReceived) -> None:
        self.calls.append(("quote", self.ctx.clock.now_ns(), q.seq))
        self._run(("quote", q.seq))

    def on_timer(self, name: str, now_ns: int) -> None:
        self.calls.append(("timer", now_ns, name))
        self._run(("timer", name))

    def on_order_event(self, event: Any) -> None:
        self.calls.append(("order", self.ctx.clock.now_ns(), getattr(event, "client_order_id", None)))
        self._run(("order", getattr(event, "client_order_id", None)))

    def on_stop(self) -> None:
        self.calls.append(("stop", self.ctx.clock.now_ns(), None))


def run(
    events: Sequence[Event], *strategies: Strategy[Any], chunk: int = 3, **kw: Any
) -> tuple[Kernel, ListSink]:
    sink = ListSink()
    kernel = Kernel(sink, **kw)
    for s in strategies:
        kernel.add_strategy(s)
    kernel.run(chunked(events, chunk))
    return kernel, sink


# --------------------------------------------------------------------------- clocks


def test_replay_clock_never_runs_backwards_and_live_clock_reads_the_os() -> None:
    clock = ReplayClock(10)
    clock.advance_to(5)
    assert clock.now_ns() == 10
    clock.advance_to(20)
    assert clock.now_ns() == 20
    assert LiveClock().now_ns() > 1_600_000_000 * 10**9


def test_market_events_are_processed_at_ts_recv_and_a_regressing_ts_holds_the_clock() -> None:
    rec = Recorder()
    events = [trade(1, 100), quote(2, 150), trade(3, 120), trade(4, 200)]
    run(events, rec)
    assert rec.calls[0] == ("start", 100, None)
    assert rec.calls[1:5] == [("trade", 100, 1), ("quote", 150, 2), ("trade", 150, 3), ("trade", 200, 4)]
    assert rec.calls[-1] == ("stop", 200, None)


# --------------------------------------------------------------------------- timers and ordering


def test_timers_fire_in_due_order_and_equal_times_in_the_order_they_were_set() -> None:
    def arm(s: Recorder) -> None:
        s.ctx.set_timer("c", 250)
        s.ctx.set_timer("a", 150)
        s.ctx.set_timer("b1", 150)
        s.ctx.set_timer("b2", 150)

    rec = Recorder({("start", None): arm})
    _, sink = run([trade(1, 100), trade(2, 200), trade(3, 300)], rec)
    fired = [(c[1], c[2]) for c in rec.calls if c[0] == "timer"]
    assert fired == [(150, "a"), (150, "b1"), (150, "b2"), (250, "c")]
    logged = [e for e in sink.events if isinstance(e, TimerFired)]
    assert [(e.ts_recv, e.name) for e in logged] == [
        (150, "rec:a"),
        (150, "rec:b1"),
        (150, "rec:b2"),
        (250, "rec:c"),
    ]


def test_a_timer_due_at_a_market_events_time_fires_before_that_event() -> None:
    rec = Recorder({("trade", 1): lambda s: s.ctx.set_timer("t", 200)})
    run([trade(1, 100), trade(2, 200), trade(3, 200)], rec)
    kinds = [(c[0], c[1]) for c in rec.calls[1:-1]]
    assert kinds == [("trade", 100), ("timer", 200), ("trade", 200), ("trade", 200)]


def test_a_timer_set_for_now_or_the_past_fires_after_the_current_event_before_the_next() -> None:
    rec = Recorder({("trade", 2): lambda s: s.ctx.set_timer("late", 50)})
    run([trade(1, 100), trade(2, 200), trade(3, 200), trade(4, 300)], rec)
    assert [(c[0], c[1], c[2]) for c in rec.calls[2:5]] == [
        ("trade", 200, 2),
        ("timer", 200, "late"),
        ("trade", 200, 3),
    ]


def test_resetting_a_timer_replaces_it_and_cancel_removes_it() -> None:
    def arm(s: Recorder) -> None:
        s.ctx.set_timer("x", 150)
        s.ctx.set_timer("x", 250)  # replaces the first
        s.ctx.set_timer("y", 150)
        assert s.ctx.cancel_timer("y") is True
        assert s.ctx.cancel_timer("nope") is False

    rec = Recorder({("start", None): arm})
    kernel, _ = run([trade(1, 100), trade(2, 300)], rec)
    assert [(c[1], c[2]) for c in rec.calls if c[0] == "timer"] == [(250, "x")]
    assert kernel.stats().timers == 1


def test_a_timer_can_rearm_itself_and_items_due_after_the_last_event_are_dropped() -> None:
    def tick(s: Recorder) -> None:
        s.ctx.set_timer("tick", s.ctx.clock.now_ns() + 40)

    rec = Recorder({("start", None): tick, ("timer", "tick"): tick})
    kernel, _ = run([trade(1, 100), trade(2, 200)], rec)
    assert [c[1] for c in rec.calls if c[0] == "timer"] == [140, 180]
    assert kernel.stats().dropped == 1  # the one due at 220 never comes


# --------------------------------------------------------------------------- commands, risk, venue


def test_orders_go_through_the_noop_venue_and_come_back_rejected_before_the_next_event() -> None:
    ids: list[str] = []

    def buy(s: Recorder) -> None:
        ids.append(s.ctx.submit_order(BTC, "BUY", 10**6))

    rec = Recorder({("trade", 1): buy})
    kernel, sink = run([trade(1, 100), trade(2, 100), trade(3, 200)], rec)
    assert ids == ["rec-1"]
    assert [c[0] for c in rec.calls[1:4]] == ["trade", "order", "trade"]
    assert rec.calls[2] == ("order", 100, "rec-1")
    issued = [e for e in sink.events if isinstance(e, CommandIssued)]
    rejected = [e for e in sink.events if isinstance(e, OrderRejected)]
    assert len(issued) == 1 and issued[0].strategy == "rec"
    assert issued[0].command == SubmitOrder(
        BTC, OrderSide.BUY, OrderType.MARKET, 10**6, client_order_id="rec-1"
    )
    assert len(rejected) == 1 and rejected[0].code == NO_VENUE_CODE and rejected[0].client_order_id == "rec-1"
    assert sink.events.index(issued[0]) < sink.events.index(rejected[0])
    st = kernel.stats()
    assert (st.commands, st.orders, st.rejections, st.fills) == (1, 1, 1, 0)


def test_noop_venue_answers_every_command_shape() -> None:
    def act(s: Recorder) -> None:
        s.ctx.cancel_order(BTC, "ghost")
        s.ctx.send(QueryOrder(BTC, orig_client_order_id="ghost"))
        s.ctx.send(SubmitOrder(BTC, OrderSide.SELL, OrderType.LIMIT, 5, 7))  # no client id: one is assigned

    rec = Recorder({("trade", 1): act})
    _, sink = run([trade(1, 100), trade(2, 200)], rec)
    answers = [e for e in sink.events if isinstance(e, CancelRejected | OrderStatusReported | OrderRejected)]
    assert [type(e) for e in answers] == [CancelRejected, OrderStatusReported, OrderRejected]
    assert answers[0].code == -2011 and answers[1].code == -2013
    assert answers[2].client_order_id == "rec-1"  # type: ignore[union-attr]
    # routed back: the cancel by the id it named; the failed query names none (broadcast)
    assert [c[2] for c in rec.calls if c[0] == "order"] == ["ghost", None, "rec-1"]


class DelayVenue:
    """Answers every order with a rejection and an account update; sees trades."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.handled: list[tuple[AnyCommand, int]] = []

    @property
    def market_kinds(self) -> frozenset[int]:
        return frozenset({Kind.TRADE})

    def handle(self, command: AnyCommand, ts: int) -> list[Event]:
        self.handled.append((command, ts))
        cid = command.client_order_id if isinstance(command, SubmitOrder) else ""
        return [
            OrderRejected(0, ts, ts, command.instrument, cid or "", -1, "x"),
            BalanceUpdated(0, ts, ts, command.instrument, (("USDT", 1, 0),)),
        ]

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        self.seen.append((type(event).__name__, now_ns or 0))
        return []


class FixedLatency:
    def __init__(self, order_ns: int, response_ns: int) -> None:
        self.order_ns, self.response_ns = order_ns, response_ns

    def order_latency_ns(self, ts: int) -> int:
        return self.order_ns

    def response_latency_ns(self, ts: int) -> int:
        return self.response_ns


def test_latency_is_scheduled_on_the_queue_and_answers_beat_timers_and_market_events_at_equal_ts() -> None:
    def act(s: Recorder) -> None:
        s.ctx.set_timer("t", 150)  # set first, yet the venue answer due at 150 goes first
        s.ctx.submit_order(BTC, "SELL", 5, order_type="LIMIT", price=7)

    venue = DelayVenue()
    rec = Recorder({("trade", 1): act})
    _, sink = run(
        [trade(1, 100), trade(2, 130), trade(3, 150), trade(4, 160)],
        rec,
        venue=venue,
        latency=FixedLatency(30, 20),
    )
    assert [c[1] for c in venue.handled] == [130]  # arrival at 100 + 30, before the trade stamped 130
    assert [(c[0], c[1]) for c in rec.calls[1:-1]] == [
        ("trade", 100),
        ("trade", 130),
        ("order", 150),
        ("order", 150),
        ("timer", 150),
        ("trade", 150),
        ("trade", 160),
    ]
    assert venue.seen == [
        ("TradeReceived", 100),
        ("TradeReceived", 130),
        ("TradeReceived", 150),
        ("TradeReceived", 160),
    ]
    balance = [e for e in sink.events if isinstance(e, BalanceUpdated)]
    assert len(balance) == 1 and balance[0].ts_event == 130 and balance[0].ts_recv == 150


def test_order_events_go_to_the_owner_and_account_events_to_everyone() -> None:
    venue = DelayVenue()
    a = Recorder({("trade", 1): lambda s: s.ctx.submit_order(BTC, "BUY", 1)})
    b = Recorder()
    run([trade(1, 100), trade(2, 200)], a, b, venue=venue)
    assert [c[2] for c in a.calls if c[0] == "order"] == ["rec-1", None]  # rejection, then the balance
    assert [c[2] for c in b.calls if c[0] == "order"] == [None]


class DenyAll:
    def __init__(self) -> None:
        self.checked: list[tuple[AnyCommand, str]] = []

    def check(self, command: AnyCommand, strategy_id: str, now_ns: int) -> Event | None:
        self.checked.append((command, strategy_id))
        cid = command.client_order_id if isinstance(command, SubmitOrder) else ""
        return OrderRejected(0, now_ns, now_ns, command.instrument, cid or "", -2010, "risk: denied")


def test_risk_sits_between_strategy_and_venue() -> None:
    venue = DelayVenue()
    risk = DenyAll()

    def act(s: Recorder) -> None:
        coid = s.ctx.submit_order(BTC, "BUY", 5)
        s.ctx.cancel_order(BTC, coid)

    rec = Recorder({("trade", 1): act})
    _, sink = run([trade(1, 100), trade(2, 200)], rec, venue=venue, risk=risk, latency=FixedLatency(10, 10))
    assert [(type(c), sid) for c, sid in risk.checked] == [(SubmitOrder, "rec"), (CancelOrder, "rec")]
    assert venue.handled == []
    rejected = [e for e in sink.events if isinstance(e, OrderRejected)]
    assert [(e.code, e.ts_recv) for e in rejected] == [(-2010, 100), (-2010, 100)]


def test_context_validates_orders_and_signals() -> None:
    rec = Recorder()
    Kernel(ListSink()).add_strategy(rec)
    with pytest.raises(ValueError, match="HOLD"):
        rec.ctx.submit_order(BTC, "HOLD", 1)
    with pytest.raises(ValueError, match="positive"):
        rec.ctx.submit_order(BTC, "BUY", 0)
    with pytest.raises(ValueError, match="STOP"):
        rec.ctx.submit_order(BTC, "BUY", 1, order_type="STOP")
    with pytest.raises(ValueError, match="finite"):
        rec.ctx.emit_signal("x", float("nan"))
    with pytest.raises(ConfigError, match="seed"):
        _ = rec.ctx.rng


def test_rng_comes_from_the_injected_factory() -> None:
    rec = Recorder()
    Kernel(ListSink(), rng_for=lambda sid: np.random.default_rng(len(sid))).add_strategy(rec)
    assert rec.ctx.rng.integers(0, 10**9) == np.random.default_rng(3).integers(0, 10**9)


# --------------------------------------------------------------------------- setup errors


def test_subscribing_to_a_kind_without_callback_is_a_config_error() -> None:
    class Bad(Recorder):
        subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.FUNDING_RATE})

    with pytest.raises(ConfigError, match="FUNDING_RATE"):
        Kernel(ListSink()).add_strategy(Bad())


def test_strategy_ids_are_unique_and_a_kernel_runs_once() -> None:
    kernel = Kernel(ListSink())
    assert kernel.add_strategy(Recorder()) == "rec"
    assert kernel.add_strategy(Recorder()) == "rec_2"
    kernel.run([])
    with pytest.raises(ConfigError):
        kernel.run([])
    with pytest.raises(ConfigError):
        kernel.add_strategy(Recorder())


# --------------------------------------------------------------------------- output


def test_output_is_numbered_framed_and_hashed() -> None:
    rec = Recorder({("trade", 2): lambda s: s.ctx.emit_signal("hello", 1.5, BTC)})
    kernel, sink = run([trade(1, 100), trade(2, 200)], rec)
    out = sink.events
    assert isinstance(out[0], RunStarted) and isinstance(out[-1], RunFinished)
    assert [e.seq for e in out] == list(range(1, len(out) + 1))
    sig = [e for e in out if isinstance(e, SignalEmitted)]
    assert [(s.ts_recv, s.strategy, s.name, s.value, s.instrument) for s in sig] == [
        (200, "rec", "hello", 1.5, BTC)
    ]
    assert isinstance(out[-1], RunFinished) and out[-1].events_in == 2
    assert kernel.run_hash == run_hash(out) == kernel.stats().run_hash
    assert canonical_bytes(sig[0]).startswith(b'{"type":"SignalEmitted","seq":')


def test_empty_source_still_brackets_the_run() -> None:
    kernel, sink = run([], Recorder())
    assert [type(e) for e in sink.events] == [RunStarted, RunFinished]
    assert kernel.stats().events_in == 0


# --------------------------------------------------------------------------- fast path


def _mixed() -> list[Event]:
    out: list[Event] = []
    for i in range(1, 41):
        iid = BTC if i % 3 else ETH
        out.append(trade(i, 10 * i, 1000 + i, iid) if i % 2 else quote(i, 10 * i, 500 + i, iid))
    return out


def test_unsubscribed_chunks_are_absorbed_without_changing_any_result() -> None:
    class QuotesOnly(Recorder):
        subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.QUOTE})

    # trade-only chunks nobody wants are absorbed; results equal the per-event path
    events = [trade(i, 10 * i, 1000 + i, BTC if i % 2 else ETH) for i in range(1, 21)] + [quote(21, 300)]
    fast, fast_sink = run(events, QuotesOnly(), chunk=5)
    slow, slow_sink = run(events, QuotesOnly(), chunk=5, vectorised=False)
    assert fast.stats().chunks_vectorised == 4 and slow.stats().chunks_vectorised == 0
    assert fast.state_snapshot() == slow.state_snapshot()
    assert fast.state_snapshot()["last_price"] == {BTC: 1019, ETH: 1020}
    assert fast_sink.events == slow_sink.events


def test_a_scheduled_item_inside_a_chunk_forces_the_per_event_path() -> None:
    class TimerOnly(Recorder):
        subscriptions: ClassVar[frozenset[Kind]] = frozenset()

    rec = TimerOnly({("start", None): lambda s: s.ctx.set_timer("mid", 25)})
    kernel, _ = run([trade(i, 10 * i) for i in range(1, 7)], rec, chunk=3)
    assert kernel.stats().chunks_vectorised == 1  # the second chunk, after the timer
    assert [(c[0], c[1]) for c in rec.calls if c[0] == "timer"] == [("timer", 25)]


def test_fast_and_per_event_paths_agree_on_mixed_streams() -> None:
    for chunk in (1, 4, 7, 100):
        a = run(_mixed(), Recorder(), chunk=chunk)
        b = run(_mixed(), Recorder(), chunk=chunk, vectorised=False)
        assert a[0].run_hash == b[0].run_hash and a[0].state_snapshot() == b[0].state_snapshot()
    nobody = run(_mixed(), chunk=4)
    nobody_slow = run(_mixed(), chunk=4, vectorised=False)
    assert nobody[0].stats().chunks_vectorised == 10
    assert nobody[0].state_snapshot() == nobody_slow[0].state_snapshot()


# --------------------------------------------------------------------------- books


class BookWatcher(Recorder):
    subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.BOOK_DELTA})

    def on_book(self, event: Any, book: Any) -> None:
        self.calls.append(("book", event.seq, (book.best_bid(), book.best_ask())))


def test_book_subscribers_get_the_synced_book_after_each_change() -> None:
    diff1 = BookDeltaReceived(1, 10, 10, BTC, 101, 101, -1, ((99, 5),), ())
    snap = BookSnapshotReceived(2, 20, 20, BTC, 100, ((99, 1), (98, 1)), ((101, 1),))
    diff2 = BookDeltaReceived(3, 30, 30, BTC, 102, 102, -1, ((100, 2),), ())
    watcher = BookWatcher()
    kernel, _ = run([diff1, snap, diff2], watcher, chunk=2)
    books = [c for c in watcher.calls if c[0] == "book"]
    # the buffered diff is drained when the snapshot lands: one callback, book at id 101
    assert books == [("book", 2, ((99, 5), (101, 1))), ("book", 3, ((100, 2), (101, 1)))]
    assert watcher.ctx.book(BTC) is not None and watcher.ctx.book(ETH) is None
    assert kernel.stats().chunks_vectorised == 0


def test_event_list_chunk_summaries() -> None:
    c = EventListChunk([trade(1, 30, 5), quote(2, 10), trade(3, 20, 7, ETH)])
    assert (len(c), c.first_ts, c.last_ts, c.max_ts) == (3, 30, 20, 30)
    assert c.kinds == {Kind.TRADE, Kind.QUOTE}
    assert {k: v.seq for k, v in c.last_by_instrument(frozenset({Kind.TRADE})).items()} == {BTC: 1, ETH: 3}
    with pytest.raises(ValueError):
        EventListChunk([])


# --------------------------------------------------------------------------- push API (live sessions)


class SilentVenue:
    """A live venue's shape: takes commands, answers nothing synchronously."""

    def __init__(self) -> None:
        self.handled: list[tuple[AnyCommand, int]] = []
        self.observed: list[Event] = []

    @property
    def market_kinds(self) -> frozenset[int]:
        return frozenset()

    def handle(self, command: AnyCommand, ts: int) -> list[Event]:
        self.handled.append((command, ts))
        return []

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        return []

    def observe(self, event: Event, ts: int) -> list[Event]:
        self.observed.append(event)
        return [SignalEmitted(0, ts, ts, event.instrument, "venue", "observed", 1.0)]


def _scripted() -> Recorder:
    return Recorder(
        {
            ("trade", 1): lambda s: s.ctx.submit_order(BTC, "BUY", 5),
            ("trade", 3): lambda s: s.ctx.set_timer("t", 0),
            ("quote", 4): lambda s: s.ctx.submit_order(BTC, "SELL", 5, order_type="LIMIT", price=7),
        }
    )


def test_feeding_chunk_by_chunk_gives_the_same_output_as_run() -> None:
    events = [trade(1, 100), trade(2, 100), trade(3, 130), quote(4, 150), trade(5, 150), trade(6, 170)]
    _, ran = run(events, _scripted(), venue=DelayVenue(), latency=FixedLatency(0, 0))
    for size in (1, 2, 4):
        sink = ListSink()
        kernel = Kernel(sink, venue=DelayVenue(), latency=FixedLatency(0, 0))
        kernel.add_strategy(_scripted())
        kernel.start(first_ts=events[0].ts_recv)
        for chunk in chunked(events, size):
            kernel.feed(chunk)
        kernel.finish()
        assert run_hash(sink.events) == run_hash(ran.events), size


def test_feed_sends_a_command_to_the_venue_before_it_returns() -> None:
    venue = SilentVenue()
    kernel = Kernel(ListSink(), venue=venue)
    kernel.add_strategy(Recorder({("trade", 1): lambda s: s.ctx.submit_order(BTC, "BUY", 5)}))
    kernel.start()
    kernel.feed(EventListChunk([trade(1, 100)]))
    assert [(type(c), ts) for c, ts in venue.handled] == [(SubmitOrder, 100)]
    with pytest.raises(ConfigError):
        Kernel(ListSink()).feed(EventListChunk([trade(1, 100)]))


def test_venue_events_in_the_source_reach_their_owner_after_the_venue_observed_them() -> None:
    venue = SilentVenue()
    rec = Recorder({("trade", 1): lambda s: s.ctx.submit_order(BTC, "BUY", 5)})
    sink = ListSink()
    kernel = Kernel(sink, venue=venue)
    kernel.add_strategy(rec)
    kernel.start()
    kernel.feed(EventListChunk([trade(1, 100)]))
    answer = OrderRejected(0, 120, 125, BTC, "rec-1", -2010, "Account has insufficient balance")
    kernel.feed(EventListChunk([answer, trade(2, 130)]))
    kernel.finish()
    assert venue.observed == [answer]
    assert ("order", 125, "rec-1") in rec.calls
    logged = [e for e in sink.events if isinstance(e, OrderRejected | SignalEmitted)]
    assert [type(e).__name__ for e in logged] == ["OrderRejected", "SignalEmitted"]
    assert logged[0].ts_recv == 125 and logged[0].seq > 0


def test_an_operator_kill_in_the_input_engages_risk_and_later_orders_are_denied() -> None:
    from engine.events import KillSwitchEngaged, OperatorRequested, RiskDenied
    from engine.risk.config import RiskConfig
    from engine.risk.engine import RiskEngine
    from engine.risk.gate import attach_risk

    inner = SilentVenue()
    gate, venue = attach_risk(RiskEngine(RiskConfig(starting_equity=10**12)), inner)
    rec = Recorder(
        {
            ("trade", 1): lambda s: s.ctx.submit_order(BTC, "BUY", 5, order_type="LIMIT", price=100),
            ("trade", 3): lambda s: s.ctx.submit_order(BTC, "BUY", 5, order_type="LIMIT", price=100),
        }
    )
    sink = ListSink()
    kernel = Kernel(sink, venue=venue, risk=gate)
    kernel.add_strategy(rec)
    kernel.start()
    kernel.feed(EventListChunk([trade(1, 100)]))
    kernel.feed(EventListChunk([OperatorRequested(0, 110, 110, InstrumentId(""), "kill", "file", "test")]))
    kernel.feed(EventListChunk([trade(3, 120)]))
    kernel.finish()
    kinds = [type(e).__name__ for e in sink.events]
    assert kinds.index("OperatorRequested") < kinds.index("KillSwitchEngaged")
    engaged = next(e for e in sink.events if isinstance(e, KillSwitchEngaged))
    assert engaged.reason == "test" and len(engaged.commands) == 1  # cancel-all for the open BUY
    assert [type(c).__name__ for c, _ in inner.handled] == ["SubmitOrder", "CancelAllOrders"]
    denied = [e for e in sink.events if isinstance(e, RiskDenied)]
    assert len(denied) == 1 and denied[0].ts_recv == 120
