"""The server's public market state, sans-I/O: what REST market endpoints answer and streams send.

Fed with market events already re-stamped to the server's clock, in order. Keeps per symbol:
the diff-built order book (``engine.booksync``, so ``GET /depth``'s ``lastUpdateId`` lines up
with the ``U``/``u`` of the ``@depth`` stream exactly as on Binance), the last 1,000 trades,
1-minute klines built from the trades, the last bookTicker and mark price.

:meth:`MarketState.apply` returns the stream messages the event causes as
``(stream name, payload)`` pairs, built only for streams ``wanted`` says someone listens to.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.book import L2Book
from engine.booksync import BookSync
from engine.events import (
    AggTradeReceived,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    MarkPriceReceived,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import InstrumentId, Market, split_instrument_id
from venues.server import streams
from venues.server.streams import Json, Kline

MAX_TRADES = 1000
MAX_KLINES = 1000
MINUTE_MS = 60_000
Level = tuple[int, int]
Message = tuple[str, Json]


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One public trade as REST ``trades``/``aggTrades`` answer it (ms, e8)."""

    trade_id: int
    price: int
    qty: int
    time_ms: int
    buyer_maker: bool
    first_id: int
    last_id: int


@dataclass(slots=True)
class SymbolMarket:
    """One instrument's public state."""

    instrument: InstrumentId
    symbol: str
    futures: bool
    sync: BookSync
    trades: deque[TradeRow] = field(default_factory=lambda: deque(maxlen=MAX_TRADES))
    klines: deque[Kline] = field(default_factory=lambda: deque(maxlen=MAX_KLINES))
    quote: QuoteReceived | None = None
    mark: MarkPriceReceived | None = None
    last_price: int | None = None
    last_delta: BookDeltaReceived | None = None

    @property
    def stream_prefix(self) -> str:
        return self.symbol.lower()

    def depth(self, limit: int) -> tuple[int, tuple[Level, ...], tuple[Level, ...]]:
        """(lastUpdateId, bids, asks) of the book; a bookTicker-only market answers its one level."""
        sync = self.sync
        if sync.synced and sync.last_update_id is not None:
            bids, asks = sync.book.top(limit)
            return sync.last_update_id, bids, asks
        q = self.quote
        if q is not None:
            bids = ((q.bid_price, q.bid_qty),) if q.bid_qty else ()
            asks = ((q.ask_price, q.ask_qty),) if q.ask_qty else ()
            return q.update_id, bids, asks
        return 0, (), ()

    def book(self) -> L2Book | None:
        return self.sync.book if self.sync.synced else None

    def best(self) -> tuple[int, int, int, int, int] | None:
        """(update id, bid, bid qty, ask, ask qty) from the book, else the last bookTicker."""
        uid, bids, asks = self.depth(1)
        if bids and asks:
            return uid, bids[0][0], bids[0][1], asks[0][0], asks[0][1]
        q = self.quote
        if q is not None:
            return q.update_id, q.bid_price, q.bid_qty, q.ask_price, q.ask_qty
        return None

    def avg_price(self, mins: int, now_ms: int) -> int | None:
        """Volume-weighted average of the trades in the last ``mins`` minutes (last price if none)."""
        since = now_ms - mins * MINUTE_MS
        qty = notional = 0
        for t in reversed(self.trades):
            if t.time_ms < since:
                break
            qty += t.qty
            notional += t.price * t.qty
        if qty:
            return notional // qty
        return self.last_price


