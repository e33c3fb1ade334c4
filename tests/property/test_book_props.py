"""Property tests: the local book reproduces a simulated exchange's book exactly.

The model is an exchange-side book that evolves by single-level updates, each with its own
update id (spot: consecutive ids; futures: ids with holes, as when other symbols share the
sequence). Updates are grouped into diff messages carrying each touched level's final quantity
(Binance's diff depth), a snapshot is taken at one update id, and bookTickers are published at
random ids. Diffs, snapshot and quotes are interleaved the way the real feeds arrive (quotes
before or after the diff that contains them, the snapshot anywhere). The sync must then equal
the exchange book at every id it claims to be exact at, and every alignable quote must match.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import L2Book
from engine.booksync import GAP_SEQUENCE, BookSync, SyncState
from engine.events import (
    BookDeltaReceived,
    BookGapDetected,
    BookSnapshotReceived,
    Event,
    Level,
    QuoteReceived,
    with_seq,
)
from engine.identifiers import InstrumentId
from replay.verify_book import verify_book

pytestmark = pytest.mark.edge

SPOT = InstrumentId("BTCUSDT.SPOT")
USDM = InstrumentId("BTCUSDT.USDM")
BASE_ID = 1000
Top = tuple[tuple[Level, ...], tuple[Level, ...]]

levels_st = st.lists(st.tuples(st.integers(1, 60), st.integers(0, 5)), max_size=12)


# --------------------------------------------------------------------------- plain book properties


def _reference_apply(ref: dict[int, int], levels: list[tuple[int, int]]) -> None:
    for price, qty in levels:
        if qty:
            ref[price] = qty
        else:
            ref.pop(price, None)


@settings(deadline=None)
@given(st.lists(st.tuples(levels_st, levels_st), max_size=25))
def test_sides_stay_sorted_without_zero_levels_and_match_a_dict_model(
    diffs: list[tuple[list[Level], ...]],
) -> None:
    book = L2Book()
    ref_bids: dict[int, int] = {}
    ref_asks: dict[int, int] = {}
    for bids, asks in diffs:
        book.apply(bids, asks)
        _reference_apply(ref_bids, bids)
        _reference_apply(ref_asks, asks)
        book.check_invariants()
        top_bids, top_asks = book.top()
        assert [p for p, _ in top_bids] == sorted(ref_bids, reverse=True)
        assert [p for p, _ in top_asks] == sorted(ref_asks)
        assert all(q > 0 for _, q in top_bids + top_asks)
        assert dict(top_bids) == ref_bids and dict(top_asks) == ref_asks
        assert book.best_bid() == (top_bids[0] if top_bids else None)
        assert book.best_ask() == (top_asks[0] if top_asks else None)


@settings(deadline=None)
@given(levels_st, levels_st, levels_st, levels_st)
def test_applying_a_diff_then_its_inverse_restores_the_book(
    snap_bids: list[Level], snap_asks: list[Level], bids: list[Level], asks: list[Level]
) -> None:
    book = L2Book.from_levels(snap_bids, snap_asks)
    before = book.top()
    inverse = book.inverse(bids, asks)
    book.apply(bids, asks)
    book.apply(*inverse)
    assert book.top() == before
    book.check_invariants()


# --------------------------------------------------------------------------- the exchange model


@dataclass(frozen=True)
class Scenario:
    futures: bool
    instrument: InstrumentId
    diffs: tuple[BookDeltaReceived, ...]  # seq filled in when the stream is built
    states: dict[int, Top]  # exchange book after each update id (and at BASE_ID)
    update_ids: tuple[int, ...]
    quote_ids: frozenset[int]
    quote_after_diff: tuple[bool, ...]  # per diff: its quotes arrive after it (else before)


def _top(bids: dict[int, int], asks: dict[int, int]) -> Top:
    return tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items()))


@st.composite
def scenarios(draw: st.DrawFn, min_updates: int = 2) -> Scenario:
    futures = draw(st.booleans())
    bids = dict(draw(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 5)), max_size=8)))
    asks = dict(draw(st.lists(st.tuples(st.integers(31, 60), st.integers(1, 5)), max_size=8)))
    ops = draw(
        st.lists(
            st.tuples(st.booleans(), st.integers(1, 60), st.integers(0, 5), st.integers(1, 4)),
            min_size=min_updates,
            max_size=60,
        )
    )
    states: dict[int, Top] = {BASE_ID: _top(bids, asks)}
    updates: list[tuple[int, bool, int, int]] = []  # (id, is_bid, price, qty)
    uid = BASE_ID
    for is_bid, price, qty, step in ops:
        uid += step if futures else 1
        if qty and is_bid and asks and price >= min(asks):  # would cross: the bid takes the best ask
            is_bid, price, qty = False, min(asks), 0
        elif qty and not is_bid and bids and price <= max(bids):
            is_bid, price, qty = True, max(bids), 0
        side = bids if is_bid else asks
        if qty:
            side[price] = qty
        else:
            side.pop(price, None)
        assert not (bids and asks and max(bids) >= min(asks))  # the exchange never rests a crossed book
        states[uid] = _top(bids, asks)
        updates.append((uid, is_bid, price, qty))
    sizes = draw(st.lists(st.integers(1, 4), min_size=len(updates), max_size=len(updates)))
    diffs: list[BookDeltaReceived] = []
    prev_u = BASE_ID
    i = 0
    for size in sizes:
        if i >= len(updates):
            break
        batch = updates[i : i + size]
        i += size
        touched_b: dict[int, int] = {}
        touched_a: dict[int, int] = {}
        for _, is_bid, price, qty in batch:
            (touched_b if is_bid else touched_a)[price] = qty
        diffs.append(
            BookDeltaReceived(
                seq=0,
                ts_event=0,
                ts_recv=0,
                instrument=USDM if futures else SPOT,
                first_update_id=batch[0][0],
                last_update_id=batch[-1][0],
                prev_update_id=prev_u if futures else -1,
                bids=tuple(sorted(touched_b.items())),
                asks=tuple(sorted(touched_a.items())),
            )  # fmt: skip
        )
        prev_u = batch[-1][0]
    ids = tuple(u for u, *_ in updates)
    quote_ids = frozenset(draw(st.lists(st.sampled_from(ids), max_size=30)))
    after = tuple(draw(st.lists(st.booleans(), min_size=len(diffs), max_size=len(diffs))))
    return Scenario(futures, USDM if futures else SPOT, tuple(diffs), states, ids, quote_ids, after)


def _snapshot(sc: Scenario, lid: int) -> BookSnapshotReceived:
    bids, asks = sc.states[lid]
    return BookSnapshotReceived(
        seq=0, ts_event=0, ts_recv=0, instrument=sc.instrument, last_update_id=lid, bids=bids, asks=asks
    )


def _quote(sc: Scenario, uid: int) -> QuoteReceived:
    bids, asks = sc.states[uid]
    bid = bids[0] if bids else (0, 0)
    ask = asks[0] if asks else (0, 0)
    return QuoteReceived(
        seq=0, ts_event=0, ts_recv=0, instrument=sc.instrument, update_id=uid,
        bid_price=bid[0], bid_qty=bid[1], ask_price=ask[0], ask_qty=ask[1],
    )  # fmt: skip


def _stream(sc: Scenario, diffs: list[BookDeltaReceived], inserts: dict[int, list[Event]]) -> list[Event]:
    """Diffs with their quotes around them; ``inserts[k]`` goes right before diff k (len = at the end).

    A diff listed twice is a duplicate delivery: its quotes are published only once.
    """
    out: list[Event] = []
    seen: set[int] = set()
    for k, d in enumerate(diffs):
        out.extend(inserts.get(k, []))
        if d.last_update_id in seen:
            out.append(d)
            continue
        seen.add(d.last_update_id)
        mine = [_quote(sc, x) for x in sorted(sc.quote_ids) if d.first_update_id <= x <= d.last_update_id]
        after = sc.quote_after_diff[sc.diffs.index(d)]
        out.extend([d, *mine] if after else [*mine, d])
    out.extend(inserts.get(len(diffs), []))
    seq = itertools.count(1)
    return [with_seq(ev, next(seq)) for ev in out]


class _Exactness:
    """on_book_update callback: the sync's book must equal the exchange's at every exact id."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.sync: BookSync | None = None
        self.ids: list[int] = []

    def __call__(self, uid: int) -> None:
        assert self.sync is not None
        assert self.sync.book.top() == self.sc.states[uid], f"book differs from the exchange at id {uid}"
        assert not self.sync.book.is_crossed()
        self.ids.append(uid)


