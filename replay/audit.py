"""Audit replay: re-run a live or paper session's input through the same strategy and risk code.

DESIGN.md section 4: "replaying a *live* session's log with its recorded venue events must make
the strategy and risk code emit exactly the commands that were recorded". A session directory
(``tickloop paper|live --out SESSION``) holds::

    SESSION/session.json   what ran (mode, strategy, params, risk, venue; no secrets)
    SESSION/input/         every event fed to the kernel, in order (market data, venue answers
                           of a live venue, operator requests, reconciliation)
    SESSION/out/           every event the kernel emitted (RunStarted, signals, commands, risk
                           decisions, venue events, RunFinished)

The audit rebuilds the kernel from the *recorded* configuration (``RunStarted.config_json`` of
``out``, so nothing read from today's flags or files can change the verdict), feeds it
``input`` with the push API (``start`` at the recorded RunStarted time, then the log's
chunks, then ``finish``) and compares, in order, every decision: each ``CommandIssued`` and
every risk event (approved, denied, breaker, kill switch, reset). A paper session replays its
simulated venue too (rebuilt from ``session.json``'s venue source and checked against the
recorded effective venue config); a live session's venue answers are in ``input``, so the
venue of the replay answers nothing (:class:`SilentVenue`).

The pieces both sides need (strategy, risk engine, the risk-wrapped venue) are built here by
:func:`build_strategy_and_risk`, which the live session (``tickloop.live.session``) uses as
well: the same function on both sides is what makes "live == replay" checkable.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from engine.errors import ConfigError, LogError
from engine.events import (
    CircuitBreakerTripped,
    CommandIssued,
    Event,
    InstrumentUpdated,
    KillSwitchEngaged,
    OperatorRequested,
    RiskApproved,
    RiskDenied,
    RiskReset,
    RunFinished,
    RunStarted,
)
from engine.identifiers import InstrumentId
from engine.kernel import Kernel
from engine.orders import AnyCommand
from engine.ports import ListSink, OutputSink, Venue
from engine.risk import RiskConfig, RiskEngine
from engine.risk.gate import KernelRiskGate, RiskedVenue, attach_risk
from engine.strategy import Strategy

SESSION_JSON = "session.json"
INPUT_DIR = "input"
OUT_DIR = "out"
DECISION_TYPES: tuple[type[Event], ...] = (
    CommandIssued,
    RiskApproved,
    RiskDenied,
    CircuitBreakerTripped,
    KillSwitchEngaged,
    RiskReset,
)
"""What the audit compares: everything strategy and risk decided."""
_RISK_EXTRA_KEYS = ("engine", "quote_asset", "initial_positions")


# --------------------------------------------------------------------------- shared wiring


class SilentVenue:
    """The venue of a live session's replay: takes every command, answers nothing.

    A live venue answers asynchronously; its answers are in the session's input and reach
    the kernel from there, exactly as they did live.
    """

    @property
    def market_kinds(self) -> frozenset[int]:
        return frozenset()

    def handle(self, command: AnyCommand, ts: int) -> list[Event]:
        return []

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        return []


class _ObservingRiskedVenue(RiskedVenue):
    """``RiskedVenue`` with ``observe`` (venue answers and operator requests from the input).

    Used only when ``engine.risk.gate.RiskedVenue`` itself has no ``observe`` (see the
    module doc of ``tickloop.live.session``): the kernel calls ``observe`` on its venue for
    every venue event and OperatorRequested in the input, and risk must see them.
    """

    def observe(self, event: Event, ts: int) -> list[Event]:
        engine = self.engine
        if isinstance(event, OperatorRequested):
            reason = event.reason or event.origin or "operator"
            if event.action == "kill":
                engine.engage_kill_switch(ts, reason)
            elif event.action == "reset":
                engine.reset(ts, reason)
        else:
            engine.on_venue_event(event, ts)
        out: list[Event] = []
        if engine.has_output:
            self._flush(ts, out)
        return out


def risked_venue(engine: RiskEngine, inner: Venue) -> tuple[KernelRiskGate, RiskedVenue]:
    """``attach_risk`` whose venue is sure to have ``observe`` (what a live input needs)."""
    gate, venue = attach_risk(engine, inner)
    if not callable(getattr(venue, "observe", None)):
        venue = _ObservingRiskedVenue(inner, gate)
    return gate, venue


def risk_engine_from_effective(risk: Mapping[str, Any]) -> RiskEngine:
    """A RiskEngine from a recorded ``risk`` entry (``RiskSetup.effective()``: e8 ints, positions)."""
    fields = {k: v for k, v in risk.items() if k not in _RISK_EXTRA_KEYS}
    try:
        config = msgspec.convert(fields, RiskConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"recorded risk config is not a RiskConfig: {exc}") from None
    engine = RiskEngine(config)
    for iid, qty in sorted(dict(risk.get("initial_positions", {})).items()):
        engine.set_position(InstrumentId(iid), int(qty), 0)
    return engine


def build_strategy(name: str, params: Mapping[str, Any]) -> Strategy[Any]:
    """The strategy of a session from its recorded params (every field, canonical values)."""
    from strategies.registry import build_config, get_spec

    return get_spec(name).build(build_config(name, dict(params)))


@dataclass(frozen=True, slots=True)
class KernelParts:
    """What a session's kernel is made of, ready for ``Kernel(sink, venue=..., risk=..., latency=...)``."""

    strategy: Strategy[Any]
    gate: KernelRiskGate
    venue: RiskedVenue
    latency: Any
    seed: int

    def kernel(self, sink: OutputSink) -> Kernel:
        from replay.backtest import seeded_rngs

        kernel = Kernel(sink, venue=self.venue, latency=self.latency, risk=self.gate, rng_for=seeded_rngs(self.seed))
        kernel.add_strategy(self.strategy)
        return kernel


