"""The backtest driver: a log + a strategy config + a seed -> a run directory and a run hash.

A run directory (RUNDIR) *is* an event log (``catalogs.log``): every output event of the
kernel (RunStarted, signals, timers, commands, venue events, RunFinished) is appended by a
``LogWriter`` with ``monotonic_ns=None`` (count-only flushing, so the bytes are a function
of the events alone). Its manifest ``meta["run"]`` holds what ran: strategy, config
(canonical JSON), seed, input log path and digest, code version and, once the run is over,
the run hash. Nothing wall-clock enters the log or the hash; wall time is only reported in
the summary printed to the user.

Run identity: ``config_json`` is the canonical JSON (sorted keys, no spaces) of strategy,
params (every field, defaults included), seed, symbol filter, venue and risk; the default
RUNDIR is ``runs/<strategy>-<first 8 hex of sha256(config_json)>``, suffixed ``-2``, ``-3``...
rather than ever reusing an existing directory.

The venue: a run with a strategy trades on the simulated Binance spot venue
(``venues.sim``), configured by :mod:`replay.venue_config`; its *effective* configuration
(fees, latency, impact, fill and queue rules, balances, every symbol's rules) is the
``venue`` entry of ``config_json``, so it is in RunStarted and under the run hash. Commands
reach the venue after the latency model's order latency and its events come back after the
response latency, all on the kernel's queue; every command and every delivered venue event
is in the output log. A run without a strategy (raw replay) has no venue.

Risk: every run with a strategy has the risk engine (``engine.risk``) between the strategy
and the venue, wired with ``engine.risk.gate.attach_risk``: each command is decided
(``RiskApproved`` / ``RiskDenied`` in the output log), fills and marks feed risk's
positions and equity, breakers trip and the kill switch acts. Its configuration comes
from ``risk`` (human units, see :func:`replay.venue_config.load_risk_params`); without
one it starts from the venue's initial quote balance with every limit off, so it decides
and logs but never refuses. The effective risk config is the ``risk`` entry of
``config_json`` (under the run hash).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catalogs.manifest import code_version, read_manifest, write_manifest
from engine.errors import ConfigError, LogError, VenueMisbehaved
from engine.events import Event, RiskApproved, RiskDenied, TradeReceived
from engine.fixed import format_e8
from engine.kernel import RESPONSE, Kernel, KernelStats
from engine.ports import Chunk
from engine.risk import RiskedVenue, RiskEngine, attach_risk
from engine.strategy import config_dict
from replay.source import input_digest, log_chunks, open_log
from replay.venue_config import (
    RiskSetup,
    VenueBundle,
    VenueSettings,
    build_venue,
    resolve_risk,
    resolve_venue,
)
from strategies.registry import build_config, get_spec
from venues.sim.venue import SimVenue

DEFAULT_RUNS_ROOT = Path("runs")
VENUE_NAME = "sim"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did; ``to_json`` is the one JSON line the CLI prints last."""

    run_hash: str
    events: int
    wall_s: float
    orders: int
    fills: int
    signals: int
    timers: int
    rejections: int
    outputs: int
    out: str
    strategy: str
    seed: int
    config_hash: str
    input_digest: str
    chunks: int
    chunks_vectorised: int
    dropped: int = 0
    fees_paid: dict[str, str] = dataclasses.field(default_factory=dict)
    """Commission paid per asset (decimal text; negative = net rebate)."""
    balances: dict[str, str] = dataclasses.field(default_factory=dict)
    """Final free + locked per asset (decimal text)."""
    default_specs: list[str] = dataclasses.field(default_factory=list)
    """Instruments traded under the permissive default spec (no exchangeInfo for them)."""
    risk_approved: int = 0
    risk_denied: int = 0
    """Risk decisions in the output log (denials are also counted in ``rejections``)."""
    risk_halted: str = ""
    """The breaker holding at the end ("" when none): max_drawdown, daily_loss, kill_switch."""

    @property
    def events_per_s(self) -> float:
        return round(self.events / self.wall_s, 1) if self.wall_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["events_per_s"] = self.events_per_s
        d["wall_s"] = round(self.wall_s, 4)
        return d


