"""Binance's local-order-book procedure as one transition table.

Sources: the spot "How to manage a local order book correctly" steps and the USD-M/COIN-M
futures page of the same name, as summarised in ``shared/reference/binance-spot-semantics.md``
sections 12 and 13. Every (state, input) pair has an explicit entry in :data:`TRANSITIONS`;
nothing falls through implicitly, and a test checks the table is complete.

States (:class:`SyncState`):

``WAIT_SNAPSHOT``
    No book yet. Diffs are buffered (the recordings start with a few diffs, then the REST
    snapshot line).
``WAIT_BRIDGE``
    A full snapshot is loaded: the book is exact at ``lastUpdateId`` but no diff has been
    chained to it yet. Stale diffs are dropped; the first one kept must bridge the snapshot.
``SYNCED``
    The book is exact at ``last_update_id`` (the last applied diff's ``u``) and each new diff
    must continue the chain.
``RESYNC_NEEDED``
    The chain broke (a :class:`~engine.events.BookGapDetected` was emitted) or the upstream
    reported a gap. The book is discarded; diffs are buffered until a new snapshot arrives,
    which is then handled exactly like the first one.

Rules (``lid`` = snapshot lastUpdateId, ``last`` = book update id):

=========  ==========================================  =========================================
market     bridging a snapshot (WAIT_BRIDGE)           chaining (SYNCED)
=========  ==========================================  =========================================
spot       drop ``u <= lid``; need ``U <= lid+1``       drop ``u <= last``; gap if ``U > last+1``
           (``lid+1 <= u`` holds after the drop)        else apply (an overlap ``U <= last`` is
                                                       accepted: levels are absolute, step 5)
futures    drop ``u < lid``; need ``U <= lid <= u``     drop ``u <= last`` (duplicate);
                                                       gap if ``pu != last``
=========  ==========================================  =========================================

Decisions the docs leave open:

- **Crossed book.** After a consistent update a book cannot be crossed or locked (a matching
  engine never rests bid >= ask). If it is, the data or our sync is wrong: we emit
  ``BookGapDetected`` with a reason starting ``"crossed book"`` and go to ``RESYNC_NEEDED``,
  exactly like a gap, rather than raising: a live process must keep running and resync, and
  the event lands in the log where verification counts it. Exceptions are kept for misuse
  (wrong instrument, spot/futures mix-up, malformed ids).
- **Partial snapshots** (``depth5/10/20``, ``partial=True``) carry only the top levels, so
  they can neither seed nor repair a diff-built book; the machine ignores them in every state
  (a consumer fed only by a partial stream uses :meth:`L2Book.replace` directly).
- **Quotes** (``bookTicker``) never change the book: explicit no-ops here; comparing them with
  the book is replay.verify_book's job.
- **A full snapshot while a book exists**: older than the book -> ignored; same id while
  SYNCED -> the book is replaced and stays SYNCED (for futures the next diff chains by ``pu``);
  newer -> the book is replaced and must be bridged again (WAIT_BRIDGE).
- **BookGapDetected as input** (a gap marker recorded upstream, e.g. by the live adapter on a
  reconnect): with a book, the book is discarded (RESYNC_NEEDED) and nothing is re-emitted;
  without one it is a no-op (buffered diffs are kept: sequencing rejects any that don't chain).
- Events that are none of these inputs (trades, klines...) are explicit no-ops, so a driver
  may feed every event of the instrument.

The optional ``on_book_update(update_id)`` callback fires each time the book becomes exact at a
new update id (snapshot loaded, diff applied), including diffs drained from the buffer inside
one ``on_event`` call; verification uses it to compare quotes at exactly those ids.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from engine.book import L2Book
from engine.errors import BookError
from engine.events import (
    BookDeltaReceived,
    BookGapDetected,
    BookSnapshotReceived,
    Event,
    QuoteReceived,
)
from engine.identifiers import InstrumentId, Market, split_instrument_id

GAP_SEQUENCE = "sequence gap"
GAP_STALE_SNAPSHOT = "stale snapshot"
GAP_CROSSED = "crossed book"


class SyncState(StrEnum):
    """Where the local book is in Binance's procedure (see module doc)."""

    WAIT_SNAPSHOT = "WAIT_SNAPSHOT"
    WAIT_BRIDGE = "WAIT_BRIDGE"
    SYNCED = "SYNCED"
    RESYNC_NEEDED = "RESYNC_NEEDED"


