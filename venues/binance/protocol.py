"""WebSocket message bytes -> events (sans-I/O): market streams and the user data stream.

:class:`MarketParser` is the live twin of the recorder importer
(``catalogs.importers.binance_stream``): for the same message and receive time it produces
the *same* events (a test proves it on the real recordings), so a live session's log and an
imported recording replay identically. It is written separately because venues may not import
catalogs, and because it is on the tick-to-order path: the combined-stream wrapper is decoded
into typed ``msgspec`` structs picked by the stream name, with no intermediate dicts.

Unlike the importer it knows its market up front (the connection's host says spot or
futures), and it does not police sequence numbers: the local book (``streams``) does.

:class:`UserParser` turns ``executionReport``, ``listStatus`` and ``outboundAccountPosition``
into the venue events the simulated venue emits. ``balanceUpdate`` (a deposit/withdrawal
delta) yields nothing: Binance follows it with an ``outboundAccountPosition`` carrying the
absolute balances, which is what :class:`BalanceUpdated` records.

:func:`trade_fill_events` and :func:`terminal_events` build the same events from REST
(``GET /api/v3/myTrades`` rows and a ``GET /api/v3/order`` snapshot) for executions the user
stream never delivered: the live venue's reconciliation after a reconnect, and a cancel or
expiry answer stating more executed than was reported (its fills are fetched before it, see
:func:`ended_order`).
"""

from __future__ import annotations

import functools
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from engine.errors import VenueMisbehaved
from engine.events import (
    AggTradeReceived,
    BalanceUpdated,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    KlineReceived,
    Level,
    LiquidationReceived,
    MarkPriceReceived,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    OrderTradePrevented,
    QuoteReceived,
    TradeReceived,
)
from engine.fixed import SCALE, parse_e8
from engine.identifiers import InstrumentId, Market, instrument_id
from engine.orders import (
    ContingencyType,
    ExpiryReason,
    ListOrderStatus,
    ListStatusType,
    OrderSide,
    OrderSnapshot,
    OrderStatus,
    OrderType,
    RejectReason,
    SelfTradePreventionMode,
    TimeInForce,
)

MS = 1_000_000
NO_ID = -1
_e8 = functools.lru_cache(maxsize=1 << 16)(parse_e8)


@functools.lru_cache(maxsize=1 << 12)
def _e8s(text: str) -> int:
    return parse_e8(text, signed=True)


def futures_market(symbol: str) -> Market:
    """COIN-M when the pair before ``_`` ends in USD (``BTCUSD_PERP``), else USD-M (the importer's rule)."""
    pair, sep, _ = symbol.partition("_")
    return Market.COINM if sep and pair.endswith("USD") else Market.USDM


def levels(raw: list[tuple[str, str]]) -> tuple[Level, ...]:
    """``[["price", "qty"], ...]`` as exact e8 pairs, in order."""
    parse = _e8
    return tuple([(parse(p), parse(q)) for p, q in raw])


# --------------------------------------------------------------------------- typed payloads


class _Wrapper(msgspec.Struct):
    stream: str
    data: msgspec.Raw


class _Trade(msgspec.Struct):
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool
    X: str | None = None


class _AggTrade(msgspec.Struct):
    s: str
    a: int
    p: str
    q: str
    f: int
    l: int
    T: int
    m: bool


class _Depth(msgspec.Struct):
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    pu: int | None = None


