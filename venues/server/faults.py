"""Fault injection for tests of clients: what a real venue does on a bad day, on request.

One mutable :class:`Faults` per server, set from CLI flags at start and changed at runtime by
``POST /_tickloop/faults`` (JSON object of the fields below; localhost only). Counters count
down as faults fire, so ``{"error_next": 2}`` fails exactly the next two REST requests.

- ``drop_order_responses`` (N): the next N order placements (``POST /api/v3/order``,
  ``orderList/oco``, ``order/oco``) are executed by the venue, then the answer is dropped:
  ``drop_mode`` "close" closes the connection, "hang" never answers (the client times out).
- ``delay_ms`` delays every REST answer; ``delay_next`` (N) with ``delay_next_ms`` delays only
  the next N answers.
- ``error_next`` (N) with ``error_status`` (500/502/503/504 -> -1000 "An unknown error occurred
  while processing the request."; 429 -> -1003 with ``Retry-After: 1``): the next N REST
  requests fail *before* reaching the venue.
- ``disconnect_streams`` (once): every open WebSocket is closed at the next stream message;
  ``disconnect_every_s`` (> 0): repeat that every so many seconds.
- ``skip_depth_updates`` (N): the next N diff-depth messages are not sent (clients see a gap in
  ``U``/``u``), while the server's own book still applies them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from engine.errors import ConfigError

ERROR_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(slots=True)
class Faults:
    """The server's current fault settings (see module doc); mutate via :meth:`update`."""

    drop_order_responses: int = 0
    drop_mode: str = "close"
    delay_ms: int = 0
    delay_next: int = 0
    delay_next_ms: int = 0
    error_next: int = 0
    error_status: int = 503
    disconnect_streams: bool = False
    disconnect_every_s: float = 0.0
    skip_depth_updates: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a JSON object of changes; ConfigError naming the bad key or value (nothing applied then)."""
        known = {f.name: f.type for f in fields(self)}
        staged: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise ConfigError(f"unknown fault {key!r}; known: {', '.join(sorted(known))}")
            staged[key] = _coerce(key, value)
        for key, value in staged.items():
            setattr(self, key, value)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    # ----------------------------------------------------------------- consumed by the server

    def take_error(self) -> int | None:
        """The HTTP status to fail this request with, or None."""
        if self.error_next > 0:
            self.error_next -= 1
            return self.error_status
        return None

    def take_drop(self) -> str | None:
        """``drop_mode`` if this order placement's answer is to be dropped, else None."""
        if self.drop_order_responses > 0:
            self.drop_order_responses -= 1
            return self.drop_mode
        return None

    def take_delay_s(self) -> float:
        """Seconds to hold this answer back: ``delay_next_ms`` for the next ``delay_next`` answers, else ``delay_ms``."""
        if self.delay_next > 0:
            self.delay_next -= 1
            return self.delay_next_ms / 1000
        return self.delay_ms / 1000

    def take_skip_depth(self) -> bool:
        """True if this diff-depth message is to be skipped."""
        if self.skip_depth_updates > 0:
            self.skip_depth_updates -= 1
            return True
        return False

    def take_disconnect(self) -> bool:
        """True (once) if streams are to be disconnected now."""
        if self.disconnect_streams:
            self.disconnect_streams = False
            return True
        return False


def _coerce(key: str, value: Any) -> Any:
    if key == "drop_mode":
        if value not in ("close", "hang"):
            raise ConfigError(f"fault drop_mode must be 'close' or 'hang', got {value!r}")
        return value
    if key == "disconnect_streams":
        if not isinstance(value, bool):
            raise ConfigError(f"fault disconnect_streams must be true/false, got {value!r}")
        return value
    if key == "disconnect_every_s":
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"fault disconnect_every_s must be a number >= 0, got {value!r}")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"fault {key} must be an integer >= 0, got {value!r}")
    if key == "error_status" and value not in ERROR_STATUSES:
        raise ConfigError(f"fault error_status must be one of {sorted(ERROR_STATUSES)}, got {value}")
    return value
