"""Child process of test_log_sigkill.py: appends a deterministic event stream forever.

Run as ``python _sigkill_writer.py LOGDIR MODE MAX_EVENTS INTERVAL_NS REPORT`` (MODE is
``count`` or ``time``). After every flush it appends the flushed seq as one line to
REPORT, so the parent knows what was durably handed to the OS when it SIGKILLs us.
The event stream is :func:`generate`, which the parent also uses to check the prefix.
"""

from __future__ import annotations

import os
import sys
import time

from catalogs.log import FlushPolicy, LogWriter
from engine.events import BookDeltaReceived, Event, QuoteReceived, RunFinished, TradeReceived
from engine.identifiers import InstrumentId


def generate(i: int) -> Event:
    """The i-th event (0-based): mostly trades, some book diffs, quotes and payload events.

    A new instrument appears every 997 events, so delta dictionaries are exercised.
    """
    instrument = InstrumentId(f"SYM{i // 997 % 7}USDT.SPOT") if i % 5 == 0 else InstrumentId("BTCUSDT.SPOT")
    ts = 1_700_000_000_000_000_000 + i * 1_000
    if i % 11 == 3:
        levels = tuple((6_000_000_000_000 + k, 100 + i % 17) for k in range(i % 4))
        return BookDeltaReceived(0, ts, ts + 7, instrument, i, i + 1, i - 1, levels, levels[:1])
    if i % 13 == 5:
        return QuoteReceived(0, ts, ts, instrument, i, 6_000_000_000_000, i, 6_000_100_000_000, 2 * i)
    if i % 101 == 7:
        return RunFinished(0, ts, ts, InstrumentId(""), i)
    return TradeReceived(
        0, ts, ts + 5, instrument, 6_000_000_000_000 + i % 1_000, 1 + i % 10_000, i, i % 2 == 0
    )


def main(argv: list[str]) -> None:
    logdir, mode, max_events, interval_ns, report_path = argv[1], argv[2], int(argv[3]), int(argv[4]), argv[5]
    timed = mode == "time"
    policy = FlushPolicy(
        max_events=max_events, max_interval_ns=interval_ns, segment_max_bytes=300_000, fsync=False
    )
    writer = LogWriter(
        logdir, policy=policy, monotonic_ns=time.monotonic_ns if timed else None, meta={"gen": 1}
    )
    report = os.open(report_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    reported = 0
    i = 0
    while True:
        writer.append(generate(i))
        i += 1
        if writer.flushed_seq != reported:
            reported = writer.flushed_seq
            os.write(report, f"{reported}\n".encode())
        if timed and i % 20 == 0:
            time.sleep(0.0005)


if __name__ == "__main__":
    main(sys.argv)