def _run(sc: Scenario, stream: list[Event]) -> tuple[BookSync, _Exactness, list[BookGapDetected]]:
    check = _Exactness(sc)
    sync = BookSync(sc.instrument, sc.futures, on_book_update=check)
    check.sync = sync
    gaps: list[BookGapDetected] = []
    for ev in stream:
        for out in sync.on_event(ev):
            assert isinstance(out, BookGapDetected)
            gaps.append(out)
        sync.book.check_invariants()
    return sync, check, gaps


def _applied(sc: Scenario, lid: int) -> list[BookDeltaReceived]:
    """The diffs Binance's procedure applies after a snapshot at ``lid`` (spot drops u <= lid, futures u < lid)."""
    return [d for d in sc.diffs if (d.last_update_id >= lid if sc.futures else d.last_update_id > lid)]


@settings(deadline=None)
@given(scenarios(), st.data())
def test_sync_reproduces_the_exchange_book_and_every_alignable_quote_matches(
    sc: Scenario, data: st.DataObject
) -> None:
    lid = data.draw(st.sampled_from(sc.update_ids), label="snapshot id")
    dups = data.draw(st.sets(st.integers(0, len(sc.diffs) - 1), max_size=3), label="duplicated diffs")
    delivered = [d for k, d in enumerate(sc.diffs) for _ in range(2 if k in dups else 1)]
    where = data.draw(st.integers(0, len(delivered)), label="snapshot position")
    stream = _stream(sc, delivered, {where: [_snapshot(sc, lid)]})
    sync, check, gaps = _run(sc, stream)

    assert gaps == []
    applied = _applied(sc, lid)
    assert check.ids == [lid] + [d.last_update_id for d in applied]
    final = applied[-1].last_update_id if applied else lid
    assert sync.synced and sync.last_update_id == final
    assert sync.book.top() == sc.states[final]
    assert sync.state is (SyncState.SYNCED if applied else SyncState.WAIT_BRIDGE)
    assert sync.stats.applied == len(applied)
    assert sync.stats.stale_dropped == len(delivered) - len(applied)

    report = verify_book(stream).by_instrument(sc.instrument)
    alignable = {lid} | {d.last_update_id for d in applied}
    assert report.mismatched == 0
    assert report.checked == len(sc.quote_ids & alignable)
    assert report.checked + report.skipped == report.quotes == len(sc.quote_ids)
    assert report.ok == (not sc.quote_ids or report.checked > 0)