class LogSink:
    """OutputSink over a LogWriter: checks that the writer's seq is the kernel's; counts risk's decisions."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self.risk_approved = 0
        self.risk_denied = 0

    def write(self, event: Event) -> None:
        t = type(event)
        if t is RiskApproved:
            self.risk_approved += 1
        elif t is RiskDenied:
            self.risk_denied += 1
        seq = self._writer.append(event)
        if seq != event.seq:
            raise LogError(f"output log assigned seq {seq} to an event the kernel numbered {event.seq}")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, plain ASCII: the same bytes for the same config everywhere."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def run_config(
    strategy: str | None,
    params: Sequence[str] | Mapping[str, Any],
    seed: int,
    symbol: str | None,
    venue: Mapping[str, Any] | None = None,
    risk: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's identity as plain JSON data (validates the strategy and its params).

    ``venue`` is the venue's effective configuration (``VenueSettings.effective``); None: no venue.
    ``risk`` is the risk engine's (``RiskSetup.effective``); None: no venue, so nothing to decide.
    """
    if strategy is None:
        if params:
            raise ConfigError("params given without a strategy")
        cfg: dict[str, Any] | None = None
    else:
        cfg = config_dict(build_config(strategy, params))
    return {
        "strategy": strategy,
        "params": cfg,
        "seed": seed,
        "symbol": symbol,
        "venue": {"name": VENUE_NAME, **venue} if venue is not None else None,
        "risk": dict(risk) if risk is not None else None,
    }


def seeded_rngs(seed: int) -> Any:
    """Per-strategy Generators derived from (seed, stable hash of the strategy id)."""

    def rng_for(strategy_id: str) -> np.random.Generator:
        salt = int.from_bytes(hashlib.sha256(strategy_id.encode()).digest()[:8], "little")
        return np.random.default_rng([seed, salt])

    return rng_for


def default_run_dir(strategy: str | None, config_hash: str, root: Path = DEFAULT_RUNS_ROOT) -> Path:
    """``root/<strategy>-<hash8>``, or the first of ``-2``, ``-3``... that does not exist."""
    base = root / f"{strategy or 'data'}-{config_hash[:8]}"
    return unused_dir(base)


def unused_dir(base: Path) -> Path:
    """``base`` if it does not exist, else ``base-2``, ``base-3``, ..."""
    if not base.exists():
        return base
    n = 2
    while (cand := base.with_name(f"{base.name}-{n}")).exists():
        n += 1
    return cand


def run_backtest(
    log_dir: str | Path,
    strategy: str | None,
    params: Sequence[str] | Mapping[str, Any] = (),
    *,
    seed: int = 0,
    symbol: str | None = None,
    out: str | Path | None = None,
    vectorised: bool = True,
    runs_root: Path = DEFAULT_RUNS_ROOT,
    venue: VenueSettings | None = None,
    risk: Mapping[str, Any] | None = None,
) -> RunSummary:
    """Replay ``log_dir`` through ``strategy`` (None: no strategy, raw kernel throughput).

    Writes the run's output log to ``out`` (must not exist; default under ``runs_root``)
    and returns the summary. ``vectorised=False`` forces the per-event path (same results).
    A strategy trades on the simulated venue configured by ``venue`` (default settings when
    None; see :mod:`replay.venue_config`), behind the risk engine configured by ``risk``
    (human-unit parameters as ``--risk``/``--risk-param`` give them; None: limits off).
    """
    from catalogs.log import LogWriter

    log_path = Path(log_dir)
    reader = open_log(log_path)
    with reader:
        bundle: VenueBundle | None = None
        effective: dict[str, Any] | None = None
        risk_setup: RiskSetup | None = None
        default_specs: list[str] = []
        if strategy is not None:
            build_config(strategy, params)  # a bad strategy or param fails before any log scan
            settings, symbols = resolve_venue(venue if venue is not None else VenueSettings(), reader, symbol)
            effective = settings.effective(symbols)
            default_specs = sorted(str(i) for i, c in symbols.items() if c.source == "default")
            bundle = build_venue(settings, symbols, seed)
            risk_setup = resolve_risk(risk or {}, settings, symbols)
        config = run_config(
            strategy, params, seed, symbol, effective, risk_setup.effective() if risk_setup is not None else None
        )
        config_json = canonical_json(config)
        config_hash = hashlib.sha256(config_json.encode()).hexdigest()
        digest = input_digest(reader)
        run_dir = Path(out) if out is not None else default_run_dir(strategy, config_hash, runs_root)
        if run_dir.exists():
            raise ConfigError(f"output directory {run_dir} already exists; a run never overwrites one")
        meta = {
            "run": {
                "strategy": strategy,
                "config": config,
                "config_json": config_json,
                "config_hash": config_hash,
                "seed": seed,
                "input_log": str(log_path.resolve()),
                "input_digest": digest,
                "code_version": code_version(),
            }
        }
        strat = get_spec(strategy).build(build_config(strategy, params)) if strategy is not None else None
        risk_engine = _risk_engine(risk_setup) if risk_setup is not None else None
        t0 = time.perf_counter()
        with LogWriter(run_dir, meta=meta, monotonic_ns=None) as writer:
            sink = LogSink(writer)
            kernel: Kernel
            if bundle is not None and risk_engine is not None:
                gate, risked = attach_risk(risk_engine, bundle.venue)
                kernel = VenueKernel(
                    sink,
                    venue=risked,
                    latency=bundle.latency,
                    risk=gate,
                    vectorised=vectorised,
                    rng_for=seeded_rngs(seed),
                )
            else:
                kernel = Kernel(sink, vectorised=vectorised, rng_for=seeded_rngs(seed))
            if strat is not None:
                kernel.add_strategy(strat)
            stats = kernel.run(
                log_chunks(reader, symbol=symbol), config_json=config_json, input_digest=digest
            )
            if isinstance(kernel, VenueKernel):
                kernel.sync_venue()
        wall = time.perf_counter() - t0
    account = account_summary(bundle.venue) if bundle is not None else {}
    _record_run_hash(run_dir, stats, account)
    summary = _summary(stats, wall, run_dir, strategy, seed, config_hash, digest)
    halted = risk_engine.halted if risk_engine is not None else None
    return dataclasses.replace(
        summary,
        default_specs=default_specs,
        fees_paid=account.get("fees_paid", {}),
        balances=account.get("balances", {}),
        risk_approved=sink.risk_approved,
        risk_denied=sink.risk_denied,
        risk_halted=halted.value if halted is not None else "",
    )


