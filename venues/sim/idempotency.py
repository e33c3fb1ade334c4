"""A bounded, time-limited record of recent request ids (client order ids, list client order ids).

Why: a client that times out does not know whether its order reached the venue, and
the safe reaction is to resend the *same* request with the *same* client order id.
Binance only rejects a clientOrderId that an *open* order uses ("Duplicate order
sent."), so a retry of an order that has meanwhile filled or been cancelled would
create a second order. The simulator closes that hole: for ``ttl_ns`` after a request
id was accepted, an identical request with that id is rejected as a duplicate, and
the client reconciles by querying ``origClientOrderId``. A *different* request reusing
an id of a finished order is still accepted (Binance's rule). ``ttl_ns=0`` turns the
record off and leaves plain Binance behaviour.

Bounded in both directions so a week-long backtest with millions of orders keeps O(1)
memory here: entries older than ``ttl_ns`` are dropped lazily (insertion order is time
order because the venue's clock never goes back), and past ``capacity`` the oldest go.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class RecentRequests(Generic[T]):
    """``key -> (ts, request, ref)`` for the last ``ttl_ns`` nanoseconds, at most ``capacity`` keys."""

    __slots__ = ("_entries", "capacity", "ttl_ns")

    def __init__(self, ttl_ns: int, capacity: int) -> None:
        if ttl_ns < 0 or capacity < 0:
            raise ValueError(f"ttl_ns and capacity must be >= 0, got {ttl_ns}, {capacity}")
        self.ttl_ns = ttl_ns
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[int, T, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: int) -> None:
        entries = self._entries
        horizon = now - self.ttl_ns
        while entries:
            key, (ts, _, _) = next(iter(entries.items()))
            if ts > horizon:
                break
            del entries[key]

    def remember(self, key: str, request: T, ref: int, now: int) -> None:
        """Record that ``request`` with id ``key`` was accepted at ``now`` as ``ref`` (an order/list id)."""
        if not self.ttl_ns or not self.capacity:
            return
        entries = self._entries
        entries.pop(key, None)
        entries[key] = (now, request, ref)
        if len(entries) > self.capacity:
            entries.popitem(last=False)
        if len(entries) & 63 == 0:
            self._expire(now)

    def retry_of(self, key: str, request: T, now: int) -> int | None:
        """The ``ref`` of an accepted identical request with this id within the window, else None."""
        if not self.ttl_ns:
            return None
        hit = self._entries.get(key)
        if hit is None:
            return None
        ts, seen, ref = hit
        if now - ts >= self.ttl_ns:
            del self._entries[key]
            return None
        return ref if seen == request else None