class _Partial(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class _Ticker(msgspec.Struct):
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str
    E: int | None = None


class _Mark(msgspec.Struct):
    E: int
    s: str
    p: str
    i: str = ""
    P: str = ""
    r: str = ""
    T: int | None = None


class _Candle(msgspec.Struct):
    t: int
    T: int
    i: str
    o: str
    c: str
    h: str
    l: str
    v: str
    n: int
    x: bool
    q: str
    V: str
    Q: str


class _Kline(msgspec.Struct):
    E: int
    s: str
    k: _Candle


class _ForceOrderBody(msgspec.Struct):
    s: str
    S: str
    p: str
    q: str
    ap: str
    z: str
    X: str


class _ForceOrder(msgspec.Struct):
    E: int
    o: _ForceOrderBody


_PARTIALS = frozenset({"depth5", "depth10", "depth20"})


class MarketParser:
    """Combined-stream frames (``{"stream": ..., "data": ...}``) -> market events.

    ``futures``: the connection is to a futures host (USD-M or COIN-M by symbol), else spot.
    Raises :class:`~engine.errors.VenueMisbehaved` naming the stream for a message that does
    not parse: the venue broke its own protocol, which a caller logs and survives.
    """

    def __init__(self, *, futures: bool = False) -> None:
        self.futures = futures
        self._ids: dict[str, InstrumentId] = {}
        self._wrapper = msgspec.json.Decoder(_Wrapper).decode
        self._dec: dict[type[msgspec.Struct], Any] = {}

    def instrument(self, symbol: str) -> InstrumentId:
        """The instrument id of a symbol on this connection's market (cached)."""
        iid = self._ids.get(symbol)
        if iid is None:
            sym = symbol.upper()
            market = futures_market(sym) if self.futures else Market.SPOT
            iid = self._ids[symbol] = instrument_id(sym, market)
        return iid

    def _decode(self, raw: msgspec.Raw, kind: type[msgspec.Struct]) -> Any:
        dec = self._dec.get(kind)
        if dec is None:
            dec = self._dec[kind] = msgspec.json.Decoder(kind).decode
        return dec(raw)

    def parse(self, frame: bytes | str, ts_recv: int) -> list[Event]:
        """The events of one frame received at ``ts_recv`` (``[]`` for control replies)."""
        try:
            w = self._wrapper(frame)
        except msgspec.DecodeError as exc:
            if b'"result"' in (frame.encode() if isinstance(frame, str) else frame):
                return []  # a SUBSCRIBE/LIST_SUBSCRIPTIONS reply
            raise VenueMisbehaved(f"market stream frame is not a combined-stream message: {exc}") from None
        stream = w.stream
        sym, _, kind = stream.partition("@")
        try:
            return self._payload(kind, sym, w.data, ts_recv)
        except (msgspec.DecodeError, ValueError) as exc:
            raise VenueMisbehaved(f"stream {stream!r}: bad payload: {exc}") from None

    def _payload(self, kind: str, sym: str, data: msgspec.Raw, ts_recv: int) -> list[Event]:
        if kind == "trade":
            t = self._decode(data, _Trade)
            return [TradeReceived(0, t.T * MS, ts_recv, self.instrument(t.s), _e8(t.p), _e8(t.q), t.t, t.m)]
        if kind == "aggTrade":
            g = self._decode(data, _AggTrade)
            return [AggTradeReceived(0, g.T * MS, ts_recv, self.instrument(g.s), _e8(g.p), _e8(g.q), g.a, g.f,
                                     g.l, g.m)]
        if kind == "bookTicker":
            k = self._decode(data, _Ticker)
            ts_event = k.E * MS if k.E is not None else ts_recv
            return [QuoteReceived(0, ts_event, ts_recv, self.instrument(k.s), k.u, _e8(k.b), _e8(k.B), _e8(k.a),
                                  _e8(k.A))]
        base = kind.partition("@")[0]
        if base == "depth":
            d = self._decode(data, _Depth)
            prev = d.pu if d.pu is not None else -1
            return [BookDeltaReceived(0, d.E * MS, ts_recv, self.instrument(d.s), d.U, d.u, prev, levels(d.b),
                                      levels(d.a))]
        if base in _PARTIALS:
            return self._partial(sym, data, ts_recv)
        if base.startswith("markPrice"):
            return [self._mark(self._decode(data, _Mark), ts_recv)]
        if base.startswith("kline"):
            return [self._kline(self._decode(data, _Kline), ts_recv)]
        if base == "forceOrder":
            f = self._decode(data, _ForceOrder)
            o = f.o
            return [LiquidationReceived(0, f.E * MS, ts_recv, self.instrument(o.s), o.S, _e8(o.p), _e8(o.q),
                                        _e8(o.ap), _e8(o.z), o.X)]
        raise ValueError(f"unknown stream kind {kind!r}")

    def _partial(self, sym: str, data: msgspec.Raw, ts_recv: int) -> list[Event]:
        if self.futures:  # futures partial depth has the diff's shape
            d = self._decode(data, _Depth)
            return [BookSnapshotReceived(0, d.E * MS, ts_recv, self.instrument(d.s), d.u, levels(d.b), levels(d.a),
                                         True)]
        p = self._decode(data, _Partial)
        return [BookSnapshotReceived(0, ts_recv, ts_recv, self.instrument(sym), p.lastUpdateId, levels(p.bids),
                                     levels(p.asks), True)]

    def _mark(self, m: _Mark, ts_recv: int) -> MarkPriceReceived:
        return MarkPriceReceived(
            0, m.E * MS, ts_recv, self.instrument(m.s), _e8(m.p), _e8(m.i) if m.i else 0,
            _e8(m.P) if m.P else 0, _e8s(m.r) if m.r else 0, m.T * MS if m.T is not None else 0,
        )

    def _kline(self, k: _Kline, ts_recv: int) -> KlineReceived:
        c = k.k
        return KlineReceived(
            0, k.E * MS, ts_recv, self.instrument(k.s), c.i, c.t * MS, c.T * MS, _e8(c.o), _e8(c.h), _e8(c.l),
            _e8(c.c), _e8(c.v), _e8(c.q), c.n, _e8(c.V), _e8(c.Q), c.x,
        )


def depth_snapshot_event(doc: dict[str, Any], instrument: InstrumentId, ts_recv: int) -> BookSnapshotReceived:
    """A REST ``/depth`` body -> the full snapshot event (``ts_event`` = ``E`` when futures send it)."""
    ts_event = int(doc["E"]) * MS if "E" in doc else ts_recv
    return BookSnapshotReceived(0, ts_event, ts_recv, instrument, int(doc["lastUpdateId"]),
                                levels(doc["bids"]), levels(doc["asks"]), False)


# --------------------------------------------------------------------------- user data stream


def _num(d: dict[str, Any], key: str) -> int:
    v = d.get(key)
    return _e8(v) if isinstance(v, str) and v else 0


def _reason(msg: str) -> RejectReason:
    try:
        return RejectReason(msg)
    except ValueError:
        return RejectReason.NONE


class UserParser:
    """User-data-stream messages -> venue events (see module doc)."""

    def __init__(self, *, market: Market = Market.SPOT) -> None:
        self.market = market
        self._decode = msgspec.json.Decoder().decode

    def parse(self, frame: bytes | str, ts_recv: int) -> list[Event]:
        """Events of one frame: raw (``/ws/<listenKey>``), combined, or WS-API-wrapped (``event``)."""
        try:
            doc = self._decode(frame)
        except msgspec.DecodeError as exc:
            raise VenueMisbehaved(f"user stream frame is not JSON: {exc}") from None
        if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
            doc = doc["data"]
        if isinstance(doc, dict) and isinstance(doc.get("event"), dict):
            doc = doc["event"]
        if not isinstance(doc, dict):
            return []
        return self.events(doc, ts_recv)

    def events(self, d: dict[str, Any], ts_recv: int) -> list[Event]:
        """Events of one decoded user-stream payload."""
        etype = d.get("e")
        try:
            if etype == "executionReport":
                return execution_report_events(d, self._iid(d["s"]), ts_recv)
            if etype == "listStatus":
                return [self._list_status(d, ts_recv)]
            if etype == "outboundAccountPosition":
                bals = tuple((str(b["a"]), _num(b, "f"), _num(b, "l")) for b in d.get("B") or ())
                return [BalanceUpdated(0, int(d["E"]) * MS, ts_recv, InstrumentId(""), bals)]
        except (KeyError, ValueError, TypeError) as exc:
            raise VenueMisbehaved(f"user stream {etype!r}: bad payload: {exc!r}") from None
        return []

    def _iid(self, symbol: str) -> InstrumentId:
        return instrument_id(symbol, self.market)

    def _list_status(self, d: dict[str, Any], ts_recv: int) -> OrderListStatusChanged:
        orders = d.get("O") or ()
        return OrderListStatusChanged(
            0, int(d["E"]) * MS, ts_recv, self._iid(d["s"]), int(d["g"]), str(d.get("C", "")),
            ContingencyType(d.get("c") or "OCO"), ListStatusType(d["l"]), ListOrderStatus(d["L"]),
            tuple(int(o["i"]) for o in orders), tuple(str(o.get("c", "")) for o in orders),
            str(d.get("r") or "NONE"),
        )


def execution_report_events(d: dict[str, Any], iid: InstrumentId, ts_recv: int) -> list[Event]:
    """One ``executionReport`` -> the venue event of its execution type ``x`` (``REPLACED``: none)."""
    x = d["x"]
    ts = int(d.get("T") or d["E"]) * MS
    oid, list_id, exec_id = int(d["i"]), int(d.get("g", NO_ID)), int(d.get("I", NO_ID))
    orig = str(d.get("C") or "")
    cid = orig or str(d["c"])
    status = OrderStatus(d["X"])
    cum_qty, cum_quote = _num(d, "z"), _num(d, "Z")
    if x == "NEW":
        w = d.get("W")
        return [OrderAccepted(
            0, ts, ts_recv, iid, oid, str(d["c"]), OrderSide(d["S"]), OrderType(d["o"]),
            TimeInForce(d.get("f") or "GTC"), _num(d, "q"), _num(d, "p"), _num(d, "P"), _num(d, "Q"),
            _num(d, "F"), list_id, status, int(w) * MS if isinstance(w, int) and w >= 0 else NO_ID,
            SelfTradePreventionMode(d.get("V") or "NONE"), exec_id, int(d.get("d", 0)),
        )]
    if x == "TRADE":
        return [OrderFilled(
            0, ts, ts_recv, iid, oid, str(d["c"]), OrderSide(d["S"]), _num(d, "L"), _num(d, "l"), _num(d, "Y"),
            cum_qty, cum_quote, status, _num(d, "n"), str(d.get("N") or ""), int(d.get("t", NO_ID)),
            bool(d.get("m", False)), list_id, exec_id,
        )]
    if x == "CANCELED":
        cancel_cid = str(d["c"]) if orig else ""
        return [OrderCanceled(0, ts, ts_recv, iid, oid, cid, cancel_cid, cum_qty, cum_quote, list_id, exec_id)]
    if x == "EXPIRED":
        reason = ExpiryReason(d.get("eR") or "NONE")
        return [OrderExpired(0, ts, ts_recv, iid, oid, cid, status, reason, cum_qty, cum_quote, list_id, exec_id)]
    if x == "TRADE_PREVENTION":
        return [OrderTradePrevented(
            0, ts, ts_recv, iid, oid, cid, status, int(d.get("v", NO_ID)), _num(d, "pL"), _num(d, "B"),
            _num(d, "A"), int(d.get("U", NO_ID)), not bool(d.get("m", False)), cum_qty, cum_quote, list_id, exec_id,
        )]
    if x == "REJECTED":
        r = str(d.get("r") or "NONE")
        return [OrderRejected(0, ts, ts_recv, iid, cid, -2010, r, _reason(r))]
    return []


# --------------------------------------------------------------------------- REST recovery of lost reports
# ``GET /api/v3/myTrades`` rows and a ``GET /api/v3/order`` snapshot -> the events the user stream
# would have sent (``LiveVenue.reconcile`` uses them for fills it never heard about).


def _row_e8(row: dict[str, Any], key: str) -> int:
    v = row.get(key)
    return parse_e8(v) if isinstance(v, str) and v else 0


class OrderOutcome(Protocol):
    """What fill recovery needs to know about an order: who it is and how far it got.

    An :class:`~engine.orders.OrderSnapshot` (``GET /api/v3/order``) is one; so is the
    :class:`EndedOrder` read off a cancel or expiry report, when the fills must be fetched
    before that report may go out.
    """

    @property
    def instrument(self) -> InstrumentId: ...
    @property
    def order_id(self) -> int: ...
    @property
    def client_order_id(self) -> str: ...
    @property
    def order_list_id(self) -> int: ...
    @property
    def status(self) -> OrderStatus: ...
    @property
    def executed_qty(self) -> int: ...


@dataclass(frozen=True, slots=True)
class EndedOrder:
    """An order's end as a cancel/expiry report states it (an :class:`OrderOutcome`)."""

    instrument: InstrumentId
    order_id: int
    client_order_id: str
    order_list_id: int
    status: OrderStatus
    executed_qty: int


def ended_order(end: OrderCanceled | OrderExpired | OrderTradePrevented) -> EndedOrder:
    """The outcome an end report states: its final status and the quantity executed before it."""
    status = OrderStatus.CANCELED if isinstance(end, OrderCanceled) else end.status
    return EndedOrder(end.instrument, end.order_id, end.client_order_id, end.order_list_id, status, end.cum_qty)


def trade_fill_events(
    rows: list[dict[str, Any]], snap: OrderOutcome, ts_recv: int, *, reported: Container[int] = (),
    baseline: int = 0,
) -> tuple[list[Event], int]:
    """``myTrades`` rows of one order -> its ``OrderFilled`` events, and the quantity all rows add up to.

    Rows are taken in trade-id order so ``cum_qty``/``cum_quote`` run as on the stream. A row is
    emitted when its trade id is not in ``reported`` and the running quantity passes ``baseline``
    (what was already executed when we started watching the order, without trade ids). A fill's
    status is FILLED only for the row that completes an order the snapshot says is FILLED; all
    others are PARTIALLY_FILLED, which is what the kernel's order lifecycle accepts in that order.
    """
    cum_qty = cum_quote = 0
    out: list[Event] = []
    done = snap.status is OrderStatus.FILLED
    for row in sorted(rows, key=lambda r: int(r["id"])):
        tid, px, qty = int(row["id"]), _row_e8(row, "price"), _row_e8(row, "qty")
        quote = _row_e8(row, "quoteQty") or px * qty // SCALE
        cum_qty += qty
        cum_quote += quote
        if tid in reported or cum_qty <= baseline:
            continue
        status = OrderStatus.FILLED if done and cum_qty >= snap.executed_qty else OrderStatus.PARTIALLY_FILLED
        side = OrderSide.BUY if row.get("isBuyer") else OrderSide.SELL
        out.append(OrderFilled(
            0, int(row.get("time") or 0) * MS or ts_recv, ts_recv, snap.instrument, snap.order_id,
            snap.client_order_id, side, px, qty, quote, cum_qty, cum_quote, status, _row_e8(row, "commission"),
            str(row.get("commissionAsset") or ""), tid, bool(row.get("isMaker", False)),
            int(row.get("orderListId", snap.order_list_id)), NO_ID,
        ))
    return out, cum_qty


def terminal_events(snap: OrderSnapshot, ts_recv: int) -> list[Event]:
    """The stream's report of how a finished order ended (FILLED is the last fill itself: nothing more)."""
    ts = snap.update_time or ts_recv
    if snap.status is OrderStatus.CANCELED:
        return [OrderCanceled(0, ts, ts_recv, snap.instrument, snap.order_id, snap.client_order_id, "",
                              snap.executed_qty, snap.cum_quote, snap.order_list_id, NO_ID)]
    if snap.status in (OrderStatus.EXPIRED, OrderStatus.EXPIRED_IN_MATCH):
        return [OrderExpired(0, ts, ts_recv, snap.instrument, snap.order_id, snap.client_order_id, snap.status,
                             snap.expiry_reason, snap.executed_qty, snap.cum_quote, snap.order_list_id, NO_ID)]
    return []
