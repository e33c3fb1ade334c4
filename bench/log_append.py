"""Benchmark the event log: append rate, zero-copy batch read rate, event decode rate.

Prints one JSON line::

    {"events": ..., "append_events_per_s": ..., "read_batches_rows_per_s": ...,
     "read_events_per_s": ..., "bytes_per_event": ..., ...}

Usage: ``python bench/log_append.py [--events 2000000] [--max-events 4096] [--dir DIR]``.
TradeReceived events only (the hot kind); the writer uses the backtest policy
(count-based flushes, fsync on roll/close). A benchmark, not a test: nothing asserts time.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from catalogs.log import FlushPolicy, LogReader, LogWriter
from engine.events import TradeReceived
from engine.identifiers import InstrumentId

_POOL = 100_000


def _trades(n: int) -> list[TradeReceived]:
    """A pool of distinct realistic trades (two symbols); the writer assigns seq."""
    symbols = (InstrumentId("BTCUSDT.SPOT"), InstrumentId("ETHUSDT.SPOT"))
    t0 = 1_700_000_000_000_000_000
    return [
        TradeReceived(
            0,
            t0 + i * 1_000_000,
            t0 + i * 1_000_000 + 250_000,
            symbols[i % 7 == 0],
            6_000_000_000_000 + (i * 7919) % 100_000_000,
            1_000 + (i * 104_729) % 10_000_000,
            3_000_000_000 + i,
            i % 3 == 0,
        )
        for i in range(n)
    ]


class _Clock:
    """Wall and process-CPU time since the previous lap."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self._wall, max(cpu - self._cpu, 1e-9))
        self._wall, self._cpu = wall, cpu
        return out


def run(events: int, max_events: int, directory: Path) -> dict[str, object]:
    pool = _trades(min(events, _POOL))
    log = directory / "bench-log"
    policy = FlushPolicy(max_events=max_events, max_interval_ns=None)

    clock = _Clock()
    with LogWriter(log, policy=policy) as writer:
        append = writer.append
        for i in range(events):
            append(pool[i % len(pool)])
    append_s, append_cpu = clock.lap()

    with LogReader(log) as reader:
        rows = 0
        checksum = 0
        for batch in reader.batches():
            rows += batch.length
            checksum += int(batch.ints["price"][-1])  # touch the data, as a consumer would
        batches_s, batches_cpu = clock.lap()

        decoded = 0
        for _ in reader.events():
            decoded += 1
        events_s, events_cpu = clock.lap()

    size = sum(p.stat().st_size for p in log.glob("*.arrows"))
    assert rows == decoded == events, (rows, decoded, events)
    return {
        "events": events,
        "max_events_per_batch": max_events,
        "append_events_per_s": round(events / append_s),
        "read_batches_rows_per_s": round(rows / batches_s),
        "read_events_per_s": round(decoded / events_s),
        "bytes_per_event": round(size / events, 1),
        # Per CPU second of this process: comparable when other processes share the cores.
        "append_events_per_cpu_s": round(events / append_cpu),
        "read_batches_rows_per_cpu_s": round(rows / batches_cpu),
        "read_events_per_cpu_s": round(decoded / events_cpu),
        "segments": len(list(log.glob("*.arrows"))),
        "checksum": checksum,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--max-events", type=int, default=4096)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the log (default: a temp dir)")
    args = parser.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="tickloop-bench-"))
    try:
        result = run(args.events, args.max_events, directory)
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            shutil.rmtree(directory / "bench-log", ignore_errors=True)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