def _risk_engine(setup: RiskSetup) -> RiskEngine:
    """The run's risk engine, holding the positions the venue's base-asset balances imply."""
    engine = RiskEngine(setup.config)
    for iid, qty in setup.positions:
        engine.set_position(iid, qty, 0)
    return engine


def account_summary(venue: SimVenue) -> dict[str, dict[str, str]]:
    """Fees paid and final (free + locked) balances per asset, as exact decimal text."""
    acct = venue.account
    return {
        "fees_paid": {a: format_e8(v) for a, v in sorted(acct.fees_paid.items()) if v},
        "balances": {a: format_e8(acct.free_of(a) + acct.locked_of(a)) for a in acct.assets()},
    }


def _record_run_hash(run_dir: Path, stats: KernelStats, account: Mapping[str, Any]) -> None:
    """Put the run hash (and output counts, fees and final balances) into the closed log's manifest meta."""
    manifest = read_manifest(run_dir)
    meta = dict(manifest.meta)
    run = dict(meta.get("run", {}))
    run["run_hash"] = stats.run_hash
    run["events_in"] = stats.events_in
    run["outputs"] = stats.outputs
    run.update(account)
    meta["run"] = run
    write_manifest(run_dir, dataclasses.replace(manifest, meta=meta))


def _summary(
    stats: KernelStats,
    wall: float,
    run_dir: Path,
    strategy: str | None,
    seed: int,
    config_hash: str,
    digest: str,
) -> RunSummary:
    return RunSummary(
        run_hash=stats.run_hash,
        events=stats.events_in,
        wall_s=wall,
        orders=stats.orders,
        fills=stats.fills,
        signals=stats.signals,
        timers=stats.timers,
        rejections=stats.rejections,
        outputs=stats.outputs,
        out=str(run_dir),
        strategy=strategy or "",
        seed=seed,
        config_hash=config_hash,
        input_digest=digest,
        chunks=stats.chunks,
        chunks_vectorised=stats.chunks_vectorised,
        dropped=stats.dropped,
    )


