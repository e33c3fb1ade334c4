"""Per-symbol matching state: OUR resting orders, OUR untriggered stops, and the market we match against.

Why this shape (the venue's hot path is submit -> rest -> cancel, with ~1,000 resting
orders): each side of our book is ``price -> {order_id: Order}`` (insertion-ordered
dicts give FIFO time priority and O(1) removal by id) plus one sorted key list whose
*last* element is the best price (``bisect`` on a list: a memmove, cheaper in CPython
than heap bookkeeping). Untriggered stops live in two sorted lists keyed by stop price
(one for "triggers when the price rises to it", one for "falls to it"), so a trade only
looks at the stops it actually fires.

The market is the reconstructed L2 book (:class:`engine.book.L2Book`, fed by snapshots,
diffs and bookTickers) plus the last trade price. A taker order walks
:meth:`SymbolBook.liquidity`: market levels and our own opposite orders merged in price
order (at one price the market's visible quantity comes first: our order joined the
queue behind what was already displayed), which is where self-trade prevention happens.

Nothing here touches balances or emits events: :mod:`venues.sim.venue` does that.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from typing import Protocol

from engine.book import BookSide, L2Book
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import (
    ExpiryReason,
    OrderSide,
    OrderSnapshot,
    OrderStatus,
    OrderType,
    SelfTradePreventionMode,
    TimeInForce,
)

OPEN_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_NEW})
"""``status in OPEN_STATUSES`` is :attr:`Order.is_open` without the property call (hot loops use it)."""
_BUY = OrderSide.BUY  # bound once: EnumType attribute reads are slow in CPython 3.11
_NO_EXPIRY = ExpiryReason.NONE


class Order:
    """One order's mutable state inside the venue (the public view is :class:`OrderSnapshot`).

    ``locked`` is what this order holds of the account's locked balance (base for SELL,
    quote for BUY); an OCO pair's shared lock sits on its :class:`OrderList` until one leg
    acts. ``queue_ahead`` is the displayed quantity estimated ahead of us at our price.
    """

    __slots__ = (
        "client_order_id",
        "cum_quote",
        "executed",
        "expiry_reason",
        "iceberg_qty",
        "instrument",
        "is_buy",
        "list_id",
        "locked",
        "order_id",
        "order_type",
        "prevented",
        "prevented_match_id",
        "price",
        "qty",
        "queue_ahead",
        "quote_qty",
        "side",
        "status",
        "stop_price",
        "stp",
        "strategy_id",
        "strategy_type",
        "tif",
        "time",
        "trail_ref",
        "trailing_delta",
        "trailing_time",
        "triggered",
        "update_time",
        "visible_left",
        "working",
        "working_time",
    )

    def __init__(
        self,
        order_id: int,
        client_order_id: str,
        instrument: InstrumentId,
        side: OrderSide,
        order_type: OrderType,
        tif: TimeInForce,
        qty: int,
        price: int,
        stop_price: int,
        quote_qty: int,
        iceberg_qty: int,
        trailing_delta: int,
        stp: SelfTradePreventionMode,
        list_id: int,
        ts: int,
    ) -> None:
        self.order_id = order_id
        self.client_order_id = client_order_id
        self.instrument = instrument
        self.side = side
        self.is_buy = side is _BUY
        self.order_type = order_type
        self.tif = tif
        self.qty = qty
        self.price = price
        self.stop_price = stop_price
        self.quote_qty = quote_qty
        self.iceberg_qty = iceberg_qty
        self.visible_left = iceberg_qty
        self.trailing_delta = trailing_delta
        self.trailing_time = -1
        self.trail_ref = 0
        self.stp = stp
        self.list_id = list_id
        self.time = ts
        self.update_time = ts
        self.working_time = -1
        self.working = False
        self.triggered = False
        self.status: OrderStatus | None = None
        self.executed = 0
        self.cum_quote = 0
        self.prevented = 0
        self.prevented_match_id = -1
        self.locked = 0
        self.queue_ahead = 0
        self.expiry_reason = _NO_EXPIRY
        self.strategy_id: int | None = None
        self.strategy_type: int | None = None

    @property
    def remaining(self) -> int:
        """Quantity still available for execution: ``origQty - executedQty - preventedQuantity``."""
        return self.qty - self.executed - self.prevented

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def snapshot(self, symbol: str) -> OrderSnapshot:
        """The public, immutable view (what ``GET /api/v3/order`` shows)."""
        status = self.status if self.status is not None else OrderStatus.NEW
        return OrderSnapshot(
            instrument=self.instrument,
            symbol=symbol,
            order_id=self.order_id,
            order_list_id=self.list_id,
            client_order_id=self.client_order_id,
            side=self.side,
            order_type=self.order_type,
            time_in_force=self.tif,
            price=self.price,
            orig_qty=self.qty,
            executed_qty=self.executed,
            cum_quote=self.cum_quote,
            orig_quote_order_qty=self.quote_qty,
            status=status,
            stop_price=self.stop_price,
            iceberg_qty=self.iceberg_qty,
            time=self.time,
            update_time=self.update_time,
            working_time=self.working_time,
            is_working=self.working_time >= 0,
            stp_mode=self.stp,
            prevented_qty=self.prevented,
            prevented_match_id=self.prevented_match_id,
            trailing_delta=self.trailing_delta,
            trailing_time=self.trailing_time,
            strategy_id=self.strategy_id,
            strategy_type=self.strategy_type,
            expiry_reason=self.expiry_reason,
            iceberg_sent=self.iceberg_qty > 0,
        )


# --------------------------------------------------------------------------- our book


class OwnSide:
    """Our resting orders on one side: ``price -> {order_id: Order}`` in time priority."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # +1 bids (best = highest), -1 asks (best = lowest)
        self.levels: dict[int, dict[int, Order]] = {}
        self.keys: list[int] = []

    def __len__(self) -> int:
        return sum(len(v) for v in self.levels.values())

    def add(self, o: Order) -> None:
        level = self.levels.get(o.price)
        if level is None:
            self.levels[o.price] = {o.order_id: o}
            insort(self.keys, o.price * self.sign)
        else:
            level[o.order_id] = o

    def remove(self, o: Order) -> None:
        level = self.levels[o.price]
        del level[o.order_id]
        if not level:
            del self.levels[o.price]
            keys = self.keys
            del keys[bisect_left(keys, o.price * self.sign)]

    def best(self) -> int | None:
        keys = self.keys
        return keys[-1] * self.sign if keys else None

    def next_after(self, price: int | None) -> int | None:
        """Our next price worse than ``price`` (the best when None); robust to levels removed meanwhile."""
        keys = self.keys
        if not keys:
            return None
        if price is None:
            return keys[-1] * self.sign
        i = bisect_left(keys, price * self.sign) - 1
        return keys[i] * self.sign if i >= 0 else None

    def prices_from_best(self, worst: int | None) -> list[int]:
        """Our prices from the best down to ``worst`` inclusive (all when None)."""
        out: list[int] = []
        sign = self.sign
        if worst is None:
            return [k * sign for k in reversed(self.keys)]
        bound = worst * sign
        for k in reversed(self.keys):
            if k < bound:
                break
            out.append(k * sign)
        return out

    def orders(self) -> Iterator[Order]:
        for k in reversed(self.keys):
            yield from self.levels[k * self.sign].values()


