"""Wiring the risk engine into today's kernel without changing the kernel.

The kernel's :class:`~engine.ports.RiskGate` port only answers "refuse or not" and never
tells risk about fills or prices. Until the port grows (see ``docs/risk.md``, "Port
change"), two small adapters close the loop:

- :class:`KernelRiskGate` is the kernel's ``risk``: it asks :class:`RiskEngine` and returns
  the :class:`~engine.events.RiskDenied` event as the refusal (the kernel logs it and hands
  it to the strategy, which sees an ``OrderRejected``); an approval is kept until the
  command reaches the venue.
- :class:`RiskedVenue` is the kernel's ``venue``: it wraps the real one, so it sees every
  approved command on arrival (and emits its :class:`~engine.events.RiskApproved` first),
  every venue event (fills -> positions), and the market kinds risk needs (marks) before
  the inner venue does. Breaker trips and kill-switch events it returns as venue events, and
  it sends the kill-switch commands straight to the inner venue.

Use :func:`attach_risk`::

    gate, venue = attach_risk(RiskEngine(config), SimVenue(...))
    kernel = Kernel(sink, venue=venue, risk=gate, ...)

Known differences from the port change (all in the log's timing, none in the decisions):
an approval is logged when its command's venue response is (after the latency), not right
after the command; kill-switch commands reach the venue at once and are logged inside
``KillSwitchEngaged`` rather than as ``CommandIssued``.
"""

from __future__ import annotations

from engine.events import (
    AggTradeReceived,
    Event,
    OperatorRequested,
    RiskApproved,
    RiskDenied,
    TradeReceived,
)
from engine.orders import AnyCommand
from engine.ports import NoopVenue, Venue
from engine.risk.engine import RiskEngine


class KernelRiskGate:
    """The kernel's :class:`~engine.ports.RiskGate`: decides with a :class:`RiskEngine`."""

    def __init__(self, engine: RiskEngine) -> None:
        self.engine = engine
        self._approved: dict[int, tuple[AnyCommand, RiskApproved]] = {}

    def check(self, command: AnyCommand, strategy_id: str, now_ns: int) -> Event | None:
        decision = self.engine.decide(command, strategy_id, now_ns)
        if isinstance(decision, RiskDenied):
            return decision
        self._approved[id(command)] = (command, decision)
        return None

    def take_approval(self, command: AnyCommand) -> RiskApproved | None:
        """The approval of ``command`` (the very object the kernel checked), once."""
        entry = self._approved.pop(id(command), None)
        if entry is None or entry[0] is not command:
            return None
        return entry[1]

    @property
    def pending(self) -> int:
        """Approved commands that have not reached the venue yet."""
        return len(self._approved)


class RiskedVenue:
    """A :class:`~engine.ports.Venue` that lets the risk engine watch (and act on) everything."""

    def __init__(self, inner: Venue, gate: KernelRiskGate) -> None:
        self.inner = inner
        self.gate = gate
        self.engine = engine = gate.engine
        self._inner_kinds = inner.market_kinds
        self._risk_kinds = engine.market_kinds
        self._kinds = self._inner_kinds | self._risk_kinds
        self._on_trade = engine.on_trade
        self._inner_market = inner.on_market

    @property
    def market_kinds(self) -> frozenset[int]:
        return self._kinds

    def handle(self, command: AnyCommand, ts: int) -> list[Event]:
        out: list[Event] = []
        approval = self.gate.take_approval(command)
        if approval is not None:
            out.append(approval)
        self._observe(self.inner.handle(command, ts), ts, out)
        return out

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        ts = now_ns if now_ns is not None else event.ts_recv
        self.mark(event, ts)
        return self.pass_on(event, now_ns)

    def mark(self, event: Event, ts: int) -> None:
        """Let risk see one market event (a trade is the O(1) hot path); the inner venue does not."""
        t = type(event)
        if t is TradeReceived or t is AggTradeReceived:
            self._on_trade(event.instrument, event.price, ts)  # type: ignore[attr-defined]
        elif event.kind in self._risk_kinds:
            self.engine.on_market(event, ts)

    def pass_on(self, event: Event, now_ns: int | None = None) -> list[Event]:
        """The inner venue's part of :meth:`on_market` (after :meth:`mark`), and whatever risk has to say.

        Split from :meth:`mark` so a driver that holds trades back from a quiet inner venue
        (``replay.backtest.VenueKernel``) still marks risk on every trade, as it must: a
        decision and the breakers need the latest price, not the last one the venue saw.
        """
        ts = now_ns if now_ns is not None else event.ts_recv
        if event.kind in self._inner_kinds:
            events = self._inner_market(event, now_ns)
            if events or self.engine.has_output:
                out: list[Event] = []
                self._observe(events, ts, out)
                return out
            return events
        return self.flush(ts)

    def flush(self, ts: int) -> list[Event]:
        """Risk's pending breaker / kill-switch events (its commands already sent to the inner venue)."""
        if not self.engine.has_output:
            return []
        out: list[Event] = []
        self._flush(ts, out)
        return out

    def observe(self, event: Event, ts: int) -> list[Event]:
        """An input the kernel shows the venue object (``Kernel._venue_input`` / ``_operator_input``).

        - A venue event that came in the source (a live venue answers asynchronously): risk
          learns the fill or the order's end, as from :meth:`handle`'s answers.
        - ``OperatorRequested``: ``kill`` engages the kill switch (cancel all; flatten as
          configured), ``reset`` lifts a halt. Any other action is ignored here (logged by
          the kernel all the same).

        Returns what risk has to say (breaker, kill-switch and reset events, and the inner
        venue's answers to the kill switch's commands); the kernel delivers them after ``event``.
        """
        engine = self.engine
        if type(event) is OperatorRequested:
            assert isinstance(event, OperatorRequested)
            reason = event.reason or f"operator {event.action} ({event.origin or 'unknown origin'})"
            if event.action == "kill":
                engine.engage_kill_switch(ts, reason)
            elif event.action == "reset":
                engine.reset(ts, reason)
        else:
            engine.on_venue_event(event, ts)
        return self.flush(ts)

    def _observe(self, events: list[Event], ts: int, out: list[Event]) -> None:
        engine = self.engine
        for ev in events:
            engine.on_venue_event(ev, ts)
            out.append(ev)
        if engine.has_output:
            self._flush(ts, out)

    def _flush(self, ts: int, out: list[Event]) -> None:
        """Breaker/kill-switch events, then the kill switch's commands sent to the inner venue."""
        engine = self.engine
        while engine.has_output:
            events, commands = engine.drain()
            out.extend(events)
            for cmd in commands:
                for ev in self.inner.handle(cmd, ts):
                    engine.on_venue_event(ev, ts)
                    out.append(ev)


def attach_risk(engine: RiskEngine, venue: Venue | None = None) -> tuple[KernelRiskGate, RiskedVenue]:
    """``(risk, venue)`` for ``Kernel(..., risk=risk, venue=venue)``: ``venue`` (default: none) behind risk."""
    gate = KernelRiskGate(engine)
    return gate, RiskedVenue(venue if venue is not None else NoopVenue(), gate)
