"""BookSync: every entry of the transition table, spot and futures rules, misuse."""

from __future__ import annotations

import itertools

import pytest

from engine.booksync import (
    GAP_CROSSED,
    GAP_SEQUENCE,
    GAP_STALE_SNAPSHOT,
    TRANSITIONS,
    BookSync,
    SyncInput,
    SyncState,
)
from engine.errors import BookError
from engine.events import (
    BookDeltaReceived,
    BookGapDetected,
    BookSnapshotReceived,
    Event,
    Level,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import InstrumentId

pytestmark = pytest.mark.edge

SPOT = InstrumentId("BTCUSDT.SPOT")
USDM = InstrumentId("BTCUSDT.USDM")
_seq = itertools.count(1)


def delta(
    first: int,
    last: int,
    bids: tuple[Level, ...] = (),
    asks: tuple[Level, ...] = (),
    *,
    pu: int = -1,
    iid: InstrumentId = SPOT,
) -> BookDeltaReceived:
    n = next(_seq)
    return BookDeltaReceived(
        seq=n, ts_event=n, ts_recv=n, instrument=iid, first_update_id=first, last_update_id=last,
        prev_update_id=pu, bids=bids, asks=asks,
    )  # fmt: skip


def snap(
    lid: int,
    bids: tuple[Level, ...] = ((100, 1),),
    asks: tuple[Level, ...] = ((110, 1),),
    *,
    partial: bool = False,
    iid: InstrumentId = SPOT,
) -> BookSnapshotReceived:
    n = next(_seq)
    return BookSnapshotReceived(
        seq=n,
        ts_event=n,
        ts_recv=n,
        instrument=iid,
        last_update_id=lid,
        bids=bids,
        asks=asks,
        partial=partial,
    )


def quote(uid: int, iid: InstrumentId = SPOT) -> QuoteReceived:
    n = next(_seq)
    return QuoteReceived(
        seq=n,
        ts_event=n,
        ts_recv=n,
        instrument=iid,
        update_id=uid,
        bid_price=1,
        bid_qty=1,
        ask_price=2,
        ask_qty=1,
    )


def trade(iid: InstrumentId = SPOT) -> TradeReceived:
    n = next(_seq)
    return TradeReceived(
        seq=n, ts_event=n, ts_recv=n, instrument=iid, price=1, qty=1, trade_id=n, buyer_maker=False
    )


def upstream_gap(iid: InstrumentId = SPOT) -> BookGapDetected:
    n = next(_seq)
    return BookGapDetected(
        seq=n,
        ts_event=n,
        ts_recv=n,
        instrument=iid,
        last_update_id=1,
        next_first_update_id=5,
        reason="reconnect",
    )


def spot_synced(lid: int = 10) -> BookSync:
    """A spot sync in SYNCED at update id lid + 5."""
    sync = BookSync(SPOT, market_is_futures=False)
    assert sync.on_event(snap(lid)) == []
    assert sync.on_event(delta(lid - 2, lid + 5, bids=((101, 2),))) == []
    assert state(sync) is SyncState.SYNCED
    return sync


def futures_synced(lid: int = 1000) -> BookSync:
    """A futures sync in SYNCED at update id lid + 7."""
    sync = BookSync(USDM, market_is_futures=True)
    sync.on_event(snap(lid, iid=USDM))
    sync.on_event(delta(lid - 3, lid + 7, bids=((101, 2),), pu=lid - 9, iid=USDM))
    assert state(sync) is SyncState.SYNCED
    return sync


def state(sync: BookSync) -> SyncState:
    """Read the state through a call so mypy does not narrow it across on_event calls."""
    return sync.state


def only_gap(events: list[Event]) -> BookGapDetected:
    assert len(events) == 1
    gap = events[0]
    assert isinstance(gap, BookGapDetected)
    return gap


# ------------------------------------------------------------------------- the table itself


def test_table_has_an_explicit_entry_for_every_state_and_input() -> None:
    assert set(TRANSITIONS) == set(itertools.product(SyncState, SyncInput))


def test_initial_state() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    assert state(sync) is SyncState.WAIT_SNAPSHOT
    assert not sync.synced and sync.last_update_id is None
    assert sync.book.top() == ((), ())


# ------------------------------------------------------------------------- WAIT_SNAPSHOT


def test_wait_snapshot_buffers_diffs() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    assert sync.on_event(delta(1, 5, bids=((100, 1),))) == []
    assert state(sync) is SyncState.WAIT_SNAPSHOT and sync.buffered == 1
    assert sync.book.top() == ((), ())


def test_wait_snapshot_then_snapshot_without_buffer_waits_for_bridge() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    sync.on_event(snap(10, bids=((99, 3),), asks=((105, 4),)))
    assert state(sync) is SyncState.WAIT_BRIDGE
    assert sync.synced and sync.last_update_id == 10
    assert sync.book.top() == (((99, 3),), ((105, 4),))


def test_snapshot_after_several_diffs_as_in_the_real_files() -> None:
    """Spot: buffered diffs with u <= lid are dropped, the straddling one bridges, the rest chain."""
    sync = BookSync(SPOT, market_is_futures=False)
    sync.on_event(delta(1, 4, bids=((90, 1),)))  # stale: u <= 8
    sync.on_event(delta(5, 8, bids=((91, 1),)))  # stale: u == lid
    sync.on_event(delta(9, 12, bids=((100, 0), (95, 2))))  # bridges: 9 <= lid+1 <= 12
    assert sync.buffered == 3
    out = sync.on_event(snap(8, bids=((100, 1), (91, 1)), asks=((110, 1),)))
    assert out == []
    assert state(sync) is SyncState.SYNCED and sync.last_update_id == 12
    assert sync.book.top() == (((95, 2), (91, 1)), ((110, 1),))
    assert sync.stats.stale_dropped == 2 and sync.stats.applied == 1
    sync.on_event(delta(13, 15, asks=((109, 5),)))
    assert sync.last_update_id == 15 and sync.book.best_ask() == (109, 5)


def test_snapshot_older_than_every_buffered_diff_is_stale() -> None:
    """Spot step 3: lastUpdateId < first U means the snapshot cannot be bridged."""
    sync = BookSync(SPOT, market_is_futures=False)
    sync.on_event(delta(20, 25))
    sync.on_event(delta(26, 30))
    gap = only_gap(sync.on_event(snap(10)))
    assert gap.reason.startswith(GAP_STALE_SNAPSHOT)
    assert (gap.last_update_id, gap.next_first_update_id) == (10, 20)
    assert gap.instrument == SPOT
    assert state(sync) is SyncState.RESYNC_NEEDED and not sync.synced
    assert sync.buffered == 2  # both kept: a newer snapshot can still bridge them
    sync.on_event(snap(27, bids=((100, 9),)))
    assert state(sync) is SyncState.SYNCED and sync.last_update_id == 30


def test_wait_snapshot_ignores_partial_quote_other_and_upstream_gap() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    sync.on_event(delta(1, 5))
    for ev in (snap(3, partial=True), quote(4), trade(), upstream_gap()):
        assert sync.on_event(ev) == []
        assert state(sync) is SyncState.WAIT_SNAPSHOT
    assert sync.buffered == 1  # an upstream gap keeps the buffer: sequencing rejects what doesn't chain
    assert sync.stats.partial_ignored == 1


def test_snapshot_that_is_itself_crossed_is_reported() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    gap = only_gap(sync.on_event(snap(10, bids=((110, 1),), asks=((110, 1),))))
    assert gap.reason.startswith(GAP_CROSSED)
    assert state(sync) is SyncState.RESYNC_NEEDED and sync.stats.crossed == 1


# ------------------------------------------------------------------------- WAIT_BRIDGE


def test_wait_bridge_spot_drops_stale_then_bridges() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    sync.on_event(snap(10))
    assert sync.on_event(delta(5, 10, bids=((1, 1),))) == []
    assert state(sync) is SyncState.WAIT_BRIDGE and sync.stats.stale_dropped == 1
    sync.on_event(delta(11, 14, bids=((102, 1),)))
    assert state(sync) is SyncState.SYNCED and sync.last_update_id == 14
    assert sync.book.best_bid() == (102, 1)


def test_wait_bridge_spot_diff_past_the_snapshot_is_a_stale_snapshot_gap() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    sync.on_event(snap(10))
    gap = only_gap(sync.on_event(delta(12, 14)))
    assert gap.reason.startswith(GAP_STALE_SNAPSHOT) and "U <= 11" in gap.reason
    assert state(sync) is SyncState.RESYNC_NEEDED and sync.buffered == 1
    assert sync.book.top() == ((), ())


def test_wait_bridge_futures_keeps_u_equal_to_lid() -> None:
    """Futures: drop u < lid; the first applied needs U <= lid <= u (u == lid included)."""
    sync = BookSync(USDM, market_is_futures=True)
    sync.on_event(snap(100, iid=USDM))
    sync.on_event(delta(90, 99, bids=((1, 1),), pu=80, iid=USDM))
    assert state(sync) is SyncState.WAIT_BRIDGE and sync.stats.stale_dropped == 1
    sync.on_event(delta(95, 100, bids=((105, 1),), pu=99, iid=USDM))
    assert state(sync) is SyncState.SYNCED and sync.last_update_id == 100
    sync.on_event(delta(104, 110, asks=((111, 2),), pu=100, iid=USDM))
    assert sync.last_update_id == 110 and sync.book.best_ask() == (110, 1)


def test_wait_bridge_futures_first_diff_must_contain_lid() -> None:
    sync = BookSync(USDM, market_is_futures=True)
    sync.on_event(snap(100, iid=USDM))
    gap = only_gap(sync.on_event(delta(101, 105, pu=100, iid=USDM)))
    assert gap.reason.startswith(GAP_STALE_SNAPSHOT) and "U <= 100" in gap.reason
    assert state(sync) is SyncState.RESYNC_NEEDED


def test_wait_bridge_snapshots_older_same_newer() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    sync.on_event(snap(10, bids=((100, 1),)))
    sync.on_event(snap(9, bids=((50, 1),)))
    sync.on_event(snap(10, bids=((60, 1),)))
    assert sync.book.best_bid() == (100, 1) and sync.stats.snapshots_ignored == 2
    sync.on_event(snap(12, bids=((101, 1),)))
    assert state(sync) is SyncState.WAIT_BRIDGE and sync.last_update_id == 12
    assert sync.book.best_bid() == (101, 1)


def test_wait_bridge_ignores_partial_quote_other() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    sync.on_event(snap(10))
    before = sync.book.top()
    for ev in (snap(11, bids=((1, 1),), partial=True), quote(11), trade()):
        assert sync.on_event(ev) == []
        assert state(sync) is SyncState.WAIT_BRIDGE
    assert sync.book.top() == before and sync.last_update_id == 10


def test_wait_bridge_upstream_gap_discards_the_book() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    sync.on_event(snap(10))
    assert sync.on_event(upstream_gap()) == []  # already in the log: not re-emitted
    assert state(sync) is SyncState.RESYNC_NEEDED and sync.last_update_id is None
    assert sync.book.top() == ((), ())


# ------------------------------------------------------------------------- SYNCED, spot


def test_synced_spot_contiguous_diff_applies() -> None:
    sync = spot_synced()
    sync.on_event(delta(16, 18, bids=((101, 0),), asks=((108, 3),)))
    assert sync.last_update_id == 18
    assert sync.book.top() == (((100, 1),), ((108, 3), (110, 1)))
    assert sync.stats.applied == 2


def test_synced_duplicate_and_stale_diffs_are_dropped() -> None:
    sync = spot_synced()
    before = sync.book.top()
    assert sync.on_event(delta(8, 15, bids=((101, 99),))) == []  # the same diff again
    assert sync.on_event(delta(3, 6, bids=((1, 1),))) == []
    assert sync.book.top() == before and sync.last_update_id == 15
    assert sync.stats.stale_dropped == 2 and state(sync) is SyncState.SYNCED


def test_synced_spot_gap_emits_marker_and_waits_for_snapshot() -> None:
    sync = spot_synced()  # at 15; the diff 16..17 never arrives
    late = delta(18, 20, bids=((102, 1),))
    gap = only_gap(sync.on_event(late))
    assert gap.reason.startswith(GAP_SEQUENCE)
    assert (gap.last_update_id, gap.next_first_update_id) == (15, 18)
    assert (gap.ts_event, gap.ts_recv, gap.seq) == (late.ts_event, late.ts_recv, 0)
    assert state(sync) is SyncState.RESYNC_NEEDED and not sync.synced
    assert sync.stats.gaps == 1 and sync.buffered == 1


def test_synced_spot_overlap_is_applied_per_step_5() -> None:
    """U <= last < u: levels are absolute, so re-applying the overlap is exact (documented choice)."""
    sync = spot_synced()
    assert sync.on_event(delta(14, 17, bids=((101, 7),))) == []
    assert sync.last_update_id == 17 and sync.book.best_bid() == (101, 7)
    assert sync.stats.overlapping == 1


def test_synced_crossing_update_is_reported_as_a_sync_error() -> None:
    sync = spot_synced()
    gap = only_gap(sync.on_event(delta(16, 16, bids=((110, 1),))))
    assert gap.reason.startswith(GAP_CROSSED) and "110" in gap.reason
    assert (gap.last_update_id, gap.next_first_update_id) == (16, 16)
    assert state(sync) is SyncState.RESYNC_NEEDED and sync.stats.crossed == 1
    assert sync.buffered == 1


def test_synced_snapshots_older_same_newer() -> None:
    sync = spot_synced()  # at 15
    sync.on_event(snap(12, bids=((1, 1),)))
    assert state(sync) is SyncState.SYNCED and sync.book.best_bid() == (101, 2)
    sync.on_event(snap(15, bids=((100, 4),)))
    assert state(sync) is SyncState.SYNCED and sync.book.best_bid() == (100, 4)
    sync.on_event(delta(16, 16, asks=((109, 1),)))
    assert sync.last_update_id == 16
    sync.on_event(snap(30, bids=((99, 1),)))
    assert state(sync) is SyncState.WAIT_BRIDGE and sync.last_update_id == 30
    assert sync.stats.snapshots_ignored == 1 and sync.stats.snapshots_loaded == 3


def test_synced_ignores_partial_quote_other() -> None:
    sync = spot_synced()
    before = sync.book.top()
    for ev in (snap(20, bids=((1, 1),), partial=True), quote(16), trade()):
        assert sync.on_event(ev) == []
        assert state(sync) is SyncState.SYNCED
    assert sync.book.top() == before


def test_synced_upstream_gap_needs_resync() -> None:
    sync = spot_synced()
    assert sync.on_event(upstream_gap()) == []
    assert state(sync) is SyncState.RESYNC_NEEDED and sync.buffered == 0


# ------------------------------------------------------------------------- SYNCED, futures


def test_synced_futures_chains_by_pu_not_by_contiguous_ids() -> None:
    sync = futures_synced()  # at 1007
    assert sync.on_event(delta(1050, 1060, asks=((109, 1),), pu=1007, iid=USDM)) == []
    assert sync.last_update_id == 1060 and sync.book.best_ask() == (109, 1)


def test_synced_futures_pu_mismatch_is_a_gap() -> None:
    sync = futures_synced()
    gap = only_gap(sync.on_event(delta(1008, 1010, pu=1005, iid=USDM)))
    assert gap.reason.startswith(GAP_SEQUENCE) and "pu=1005" in gap.reason
    assert (gap.last_update_id, gap.next_first_update_id) == (1007, 1008)
    assert state(sync) is SyncState.RESYNC_NEEDED


def test_synced_futures_older_pu_is_a_gap_even_if_u_moves_on() -> None:
    """Futures chain strictly by pu (the docs' rule), unlike spot's overlap tolerance."""
    sync = futures_synced()  # at 1007
    gap = only_gap(sync.on_event(delta(1004, 1010, pu=1003, iid=USDM)))
    assert "pu=1003 != last u=1007" in gap.reason


def test_synced_futures_duplicate_is_dropped() -> None:
    sync = futures_synced()
    assert sync.on_event(delta(997, 1007, bids=((1, 1),), pu=991, iid=USDM)) == []
    assert state(sync) is SyncState.SYNCED and sync.stats.stale_dropped == 1


def test_same_id_snapshot_keeps_futures_chain() -> None:
    sync = futures_synced()
    sync.on_event(snap(1007, iid=USDM))
    assert state(sync) is SyncState.SYNCED
    sync.on_event(delta(1010, 1012, pu=1007, iid=USDM))
    assert state(sync) is SyncState.SYNCED and sync.last_update_id == 1012


# ------------------------------------------------------------------------- RESYNC_NEEDED


def _resyncing() -> BookSync:
    sync = spot_synced()
    only_gap(sync.on_event(delta(20, 22, bids=((102, 1),))))
    return sync


def test_resync_needed_buffers_and_recovers_exactly_on_a_new_snapshot() -> None:
    sync = _resyncing()
    sync.on_event(delta(23, 25, asks=((108, 2),)))
    assert sync.buffered == 2 and state(sync) is SyncState.RESYNC_NEEDED
    assert sync.on_event(snap(24, bids=((100, 3),), asks=((110, 1),))) == []
    assert state(sync) is SyncState.SYNCED and sync.last_update_id == 25
    assert sync.book.top() == (((100, 3),), ((108, 2), (110, 1)))
    assert sync.stats.stale_dropped == 1


def test_resync_needed_ignores_partial_quote_other_and_repeated_gaps() -> None:
    sync = _resyncing()
    for ev in (snap(30, partial=True), quote(30), trade(), upstream_gap()):
        assert sync.on_event(ev) == []
        assert state(sync) is SyncState.RESYNC_NEEDED
    assert sync.buffered == 1  # the diff after the gap is kept for the next snapshot


# ------------------------------------------------------------------------- callbacks, limits, misuse


def test_on_book_update_reports_every_exact_id_including_drained_diffs() -> None:
    seen: list[int] = []
    sync = BookSync(SPOT, market_is_futures=False, on_book_update=seen.append)
    sync.on_event(delta(1, 4))
    sync.on_event(delta(5, 9))
    sync.on_event(delta(10, 12))
    sync.on_event(snap(6))
    sync.on_event(delta(13, 13))
    assert seen == [6, 9, 12, 13]


def test_buffer_is_bounded_and_counts_overflow() -> None:
    sync = BookSync(SPOT, market_is_futures=False, max_buffer=2)
    for i in range(3):
        sync.on_event(delta(10 * i + 1, 10 * i + 10))
    assert sync.buffered == 2 and sync.stats.buffer_overflow == 1
    with pytest.raises(ValueError, match="max_buffer"):
        BookSync(SPOT, market_is_futures=False, max_buffer=0)


def test_for_instrument_reads_the_market() -> None:
    assert not BookSync.for_instrument("BTCUSDT.SPOT").futures
    assert BookSync.for_instrument("BTCUSDT.USDM").futures
    assert BookSync.for_instrument("BTCUSD_PERP.COINM").futures


def test_event_of_another_instrument_is_misuse() -> None:
    sync = BookSync(SPOT, market_is_futures=False)
    with pytest.raises(BookError, match=r"BTCUSDT\.SPOT got an event of BTCUSDT\.USDM"):
        sync.on_event(quote(1, iid=USDM))


def test_spot_futures_mix_up_is_misuse() -> None:
    with pytest.raises(BookError, match="futures sync got a diff without pu"):
        BookSync(USDM, market_is_futures=True).on_event(delta(1, 2, iid=USDM))
    with pytest.raises(BookError, match="spot sync got a diff with pu=0"):
        BookSync(SPOT, market_is_futures=False).on_event(delta(1, 2, pu=0))


def test_malformed_diff_ids_are_misuse() -> None:
    bad = delta(5, 4)
    with pytest.raises(BookError, match=rf"seq {bad.seq}: diff with U=5 > u=4"):
        BookSync(SPOT, market_is_futures=False).on_event(bad)


# ------------------------------------------------------------------------- replay.verify_book on hand-built streams


def q(uid: int, bid: Level, ask: Level, iid: InstrumentId = SPOT) -> QuoteReceived:
    n = next(_seq)
    return QuoteReceived(
        seq=n, ts_event=n, ts_recv=n, instrument=iid, update_id=uid,
        bid_price=bid[0], bid_qty=bid[1], ask_price=ask[0], ask_qty=ask[1],
    )  # fmt: skip


def test_verify_classifies_every_quote() -> None:
    from replay.verify_book import verify_book

    mismatch = q(12, (100, 9), (110, 1))
    events: list[Event] = [
        delta(1, 4),
        q(3, (1, 1), (2, 1)),  # before the snapshot id: before_sync
        q(6, (100, 1), (110, 1)),  # == lid: checked when the snapshot loads
        delta(5, 9, bids=((101, 2),)),
        q(7, (100, 1), (110, 1)),  # strictly inside the bridging diff 5..9: unaligned
        q(9, (101, 2), (110, 1)),  # == u: checked
        snap(6),
        mismatch,  # book at 12 has (101, 2) on the bid
        delta(10, 12),
        q(9, (101, 2), (110, 1)),  # arrives after the book passed 9: still checked (recent tops)
        q(11, (101, 2), (110, 1)),  # after the book passed, not an exact id: unaligned
        delta(15, 16),  # gap: 13..14 missing
        q(17, (1, 1), (2, 1)),  # while resyncing, before the new snapshot id: during_gap
        q(30, (1, 1), (2, 1)),  # never reached: unresolved
        snap(18, bids=((100, 5),)),
    ]
    report = verify_book(events)
    r = report.by_instrument(SPOT)
    assert (r.quotes, r.checked, r.mismatched) == (9, 3, 1)
    assert (r.skipped_before_sync, r.skipped_unaligned, r.skipped_during_gap, r.unresolved) == (1, 2, 1, 1)
    assert r.skipped_late == 0 and r.skipped == 5
    assert r.gaps == 1 and r.snapshots == 2 and r.deltas == 4
    assert r.gap_reasons[0].startswith("seq ") and GAP_SEQUENCE in r.gap_reasons[0]
    (m,) = r.mismatches
    assert (m.seq, m.update_id, m.expected, m.book) == (mismatch.seq, 12, (100, 9, 110, 1), (101, 2, 110, 1))
    assert m.to_json()["expected"] == {"bid_price": "0.000001", "bid_qty": "0.00000009",
                                       "ask_price": "0.0000011", "ask_qty": "0.00000001"}  # fmt: skip
    assert not r.ok and not report.ok and report.mismatched == 1
    js = report.to_json()
    assert js["instruments"][0]["skipped"]["total"] == 5 and js["ok"] is False


def test_verify_late_quote_older_than_the_ring_is_late() -> None:
    import replay.verify_book as vb

    events: list[Event] = [snap(10), delta(11, 11), delta(12, 12), delta(13, 13)]
    old = vb.RECENT_TOPS
    vb.RECENT_TOPS = 2
    try:
        r = vb.verify_book([*events, q(11, (100, 1), (110, 1)), q(12, (100, 1), (110, 1))]).instruments[0]
    finally:
        vb.RECENT_TOPS = old
    assert (r.skipped_late, r.checked) == (1, 1)


def test_verify_keeps_out_of_order_quotes_sorted() -> None:
    from replay.verify_book import verify_book

    events: list[Event] = [
        snap(10),
        q(13, (100, 1), (110, 1)),
        q(12, (100, 1), (110, 1)),
        delta(11, 12),
        delta(13, 13),
    ]
    r = verify_book(events).instruments[0]
    assert (r.checked, r.skipped) == (2, 0)


def test_verify_ok_rules() -> None:
    from replay.verify_book import verify_book

    no_quotes = verify_book([snap(10), delta(11, 12), trade()])
    assert no_quotes.ok and no_quotes.checked == 0
    nothing_lines_up = verify_book([snap(10), q(11, (100, 1), (110, 1)), delta(11, 12)])
    assert not nothing_lines_up.ok and nothing_lines_up.instruments[0].skipped_unaligned == 1
    crossed = verify_book(
        [snap(10), q(11, (100, 1), (110, 1)), delta(11, 11), delta(12, 12, bids=((120, 1),))]
    )
    assert crossed.instruments[0].checked == 1 and crossed.instruments[0].crossed == 1 and not crossed.ok


def test_verify_symbol_filter() -> None:
    from replay.verify_book import matches_symbol, verify_book

    events: list[Event] = [snap(10), snap(20, iid=USDM), snap(5, iid=InstrumentId("ETHUSDT.SPOT"))]
    assert [r.instrument for r in verify_book(events, "btcusdt").instruments] == [SPOT, USDM]
    assert [r.instrument for r in verify_book(events, "BTCUSDT.USDM").instruments] == [USDM]
    assert verify_book(events, "XRPUSDT").instruments == ()
    assert len(verify_book(events).instruments) == 3
    assert matches_symbol("BTCUSDT.SPOT", None) and not matches_symbol("BTCUSDT.SPOT", "BTCUSDT.USDM")
    with pytest.raises(KeyError, match="BTCUSDT.COINM not in report"):
        verify_book(events).by_instrument("BTCUSDT.COINM")