class SyncInput(StrEnum):
    """The inputs the table distinguishes."""

    DELTA = "DELTA"
    SNAPSHOT = "SNAPSHOT"
    PARTIAL_SNAPSHOT = "PARTIAL_SNAPSHOT"
    QUOTE = "QUOTE"
    UPSTREAM_GAP = "UPSTREAM_GAP"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class SyncStats:
    """Counters of what the machine did; for reports and tests."""

    applied: int
    stale_dropped: int
    overlapping: int
    gaps: int
    crossed: int
    snapshots_loaded: int
    snapshots_ignored: int
    partial_ignored: int
    buffer_overflow: int


Handler = Callable[["BookSync", Event], SyncState]


class BookSync:
    """Keeps one instrument's L2 book in sync with a diff-depth stream plus REST snapshots.

    ``on_event(ev)`` returns the events the machine emits (``BookGapDetected``); read the
    book through ``book`` only while ``synced`` (the book is then exact at ``last_update_id``).
    """

    def __init__(
        self,
        instrument: str,
        market_is_futures: bool,
        *,
        max_buffer: int = 65536,
        on_book_update: Callable[[int], None] | None = None,
    ) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be >= 1, got {max_buffer}")
        self.instrument = InstrumentId(instrument)
        self.futures = market_is_futures
        self.on_book_update = on_book_update
        self._book = L2Book()
        self._state = SyncState.WAIT_SNAPSHOT
        self._last: int | None = None
        self._buffer: deque[BookDeltaReceived] = deque(maxlen=max_buffer)
        self._out: list[Event] = []
        self._applied = self._stale = self._overlap = self._gaps = self._crossed = 0
        self._snap_loaded = self._snap_ignored = self._partial = self._overflow = 0

    @classmethod
    def for_instrument(
        cls,
        instrument: str,
        *,
        max_buffer: int = 65536,
        on_book_update: Callable[[int], None] | None = None,
    ) -> BookSync:
        """Build with the market read from the id (``X.USDM``/``X.COINM`` are futures)."""
        _, market = split_instrument_id(instrument)
        futures = market in (Market.USDM, Market.COINM)
        return cls(instrument, futures, max_buffer=max_buffer, on_book_update=on_book_update)

    # ----------------------------------------------------------------- public

    def on_event(self, ev: Event) -> list[Event]:
        """Feed one event of this instrument; returns the gap markers it caused (often none)."""
        if ev.instrument != self.instrument:
            raise BookError(f"BookSync for {self.instrument} got an event of {ev.instrument} (seq {ev.seq})")
        kind = _INPUT_OF.get(type(ev), SyncInput.OTHER)
        if kind is SyncInput.SNAPSHOT and isinstance(ev, BookSnapshotReceived) and ev.partial:
            kind = SyncInput.PARTIAL_SNAPSHOT
        self._state = TRANSITIONS[(self._state, kind)](self, ev)
        out, self._out = self._out, []
        return out

    @property
    def book(self) -> L2Book:
        """The local book; meaningful only while ``synced``."""
        return self._book

    @property
    def state(self) -> SyncState:
        """Current state of the procedure."""
        return self._state

    @property
    def synced(self) -> bool:
        """True when the book equals the exchange's book at ``last_update_id``."""
        return self._state is SyncState.SYNCED or self._state is SyncState.WAIT_BRIDGE

    @property
    def last_update_id(self) -> int | None:
        """Update id the book is exact at, or None without a valid book."""
        return self._last

    @property
    def buffered(self) -> int:
        """Diffs waiting for a snapshot."""
        return len(self._buffer)

    @property
    def stats(self) -> SyncStats:
        """A snapshot of the counters."""
        return SyncStats(
            applied=self._applied,
            stale_dropped=self._stale,
            overlapping=self._overlap,
            gaps=self._gaps,
            crossed=self._crossed,
            snapshots_loaded=self._snap_loaded,
            snapshots_ignored=self._snap_ignored,
            partial_ignored=self._partial,
            buffer_overflow=self._overflow,
        )

    # ----------------------------------------------------------------- handlers: no book

    def _buffer_delta(self, ev: Event) -> SyncState:
        """WAIT_SNAPSHOT / RESYNC_NEEDED + DELTA: keep it for when the snapshot arrives."""
        delta = self._checked_delta(ev)
        self._push(delta)
        return self._state

    def _load_first_snapshot(self, ev: Event) -> SyncState:
        """WAIT_SNAPSHOT / RESYNC_NEEDED + SNAPSHOT: load it, then replay the buffer through the table."""
        assert isinstance(ev, BookSnapshotReceived)
        self._state = self._load(ev)
        pending = list(self._buffer)
        self._buffer.clear()
        for delta in pending:
            self._state = TRANSITIONS[(self._state, SyncInput.DELTA)](self, delta)
        return self._state

    # ----------------------------------------------------------------- handlers: with a book

    def _bridge_delta(self, ev: Event) -> SyncState:
        """WAIT_BRIDGE + DELTA: drop stale diffs; the first kept one must contain the snapshot id."""
        delta = self._checked_delta(ev)
        lid = self._last
        assert lid is not None
        first, last = delta.first_update_id, delta.last_update_id
        if self.futures:
            if last < lid:
                self._stale += 1
                return SyncState.WAIT_BRIDGE
            bridged = first <= lid
        else:
            if last <= lid:
                self._stale += 1
                return SyncState.WAIT_BRIDGE
            bridged = first <= lid + 1
        if not bridged:
            need = f"U <= {lid}" if self.futures else f"U <= {lid + 1}"
            return self._gap(
                delta,
                f"{GAP_STALE_SNAPSHOT}: lastUpdateId {lid}, first diff after it has "
                f"U={first} u={last} (need {need})",
                buffer=delta,
            )
        return self._apply(delta)

    def _chain_delta(self, ev: Event) -> SyncState:
        """SYNCED + DELTA: duplicates/stale dropped; a break in the chain is a gap."""
        delta = self._checked_delta(ev)
        last_id = self._last
        assert last_id is not None
        if delta.last_update_id <= last_id:
            self._stale += 1
            return SyncState.SYNCED
        if self.futures:
            if delta.prev_update_id != last_id:
                return self._gap(
                    delta, f"{GAP_SEQUENCE}: pu={delta.prev_update_id} != last u={last_id}", buffer=delta
                )
        elif delta.first_update_id > last_id + 1:
            return self._gap(
                delta, f"{GAP_SEQUENCE}: U={delta.first_update_id} > last u+1={last_id + 1}", buffer=delta
            )
        elif delta.first_update_id <= last_id:
            self._overlap += 1
        return self._apply(delta)

    def _snapshot_with_book(self, ev: Event) -> SyncState:
        """WAIT_BRIDGE / SYNCED + SNAPSHOT: older ignored, same id keeps the state, newer re-bridges."""
        assert isinstance(ev, BookSnapshotReceived)
        last_id = self._last
        assert last_id is not None
        if ev.last_update_id < last_id or (
            ev.last_update_id == last_id and self._state is SyncState.WAIT_BRIDGE
        ):
            self._snap_ignored += 1
            return self._state
        keep = self._state if ev.last_update_id == last_id else SyncState.WAIT_BRIDGE
        state = self._load(ev)
        return keep if state is SyncState.WAIT_BRIDGE else state

    def _upstream_gap_with_book(self, ev: Event) -> SyncState:
        """WAIT_BRIDGE / SYNCED + recorded BookGapDetected: the book is no longer trustworthy."""
        self._discard_book()
        return SyncState.RESYNC_NEEDED

    # ----------------------------------------------------------------- handlers: no-ops

    def _ignore_partial(self, ev: Event) -> SyncState:
        """Any state + partial snapshot: top-N only, useless for diff sequencing (module doc)."""
        self._partial += 1
        return self._state

    def _stay(self, ev: Event) -> SyncState:
        """Inputs that never change the book in this state (quotes, other kinds, redundant gaps)."""
        return self._state

    # ----------------------------------------------------------------- helpers

    def _checked_delta(self, ev: Event) -> BookDeltaReceived:
        assert isinstance(ev, BookDeltaReceived)
        if ev.first_update_id > ev.last_update_id:
            raise BookError(
                f"{self.instrument} seq {ev.seq}: diff with U={ev.first_update_id} > u={ev.last_update_id}"
            )
        if self.futures and ev.prev_update_id < 0:
            raise BookError(
                f"{self.instrument} seq {ev.seq}: futures sync got a diff without pu (a spot stream?)"
            )
        if not self.futures and ev.prev_update_id >= 0:
            raise BookError(
                f"{self.instrument} seq {ev.seq}: spot sync got a diff with pu={ev.prev_update_id} "
                "(a futures stream?)"
            )
        return ev

    def _load(self, snap: BookSnapshotReceived) -> SyncState:
        """Make the book the snapshot; returns WAIT_BRIDGE or, if it is crossed, RESYNC_NEEDED."""
        self._book.replace(snap.bids, snap.asks)
        self._last = snap.last_update_id
        self._snap_loaded += 1
        if self._book.is_crossed():
            return self._crossed_book(snap, snap.last_update_id, snap.last_update_id, buffer=None)
        if self.on_book_update is not None:
            self.on_book_update(snap.last_update_id)
        return SyncState.WAIT_BRIDGE

    def _apply(self, delta: BookDeltaReceived) -> SyncState:
        book = self._book
        book.bids.apply(delta.bids)
        book.asks.apply(delta.asks)
        self._applied += 1
        self._last = delta.last_update_id
        if book.is_crossed():
            return self._crossed_book(delta, delta.last_update_id, delta.first_update_id, buffer=delta)
        if self.on_book_update is not None:
            self.on_book_update(delta.last_update_id)
        return SyncState.SYNCED

    def _crossed_book(
        self, ev: Event, last_id: int, next_first: int, buffer: BookDeltaReceived | None
    ) -> SyncState:
        self._crossed += 1
        bid, ask = self._book.best_bid(), self._book.best_ask()
        return self._gap(
            ev,
            f"{GAP_CROSSED}: best bid {bid} >= best ask {ask} at update id {last_id}",
            buffer=buffer,
            last_id=last_id,
            next_first=next_first,
        )

    def _gap(
        self,
        ev: Event,
        reason: str,
        *,
        buffer: BookDeltaReceived | None,
        last_id: int | None = None,
        next_first: int | None = None,
    ) -> SyncState:
        """Emit the gap marker, discard the book, keep ``buffer`` for the next snapshot."""
        if last_id is None:
            last_id = self._last if self._last is not None else -1
        if next_first is None:
            next_first = buffer.first_update_id if buffer is not None else -1
        self._gaps += 1
        self._out.append(
            BookGapDetected(
                seq=0,
                ts_event=ev.ts_event,
                ts_recv=ev.ts_recv,
                instrument=self.instrument,
                last_update_id=last_id,
                next_first_update_id=next_first,
                reason=reason,
            )
        )
        self._discard_book()
        if buffer is not None:
            self._push(buffer)
        return SyncState.RESYNC_NEEDED

    def _push(self, delta: BookDeltaReceived) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self._overflow += 1  # the oldest diff falls out; sequencing catches any harm
        self._buffer.append(delta)

    def _discard_book(self) -> None:
        self._book.clear()
        self._last = None