@settings(deadline=None)
@given(scenarios(min_updates=12), st.data())
def test_a_missing_diff_is_always_detected_and_a_new_snapshot_recovers_exactly(
    sc: Scenario, data: st.DataObject
) -> None:
    # snapshot before the first diff, taken at the first diff's first id: the first diff bridges it
    first = sc.diffs[0]
    lid = first.first_update_id if sc.futures else first.first_update_id - 1
    if lid not in sc.states:
        lid = first.last_update_id
    applied = _applied(sc, lid)
    assert len(applied) >= 3  # >= 12 updates in batches of <= 4: a diff after the bridge can go missing
    drop = data.draw(st.integers(1, len(applied) - 2), label="dropped diff")
    lost, nxt = applied[drop], applied[drop + 1]
    after_gap = [u for u in sc.update_ids if u >= nxt.first_update_id]
    lid2 = data.draw(st.sampled_from(after_gap), label="recovery snapshot id")
    kept = [d for d in sc.diffs if d is not lost]
    where2 = data.draw(st.integers(kept.index(nxt) + 1, len(kept)), label="recovery position")
    stream = _stream(sc, kept, {0: [_snapshot(sc, lid)], where2: [_snapshot(sc, lid2)]})
    sync, check, gaps = _run(sc, stream)

    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.reason.startswith(GAP_SEQUENCE)
    assert gap.last_update_id == applied[drop - 1].last_update_id
    assert gap.next_first_update_id == nxt.first_update_id
    assert sync.stats.gaps == 1
    after = _applied(sc, lid2)
    final = after[-1].last_update_id if after else lid2
    assert sync.synced and sync.last_update_id == final
    assert sync.book.top() == sc.states[final]  # _Exactness also checked every id on the way

    report = verify_book(stream).by_instrument(sc.instrument)
    assert report.mismatched == 0 and report.gaps == 1
