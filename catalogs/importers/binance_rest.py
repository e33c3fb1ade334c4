"""Binance REST response bodies -> events (sans-I/O: a parsed JSON value in, events out).

Understood shapes: ``aggTrades``, ``trades``/``historicalTrades``, ``klines`` (and the
futures ``markPriceKlines``/... of the same layout), ``depth``, ``ticker/bookTicker`` (one
or a list), futures ``fundingRate`` history, and ``exchangeInfo`` (delegated to
:mod:`.exchange_info`). ``ticker/price`` and ``avgPrice`` carry no event this log has a
kind for (a last price is neither a trade nor a quote); they are counted as ignored.

Most bodies do not name their symbol (the request did), so it comes from the caller. A body
has no local receive time either: unless the caller recorded one (cryptofeed does), it is
derived by the declared latency model ``ts_recv = ts_event + latency_ns``. Bodies with no
venue time at all (spot depth, spot bookTicker) get ``ts_event = at_ns``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.events import (
    AggTradeReceived,
    BookSnapshotReceived,
    Event,
    FundingRateReceived,
    KlineReceived,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import InstrumentId, Market, instrument_id

from .common import (
    AMBIGUOUS_SYMBOL,
    BAD_VALUE,
    MS,
    UNKNOWN_TYPE,
    BadRecord,
    bool_field,
    e8_field,
    e8_text,
    epoch_to_ns,
    id_field,
    interval_of,
    levels_field,
    str_field,
)

IGNORED_SHAPES = frozenset({"ticker_price", "avg_price"})


@dataclass(frozen=True)
class RestContext:
    """What the body does not say: symbol, market, and when it was received.

    ``recv_ns`` is a recorded local receive time (all items of the body share it); without
    it ``ts_recv = ts_event + latency_ns``. ``at_ns`` is the venue time of untimed bodies
    (no recorded time either). ``interval`` overrides the one read off kline spans.
    """

    symbol: str | None = None
    market: Market = Market.SPOT
    recv_ns: int | None = None
    latency_ns: int = 0
    at_ns: int = 0
    interval: str | None = None

    def instrument(self, symbol: str | None = None) -> InstrumentId:
        sym = symbol or self.symbol
        if not sym:
            raise BadRecord(
                "this REST body does not name its symbol: give one (--symbol)", category=AMBIGUOUS_SYMBOL
            )
        try:
            return instrument_id(sym, self.market)
        except ValueError as exc:
            raise BadRecord(str(exc), category=BAD_VALUE) from None

    def recv(self, ts_event: int) -> int:
        return self.recv_ns if self.recv_ns is not None else ts_event + self.latency_ns

    def untimed(self) -> int:
        """ts_event for a body that carries no venue time."""
        return self.recv_ns if self.recv_ns is not None else self.at_ns


def classify(doc: Any) -> tuple[str, Sequence[Any]]:
    """``(shape, items)``: which REST response this is and its items (one for objects)."""
    if type(doc) is dict:
        if type(doc.get("symbols")) is list:
            return "exchange_info", [doc]
        if "lastUpdateId" in doc and "bids" in doc:
            return "depth", [doc]
        if "bidPrice" in doc:
            return "book_ticker", [doc]
        if "mins" in doc and "price" in doc:
            return "avg_price", [doc]
        if "symbol" in doc and "price" in doc:
            return "ticker_price", [doc]
        raise BadRecord(f"unrecognised REST body with keys {sorted(doc)[:8]}", category=UNKNOWN_TYPE)
    if type(doc) is list:
        if not doc:
            return "empty", []
        first = doc[0]
        if type(first) is list:
            return "klines", doc
        if type(first) is dict:
            for key, shape in (
                ("a", "agg_trades"),
                ("isBuyerMaker", "trades"),
                ("fundingRate", "funding_rates"),
                ("bidPrice", "book_ticker"),
                ("price", "ticker_price"),
            ):
                if key in first:
                    return shape, doc
        raise BadRecord(f"unrecognised REST list of {first!r:.80}", category=UNKNOWN_TYPE)
    raise BadRecord(f"unrecognised REST body {doc!r:.80}", category=UNKNOWN_TYPE)


def item_events(shape: str, item: Any, ctx: RestContext) -> list[Event]:
    """Events of one item of a classified body (``[]`` for ignored shapes)."""
    if shape in IGNORED_SHAPES or shape == "empty":
        return []
    if shape == "exchange_info":
        from .exchange_info import exchange_info_events

        return list(
            exchange_info_events(item, market=ctx.market, ts_recv=ctx.recv_ns, latency_ns=ctx.latency_ns)
        )
    if shape == "klines":
        return [_kline(item, ctx)]
    if type(item) is not dict:
        raise BadRecord(f"{shape}: expected an object, got {item!r:.80}", category=BAD_VALUE)
    return [_OBJECT_SHAPES[shape](item, ctx)]


def rest_events(doc: Any, ctx: RestContext) -> tuple[list[Event], list[str]]:
    """All events of a body, and the names of ignored shapes (for the import stats)."""
    shape, items = classify(doc)
    events: list[Event] = []
    for item in items:
        events.extend(item_events(shape, item, ctx))
    return events, [shape] * len(items) if shape in IGNORED_SHAPES else []


def _agg_trade(d: dict[str, Any], ctx: RestContext) -> Event:
    what = "aggTrades item"
    ts = id_field(d, "T", what) * MS
    return AggTradeReceived(
        0,
        ts,
        ctx.recv(ts),
        ctx.instrument(),
        e8_field(d, "p", what),
        e8_field(d, "q", what),
        id_field(d, "a", what),
        id_field(d, "f", what),
        id_field(d, "l", what),
        bool_field(d, "m", what),
    )


def _trade(d: dict[str, Any], ctx: RestContext) -> Event:
    what = "trades item"
    ts = id_field(d, "time", what) * MS
    return TradeReceived(
        0,
        ts,
        ctx.recv(ts),
        ctx.instrument(),
        e8_field(d, "price", what),
        e8_field(d, "qty", what),
        id_field(d, "id", what),
        bool_field(d, "isBuyerMaker", what),
    )


def _funding_rate(d: dict[str, Any], ctx: RestContext) -> Event:
    what = "fundingRate item"
    ts = id_field(d, "fundingTime", what) * MS
    mark = e8_field(d, "markPrice", what) if d.get("markPrice", "") != "" else 0
    iid = ctx.instrument(str_field(d, "symbol", what))
    return FundingRateReceived(0, ts, ctx.recv(ts), iid, e8_field(d, "fundingRate", what, signed=True), mark)


def _book_ticker(d: dict[str, Any], ctx: RestContext) -> Event:
    what = "bookTicker"
    ts = id_field(d, "time", what) * MS if "time" in d else ctx.untimed()
    update_id = id_field(d, "lastUpdateId", what) if "lastUpdateId" in d else 0
    iid = ctx.instrument(str_field(d, "symbol", what) if "symbol" in d else None)
    return QuoteReceived(
        0,
        ts,
        ctx.recv(ts),
        iid,
        update_id,
        e8_field(d, "bidPrice", what),
        e8_field(d, "bidQty", what),
        e8_field(d, "askPrice", what),
        e8_field(d, "askQty", what),
    )


def _depth(d: dict[str, Any], ctx: RestContext) -> Event:
    what = "depth"
    ts = id_field(d, "E", what) * MS if "E" in d else ctx.untimed()
    iid = ctx.instrument(str_field(d, "symbol", what) if "symbol" in d else None)
    return BookSnapshotReceived(
        0,
        ts,
        ctx.recv(ts),
        iid,
        id_field(d, "lastUpdateId", what),
        levels_field(d, "bids", what),
        levels_field(d, "asks", what),
        False,
    )


_OBJECT_SHAPES = {
    "agg_trades": _agg_trade,
    "trades": _trade,
    "funding_rates": _funding_rate,
    "book_ticker": _book_ticker,
    "depth": _depth,
}


def _kline(row: Any, ctx: RestContext) -> Event:
    """``[openTime, o, h, l, c, v, closeTime, quoteVolume, trades, takerBase, takerQuote, ignore]``."""
    what = "klines row"
    if type(row) is not list or len(row) < 11:
        raise BadRecord(f"{what}: expected a list of 12 values, got {row!r:.80}", category=BAD_VALUE)
    cells = {str(i): v for i, v in enumerate(row)}
    open_ns = epoch_to_ns(id_field(cells, "0", what))
    close_ns = epoch_to_ns(id_field(cells, "6", what))
    closed = ctx.recv_ns is None or close_ns < ctx.recv_ns
    ts = close_ns if closed else ctx.untimed()

    def price(i: int, name: str) -> int:
        v = row[i]
        if type(v) is not str:
            raise BadRecord(f"{what}: {name} must be a decimal string, got {v!r}", category=BAD_VALUE)
        return e8_text(v, f"{what}: {name}")

    return KlineReceived(
        0,
        ts,
        ctx.recv(ts),
        ctx.instrument(),
        ctx.interval or interval_of(open_ns, close_ns),
        open_ns,
        close_ns,
        price(1, "open"),
        price(2, "high"),
        price(3, "low"),
        price(4, "close"),
        price(5, "volume"),
        price(7, "quote volume"),
        id_field(cells, "8", what),
        price(9, "taker buy volume"),
        price(10, "taker buy quote volume"),
        closed,
    )
