"""L2Book: levels, ordering, deletes, snapshots, crossing, inverse diffs."""

from __future__ import annotations

import pytest

from engine.book import BookSide, L2Book
from engine.errors import BookError

pytestmark = pytest.mark.edge


def _book() -> L2Book:
    return L2Book.from_levels(bids=[(100, 5), (98, 1), (99, 2)], asks=[(103, 7), (101, 3), (102, 4)])


def test_snapshot_sorts_each_side_best_first() -> None:
    book = _book()
    assert book.top() == (((100, 5), (99, 2), (98, 1)), ((101, 3), (102, 4), (103, 7)))
    assert book.best_bid() == (100, 5)
    assert book.best_ask() == (101, 3)
    assert len(book.bids) == 3 and len(book.asks) == 3


def test_top_n_limits_and_handles_zero_and_oversize() -> None:
    book = _book()
    assert book.top(2) == (((100, 5), (99, 2)), ((101, 3), (102, 4)))
    assert book.top(0) == ((), ())
    assert book.top(10) == book.top()


def test_apply_inserts_overwrites_and_deletes() -> None:
    book = _book()
    book.apply(bids=[(100, 0), (97, 9), (99, 6)], asks=[(100, 1), (103, 0)])
    assert book.bids.top() == ((99, 6), (98, 1), (97, 9))
    assert book.asks.top() == ((100, 1), (101, 3), (102, 4))
    book.check_invariants()


def test_later_entry_for_same_price_in_one_diff_wins() -> None:
    book = _book()
    book.apply(bids=[(95, 4), (95, 0), (96, 1), (96, 8)], asks=[])
    assert 95 not in book.bids
    assert book.bids.qty(96) == 8
    book.check_invariants()


def test_deleting_an_unknown_level_is_a_no_op() -> None:
    book = _book()
    before = book.top()
    book.apply(bids=[(50, 0)], asks=[(500, 0)])
    assert book.top() == before


def test_zero_size_levels_are_never_stored() -> None:
    book = L2Book.from_levels(bids=[(10, 0), (9, 3)], asks=[(11, 0)])
    assert book.top() == (((9, 3),), ())
    assert book.best_ask() is None
    book.bids.set(8, 0)
    assert 8 not in book.bids
    book.check_invariants()


def test_snapshot_replace_forgets_old_levels() -> None:
    book = _book()
    book.replace(bids=[(50, 1)], asks=[(60, 2)])
    assert book.top() == (((50, 1),), ((60, 2),))


def test_empty_book_reads() -> None:
    book = L2Book()
    assert book.best_bid() is None and book.best_ask() is None
    assert book.top() == ((), ())
    assert not book.is_crossed()
    assert book.bids.best_price() is None


@pytest.mark.parametrize(
    ("bid", "ask", "crossed"),
    [(100, 101, False), (101, 101, True), (102, 101, True)],
    ids=["normal", "locked", "crossed"],
)
def test_is_crossed_counts_locked_books(bid: int, ask: int, crossed: bool) -> None:
    assert L2Book.from_levels([(bid, 1)], [(ask, 1)]).is_crossed() is crossed


def test_one_sided_book_is_not_crossed() -> None:
    assert not L2Book.from_levels([(100, 1)], []).is_crossed()
    assert not L2Book.from_levels([], [(100, 1)]).is_crossed()


def test_negative_quantity_is_rejected_with_the_level() -> None:
    book = _book()
    with pytest.raises(BookError, match=r"bids: negative quantity -1 at price 100"):
        book.apply(bids=[(100, -1)], asks=[])
    with pytest.raises(BookError, match="negative quantity"):
        book.asks.set(101, -5)
    with pytest.raises(BookError, match="in snapshot"):
        book.replace(bids=[(1, -1)], asks=[])


def test_non_positive_price_is_rejected() -> None:
    book = L2Book()
    with pytest.raises(BookError, match="price must be positive"):
        book.apply(bids=[(0, 1)], asks=[])
    with pytest.raises(BookError, match="price must be positive"):
        book.asks.set(-3, 1)
    with pytest.raises(BookError, match="price must be positive"):
        book.replace(bids=[], asks=[(0, 1)])


def test_inverse_diff_restores_the_book() -> None:
    book = _book()
    before = book.copy()
    diff = ([(100, 0), (97, 9), (97, 2), (99, 6)], [(101, 0), (104, 1)])
    inv_bids, inv_asks = book.inverse(*diff)
    assert inv_bids == ((100, 5), (97, 0), (99, 2))
    book.apply(*diff)
    assert book != before
    book.apply(inv_bids, inv_asks)
    assert book == before
    book.check_invariants()


def test_copy_is_independent_and_equality_is_by_levels() -> None:
    book = _book()
    twin = book.copy()
    assert twin == book and twin is not book
    twin.apply([(100, 1)], [])
    assert twin != book
    assert book.best_bid() == (100, 5)
    assert book.__eq__("not a book") is NotImplemented


def test_clear_empties_both_sides() -> None:
    book = _book()
    book.clear()
    assert book.top() == ((), ())


def test_iterating_a_side_yields_levels_best_first() -> None:
    assert list(_book().asks) == [(101, 3), (102, 4), (103, 7)]


def test_side_sign_must_be_unit() -> None:
    with pytest.raises(ValueError, match="sign"):
        BookSide("x", 2)


def test_check_invariants_detects_corruption() -> None:
    book = _book()
    book.bids._keys.append(1)  # simulate a bug: a key without a level
    with pytest.raises(BookError, match="keys"):
        book.check_invariants()


def test_repr_mentions_best_levels() -> None:
    assert "best=(100, 5)" in repr(_book())
