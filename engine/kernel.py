"""The kernel: one loop, one priority queue, one way events move.

Ordering
--------
Every item the kernel processes has a key ``(ts, class, seq)``:

- **market events** come from the source (a stream of :class:`~engine.ports.Chunk` s in log
  order) at their ``ts_recv``: the time a live strategy would have received them.
  Class ``MARKET`` (3), ``seq`` = log position. The source is never re-sorted: log order is
  the order of receipt. Should a log's ``ts_recv`` ever go backwards (e.g. imported REST
  data), the event is still processed in log order and the replay clock holds (it never
  runs backwards).
- **scheduled items** live in one binary heap: venue events reaching the strategy
  (``RESPONSE`` = 0), commands reaching the venue (``ARRIVAL`` = 1), both timed by the
  latency model, and timers (``TIMER`` = 2). ``seq`` is a kernel counter incremented on
  every scheduling call, so among equals what was scheduled first goes first.

Tie-break at equal ``ts``: responses, then arrivals, then timers, then market events.
Something due at ``T`` has already happened when the market event stamped ``T`` is
received, so a strategy reacting to that event has already seen its order's fate and its
timer. Items scheduled for "now" while handling an event run after that event and before
the next one (the queue is drained up to each event's time before the event is processed).
Scheduled items still pending when the source ends are due in a future the data never
reaches and are dropped (the run ends at the last market event; ``KernelStats.dropped``).

Clock ticks
-----------
A :class:`~engine.events.ClockTicked` input carries no market data: consuming it moves the
clock to its ``ts_recv`` and runs everything due up to then (the same two steps as any
input; no handler, no strategy callback, nothing emitted). A live session writes one to its
input log when the wall clock passes :meth:`Kernel.next_due_ns` in a quiet market, so
timers and simulated arrivals run on time live and at the same point in an audit replay.
A tick counts in ``events_in`` like every input (``events_in`` is the number of input rows
consumed, so the live run's RunFinished and the replay's agree). A run without ticks is
unchanged by their existence.

The event path
--------------
Each market event: state update (last price / last quote per instrument; the L2 book via
``BookSync`` when some strategy subscribed to books; the venue, if it wants this kind) ->
subscribed strategies' callbacks -> the commands they queued on their Context (logged as
``CommandIssued``) -> risk -> after the order latency, the venue. Venue events come back
after the response latency, are logged, and go to the strategy that owns the order
(by client order id; account events go to every strategy), whose commands take the same
path. A command without a client order id gets one (``<strategy>-<n>``) so its answers can
be routed.

Columnar fast path
------------------
When no strategy, book or venue wants any kind present in a chunk and no scheduled item
falls inside the chunk's time range, the kernel consumes the whole chunk at once: the
chunk's vectorised summaries update the state (last price / quote per instrument, clock)
without building an object per row. Results are identical to the per-event path; pass
``vectorised=False`` to force the latter (the determinism tests compare the two).

Output
------
Every output event (RunStarted, signals, timers fired, commands, venue events, book gaps,
RunFinished) gets the next output ``seq`` (1, 2, ...), replay-time stamps, goes into the
run hash (``engine.runhash``) and then to the :class:`~engine.ports.OutputSink`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from engine.clock import ReplayClock
from engine.errors import ConfigError
from engine.events import (
    CLASS_OF_KIND,
    AggTradeReceived,
    BookDeltaReceived,
    BookGapDetected,
    BookSnapshotReceived,
    CancelRejected,
    CommandIssued,
    Event,
    Kind,
    KlineReceived,
    MarkPriceReceived,
    OperatorRequested,
    OrderFilled,
    OrderRejected,
    QuoteReceived,
    RunFinished,
    RunStarted,
    SignalEmitted,
    TimerFired,
    TradeReceived,
)
from engine.identifiers import InstrumentId
from engine.orders import AnyCommand, CancelOrder, SubmitOrder, SubmitOrderList
from engine.ports import (
    MARKET_CALLBACK_KINDS,
    Chunk,
    LatencyModel,
    NoopVenue,
    OutputSink,
    PassThroughRisk,
    RiskGate,
    Venue,
    ZeroLatency,
)
from engine.runhash import RunHasher
from engine.strategy import NO_INSTRUMENT, Context, Strategy

if TYPE_CHECKING:
    from numpy.random import Generator

    from engine.book import L2Book
    from engine.booksync import BookSync

RESPONSE = 0
ARRIVAL = 1
TIMER = 2
MARKET = 3
"""Tie-break classes at equal ``ts`` (see module doc)."""

BOOK_KINDS = frozenset({Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT, Kind.BOOK_GAP})
TRADE_KINDS = frozenset({Kind.TRADE, Kind.AGG_TRADE})
QUOTE_KINDS = frozenset({Kind.QUOTE})
_ONLY_TRADES = frozenset({Kind.TRADE})
# Venue answers: scheduled responses in a backtest, source events in a live session.
_VENUE_EVENT_TYPES: tuple[type[Event], ...] = tuple(
    CLASS_OF_KIND[k]
    for k in (
        Kind.ORDER_ACCEPTED, Kind.ORDER_REJECTED, Kind.ORDER_FILLED, Kind.ORDER_CANCELED,
        Kind.ORDER_EXPIRED, Kind.ORDER_TRIGGERED, Kind.ORDER_TRADE_PREVENTED, Kind.ORDER_LIST_STATUS,
        Kind.BALANCE_UPDATED, Kind.CANCEL_REJECTED, Kind.ORDER_STATUS_REPORTED,
    )
)

_CALLBACK_OF_KIND: dict[int, tuple[type[Event], str]] = {
    Kind.TRADE: (TradeReceived, "on_trade"),
    Kind.AGG_TRADE: (AggTradeReceived, "on_agg_trade"),
    Kind.QUOTE: (QuoteReceived, "on_quote"),
    Kind.MARK_PRICE: (MarkPriceReceived, "on_mark_price"),
    Kind.KLINE: (KlineReceived, "on_kline"),
}

Handler = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class KernelStats:
    """What a run did, for summaries; the run hash covers the output events themselves."""

    events_in: int
    chunks: int
    chunks_vectorised: int
    outputs: int
    signals: int
    timers: int
    commands: int
    orders: int
    rejections: int
    fills: int
    book_gaps: int
    dropped: int
    run_hash: str


@dataclass(slots=True)
class _Timer:
    strategy: int
    name: str


class Kernel:
    """Drives strategies over a market event source, deterministically (see module doc)."""

    def __init__(
        self,
        sink: OutputSink,
        *,
        venue: Venue | None = None,
        latency: LatencyModel | None = None,
        risk: RiskGate | None = None,
        clock: ReplayClock | None = None,
        vectorised: bool = True,
        rng_for: Callable[[str], Generator] | None = None,
        book_factory: Callable[[InstrumentId], BookSync] | None = None,
    ) -> None:
        self.clock = clock if clock is not None else ReplayClock()
        self._sink = sink
        self._venue: Venue = venue if venue is not None else NoopVenue()
        self._latency: LatencyModel = latency if latency is not None else ZeroLatency()
        self._risk: RiskGate = risk if risk is not None else PassThroughRisk()
        self._vectorised = vectorised
        self._rng_for = rng_for
        self._book_factory = book_factory
        self._hasher = RunHasher()
        self._out_seq = 0
        self._heap: list[tuple[int, int, int, Any]] = []
        self._sched_seq = 0
        self._timers: dict[tuple[int, str], int] = {}  # (strategy, name) -> live heap seq
        self._outbox: list[tuple[int, AnyCommand]] = []
        self._strategies: list[Strategy[Any]] = []
        self._ids: dict[str, int] = {}
        self._owner: dict[str, int] = {}  # client order id / list client order id -> strategy
        self._last_price: dict[InstrumentId, int] = {}
        self._last_quote: dict[InstrumentId, QuoteReceived] = {}
        self._books: dict[InstrumentId, BookSync] = {}
        self._book_subscribers: list[Strategy[Any]] = []
        self._table: dict[type, tuple[Handler, ...]] = {}
        self._needed: frozenset[int] = frozenset()
        self._trade_handler: Handler | None = None
        self._started = False
        self._events_in = 0
        self._chunks = 0
        self._chunks_vec = 0
        self._counts = dict.fromkeys(
            ("signals", "timers", "commands", "orders", "rejections", "fills", "book_gaps"), 0
        )
        self._dropped = 0

    # ----------------------------------------------------------------- setup

    def add_strategy(self, strategy: Strategy[Any], strategy_id: str | None = None) -> str:
        """Register a strategy before :meth:`run`; returns its id (``name``, ``name_2``, ...)."""
        if self._started:
            raise ConfigError("strategies must be added before the run starts")
        sid = strategy_id or strategy.name
        if sid in self._ids:
            n = 2
            while f"{sid}_{n}" in self._ids:
                n += 1
            sid = f"{sid}_{n}"
        unknown = set(strategy.subscriptions) - MARKET_CALLBACK_KINDS
        if unknown:
            names = ", ".join(sorted(Kind(k).name for k in unknown))
            raise ConfigError(f"strategy {sid!r} subscribes to kinds without a callback: {names}")
        self._ids[sid] = len(self._strategies)
        self._strategies.append(strategy)
        rng = self._rng_for(sid) if self._rng_for is not None else None
        strategy.attach(Context(sid, self, self.clock, rng))
        return sid

    def _build_dispatch(self) -> None:
        """Per event type: the venue (if it wants it), the state update, then each subscriber."""
        table: dict[type, list[Handler]] = {
            TradeReceived: [self._state_trade],
            AggTradeReceived: [self._state_trade],
            QuoteReceived: [self._state_quote],
        }
        needed: set[int] = set()
        for strat in self._strategies:
            subs = strat.subscriptions
            if subs & {Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT}:
                self._book_subscribers.append(strat)
            for kind, (etype, method) in _CALLBACK_OF_KIND.items():
                if kind in subs:
                    table.setdefault(etype, []).append(getattr(strat, method))
                    needed.add(kind)
        if self._book_subscribers:
            needed |= BOOK_KINDS
            for etype in (BookDeltaReceived, BookSnapshotReceived, BookGapDetected):
                table.setdefault(etype, []).append(self._state_book)
        for etype in _VENUE_EVENT_TYPES:  # a live session's input carries the venue's answers
            table[etype] = [self._venue_input]
            needed.add(int(etype.kind))
        table[OperatorRequested] = [self._operator_input]
        needed.add(int(Kind.OPERATOR_REQUESTED))
        for kind in self._venue.market_kinds:
            needed.add(kind)
            table.setdefault(CLASS_OF_KIND[kind], []).insert(0, self._venue_market)
        self._needed = frozenset(needed)
        self._table = {k: tuple(v) for k, v in table.items()}
        trade_handlers = self._table[TradeReceived]
        if len(trade_handlers) == 2 and trade_handlers[0] == self._state_trade:
            self._trade_handler = trade_handlers[1]

    # ----------------------------------------------------------------- the loop

    def run(self, source: Iterable[Chunk], *, config_json: str = "{}", input_digest: str = "") -> KernelStats:
        """Process every chunk of ``source``; emits RunStarted first and RunFinished last."""
        it = iter(source)
        first = next(it, None)
        self.start(config_json=config_json, input_digest=input_digest, first_ts=first.first_ts if first else None)
        if first is not None:
            self._consume(first)
            del first  # hold no chunk longer than needed: chunks may pin input memory
            self._consume_rest(it)
        return self.finish()

    # ----------------------------------------------------------------- the push API (live sessions)

    def start(self, *, config_json: str = "{}", input_digest: str = "", first_ts: int | None = None) -> None:
        """Begin a run that is fed chunk by chunk (:meth:`feed`) and ended by :meth:`finish`.

        A live session cannot hand the kernel an iterator: its events arrive on an event loop.
        ``run`` is exactly ``start`` + ``feed`` per chunk + ``finish``, so both paths are the
        same code. ``first_ts`` sets the clock before RunStarted is stamped.
        """
        if self._started:
            raise ConfigError("a Kernel runs once")
        self._started = True
        self._build_dispatch()
        if first_ts is not None:
            self.clock.advance_to(first_ts)
        now = self.clock.now
        self._emit(RunStarted(self._next_seq(), now, now, NO_INSTRUMENT, config_json, input_digest))
        for strat in self._strategies:
            strat.on_start()
            self._flush_commands()

    def feed(self, chunk: Chunk) -> None:
        """Consume one chunk, then run everything already due at the clock's now.

        The second step is what a live session needs: a command a strategy issues while
        handling an event reaches the venue's ``handle`` before ``feed`` returns, instead of
        waiting for the next event. Running items due at ``now`` right after the chunk or
        right before the next event is the same order (responses, arrivals and timers due at
        ``T`` go before a market event stamped ``T``), so results do not depend on chunking.
        """
        if not self._started:
            raise ConfigError("Kernel.feed before Kernel.start")
        self._consume(chunk)
        self._run_due(self.clock.now)

    def finish(self) -> KernelStats:
        """Stop the strategies, drain what is due and emit RunFinished."""
        if not self._started:
            raise ConfigError("Kernel.finish before Kernel.start")
        self._run_due(self.clock.now)
        for strat in self._strategies:
            strat.on_stop()
            self._flush_commands()
        self._run_due(self.clock.now)
        self._dropped = len(self._heap)
        now = self.clock.now
        self._emit(RunFinished(self._next_seq(), now, now, NO_INSTRUMENT, self._events_in))
        return self.stats()

    def _consume_rest(self, chunks: Iterator[Chunk]) -> None:
        for chunk in chunks:
            self._consume(chunk)

    def _consume(self, chunk: Chunk) -> None:
        self._chunks += 1
        self._events_in += len(chunk)
        if self._vectorised and chunk.kinds.isdisjoint(self._needed):
            heap = self._heap
            if not heap or heap[0][0] > max(self.clock.now, chunk.max_ts):
                self._absorb(chunk)
                return
        self._per_event(chunk)

    def _absorb(self, chunk: Chunk) -> None:
        """The fast path: the same state the per-event path would leave, from vectorised summaries."""
        self._chunks_vec += 1
        kinds = chunk.kinds
        if not kinds.isdisjoint(TRADE_KINDS):
            for iid, ev in chunk.last_by_instrument(TRADE_KINDS).items():
                assert isinstance(ev, TradeReceived | AggTradeReceived)
                self._last_price[iid] = ev.price
        if Kind.QUOTE in kinds:
            for iid, ev in chunk.last_by_instrument(QUOTE_KINDS).items():
                assert isinstance(ev, QuoteReceived)
                self._last_quote[iid] = ev
        self.clock.advance_to(chunk.max_ts)

    def _per_event(self, chunk: Chunk) -> None:
        if self._trade_handler is not None and chunk.kinds == _ONLY_TRADES:
            self._per_trade(chunk, self._trade_handler)
            return
        heap = self._heap
        clock = self.clock
        get = self._table.get
        outbox = self._outbox
        for ev in chunk.events():
            ts = ev.ts_recv
            if heap and heap[0][0] <= ts:
                self._run_due(ts)
            if ts > clock.now:
                clock.now = ts
            handlers = get(type(ev))
            if handlers is not None:
                for handler in handlers:
                    handler(ev)
                if outbox:
                    self._flush_commands()

    def _per_trade(self, chunk: Chunk, on_trade: Handler) -> None:
        """:meth:`_per_event` specialised for the hot case: raw trades, one subscriber, no venue.

        Same steps (queue, clock, state, callback, commands), inlined.
        """
        heap = self._heap
        clock = self.clock
        outbox = self._outbox
        last_price = self._last_price
        now = clock.now
        for ev in chunk.events():
            ts = ev.ts_recv
            if heap and heap[0][0] <= ts:
                self._run_due(ts)
                now = clock.now
            if ts > now:
                now = clock.now = ts
            last_price[ev.instrument] = ev.price  # type: ignore[attr-defined]
            on_trade(ev)
            if outbox:
                self._flush_commands()

    def _run_due(self, until: int) -> None:
        """Process every scheduled item due at or before ``until``, in (ts, class, seq) order."""
        heap = self._heap
        while heap and heap[0][0] <= until:
            due, cls, seq, item = heapq.heappop(heap)
            self.clock.advance_to(due)
            if cls == RESPONSE:
                self._deliver(item)
            elif cls == ARRIVAL:
                self._arrive(item)
            else:
                self._fire_timer(seq, item)
            self._flush_commands()

    def next_due_ns(self) -> int | None:
        """The earliest time something scheduled is due (response, arrival, live timer); None if nothing is.

        What a live session sleeps until when no input comes (see "Clock ticks" in the module
        doc). Replaced or cancelled timers stay in the heap until popped; they are skipped
        here (the heap is only scanned when its top is such a timer, and never changed), so
        a session is not woken for a timer that would not fire. Read-only: calling it never
        changes a run.
        """
        heap = self._heap
        if not heap:
            return None
        due, cls, seq, item = heap[0]
        if cls != TIMER or self._timer_live(seq, item):
            return due
        live = [d for d, c, s, it in heap if c != TIMER or self._timer_live(s, it)]
        return min(live) if live else None

    def _timer_live(self, seq: int, timer: _Timer) -> bool:
        """True when the heap entry ``seq`` is still the pending timer of its (strategy, name)."""
        return self._timers.get((timer.strategy, timer.name)) == seq

    def _schedule(self, due: int, cls: int, item: Any) -> int:
        self._sched_seq += 1
        heapq.heappush(self._heap, (max(due, self.clock.now), cls, self._sched_seq, item))
        return self._sched_seq

    # ----------------------------------------------------------------- state updates

    def _state_trade(self, ev: TradeReceived | AggTradeReceived) -> None:
        self._last_price[ev.instrument] = ev.price

    def _state_quote(self, ev: QuoteReceived) -> None:
        self._last_quote[ev.instrument] = ev

    def _state_book(self, ev: Event) -> None:
        sync = self._books.get(ev.instrument)
        if sync is None:
            sync = self._books[ev.instrument] = self._make_sync(ev.instrument)
        before = sync.last_update_id
        for gap in sync.on_event(ev):
            assert isinstance(gap, BookGapDetected)
            self._counts["book_gaps"] += 1
            self._emit(msgspec.structs.replace(gap, seq=self._next_seq(), ts_recv=self.clock.now))
        if (
            sync.synced
            and sync.last_update_id != before
            and isinstance(ev, BookDeltaReceived | BookSnapshotReceived)
        ):
            book = sync.book
            for strat in self._book_subscribers:
                strat.on_book(ev, book)

    def _make_sync(self, instrument: InstrumentId) -> BookSync:
        if self._book_factory is not None:
            return self._book_factory(instrument)
        from engine.booksync import BookSync  # only runs that want books pay for the import

        return BookSync.for_instrument(instrument)

    def _venue_market(self, ev: Event) -> None:
        now = self.clock.now
        out = self._venue.on_market(ev, now)
        if out:
            due = now + self._latency.response_latency_ns(now)
            for vev in out:
                self._schedule(due, RESPONSE, vev)

    # ----------------------------------------------------------------- commands and venue

    def _flush_commands(self) -> None:
        """Queued commands -> logged -> risk -> scheduled arrival at the venue."""
        outbox = self._outbox
        while outbox:
            batch = outbox[:]
            outbox.clear()
            for idx, cmd in batch:
                self._process_command(idx, cmd)

    def _process_command(self, idx: int, cmd: AnyCommand) -> None:
        now = self.clock.now
        strat = self._strategies[idx]
        sid = strat.ctx.strategy_id
        cmd = self._with_ids(strat.ctx, cmd)
        self._claim(idx, cmd)
        self._counts["commands"] += 1
        if isinstance(cmd, SubmitOrder | SubmitOrderList):
            self._counts["orders"] += 1
        self._emit(CommandIssued(self._next_seq(), now, now, cmd.instrument, sid, cmd))
        refusal = self._risk.check(cmd, sid, now)
        if refusal is not None:
            self._schedule(now, RESPONSE, refusal)
        else:
            self._schedule(now + self._latency.order_latency_ns(now), ARRIVAL, cmd)

    @staticmethod
    def _with_ids(ctx: Context, cmd: AnyCommand) -> AnyCommand:
        """Give new orders and order lists client ids so their answers can be routed back."""
        if isinstance(cmd, SubmitOrder) and cmd.client_order_id is None:
            return msgspec.structs.replace(cmd, client_order_id=ctx.next_client_order_id())
        if isinstance(cmd, SubmitOrderList):
            legs = tuple(
                leg
                if leg.client_order_id is not None
                else msgspec.structs.replace(leg, client_order_id=ctx.next_client_order_id())
                for leg in cmd.legs
            )
            lid = cmd.list_client_order_id or ctx.next_client_order_id()
            return msgspec.structs.replace(cmd, legs=legs, list_client_order_id=lid)
        return cmd

    def _claim(self, idx: int, cmd: AnyCommand) -> None:
        """Remember which strategy owns every client id this command names."""
        owner = self._owner
        if isinstance(cmd, SubmitOrder) and cmd.client_order_id:
            owner[cmd.client_order_id] = idx
        elif isinstance(cmd, SubmitOrderList):
            for leg in cmd.legs:
                if leg.client_order_id:
                    owner[leg.client_order_id] = idx
            if cmd.list_client_order_id:
                owner[cmd.list_client_order_id] = idx
        elif isinstance(cmd, CancelOrder):
            for cid in (cmd.orig_client_order_id, cmd.new_client_order_id):
                if cid:
                    owner.setdefault(cid, idx)

    def _arrive(self, cmd: AnyCommand) -> None:
        now = self.clock.now
        out = self._venue.handle(cmd, now)
        if out:
            due = now + self._latency.response_latency_ns(now)
            for vev in out:
                self._schedule(due, RESPONSE, vev)

    def _venue_input(self, vev: Event) -> None:
        """A venue event that came in the source (a live venue answers asynchronously).

        It is delivered exactly like a scheduled response. First the venue object may look
        at it (``observe(event, ts) -> events``; the risk adapter uses this to see live
        fills and may answer with breaker events, which are delivered after it).
        """
        observe = getattr(self._venue, "observe", None)
        extra: list[Event] = observe(vev, self.clock.now) if observe is not None else []
        self._deliver(vev)
        for ev in extra:
            self._deliver(ev)

    def _operator_input(self, ev: Event) -> None:
        """An operator's kill/reset from a live session's input: logged, then shown to the venue.

        The risk adapter (the venue object in a risked run) acts on it in ``observe`` and
        answers with KillSwitchEngaged / RiskReset and the cancels' outcomes.
        """
        now = self.clock.now
        self._emit(msgspec.structs.replace(ev, seq=self._next_seq(), ts_recv=now))
        observe = getattr(self._venue, "observe", None)
        for out in observe(ev, now) if observe is not None else []:
            self._deliver(out)

    def _deliver(self, vev: Event) -> None:
        logged = msgspec.structs.replace(vev, seq=self._next_seq(), ts_recv=self.clock.now)
        if isinstance(vev, OrderFilled):
            self._counts["fills"] += 1
        elif isinstance(vev, OrderRejected | CancelRejected):
            self._counts["rejections"] += 1
        self._emit(logged)
        for idx in self._owners_of(vev):
            self._strategies[idx].on_order_event(logged)

    def _owners_of(self, vev: Event) -> list[int]:
        """The strategy an order event belongs to; account-wide events go to every strategy."""
        owner = self._owner
        ids = [
            _str_attr(vev, "client_order_id"),
            _str_attr(vev, "list_client_order_id"),
            _str_attr(getattr(vev, "order", None), "client_order_id"),
        ]
        ids.extend(getattr(vev, "client_order_ids", ()))
        ids = [cid for cid in ids if cid]
        if not ids:
            return list(range(len(self._strategies)))
        for cid in ids:
            idx = owner.get(cid)
            if idx is not None:
                return [idx]
        return []

    # ----------------------------------------------------------------- timers

    def _fire_timer(self, seq: int, timer: _Timer) -> None:
        key = (timer.strategy, timer.name)
        if self._timers.get(key) != seq:
            return  # replaced or cancelled
        del self._timers[key]
        strat = self._strategies[timer.strategy]
        now = self.clock.now
        self._counts["timers"] += 1
        self._emit(
            TimerFired(self._next_seq(), now, now, NO_INSTRUMENT, f"{strat.ctx.strategy_id}:{timer.name}")
        )
        strat.on_timer(timer.name, now)

    # ----------------------------------------------------------------- KernelServices (for Context)

    def emit_signal(self, strategy_id: str, name: str, value: float, instrument: InstrumentId) -> None:
        now = self.clock.now
        self._counts["signals"] += 1
        self._emit(SignalEmitted(self._next_seq(), now, now, instrument, strategy_id, name, value))

    def set_timer(self, strategy_id: str, name: str, at_ns: int) -> None:
        idx = self._ids[strategy_id]
        self._timers[(idx, name)] = self._schedule(at_ns, TIMER, _Timer(idx, name))

    def cancel_timer(self, strategy_id: str, name: str) -> bool:
        return self._timers.pop((self._ids[strategy_id], name), None) is not None

    def queue_command(self, strategy_id: str, command: AnyCommand) -> None:
        self._outbox.append((self._ids[strategy_id], command))

    def last_price(self, instrument: InstrumentId) -> int | None:
        return self._last_price.get(instrument)

    def last_quote(self, instrument: InstrumentId) -> QuoteReceived | None:
        return self._last_quote.get(instrument)

    def book(self, instrument: InstrumentId) -> L2Book | None:
        sync = self._books.get(instrument)
        return sync.book if sync is not None and sync.synced else None

    # ----------------------------------------------------------------- output

    def _next_seq(self) -> int:
        self._out_seq += 1
        return self._out_seq

    def _emit(self, event: Event) -> None:
        self._hasher.update(event)
        self._sink.write(event)

    # ----------------------------------------------------------------- results

    @property
    def run_hash(self) -> str:
        """SHA-256 over the canonical bytes of every output event so far (engine.runhash)."""
        return self._hasher.hexdigest()

    def state_snapshot(self) -> dict[str, Any]:
        """The kernel's market state (for tests comparing the fast and per-event paths)."""
        return {
            "now": self.clock.now,
            "last_price": dict(sorted(self._last_price.items())),
            "last_quote": dict(sorted(self._last_quote.items())),
            "events_in": self._events_in,
        }

    def stats(self) -> KernelStats:
        c = self._counts
        return KernelStats(
            events_in=self._events_in,
            chunks=self._chunks,
            chunks_vectorised=self._chunks_vec,
            outputs=self._out_seq,
            signals=c["signals"],
            timers=c["timers"],
            commands=c["commands"],
            orders=c["orders"],
            rejections=c["rejections"],
            fills=c["fills"],
            book_gaps=c["book_gaps"],
            dropped=self._dropped,
            run_hash=self.run_hash,
        )


def _str_attr(obj: object, name: str) -> str:
    """``obj.name`` if it is a str, else "" (venue events differ in which ids they carry)."""
    value: object = getattr(obj, name, None)
    return value if isinstance(value, str) else ""