class MarketState:
    """Every instrument's :class:`SymbolMarket`; ``apply`` updates and returns stream messages."""

    def __init__(self, instruments: list[InstrumentId] | None = None) -> None:
        self.symbols: dict[InstrumentId, SymbolMarket] = {}
        self.by_stream: dict[str, SymbolMarket] = {}
        for iid in instruments or ():
            self.ensure(iid)

    def ensure(self, iid: InstrumentId) -> SymbolMarket:
        """The instrument's state, created empty on first use."""
        st = self.symbols.get(iid)
        if st is None:
            sym, market = split_instrument_id(iid)
            futures = market is not Market.SPOT
            st = SymbolMarket(iid, sym, futures, BookSync(iid, futures))
            self.symbols[iid] = st
            prefix = sym.lower()
            old = self.by_stream.get(prefix)
            if old is None or (old.futures and not futures):  # spot wins the plain stream name
                self.by_stream[prefix] = st
        return st

    def get(self, symbol: str, market: Market = Market.SPOT) -> SymbolMarket | None:
        return self.symbols.get(InstrumentId(f"{symbol.upper()}.{market.value}"))

    def apply(self, ev: Event, wanted: Callable[[str], bool] = lambda _: True) -> list[Message]:
        """Update the state with one market event; the stream messages it causes, for wanted streams."""
        st = self.ensure(ev.instrument)
        p = st.stream_prefix
        if st.futures and self.by_stream.get(p) is not st:
            p = f"{p}.{'usdm' if ev.instrument.endswith('USDM') else 'coinm'}"
        out: list[Message] = []
        t = type(ev)
        if t is TradeReceived or t is AggTradeReceived:
            self._trade(st, p, ev, wanted, out)  # type: ignore[arg-type]
        elif t is BookDeltaReceived:
            assert isinstance(ev, BookDeltaReceived)
            st.sync.on_event(ev)
            st.last_delta = ev
            if wanted(f"{p}@depth@100ms"):
                out.append((f"{p}@depth@100ms", streams.depth_update_msg(st.symbol, ev, st.futures)))
            self._partials(st, p, ev, wanted, out)
        elif t is BookSnapshotReceived:
            assert isinstance(ev, BookSnapshotReceived)
            if not ev.partial:
                st.sync.on_event(ev)
        elif t is QuoteReceived:
            assert isinstance(ev, QuoteReceived)
            st.quote = ev
            if wanted(f"{p}@bookTicker"):
                out.append((f"{p}@bookTicker", streams.book_ticker_msg(st.symbol, ev, st.futures)))
        elif t is MarkPriceReceived:
            assert isinstance(ev, MarkPriceReceived)
            st.mark = ev
            if wanted(f"{p}@markPrice@1s"):
                out.append((f"{p}@markPrice@1s", streams.mark_price_msg(st.symbol, ev)))
        return out

    def _partials(self, st: SymbolMarket, p: str, ev: BookDeltaReceived, wanted: Callable[[str], bool],
                  out: list[Message]) -> None:
        book = st.book()
        if book is None:
            return
        for n in (5, 10, 20):
            name = f"{p}@depth{n}@100ms"
            if wanted(name):
                bids, asks = book.top(n)
                out.append((name, streams.partial_depth_msg(
                    ev.last_update_id, bids, asks, st.symbol, st.futures, ev.ts_recv,
                    ev.first_update_id, ev.prev_update_id)))

    def _trade(self, st: SymbolMarket, p: str, ev: TradeReceived | AggTradeReceived, wanted: Callable[[str], bool],
               out: list[Message]) -> None:
        if isinstance(ev, AggTradeReceived):
            tid, first, last = ev.agg_id, ev.first_trade_id, ev.last_trade_id
        else:
            tid = first = last = ev.trade_id
        t_ms = streams.ms(ev.ts_event)
        st.trades.append(TradeRow(tid, ev.price, ev.qty, t_ms, ev.buyer_maker, first, last))
        st.last_price = ev.price
        if wanted(f"{p}@trade") and isinstance(ev, TradeReceived):
            out.append((f"{p}@trade", streams.trade_msg(st.symbol, ev, st.futures)))
        if wanted(f"{p}@aggTrade"):
            out.append((f"{p}@aggTrade", streams.agg_trade_msg(st.symbol, ev, st.futures)))
        closed = self._kline(st, ev.price, ev.qty, tid, ev.buyer_maker, t_ms)
        name = f"{p}@kline_1m"
        if wanted(name):
            if closed is not None:
                out.append((name, streams.kline_msg(st.symbol, closed, "1m", True, ev.ts_recv)))
            out.append((name, streams.kline_msg(st.symbol, st.klines[-1], "1m", False, ev.ts_recv)))

    @staticmethod
    def _kline(st: SymbolMarket, price: int, qty: int, tid: int, buyer_maker: bool, t_ms: int) -> Kline | None:
        """Add a trade to the current 1m candle; returns the candle it closed, if any."""
        open_ms = t_ms - t_ms % MINUTE_MS
        cur = st.klines[-1] if st.klines else None
        closed = None
        if cur is None or open_ms > cur.open_time:
            closed = cur
            cur = Kline(open_ms, open_ms + MINUTE_MS - 1, price, price, price, price)
            st.klines.append(cur)
        cur.add(price, qty, tid, buyer_maker)
        return closed