def build_parts(config: Mapping[str, Any], inner: Venue, latency: Any = None) -> KernelParts:
    """Strategy + risk around ``inner`` from a session config (``RunStarted.config_json``)."""
    from engine.ports import ZeroLatency

    strategy = build_strategy(str(config["strategy"]), config.get("params") or {})
    gate, venue = risked_venue(risk_engine_from_effective(config["risk"]), inner)
    return KernelParts(strategy, gate, venue, latency if latency is not None else ZeroLatency(), int(config.get("seed", 0)))


# --------------------------------------------------------------------------- paper venue


def instrument_raws(events: Iterable[Event]) -> dict[InstrumentId, dict[str, Any]]:
    """The first exchangeInfo entry per instrument among ``events`` (InstrumentUpdated)."""
    out: dict[InstrumentId, dict[str, Any]] = {}
    for ev in events:
        if isinstance(ev, InstrumentUpdated) and ev.instrument not in out:
            doc = json.loads(ev.raw)
            if isinstance(doc, dict):
                out[ev.instrument] = doc
    return out


def paper_venue(
    venue_source: Mapping[str, Any], raws: Mapping[InstrumentId, Mapping[str, Any]], has_depth: bool, seed: int
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """The simulated venue of a paper session: ``(settings, symbols, VenueBundle, effective)``.

    ``venue_source`` is ``{"config_file": PATH | None, "flags": {...}}`` (what
    ``session.json`` records); the symbols' rules are the exchangeInfo entries the session
    logged as InstrumentUpdated; ``--fill auto`` is l2 when the session streams depth.
    """
    from replay.venue_config import SymbolChoice, build_venue, load_settings, with_fill_resolved

    settings = load_settings(venue_source.get("config_file"), dict(venue_source.get("flags") or {}))
    settings = with_fill_resolved(settings, has_depth)
    symbols = {iid: SymbolChoice("log", dict(raw)) for iid, raw in sorted(raws.items())}
    return settings, symbols, build_venue(settings, symbols, seed), {"name": "sim", **settings.effective(symbols)}


# --------------------------------------------------------------------------- the audit


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first place the replay decided differently: index among decisions and both sides."""

    index: int
    seq: int
    recorded: dict[str, Any] | None
    replayed: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The audit's verdict (``to_json`` is the CLI's JSON line)."""

    session: str
    mode: str
    divergences: int
    compared: int
    recorded_decisions: int
    replayed_decisions: int
    complete: bool
    """False when the recorded out log has no RunFinished (the session crashed): only the
    common prefix is compared, since the crash may have lost either log's unflushed tail."""
    first: Divergence | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _as_json(ev: Event) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(ev)
    return out


def read_session_json(session: Path) -> dict[str, Any]:
    path = session / SESSION_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LogError(f"{path}: cannot read the session description: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise LogError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise LogError(f"{path}: expected a JSON object")
    return doc


def _recorded(session: Path) -> tuple[RunStarted, list[Event], bool]:
    from catalogs.log import LogReader

    out_dir = session / OUT_DIR
    if not out_dir.is_dir():
        raise LogError(f"{out_dir}: no output log (a record-only session has nothing to audit)")
    started: RunStarted | None = None
    decisions: list[Event] = []
    finished = False
    with LogReader(out_dir) as reader:
        for ev in reader.events():
            if isinstance(ev, RunStarted) and started is None:
                started = ev
            elif isinstance(ev, DECISION_TYPES):
                decisions.append(ev)
            elif isinstance(ev, RunFinished):
                finished = True
    if started is None:
        raise LogError(f"{out_dir}: no RunStarted event: not a session output log")
    return started, decisions, finished


def replay_session(session: str | Path, sink: OutputSink | None = None) -> tuple[dict[str, Any], OutputSink]:
    """Re-run ``session``'s input through the recorded strategy/risk (+ venue); the replay's outputs."""
    from catalogs.log import LogReader
    from replay.source import log_chunks

    root = Path(session)
    started, _, _ = _recorded(root)
    config: dict[str, Any] = json.loads(started.config_json)
    mode = config.get("mode")
    sink = sink if sink is not None else ListSink()
    with LogReader(root / INPUT_DIR) as reader:
        if mode == "paper":
            info = read_session_json(root)
            raws = instrument_raws(reader.events())
            _, _, bundle, effective = paper_venue(
                info.get("venue_source") or {}, raws, bool(config.get("has_depth")), int(config.get("seed", 0))
            )
            if effective != config.get("venue"):
                raise ConfigError(
                    f"{root / SESSION_JSON}: the venue rebuilt from its venue_source differs from the recorded one "
                    "(a venue or exchangeInfo file changed since the session ran)"
                )
            parts = build_parts(config, bundle.venue, bundle.latency)
        elif mode == "live":
            parts = build_parts(config, SilentVenue())
        else:
            raise ConfigError(f"{root}: recorded mode {mode!r} cannot be audited (paper and live can)")
        kernel = parts.kernel(sink)
        kernel.start(config_json=started.config_json, input_digest=started.input_digest, first_ts=started.ts_recv)
        for chunk in log_chunks(reader):
            kernel.feed(chunk)
        kernel.finish()
    return config, sink


def _decisions(events: Iterable[Event]) -> Iterator[Event]:
    return (ev for ev in events if isinstance(ev, DECISION_TYPES))


def compare(recorded: Sequence[Event], replayed: Sequence[Event], complete: bool) -> tuple[int, int, Divergence | None]:
    """(divergences, compared, first): position-by-position over the decisions.

    With ``complete`` False only the common prefix counts (the crash tail is unknown).
    """
    n = max(len(recorded), len(replayed)) if complete else min(len(recorded), len(replayed))
    count, first = 0, None
    for i in range(n):
        a = recorded[i] if i < len(recorded) else None
        b = replayed[i] if i < len(replayed) else None
        if a != b:
            count += 1
            if first is None:
                seq = a.seq if a is not None else (b.seq if b is not None else 0)
                first = Divergence(i, seq, _as_json(a) if a is not None else None, _as_json(b) if b is not None else None)
    return count, n, first


def audit_session(session: str | Path) -> AuditReport:
    """Replay ``session`` and compare every decision with its out log (see module doc)."""
    root = Path(session)
    _, recorded, complete = _recorded(root)
    config, sink = replay_session(root)
    assert isinstance(sink, ListSink)
    replayed = list(_decisions(sink.events))
    count, compared, first = compare(recorded, replayed, complete)
    return AuditReport(
        session=str(root),
        mode=str(config.get("mode")),
        divergences=count,
        compared=compared,
        recorded_decisions=len(recorded),
        replayed_decisions=len(replayed),
        complete=complete,
        first=first,
    )