class TriggerBook:
    """Untriggered stop orders: fired by the last price crossing their stop (or their trailing rule)."""

    __slots__ = ("falling", "orders", "rising", "trailing")

    def __init__(self) -> None:
        self.rising: list[tuple[int, int]] = []  # (stop, order_id): fires when last >= stop
        self.falling: list[tuple[int, int]] = []  # (stop, order_id): fires when last <= stop
        self.trailing: dict[int, Order] = {}
        self.orders: dict[int, Order] = {}

    def __len__(self) -> int:
        return len(self.orders)

    def add(self, o: Order, rises: bool) -> None:
        self.orders[o.order_id] = o
        if o.trailing_delta:
            self.trailing[o.order_id] = o
        else:
            insort(self.rising if rises else self.falling, (o.stop_price, o.order_id))

    def remove(self, o: Order, rises: bool) -> None:
        if self.orders.pop(o.order_id, None) is None:
            return
        if o.trailing_delta:
            del self.trailing[o.order_id]
            return
        lst = self.rising if rises else self.falling
        key = (o.stop_price, o.order_id)
        i = bisect_left(lst, key)
        if i < len(lst) and lst[i] == key:
            del lst[i]

    def fired(self, last: int) -> list[Order]:
        """Non-trailing stops whose condition holds at ``last``, removed, in order-id (time) order."""
        out: list[int] = []
        rising = self.rising
        if rising and rising[0][0] <= last:
            i = bisect_left(rising, (last + 1, -1))
            out.extend(oid for _, oid in rising[:i])
            del rising[:i]
        falling = self.falling
        if falling and falling[-1][0] >= last:
            i = bisect_left(falling, (last, -1))
            out.extend(oid for _, oid in falling[i:])
            del falling[i:]
        if not out:
            return []
        out.sort()
        orders = self.orders
        return [orders.pop(oid) for oid in out]

    def trailing_fired(self, last: int, ts: int, rises_of: dict[int, bool]) -> list[Order]:
        """Advance every trailing stop with trade price ``last``; return (and remove) those that fire."""
        out: list[Order] = []
        for o in self.trailing.values():
            if trail_step(o, last, ts, rises_of[o.order_id]):
                out.append(o)
        for o in out:
            del self.trailing[o.order_id]
            del self.orders[o.order_id]
        return out


