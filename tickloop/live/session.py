"""A live session (``tickloop record | paper | live``): one asyncio loop, two logs, one kernel.

Data flow (everything on ONE event loop, so no locks and a fixed order)::

    source (streams)  ─┐
    live venue answers ─┼─> stamp ts_recv (LiveClock) -> SESSION/input (LogWriter, seq)
    operator requests ─┘        -> observers("input") -> kernel.feed([event])
                                                         -> SESSION/out (seq checked) -> observers("output")

- ``record``: no kernel; the input log is the recording. Reopening an existing session
  directory resumes it: the torn tail a SIGKILL left is cut and the seq continues.
- ``paper``: the simulated venue runs inside the kernel (as in a backtest), behind risk.
- ``live``: the live venue (``venues.binance``) behind risk; its answers arrive through
  its ``on_events`` callback and are inputs like market data; startup reconciliation
  events are fed first.

Why the input log holds venue answers and operator requests: the kernel's outputs must be a
function of the input log alone, so ``tickloop replay audit`` (``replay.audit``) can prove
live == replay. The kernel runs on replay time (each event's ``ts_recv``), never the wall
clock. So that a timer (or a simulated order arrival in paper mode) due in a quiet market
runs on time, the session sleeps until the kernel's next deadline (``Kernel.next_due_ns``)
when no input comes first; when the wall clock reaches it, the session writes a
:class:`~engine.events.ClockTicked` input stamped with the clock's now and feeds it like any
input, so the replay runs those items at the same point. No tick is written when nothing is
due, when the clock has not passed the deadline or the kernel's time, or once the session
is stopping.

Reentrancy: a venue may answer synchronously from inside ``handle`` (i.e. inside
``kernel.feed``); :meth:`LiveSession.submit` queues such events and the outer call drains
the queue after ``feed`` returns, so the kernel is never re-entered.

Observers (:class:`~tickloop.live.observer.SessionObserver`) see every input and output event;
their exceptions are logged and dropped. The session is the
:class:`~tickloop.live.observer.SessionControl` the dashboard steers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from engine.clock import LiveClock
from engine.errors import ConfigError, LogError
from engine.events import BookGapDetected, ClockTicked, Event, FeedStatusChanged, Kind, OperatorRequested
from engine.kernel import Kernel
from engine.ports import EventListChunk, OutputSink
from engine.strategy import NO_INSTRUMENT
from tickloop.live.killswitch import KillSwitch
from tickloop.live.observer import SessionObserver, Source

log = logging.getLogger("tickloop.live.session")

INPUT_DIR = "input"
OUT_DIR = "out"
SESSION_JSON = "session.json"
TICK_S = 0.1
RECHECK_NS = 1_000_000
"""Least wait before re-checking a kernel deadline the wall clock has not reached yet."""
MODES = ("record", "paper", "live")
ANSWER_KINDS = frozenset(
    {
        Kind.ORDER_ACCEPTED, Kind.ORDER_REJECTED, Kind.ORDER_FILLED, Kind.ORDER_CANCELED, Kind.ORDER_EXPIRED,
        Kind.ORDER_TRIGGERED, Kind.ORDER_TRADE_PREVENTED, Kind.ORDER_LIST_STATUS, Kind.BALANCE_UPDATED,
        Kind.CANCEL_REJECTED, Kind.ORDER_STATUS_REPORTED, Kind.LATENCY_RECORDED,
    }
)
"""Inputs still taken while a session stops: what the venue says about orders already sent."""


def default_policy() -> Any:
    """The live flush policy: a batch every 200 ms or 4,096 events, whichever first."""
    from catalogs.log import FlushPolicy

    return FlushPolicy(max_events=4096, max_interval_ns=200_000_000)


class EventSource(Protocol):
    """A market data source: calls ``emit`` for every event until :meth:`aclose`."""

    async def run(self, emit: Callable[[Event], None]) -> None: ...

    async def aclose(self) -> None: ...


KernelFactory = Callable[[OutputSink, Callable[[Event], None]], Kernel]
"""(output sink, the session's ``submit`` for asynchronous venue answers) -> a ready kernel."""


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """What the mode wiring decided before the loop starts (see ``tickloop.live.modes``)."""

    mode: str
    config: dict[str, Any] | None = None
    """The kernel's config (RunStarted.config_json); None for ``record``."""
    startup: tuple[Event, ...] = ()
    """Fed first, in order (exchangeInfo entries, reconciliation)."""
    info: dict[str, Any] = field(default_factory=dict)
    """More session.json keys (symbols, streams, venue_source); never secrets."""
    build_kernel: KernelFactory | None = None
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()
    """Called at the end, after the logs are closed (e.g. the live venue's connections)."""
    before_feed: Callable[[Event], None] | None = None
    """Sees each input right before the kernel does (the live venue's tick-to-order start)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown session mode {self.mode!r}; known: {', '.join(MODES)}")
        if (self.mode == "record") != (self.build_kernel is None):
            raise ConfigError(f"mode {self.mode!r}: a kernel is needed for paper/live and forbidden for record")


class _OutSink:
    """The kernel's OutputSink: the out log (seq checked), then every observer."""

    def __init__(self, writer: Any, notify: Callable[[Event, Source], None]) -> None:
        self._writer = writer
        self._notify = notify
        self.count = 0

    def write(self, event: Event) -> None:
        seq = self._writer.append(event)
        if seq != event.seq:
            raise LogError(f"{self._writer.path}: assigned seq {seq} to an output the kernel numbered {event.seq}")
        self.count += 1
        self._notify(event, "output")


def _utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat()


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` via a temporary file and rename (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class LiveSession:
    """One session (see module doc). ``await run()`` until a stop condition; ``stop()`` ends it."""

    def __init__(
        self,
        out: str | Path,
        plan: SessionPlan,
        source: EventSource | None,
        *,
        observers: Sequence[SessionObserver] = (),
        kill_file: str | Path | None = None,
        duration_s: float | None = None,
        max_events: int | None = None,
        policy: Any = None,
        signals: bool = True,
        clock: LiveClock | None = None,
    ) -> None:
        self.dir = Path(out)
        self.plan = plan
        self.source = source
        self.observers = list(observers)
        self.duration_s = duration_s
        self.max_events = max_events
        self._policy = policy if policy is not None else default_policy()
        self._signals = signals
        self._clock = clock or LiveClock()
        self.killswitch = KillSwitch(self.submit, kill_file)
        self._queue: deque[Event] = deque()
        self._draining = False
        self._open = False
        self._input: Any = None
        self._out: Any = None
        self._sink: _OutSink | None = None
        self.kernel: Kernel | None = None
        self._stop: asyncio.Event | None = None
        self.stop_reason = ""
        self.error: BaseException | None = None
        self.inputs = 0
        self.market_events = 0
        self.clock_ticks = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.TimerHandle | None = None
        self._wake_for: int | None = None
        self.dropped = 0
        self._last_input_seq = 0
        self.feed_state: dict[str, str] = {}
        self._started_ns = 0
        self._started_mono = 0.0
        self._info: dict[str, Any] = {}

    # ------------------------------------------------------------------ SessionControl

    def request_kill(self, reason: str) -> None:
        """Engage the kill switch (the dashboard's button): an OperatorRequested input event."""
        self.killswitch.request("kill", "http", reason)

    def request_reset(self, reason: str) -> None:
        """Lift the kill switch / breaker: an OperatorRequested(reset) input event."""
        self.killswitch.request("reset", "http", reason)

    def status(self) -> dict[str, Any]:
        kstats = self.kernel.stats() if self.kernel is not None else None
        return {
            "mode": self.plan.mode,
            "session": str(self.dir),
            "pid": os.getpid(),
            "started_at": _utc(self._started_ns) if self._started_ns else None,
            "inputs": self.inputs,
            "market_events": self.market_events,
            "input_seq": self._input.last_seq if self._input is not None else self._last_input_seq,
            "outputs": self._sink.count if self._sink is not None else 0,
            "clock_ticks": self.clock_ticks,
            "orders": kstats.orders if kstats else 0,
            "fills": kstats.fills if kstats else 0,
            "feeds": dict(self.feed_state),
            "risk": self._risk_status(),
            "source": _source_stats(self.source),
            "kill_pulls": self.killswitch.pulls,
            "dropped_after_stop": self.dropped,
        }

    def _risk_status(self) -> dict[str, Any]:
        venue = getattr(self.kernel, "_venue", None) if self.kernel is not None else None
        engine = getattr(venue, "engine", None)
        if engine is None:
            return {}
        halted = engine.halted
        return {"halted": halted.value if halted is not None else "", "equity_e8": engine.equity()}

    # ------------------------------------------------------------------ events in

    def submit(self, event: Event) -> None:
        """Take one input event (on the loop); never re-enters the kernel (see module doc).

        Before the logs are open (e.g. a kill requested while connecting) events wait and go
        in right after the startup events.
        """
        self._queue.append(event)
        if self._draining or not self._open:
            return
        self._draining = True
        try:
            while self._queue:
                self._ingest(self._queue.popleft())
        finally:
            self._draining = False
        self._arm_wake()

    def submit_many(self, events: Sequence[Event]) -> None:
        """``submit`` each (a venue's ``on_events`` callback)."""
        for ev in events:
            self.submit(ev)

    def _ingest(self, event: Event) -> None:
        if self._input is None or self.error is not None or (self.stop_reason and event.kind not in ANSWER_KINDS):
            # Closed or failed: nothing goes in. Stopping: no more market data, but the live
            # venue's answers to orders already sent still do (until it is closed), so the
            # session's log and the venue's records agree on every order and fill.
            self.dropped += 1
            return
        if event.ts_recv == 0:
            now = self._clock.now_ns()
            event = msgspec.structs.replace(event, ts_event=event.ts_event or now, ts_recv=now)
        seq = self._input.append(event)
        event = msgspec.structs.replace(event, seq=seq)
        self.inputs += 1
        if isinstance(event, FeedStatusChanged):
            self.feed_state[event.stream] = event.status
        elif isinstance(event, ClockTicked):
            self.clock_ticks += 1
        elif not isinstance(event, OperatorRequested):
            self.market_events += 1
        self._notify(event, "input")
        if self.kernel is not None:
            try:
                if self.plan.before_feed is not None:
                    self.plan.before_feed(event)
                self.kernel.feed(EventListChunk([event]))
            except Exception as exc:  # a bug in strategy/risk/venue: stop cleanly, keep the logs
                log.exception("kernel failed on input seq %d; stopping the session", seq)
                self.error = exc
                self.stop(f"error: {type(exc).__name__}")
                return
        if self.max_events is not None and self.inputs >= self.max_events:
            self.stop(f"max events ({self.max_events})")

    # ------------------------------------------------------------------ clock ticks

    def _arm_wake(self, min_delay_ns: int = 0) -> None:
        """Sleep until the kernel's next deadline (see module doc); re-armed after every input.

        Only reschedules when the deadline changed, so a busy market costs one comparison per
        input. Record mode (no kernel), a closed or stopping session: nothing to wake for.
        """
        due = self.kernel.next_due_ns() if self.kernel is not None and self._open and not self.stop_reason else None
        if due == self._wake_for and (due is None or self._wake is not None):
            return
        self._cancel_wake()
        if due is None or self._loop is None:
            return
        self._wake_for = due
        self._wake = self._loop.call_later(max(min_delay_ns, due - self._clock.now_ns()) / 1e9, self._on_wake)

    def _cancel_wake(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._wake = None
        self._wake_for = None

    def _on_wake(self) -> None:
        """The deadline's time came: write and feed a ClockTicked if something is really due now.

        The loop's timer runs on the monotonic clock and may wake a little early (or the wall
        clock may have been stepped back behind the kernel's time): then it only re-arms, at
        least ``RECHECK_NS`` later so a stepped clock cannot spin the loop. A tick is never
        older than the kernel's time (ticks never go backwards) and never written while
        stopping.
        """
        self._wake = None
        self._wake_for = None
        kernel = self.kernel
        if kernel is None or not self._open or self.stop_reason or self._input is None:
            return
        due = kernel.next_due_ns()
        now = self._clock.now_ns()
        if due is not None and due <= now and now >= kernel.clock.now:
            self.submit(ClockTicked(0, now, now, NO_INSTRUMENT, due))  # re-arms when drained
        else:
            self._arm_wake(RECHECK_NS)

    def _notify(self, event: Event, source: Source) -> None:
        if source == "output" and type(event) is BookGapDetected:
            resync = getattr(self.source, "request_resync", None)
            if resync is not None:  # the book lost its sequence: the source fetches a new snapshot
                resync(str(event.instrument).split(".")[0])
        for obs in self.observers:
            try:
                obs.on_event(event, source)
            except Exception:
                log.exception("observer %s failed on %s (ignored)", type(obs).__name__, type(event).__name__)

    # ------------------------------------------------------------------ lifecycle

    def stop(self, reason: str = "stopped") -> None:
        """End the session (idempotent; safe from signal handlers on the loop)."""
        if not self.stop_reason:
            self.stop_reason = reason
        self._cancel_wake()
        if self._stop is not None:
            self._stop.set()

    def _open_logs(self) -> None:
        from catalogs.log import LogWriter
        from catalogs.manifest import code_version

        input_dir = self.dir / INPUT_DIR
        meta = {"session": {"mode": self.plan.mode}}
        resume = self.plan.mode == "record" and (input_dir / "manifest.json").exists()
        if self.plan.mode != "record" and self.dir.exists() and any(self.dir.iterdir()):
            raise ConfigError(f"{self.dir}: a {self.plan.mode} session needs a new (or empty) directory")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._input = LogWriter(input_dir, meta=meta, policy=self._policy, monotonic_ns=time.monotonic_ns, resume=resume)
        if resume and self._input.torn_tail:
            log.warning("%s: cut a torn tail left by the previous run: %s", input_dir, self._input.torn_tail)
        if self.plan.build_kernel is not None:
            self._out = LogWriter(
                self.dir / OUT_DIR,
                meta={"session": {"mode": self.plan.mode}, "run": {"config": self.plan.config, "code_version": code_version()}},
                policy=self._policy,
                monotonic_ns=time.monotonic_ns,
            )
        self._write_session_json(resume)

    def _write_session_json(self, resumed: bool) -> None:
        from catalogs.manifest import code_version

        path = self.dir / SESSION_JSON
        previous: dict[str, Any] = {}
        if resumed and path.exists():
            with contextlib.suppress(OSError, ValueError):
                previous = json.loads(path.read_text(encoding="utf-8"))
        cfg = self.plan.config or {}
        start = {"pid": os.getpid(), "started_at": _utc(self._started_ns), "first_seq": self._input.last_seq + 1}
        self._info = {
            "mode": self.plan.mode,
            "strategy": cfg.get("strategy"),
            "params": cfg.get("params"),
            "risk": cfg.get("risk"),
            "venue": cfg.get("venue"),
            "config": self.plan.config,
            **self.plan.info,
            "pid": os.getpid(),
            "started_at": start["started_at"],
            "code_version": code_version(),
            "starts": [*previous.get("starts", []), start],
        }
        write_json_atomic(path, self._info)

    def _start_kernel(self) -> None:
        if self.plan.build_kernel is None:
            return
        from replay.backtest import canonical_json

        self._sink = _OutSink(self._out, self._notify)
        self.kernel = self.plan.build_kernel(self._sink, self.submit)
        config_json = canonical_json(self.plan.config or {})
        self.kernel.start(config_json=config_json, input_digest="", first_ts=self._clock.now_ns())

    async def run(self) -> int:
        """Run until a stop condition; returns the exit status (0 clean, 1 after an error)."""
        loop = self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started_ns = self._clock.now_ns()
        self._started_mono = time.monotonic()
        self._open_logs()
        tasks: list[asyncio.Task[Any]] = []
        notifier = _sd_notifier()
        try:
            self._start_kernel()
            parked = list(self._queue)
            self._queue.clear()
            self._open = True
            for ev in (*self.plan.startup, *parked):
                self.submit(ev)
            self._arm_wake()  # a timer set in on_start, with no startup input to arm it
            self._install_signals(loop)
            if self.source is not None:
                tasks.append(loop.create_task(self._run_source(self.source)))
            tasks.append(loop.create_task(self._tick(notifier)))
            if notifier is not None:
                notifier.ready(f"{self.plan.mode}: {self.dir}")
            await self._stop.wait()
        finally:
            await self._shutdown(loop, tasks, notifier)
        return 1 if self.error is not None else 0

    async def _run_source(self, source: EventSource) -> None:
        try:
            await source.run(self.submit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("market data source failed")
            self.error = exc
        self.stop(self.stop_reason or "source ended")

    async def _tick(self, notifier: Any) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            for writer in (self._input, self._out):
                if writer is not None:
                    writer.poll()
            if notifier is not None:
                notifier.keepalive(time.monotonic_ns())
            if self.duration_s is not None and time.monotonic() - self._started_mono >= self.duration_s:
                self.stop(f"duration ({self.duration_s} s)")

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._signals:
            self.killswitch.attach(loop, signals=False)
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop, signal.Signals(sig).name)
        self.killswitch.attach(loop, signals=True)

    async def _shutdown(self, loop: asyncio.AbstractEventLoop, tasks: list[asyncio.Task[Any]], notifier: Any) -> None:
        self._cancel_wake()
        if notifier is not None:
            notifier.stopping(self.stop_reason)
            notifier.close()
        if self.source is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.source.aclose(), 5.0)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.killswitch.detach()
        if self._signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        for closer in self.plan.closers:  # the venue finishes in-flight orders; answers still go in
            try:
                await closer()
            except Exception:
                log.exception("closing %s failed", closer)
        self._finish_logs()
        for obs in self.observers:
            try:
                await asyncio.wait_for(obs.aclose(), 10.0)
            except Exception:
                log.exception("observer %s failed to close (ignored)", type(obs).__name__)

    def _finish_logs(self) -> None:
        if self.kernel is not None and self._out is not None:
            try:
                stats = self.kernel.finish()
                self._out.update_meta({"run": {"config": self.plan.config, "run_hash": stats.run_hash, "outputs": stats.outputs}})
            except Exception as exc:
                log.exception("kernel finish failed")
                self.error = self.error or exc
        for writer in (self._input, self._out):
            if writer is not None:
                writer.close()
        last = self._last_input_seq = self._input.last_seq if self._input is not None else 0
        self._input = None
        self._info.update({"stopped_at": _utc(self._clock.now_ns()), "stop_reason": self.stop_reason, "last_input_seq": last})
        write_json_atomic(self.dir / SESSION_JSON, self._info)


def _source_stats(source: object) -> dict[str, Any]:
    """The source's counters when it keeps any (``StreamSource.stats``: messages, events, bad, connects)."""
    stats = getattr(source, "stats", None)
    if stats is None:
        return {}
    return {k: v for k, v in ((n, getattr(stats, n, None)) for n in ("messages", "events", "bad", "connects")) if isinstance(v, int)}


def _sd_notifier() -> Any:
    """systemd notifications when ``tickloop.live.sdnotify`` exists and $NOTIFY_SOCKET is set; else None."""
    try:
        from tickloop.live.sdnotify import SdNotifier
    except ImportError:
        return None
    notifier = SdNotifier.from_env()
    return notifier if notifier.enabled else None
