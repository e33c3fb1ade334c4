"""Rebuild each instrument's L2 book from a log and check it against every alignable bookTicker.

Why it is exact: after a diff ``[U..u]`` is applied the local book equals the exchange's book
at update id ``u`` -- and only there; the states at ids strictly inside ``[U, u)`` are folded
into the diff and cannot be observed. A bookTicker carries the update id ``x`` of the book it
describes, so it is *checkable* exactly when the book becomes exact at ``x``: when a diff with
``u == x`` is applied (or a snapshot with ``lastUpdateId == x`` is loaded) while synced. Then
best bid and best ask, price AND size, must be equal; any difference is a mismatch.

Ordering: spot bookTickers are pushed in real time while diffs come every 100 ms, so a quote
usually arrives *before* the diff that contains its id. Each instrument keeps a FIFO of
pending quotes, resolved whenever the book becomes exact at a new id ``v`` (the sync machine's
``on_book_update`` callback, which also fires for diffs drained from the buffer when the
snapshot arrives): quotes with ``x == v`` are compared, quotes with ``x < v`` are skipped and
counted by cause. A quote can also arrive *after* the book reached its id (futures
``depth@0ms`` often beats the bookTicker): the checker keeps the top of book at the last
``RECENT_TOPS`` ids the book was exact at, so such a quote is still compared exactly.

Skip causes: ``unaligned`` (x strictly inside an applied diff's range), ``before_sync``
(x before the first snapshot's lastUpdateId), ``during_gap`` (x fell where the book was not
followed: between a gap and the resync, or skipped by a newer snapshot), ``late`` (arrived
after the book passed x and x is older than the ring: unknowable), ``unresolved`` (the log ended before the book reached x).

A report is ``ok`` when nothing mismatched, no crossed book was seen, and every instrument that
has quotes had at least one checked: zero checked with quotes present means the ids never
lined up, which is a bug (wrong stream, wrong market rules), not a pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.booksync import BookSync
from engine.events import (
    BookDeltaReceived,
    BookGapDetected,
    BookSnapshotReceived,
    Event,
    QuoteReceived,
)
from engine.fixed import format_e8
from engine.identifiers import split_instrument_id

MAX_DETAILS = 5
"""How many mismatches and gap reasons a report keeps verbatim."""

RECENT_TOPS = 4096
"""How many (update id -> top of book) entries are kept for quotes that arrive late."""

Top = tuple[int, int, int, int]
"""(bid price, bid qty, ask price, ask qty), e8; an empty side is (0, 0)."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One bookTicker the rebuilt book disagreed with."""

    seq: int
    instrument: str
    update_id: int
    expected: Top
    book: Top

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "instrument": self.instrument,
            "update_id": self.update_id,
            "expected": _top_json(self.expected),
            "book": _top_json(self.book),
        }


