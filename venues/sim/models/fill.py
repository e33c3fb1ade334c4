"""Fill rules the matching engine calls: L1 (trades and quotes) and L2 (walk the book).

Pure functions of market data and one order: no order state, no balances, no events, so the
matching engine stays the one place that decides statuses and the rules can be tested alone.
Sides are *our order's* side: a BUY takes asks and rests on bids. Prices and quantities are e8.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec

from engine.fixed import SCALE as _SCALE_ANY

SCALE: int = _SCALE_ANY
Level = tuple[int, int]
"""(price e8, quantity e8)."""


def _through(side: str, limit: int, price: int) -> bool:
    """Is ``price`` strictly better for the counterparty than our resting ``limit``?"""
    return price < limit if side == "BUY" else price > limit


def _marketable(side: str, limit: int | None, price: int) -> bool:
    """Can our order take a level at ``price``?"""
    if limit is None:
        return True
    return price <= limit if side == "BUY" else price >= limit


class L1FillRule(msgspec.Struct, frozen=True, gc=False):
    """Resting limits against trades and best quotes (no depth).

    A trade printing *through* our price fills us, bounded by the trade's size. A trade *at*
    our price fills us only with ``fill_at_price`` (optimistic: we are assumed first in the
    queue); otherwise at-price fills are the queue model's decision. A best quote crossing our
    price (the book moved through us) fills at our own price, bounded by the quote's size.
    """

    fill_at_price: bool = False

    def trade_fill_qty(
        self, side: str, limit_e8: int, remaining_e8: int, trade_price_e8: int, trade_qty_e8: int
    ) -> int:
        if remaining_e8 <= 0 or trade_qty_e8 <= 0:
            return 0
        if _through(side, limit_e8, trade_price_e8) or (self.fill_at_price and trade_price_e8 == limit_e8):
            return min(remaining_e8, trade_qty_e8)
        return 0

    def quote_fill(
        self,
        side: str,
        limit_e8: int,
        remaining_e8: int,
        bid: Level | None,
        ask: Level | None,
    ) -> Level | None:
        """(our price, qty) when the opposite best quote reached our price, else None."""
        opposite = ask if side == "BUY" else bid
        if remaining_e8 <= 0 or opposite is None or opposite[1] <= 0:
            return None
        if _marketable(side, limit_e8, opposite[0]):
            return limit_e8, min(remaining_e8, opposite[1])
        return None


class WalkResult(msgspec.Struct, frozen=True, gc=False):
    """The fills of one book walk, best price first, and what was left unfilled."""

    fills: tuple[Level, ...]
    filled_e8: int
    remaining_e8: int
    quote_e8: int
    """Sum of price*qty over the fills, truncated to e8 (exact product sum // 1e8)."""


def walk_book(levels: Iterable[Level], side: str, qty_e8: int, limit_e8: int | None = None) -> WalkResult:
    """Take ``qty_e8`` from ``levels`` (the opposite side, best first), stopping at ``limit_e8``."""
    fills: list[Level] = []
    left = qty_e8
    notional = 0
    for price, avail in levels:
        if left <= 0 or not _marketable(side, limit_e8, price):
            break
        take = min(left, avail)
        if take > 0:
            fills.append((price, take))
            left -= take
            notional += price * take
    return WalkResult(tuple(fills), qty_e8 - left, left, notional // SCALE)


def walk_book_quote(
    levels: Iterable[Level], side: str, quote_e8: int, step_e8: int, limit_e8: int | None = None
) -> WalkResult:
    """A ``quoteOrderQty`` MARKET order: spend (BUY) or receive (SELL) at most ``quote_e8``.

    Each level gives the largest multiple of ``step_e8`` (LOT_SIZE's step; 0 -> 1e-8) whose
    notional still fits, so the executed base quantity never breaks the step rule and the
    notional is as close to ``quote_e8`` as the grid allows without exceeding it. The walk
    goes on past a level it could only partly use, since a deeper (for a SELL: cheaper) level
    may still fit another step. ``remaining_e8`` is the unspent quote amount here.
    """
    step = step_e8 if step_e8 > 0 else 1
    budget = quote_e8 * SCALE  # e16, compared with exact price*qty products
    spent = 0
    fills: list[Level] = []
    filled = 0
    for price, avail in levels:
        if not _marketable(side, limit_e8, price):
            break
        steps = min(avail // step, (budget - spent) // (price * step))
        if steps <= 0:
            if side == "BUY" and avail >= step:
                break  # asks only get dearer: nothing deeper can fit either
            continue
        take = steps * step
        fills.append((price, take))
        filled += take
        spent += price * take
    return WalkResult(tuple(fills), filled, quote_e8 - spent // SCALE, spent // SCALE)


class ConsumedLiquidity:
    """Liquidity we took from the book, hidden until that level is refreshed by market data.

    Replaying market data means the book does not know about our fills: without this, two
    consecutive MARKET orders would both take the same visible quantity. Each taken quantity is
    remembered per (book side, price) and subtracted from what the book shows, until a depth
    update for that level (or a snapshot) replaces our guess with what the market really shows.
    """

    def __init__(self) -> None:
        self._taken: dict[tuple[str, int], int] = {}

    def take(self, book_side: str, fills: Iterable[Level]) -> None:
        """Record the fills of a walk over ``book_side`` ("BID" or "ASK")."""
        for price, qty in fills:
            key = (book_side, price)
            self._taken[key] = self._taken.get(key, 0) + qty

    def on_level_update(self, book_side: str, price: int) -> None:
        """A depth update for this level: the market's own number is the truth again."""
        self._taken.pop((book_side, price), None)

    def on_snapshot(self) -> None:
        self._taken.clear()

    def visible(self, book_side: str, levels: Iterable[Level]) -> Iterator[Level]:
        """The book side's levels minus what we took; emptied levels are skipped."""
        taken = self._taken
        for price, qty in levels:
            left = qty - taken.get((book_side, price), 0)
            if left > 0:
                yield price, left

    def taken(self, book_side: str, price: int) -> int:
        return self._taken.get((book_side, price), 0)