_INPUT_OF: dict[type, SyncInput] = {
    BookDeltaReceived: SyncInput.DELTA,
    QuoteReceived: SyncInput.QUOTE,
    BookGapDetected: SyncInput.UPSTREAM_GAP,
    BookSnapshotReceived: SyncInput.SNAPSHOT,
}


_S = SyncState
_I = SyncInput
TRANSITIONS: dict[tuple[SyncState, SyncInput], Handler] = {
    # no book yet
    (_S.WAIT_SNAPSHOT, _I.DELTA): BookSync._buffer_delta,
    (_S.WAIT_SNAPSHOT, _I.SNAPSHOT): BookSync._load_first_snapshot,
    (_S.WAIT_SNAPSHOT, _I.PARTIAL_SNAPSHOT): BookSync._ignore_partial,
    (_S.WAIT_SNAPSHOT, _I.QUOTE): BookSync._stay,
    (_S.WAIT_SNAPSHOT, _I.UPSTREAM_GAP): BookSync._stay,
    (_S.WAIT_SNAPSHOT, _I.OTHER): BookSync._stay,
    # snapshot loaded, waiting for the diff that bridges it
    (_S.WAIT_BRIDGE, _I.DELTA): BookSync._bridge_delta,
    (_S.WAIT_BRIDGE, _I.SNAPSHOT): BookSync._snapshot_with_book,
    (_S.WAIT_BRIDGE, _I.PARTIAL_SNAPSHOT): BookSync._ignore_partial,
    (_S.WAIT_BRIDGE, _I.QUOTE): BookSync._stay,
    (_S.WAIT_BRIDGE, _I.UPSTREAM_GAP): BookSync._upstream_gap_with_book,
    (_S.WAIT_BRIDGE, _I.OTHER): BookSync._stay,
    # following the stream
    (_S.SYNCED, _I.DELTA): BookSync._chain_delta,
    (_S.SYNCED, _I.SNAPSHOT): BookSync._snapshot_with_book,
    (_S.SYNCED, _I.PARTIAL_SNAPSHOT): BookSync._ignore_partial,
    (_S.SYNCED, _I.QUOTE): BookSync._stay,
    (_S.SYNCED, _I.UPSTREAM_GAP): BookSync._upstream_gap_with_book,
    (_S.SYNCED, _I.OTHER): BookSync._stay,
    # the chain broke: buffer until a new snapshot
    (_S.RESYNC_NEEDED, _I.DELTA): BookSync._buffer_delta,
    (_S.RESYNC_NEEDED, _I.SNAPSHOT): BookSync._load_first_snapshot,
    (_S.RESYNC_NEEDED, _I.PARTIAL_SNAPSHOT): BookSync._ignore_partial,
    (_S.RESYNC_NEEDED, _I.QUOTE): BookSync._stay,
    (_S.RESYNC_NEEDED, _I.UPSTREAM_GAP): BookSync._stay,
    (_S.RESYNC_NEEDED, _I.OTHER): BookSync._stay,
}
"""The whole procedure: (state, input) -> handler returning the next state."""
