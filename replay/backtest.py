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
from engine.errors import ConfigError, LogError
from engine.events import Event
from engine.kernel import Kernel, KernelStats
from engine.strategy import config_dict
from replay.source import input_digest, log_chunks, open_log
from strategies.registry import build_config, get_spec

DEFAULT_RUNS_ROOT = Path("runs")
VENUE_NAME = "noop"
RISK_NAME = "pass-through"


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

    @property
    def events_per_s(self) -> float:
        return round(self.events / self.wall_s, 1) if self.wall_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["events_per_s"] = self.events_per_s
        d["wall_s"] = round(self.wall_s, 4)
        return d


class LogSink:
    """OutputSink over a LogWriter: checks that the writer's seq is the kernel's."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def write(self, event: Event) -> None:
        seq = self._writer.append(event)
        if seq != event.seq:
            raise LogError(f"output log assigned seq {seq} to an event the kernel numbered {event.seq}")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, plain ASCII: the same bytes for the same config everywhere."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def run_config(
    strategy: str | None, params: Sequence[str] | Mapping[str, Any], seed: int, symbol: str | None
) -> dict[str, Any]:
    """The run's identity as plain JSON data (validates the strategy and its params)."""
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
        "venue": VENUE_NAME,
        "risk": RISK_NAME,
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
) -> RunSummary:
    """Replay ``log_dir`` through ``strategy`` (None: no strategy, raw kernel throughput).

    Writes the run's output log to ``out`` (must not exist; default under ``runs_root``)
    and returns the summary. ``vectorised=False`` forces the per-event path (same results).
    """
    from catalogs.log import LogWriter

    config = run_config(strategy, params, seed, symbol)
    config_json = canonical_json(config)
    config_hash = hashlib.sha256(config_json.encode()).hexdigest()
    log_path = Path(log_dir)
    reader = open_log(log_path)
    with reader:
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
        t0 = time.perf_counter()
        with LogWriter(run_dir, meta=meta, monotonic_ns=None) as writer:
            kernel = Kernel(LogSink(writer), vectorised=vectorised, rng_for=seeded_rngs(seed))
            if strat is not None:
                kernel.add_strategy(strat)
            stats = kernel.run(
                log_chunks(reader, symbol=symbol), config_json=config_json, input_digest=digest
            )
        wall = time.perf_counter() - t0
    _record_run_hash(run_dir, stats)
    return _summary(stats, wall, run_dir, strategy, seed, config_hash, digest)


def _record_run_hash(run_dir: Path, stats: KernelStats) -> None:
    """Put the run hash (and output counts) into the closed log's manifest meta."""
    manifest = read_manifest(run_dir)
    meta = dict(manifest.meta)
    run = dict(meta.get("run", {}))
    run["run_hash"] = stats.run_hash
    run["events_in"] = stats.events_in
    run["outputs"] = stats.outputs
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
    )
