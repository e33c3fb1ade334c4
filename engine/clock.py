"""The Clock port: the only way engine, strategies and venues learn the time.

``LiveClock`` is the single reader of the OS clock in ``engine/`` (the rules test
whitelists this module). ``ReplayClock`` is set by the kernel from the item it is
processing, so a backtest's notion of "now" is a pure function of the log.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What strategies and venues may ask: the current time in int ns (UTC epoch)."""

    def now_ns(self) -> int:
        """Current time, int nanoseconds since the Unix epoch."""
        ...


class LiveClock:
    """Wall-clock time for paper/live trading. Never used by a backtest."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()


class ReplayClock:
    """Replay time: whatever the kernel last set. Starts at 0 before the first item.

    The kernel guarantees it never runs backwards (see ``engine.kernel``).
    ``now`` is a plain attribute so the kernel's hot loop can set it without a call.
    """

    __slots__ = ("now",)

    def __init__(self, start_ns: int = 0) -> None:
        self.now = start_ns

    def now_ns(self) -> int:
        return self.now

    def advance_to(self, ts_ns: int) -> None:
        """Move to ``ts_ns`` unless that would go backwards (then hold)."""
        if ts_ns > self.now:
            self.now = ts_ns