@dataclass(frozen=True, slots=True)
class InstrumentReport:
    """Verification figures of one instrument."""

    instrument: str
    futures: bool
    quotes: int
    checked: int
    mismatched: int
    skipped_unaligned: int
    skipped_before_sync: int
    skipped_during_gap: int
    skipped_late: int
    unresolved: int
    deltas: int
    deltas_applied: int
    deltas_stale: int
    deltas_overlapping: int
    snapshots: int
    gaps: int
    crossed: int
    gap_reasons: tuple[str, ...]
    mismatches: tuple[Mismatch, ...]

    @property
    def skipped(self) -> int:
        """All quotes not compared, whatever the cause."""
        return (
            self.skipped_unaligned
            + self.skipped_before_sync
            + self.skipped_during_gap
            + self.skipped_late
            + self.unresolved
        )

    @property
    def ok(self) -> bool:
        """No mismatch, no crossed book, and something checked if there was anything to check."""
        return self.mismatched == 0 and self.crossed == 0 and (self.quotes == 0 or self.checked > 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "instrument": self.instrument,
            "market": "futures" if self.futures else "spot",
            "ok": self.ok,
            "quotes": self.quotes,
            "checked": self.checked,
            "mismatched": self.mismatched,
            "skipped": {
                "total": self.skipped,
                "unaligned": self.skipped_unaligned,
                "before_sync": self.skipped_before_sync,
                "during_gap": self.skipped_during_gap,
                "late": self.skipped_late,
                "unresolved": self.unresolved,
            },
            "deltas": {
                "total": self.deltas,
                "applied": self.deltas_applied,
                "stale_dropped": self.deltas_stale,
                "overlapping": self.deltas_overlapping,
            },
            "snapshots": self.snapshots,
            "gaps": self.gaps,
            "crossed": self.crossed,
            "gap_reasons": list(self.gap_reasons),
            "first_mismatches": [m.to_json() for m in self.mismatches],
        }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of :func:`verify_book` over one log."""

    symbol: str | None
    instruments: tuple[InstrumentReport, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.instruments)

    @property
    def checked(self) -> int:
        return sum(r.checked for r in self.instruments)

    @property
    def mismatched(self) -> int:
        return sum(r.mismatched for r in self.instruments)

    def by_instrument(self, instrument: str) -> InstrumentReport:
        """The report of one instrument id; KeyError names the ones present."""
        for r in self.instruments:
            if r.instrument == instrument:
                return r
        raise KeyError(f"{instrument} not in report (have {[r.instrument for r in self.instruments]})")

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "symbol": self.symbol,
            "checked": self.checked,
            "mismatched": self.mismatched,
            "skipped": sum(r.skipped for r in self.instruments),
            "quotes": sum(r.quotes for r in self.instruments),
            "instruments": [r.to_json() for r in self.instruments],
        }


class _Checker:
    """One instrument's sync machine plus its queue of quotes waiting for their update id."""

    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        self.sync = BookSync.for_instrument(instrument, on_book_update=self._book_exact_at)
        self.pending: deque[QuoteReceived] = deque()
        self.loading_snapshot = False
        self.ever_synced = False
        self.quotes = self.checked = self.mismatched = 0
        self.unaligned = self.before_sync = self.during_gap = self.late = 0
        self.deltas = self.snapshots = 0
        self.gap_reasons: list[str] = []
        self.mismatches: list[Mismatch] = []
        self.recent: dict[int, Top] = {}
        self.recent_ids: deque[int] = deque()

    def feed(self, ev: Event) -> None:
        if isinstance(ev, QuoteReceived):
            self._quote(ev)
            return
        if isinstance(ev, BookDeltaReceived):
            self.deltas += 1
        elif isinstance(ev, BookSnapshotReceived) and not ev.partial:
            self.snapshots += 1
            self.loading_snapshot = True
        for out in self.sync.on_event(ev):
            if isinstance(out, BookGapDetected) and len(self.gap_reasons) < MAX_DETAILS:
                self.gap_reasons.append(f"seq {ev.seq}: {out.reason}")
        self.loading_snapshot = False

    def _quote(self, q: QuoteReceived) -> None:
        self.quotes += 1
        last = self.sync.last_update_id
        if self.sync.synced and last is not None and q.update_id <= last:
            self._resolve_past(q)
            return
        pending = self.pending
        if pending and q.update_id < pending[-1].update_id:  # out of order: keep the FIFO sorted
            i = len(pending)
            while i > 0 and pending[i - 1].update_id > q.update_id:
                i -= 1
            pending.insert(i, q)
        else:
            pending.append(q)

    def _resolve_past(self, q: QuoteReceived) -> None:
        """A quote for an id the book already passed: use the recent-tops ring."""
        top = self.recent.get(q.update_id)
        if top is not None:
            self._compare(q, top)
        elif self.recent_ids and q.update_id > self.recent_ids[0]:
            self.unaligned += 1  # every id the book was exact at since then is in the ring
        else:
            self.late += 1

    def _book_exact_at(self, update_id: int) -> None:
        """BookSync callback: the book now equals the exchange's book at ``update_id``."""
        book = self.sync.book
        top = (*(book.bids.best() or (0, 0)), *(book.asks.best() or (0, 0)))
        from_snapshot = self.loading_snapshot
        if from_snapshot:
            self.loading_snapshot = False  # later callbacks of this event come from drained diffs
            self.recent.clear()
            self.recent_ids.clear()
        self.recent[update_id] = top
        self.recent_ids.append(update_id)
        if len(self.recent_ids) > RECENT_TOPS:
            del self.recent[self.recent_ids.popleft()]
        pending = self.pending
        while pending and pending[0].update_id <= update_id:
            q = pending.popleft()
            if q.update_id == update_id:
                self._compare(q, top)
            elif not from_snapshot:
                self.unaligned += 1
            elif self.ever_synced:
                self.during_gap += 1
            else:
                self.before_sync += 1
        if from_snapshot:
            self.ever_synced = True

    def _compare(self, q: QuoteReceived, top: Top) -> None:
        if top == (q.bid_price, q.bid_qty, q.ask_price, q.ask_qty):
            self.checked += 1
            return
        self.mismatched += 1
        if len(self.mismatches) < MAX_DETAILS:
            expected = (q.bid_price, q.bid_qty, q.ask_price, q.ask_qty)
            self.mismatches.append(Mismatch(q.seq, self.instrument, q.update_id, expected, top))

    def report(self) -> InstrumentReport:
        stats = self.sync.stats
        return InstrumentReport(
            instrument=self.instrument,
            futures=self.sync.futures,
            quotes=self.quotes,
            checked=self.checked,
            mismatched=self.mismatched,
            skipped_unaligned=self.unaligned,
            skipped_before_sync=self.before_sync,
            skipped_during_gap=self.during_gap,
            skipped_late=self.late,
            unresolved=len(self.pending),
            deltas=self.deltas,
            deltas_applied=stats.applied,
            deltas_stale=stats.stale_dropped,
            deltas_overlapping=stats.overlapping,
            snapshots=self.snapshots,
            gaps=stats.gaps,
            crossed=stats.crossed,
            gap_reasons=tuple(self.gap_reasons),
            mismatches=tuple(self.mismatches),
        )