def trail_step(o: Order, last: int, ts: int, rises: bool) -> bool:
    """One trade for a trailing stop (Binance's trailing-stop FAQ); True when it triggers.

    Not yet tracking: starts when the stop-price condition holds (or at once without a stop
    price), with ``last`` as the first extreme. Tracking a SELL: remember the highest price,
    trigger on a fall of ``trailing_delta`` BIPS from it; a BUY mirrors with the lowest price.
    """
    if o.trailing_time < 0:
        if o.stop_price and not (last >= o.stop_price if rises else last <= o.stop_price):
            return False
        o.trailing_time = ts
        o.trail_ref = last
        return False
    d = o.trailing_delta
    if o.is_buy:
        if last < o.trail_ref:
            o.trail_ref = last
            return False
        return last * 10_000 >= o.trail_ref * (10_000 + d)
    if last > o.trail_ref:
        o.trail_ref = last
        return False
    return last * 10_000 <= o.trail_ref * (10_000 - d)


# --------------------------------------------------------------------------- queue position


class QueueModel(Protocol):
    """How much displayed quantity is ahead of our resting order at its price (swappable).

    Stateless over numbers so the venue can keep the estimate on the order itself.
    """

    def initial(self, level_qty: int) -> int:
        """Queue ahead when the order rests at a level showing ``level_qty``."""
        ...

    def on_trade(self, ahead: int, trade_qty: int) -> int:
        """Queue ahead after a trade of ``trade_qty`` at our price."""
        ...

    def on_level_change(self, ahead: int, old_qty: int, new_qty: int) -> int:
        """Queue ahead after the displayed level changed from ``old_qty`` to ``new_qty`` (not a trade)."""
        ...


class RiskAverseQueue:
    """Everything displayed at placement is ahead; only trades at our price advance us.

    A shrinking level can only cap the estimate (nobody can be ahead of us who is not
    displayed), so cancels anywhere in the queue never help us beyond that.
    """

    def initial(self, level_qty: int) -> int:
        return level_qty

    def on_trade(self, ahead: int, trade_qty: int) -> int:
        return ahead - trade_qty if ahead > trade_qty else 0

    def on_level_change(self, ahead: int, old_qty: int, new_qty: int) -> int:
        return new_qty if new_qty < ahead else ahead


# --------------------------------------------------------------------------- market


class RollingVwap:
    """Volume-weighted average trade price over the last ``window_ns`` (the filters' ``avgPriceMins``)."""

    __slots__ = ("_avg", "_notional", "_qty", "_trades", "window_ns")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._trades: deque[tuple[int, int, int]] = deque()
        self._notional = 0
        self._qty = 0
        self._avg: int | None = None
        """The last quotient, until a trade enters or leaves the window (every order's filters read it)."""

    def add(self, ts: int, price: int, qty: int) -> None:
        n = price * qty
        trades = self._trades
        trades.append((ts, n, qty))
        self._notional += n
        self._qty += qty
        self._avg = None
        if trades[0][0] <= ts - self.window_ns:
            self._trim(ts)

    def _trim(self, now: int) -> None:
        trades = self._trades
        horizon = now - self.window_ns
        while trades and trades[0][0] <= horizon:
            _, n, q = trades.popleft()
            self._notional -= n
            self._qty -= q
            self._avg = None

    def value(self, now: int) -> int | None:
        trades = self._trades
        if trades and trades[0][0] <= now - self.window_ns:
            self._trim(now)
        avg = self._avg
        if avg is None and self._qty:
            avg = self._avg = self._notional // self._qty
        return avg