class VenueKernel(Kernel):
    """The kernel with a specialised loop for trade-only chunks dispatched to a venue, the
    state and one strategy (the benchmarked hot path with a venue).

    Three things, all output-neutral (the tests compare against the plain Kernel):

    - Inlining: ``engine.kernel.Kernel._per_trade`` covers "state + one subscriber"; with a
      venue that wants trades too, the generic loop pays for a handler tuple and two more
      calls per trade. This loop runs the same steps in the same order (queue, clock, venue,
      state, callback, commands).
    - Deferral: while the venue says it is ``quiet`` (``SimVenue.quiet``: no open order, no
      per-trade statistics), a trade can only set its instrument's last price and L1 top and
      produces no event, so the loop keeps just the last trade per instrument and hands it
      over right before the venue's next input (a command arriving, another market event, a
      trade when it is no longer quiet). The venue ends in the state it would have reached.
    - Risk: when the venue is a :class:`~engine.risk.gate.RiskedVenue`, the risk engine is
      marked on *every* trade (its decisions and breakers need the latest price; O(1)) and
      only the inner venue is deferred. A trade that trips a breaker is handed over at once,
      so the kill switch acts on a venue that has seen everything before it.

    It leans on private members of Kernel (``_build_dispatch``, ``_per_trade``, ``_arrive``,
    ``_venue_market``); it belongs in ``engine/kernel.py``, where it should move.
    """

    _venue_trade: Any = None
    _deferred: dict[Any, Event] | None = None
    _risked: RiskedVenue | None = None
    _base: Any = None

    def _build_dispatch(self) -> None:
        super()._build_dispatch()
        venue = self._venue
        self._risked = venue if isinstance(venue, RiskedVenue) else None
        self._base = base = venue.inner if isinstance(venue, RiskedVenue) else venue
        handlers = self._table.get(TradeReceived, ())
        if len(handlers) == 3 and handlers[0] == self._venue_market and handlers[1] == self._state_trade:
            self._venue_trade = handlers[2]
            self._trade_handler = handlers[2]  # the base class then routes trade-only chunks to _per_trade
        if hasattr(base, "quiet"):
            self._deferred = {}

    def sync_venue(self) -> None:
        """Hand the venue the trades held back while it was quiet (before reading its state)."""
        deferred = self._deferred
        if deferred:
            on_market = self._base.on_market  # (risk has already seen them: only the inner venue)
            for ev in deferred.values():  # (a quiet venue uses no time: the next input sets its clock)
                out = on_market(ev, ev.ts_recv)
                if out:  # a quiet venue answers nothing: anything else is a bug in its `quiet`
                    raise VenueMisbehaved(
                        f"a venue that said it was quiet answered the trade at ts_recv={ev.ts_recv} "
                        f"of {ev.instrument} with {len(out)} events"
                    )
            deferred.clear()

    def _arrive(self, cmd: Any) -> None:
        if self._deferred:
            self.sync_venue()
        super()._arrive(cmd)

    def _venue_market(self, ev: Event) -> None:
        if self._deferred:
            self.sync_venue()
        super()._venue_market(ev)

    def _pass_on(self, risked: RiskedVenue, ev: Event) -> None:
        """The inner venue's part of a trade risk has already seen (``RiskedVenue.pass_on``)."""
        if self._deferred:
            self.sync_venue()
        now = self.clock.now
        out = risked.pass_on(ev, now)
        if out:
            due = now + self._latency.response_latency_ns(now)
            for vev in out:
                self._schedule(due, RESPONSE, vev)

    def _per_trade(self, chunk: Chunk, on_trade: Any) -> None:
        if self._venue_trade is None:
            super()._per_trade(chunk, on_trade)
            return
        heap = self._heap
        clock = self.clock
        outbox = self._outbox
        last_price = self._last_price
        base = self._base
        deferred = self._deferred
        risked = self._risked
        mark = risked.engine.on_trade if risked is not None else None
        now = clock.now
        for ev in chunk.events():
            ts = ev.ts_recv
            if heap and heap[0][0] <= ts:
                self._run_due(ts)
                now = clock.now
            if ts > now:
                now = clock.now = ts
            iid = ev.instrument
            price = ev.price  # type: ignore[attr-defined]
            if mark is not None:
                if mark(iid, price, now) or not (deferred is not None and base.quiet):
                    self._pass_on(risked, ev)  # type: ignore[arg-type]
                else:
                    deferred[iid] = ev
            elif deferred is not None and base.quiet:
                deferred[iid] = ev
            else:
                self._venue_market(ev)
            last_price[iid] = price
            on_trade(ev)
            if outbox:
                self._flush_commands()