_BOOK_INPUTS = (BookDeltaReceived, BookSnapshotReceived, QuoteReceived, BookGapDetected)


def matches_symbol(instrument: str, symbol: str | None) -> bool:
    """``--symbol`` accepts a bare symbol (``BTCUSDT``: every market) or a full id (``BTCUSDT.USDM``)."""
    if symbol is None:
        return True
    wanted = symbol.upper()
    if "." in wanted:
        return instrument.upper() == wanted
    sym, _ = split_instrument_id(instrument)
    return sym.upper() == wanted


def verify_book(events: Iterable[Event], symbol: str | None = None) -> VerifyReport:
    """Replay book events in log order, per instrument, and check every alignable bookTicker."""
    checkers: dict[str, _Checker] = {}
    skipped_ids: set[str] = set()
    for ev in events:
        if not isinstance(ev, _BOOK_INPUTS):
            continue
        iid = ev.instrument
        checker = checkers.get(iid)
        if checker is None:
            if iid in skipped_ids:
                continue
            if not matches_symbol(iid, symbol):
                skipped_ids.add(iid)
                continue
            checker = checkers[iid] = _Checker(iid)
        checker.feed(ev)
    reports = tuple(checkers[iid].report() for iid in sorted(checkers))
    return VerifyReport(symbol=symbol, instruments=reports)


def verify_log(path: Path, symbol: str | None = None) -> VerifyReport:
    """:func:`verify_book` over a log directory (needs catalogs.log; imported lazily)."""
    from catalogs.log import LogReader

    with LogReader(path) as reader:
        return verify_book(reader.events(), symbol)


def _top_json(top: Top) -> dict[str, str]:
    bid_px, bid_qty, ask_px, ask_qty = top
    return {
        "bid_price": format_e8(bid_px),
        "bid_qty": format_e8(bid_qty),
        "ask_price": format_e8(ask_px),
        "ask_qty": format_e8(ask_qty),
    }