Segment = tuple[int, int, Order | None]
"""One step of a taker's walk: (price, displayed market qty, None) or (price, 0, our resting order)."""


class SymbolBook:
    """Everything the matcher knows about one symbol: the market book, last price, our orders."""

    __slots__ = ("bids", "asks", "book", "last_price", "triggers", "vwaps")

    def __init__(self, vwap_windows_ns: tuple[int, ...] = ()) -> None:
        self.book = L2Book()
        self.bids = OwnSide(1)
        self.asks = OwnSide(-1)
        self.triggers = TriggerBook()
        self.last_price: int | None = None
        self.vwaps = {w: RollingVwap(w) for w in vwap_windows_ns}

    def own(self, is_buy: bool) -> OwnSide:
        return self.bids if is_buy else self.asks

    def market_opposite(self, taker_is_buy: bool) -> BookSide:
        return self.book.asks if taker_is_buy else self.book.bids

    def crosses(self, is_buy: bool, price: int) -> bool:
        """Would a limit at ``price`` match at once (against the market or our own opposite orders)?"""
        if is_buy:
            ask = self.book.asks.best_price()
            keys = self.asks.keys  # our best ask is -keys[-1] (OwnSide.best, inlined)
            return (ask is not None and price >= ask) or (bool(keys) and price >= -keys[-1])
        bid = self.book.bids.best_price()
        keys = self.bids.keys
        return (bid is not None and price <= bid) or (bool(keys) and price <= keys[-1])

    def liquidity(self, taker_is_buy: bool, limit: int | None) -> Iterator[Segment]:
        """Market levels and our own opposite orders a taker may hit, best first, merged by price.

        Market levels are read lazily (top 1, then 8, 64, all) so a small order on a 5,000-level
        book does not copy the book. Quantities are as of the call; the caller re-reads nothing.
        """
        market = self.market_opposite(taker_is_buy)
        own = self.asks if taker_is_buy else self.bids
        sign = 1 if taker_is_buy else -1  # price * sign grows as prices get worse for the taker
        lim = None if limit is None else limit * sign
        own_px = own.keys[-1] * own.sign if own.keys else None  # own.next_after(None): our best
        if own_px is not None and lim is not None and own_px * sign > lim:
            own_px = None
        done = None  # price * sign of the last market level yielded
        depth = 1  # most takers stop at the first level: read 1, then 8, 64, all
        while True:
            total = len(market)
            stop = False
            if depth == 1:  # market.top(1), without building it
                best = market.best()
                levels: tuple[tuple[int, int], ...] = (best,) if best is not None else ()
            else:
                levels = market.top(depth)
            for price, qty in levels:
                key = price * sign
                if done is not None and key <= done:
                    continue
                if lim is not None and key > lim:
                    stop = True
                    break
                while own_px is not None and own_px * sign < key:
                    yield from _own_level(own, own_px)
                    own_px = self._next_own(own, own_px, sign, lim)
                done = key
                yield (price, qty, None)
                if own_px is not None and own_px == price:
                    yield from _own_level(own, own_px)
                    own_px = self._next_own(own, own_px, sign, lim)
            if stop or depth >= total:  # saw every level that existed when we read them
                break
            depth = depth * 8 if depth < 64 else total
        while own_px is not None:
            yield from _own_level(own, own_px)
            own_px = self._next_own(own, own_px, sign, lim)

    @staticmethod
    def _next_own(own: OwnSide, after: int, sign: int, lim: int | None) -> int | None:
        nxt = own.next_after(after)
        if nxt is not None and lim is not None and nxt * sign > lim:
            return None
        return nxt

    def vwap(self, window_ns: int, now: int) -> int | None:
        v = self.vwaps.get(window_ns)
        return v.value(now) if v is not None else None


def _own_level(own: OwnSide, price: int) -> Iterator[Segment]:
    level = own.levels.get(price)
    if level:
        for o in list(level.values()):
            yield (price, 0, o)


def notional(price: int, qty: int) -> int:
    """Quote amount of ``qty`` at ``price``, truncated to e8 (what a trade moves)."""
    return int(price * qty // SCALE)


def notional_ceil(price: int, qty: int) -> int:
    """Quote amount rounded up: what a BUY must lock so every truncated fill is covered."""
    return int(-(-price * qty // SCALE))
