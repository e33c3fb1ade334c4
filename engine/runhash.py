"""The run hash: one SHA-256 that says "this run produced exactly these output events".

Canonical bytes of an event (:func:`canonical_bytes`) are its msgspec JSON encoding with
``order="deterministic"``:

- the tag field ``"type"`` (the class name) first, then every field in declaration order
  (field order is part of the event contract, see ``engine.events``), defaults included;
- no whitespace; ints in decimal; floats in msgspec's shortest round-trip form (signal
  values must be finite, :class:`engine.strategy.Context` enforces it); strings as UTF-8
  with JSON escapes; any dict keys sorted.

The run hash is SHA-256 over ``canonical_bytes(e) + b"\\n"`` for every output event ``e``
in output order, i.e. the SHA-256 of the run rendered as JSON Lines. Events carry their
output-log ``seq`` (1, 2, ...), replay-time stamps and nothing else: no wall-clock value,
no path, no host name ever enters it, so the same log + config + seed gives the same hash
across processes, ``PYTHONHASHSEED`` values and with or without numba.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from engine.events import Event

_ENCODER = msgspec.json.Encoder(order="deterministic")


def canonical_bytes(event: Event) -> bytes:
    """The event's canonical encoding (see module doc)."""
    return _ENCODER.encode(event)


class RunHasher:
    """Incremental run hash; feed output events in order."""

    __slots__ = ("_sha", "count")

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.count = 0

    def update(self, event: Event) -> None:
        """Add one output event."""
        self._sha.update(_ENCODER.encode(event) + b"\n")
        self.count += 1

    def hexdigest(self) -> str:
        """The hash of everything fed so far (64 hex digits); feeding may continue."""
        return self._sha.hexdigest()


def run_hash(events: Iterable[Event]) -> str:
    """Run hash of a whole sequence of output events (e.g. read back from a run's log)."""
    hasher = RunHasher()
    for ev in events:
        hasher.update(ev)
    return hasher.hexdigest()
