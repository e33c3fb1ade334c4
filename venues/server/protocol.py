"""Binance's spot REST API over a :class:`~venues.sim.venue.SimVenue`, sans-I/O.

``VenueProtocol.handle(request, now_ns) -> Response``: a parsed HTTP request in, Binance's JSON
answer out, at the server's time ``now_ns`` (the wall clock in the running server; any value in
tests). Nothing here opens a socket or reads a clock, so every endpoint, error code and rate
limit is unit-testable with plain values.

One request goes: rate limit (weight per IP; 429/418) -> security (API key, HMAC signature,
timestamp/recvWindow for SIGNED endpoints) -> parameters (Binance's -11xx codes) -> the venue
(commands through ``SimVenue.handle``; rejections become -2010/-2011/-1013 bodies) -> the
answer in Binance's exact shape, with the usage headers. The venue's events are handed to
``on_events`` (the app turns them into user-data-stream messages and the server's log);
commands to ``on_command`` before the venue sees them.

Market endpoints answer from :class:`~venues.server.market.MarketState` (the replayed market);
account/order endpoints from the venue and from the venue events this layer has seen (the venue
has no "all orders" or "my trades" accessor, so those are kept here).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from engine.errors import RequestRejected, TickloopError
from engine.events import (
    CancelRejected,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    OrderStatusReported,
)
from engine.fixed import parse_e8
from engine.identifiers import InstrumentId, Market, instrument_id
from engine.orders import (
    AnyCommand,
    CancelAllOrders,
    CancelOrder,
    CancelOrderList,
    ListOrderStatus,
    NewOrderRespType,
    OrderLeg,
    OrderSide,
    OrderSnapshot,
    OrderType,
    QueryOrder,
    SelfTradePreventionMode,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
)
from venues.server.auth import Auth, Credentials
from venues.server.errors import ApiError, mandatory
from venues.server.limits import LimitsConfig, RateLimiter
from venues.server.market import MarketState, SymbolMarket
from venues.server.streams import Json, fmt, levels, ms
from venues.sim.venue import SimVenue, order_list_legs, render_order, render_order_list, render_query

NONE, USER_STREAM, SIGNED = "NONE", "USER_STREAM", "SIGNED"
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)
KLINE_MS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000,
}
STP_MODES = tuple(m.value for m in SelfTradePreventionMode)


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the protocol needs it: raw query and body (signatures are over raw bytes)."""

    method: str
    path: str
    query: str = ""
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header names lower-cased."""
    client: str = "127.0.0.1"

    def params(self) -> dict[str, str]:
        """Query and form-body parameters; the query string wins when both carry one (Binance's rule)."""
        out = dict(parse_qsl(self.body, keep_blank_values=True))
        out.update(parse_qsl(self.query, keep_blank_values=True))
        return out


@dataclass(frozen=True, slots=True)
class Response:
    """Status, JSON body and headers; ``order_taken`` marks an answer to a placement the venue executed."""

    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()
    order_taken: bool = False

    def json_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


Handler = Callable[["Call"], Any]


@dataclass(slots=True)
class Call:
    """One request being handled: its parameters and time."""

    request: Request
    params: dict[str, str]
    now_ns: int
    order_taken: bool = False

    @property
    def now_ms(self) -> int:
        return self.now_ns // 1_000_000

    def get(self, name: str) -> str | None:
        v = self.params.get(name)
        return v if v != "" else None

    def need(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise mandatory(name)
        return v

    def int_(self, name: str, default: int | None = None) -> int | None:
        v = self.get(name)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.") from None

    def e8(self, name: str, required: bool = False) -> int:
        """A decimal parameter in e8 (0 = not sent); -1100 malformed, -1111 too many decimals."""
        v = self.need(name) if required else self.get(name)
        if v is None:
            return 0
        try:
            return parse_e8(v)
        except ValueError as exc:
            if "decimal places" in str(exc):
                raise ApiError(-1111, f"Parameter '{name}' has too much precision.") from None
            raise ApiError(
                -1100, f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'."
            ) from None


@dataclass(frozen=True, slots=True)
class Endpoint:
    handler: Handler
    security: str
    weight: Callable[[dict[str, str]], int]
    order: bool = False
    """Counts toward the ORDERS limits (a placement)."""
    free_on_success: bool = False
    """Costs no weight when it succeeds (order placement and cancels since 2026-04-02; failures are charged)."""


def _w(n: int) -> Callable[[dict[str, str]], int]:
    return lambda _: n


def _my_trades_weight(p: dict[str, str]) -> int:
    """``GET /api/v3/myTrades``: 20, or 5 when narrowed to one ``orderId`` (Binance's weight table)."""
    return 5 if p.get("orderId") else 20


def _depth_weight(p: dict[str, str]) -> int:
    try:
        limit = int(p.get("limit") or 100)
    except ValueError:
        return 5
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _symbol_or_all(single: int, every: int) -> Callable[[dict[str, str]], int]:
    return lambda p: single if p.get("symbol") else every


class VenueProtocol:
    """The REST API of one simulated account (see module doc)."""

    def __init__(
        self,
        venue: SimVenue,
        market: MarketState,
        exchange_symbols: Mapping[InstrumentId, Mapping[str, Any]],
        credentials: Credentials,
        *,
        limits: LimitsConfig | None = None,
        on_command: Callable[[AnyCommand, int], None] | None = None,
        on_events: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.venue = venue
        self.market = market
        self.exchange_symbols = {k: _complete_symbol(dict(v)) for k, v in sorted(exchange_symbols.items())}
        self.auth = Auth(credentials)
        self.limiter = RateLimiter(limits)
        self.on_command = on_command
        self.on_events = on_events
        self.listen_keys: dict[str, int] = {}
        """listenKey -> expiry (ns)."""
        self._orders: dict[InstrumentId, list[int]] = {}
        self._fills: dict[InstrumentId, list[OrderFilled]] = {}
        self._lists: dict[int, OrderListStatusChanged] = {}
        self._symbol_of = {iid: str(raw.get("symbol", iid.split(".")[0])) for iid, raw in self.exchange_symbols.items()}
        self._routes: dict[tuple[str, str], Endpoint] = self._build_routes()

    # ----------------------------------------------------------------- entry points

    def handle(self, request: Request, now_ns: int) -> Response:
        """Answer one REST request at ``now_ns``; never raises for anything a client can send."""
        ip = request.client
        now_ms = now_ns // 1_000_000
        path = request.path.rstrip("/") or "/"
        ep = self._routes.get((request.method.upper(), path))
        if ep is None:
            known = any(p == path for _, p in self._routes)
            status = 405 if known else 404
            return Response(status, {"code": -1000 if known else -1001, "msg": f"{request.method} {path}: "
                                     + ("method not allowed" if known else "no such endpoint")})
        call = Call(request, {}, now_ns)
        try:
            params = request.params()
            call.params = params
            self.limiter.charge(ip, ep.weight(params), now_ms)
            self._secure(ep, request, params, now_ms)
            if ep.order:
                self.limiter.check_order(ip, now_ms, 2 if "oco" in path else 1)
            body = ep.handler(call)
        except ApiError as err:
            headers = self.limiter.headers(ip, now_ms, ep.order)
            if err.retry_after_s is not None:
                headers.append(("Retry-After", str(err.retry_after_s)))
            return Response(err.status, err.body(), tuple(headers), call.order_taken)
        except RequestRejected as rej:
            return Response(400, {"code": rej.code, "msg": rej.msg}, tuple(self.limiter.headers(ip, now_ms, ep.order)))
        except TickloopError as exc:
            return Response(500, {"code": -1000, "msg": f"An unknown error occurred while processing the request. ({exc})"})
        if ep.free_on_success:
            self.limiter.refund(ip, ep.weight(params), now_ms)
        return Response(200, body, tuple(self.limiter.headers(ip, now_ms, ep.order)), call.order_taken)

    def on_market(self, ev: Event, now_ns: int, wanted: Callable[[str], bool] = lambda _: True
                  ) -> tuple[list[tuple[str, Json]], list[Event]]:
        """One (re-stamped) market event: stream messages for wanted streams, and the venue events it caused."""
        messages = self.market.apply(ev, wanted)
        out: list[Event] = []
        if ev.kind in self.venue.market_kinds:
            out = self.venue.on_market(ev, now_ns)
            if out:
                self._seen(out)
        return messages, out

    def symbol_of(self, iid: InstrumentId) -> str:
        return self._symbol_of.get(iid) or iid.split(".")[0]

    # ----------------------------------------------------------------- plumbing

    def _secure(self, ep: Endpoint, request: Request, params: dict[str, str], now_ms: int) -> None:
        key = request.headers.get("x-mbx-apikey")
        if ep.security == USER_STREAM:
            self.auth.check_key(key)
        elif ep.security == SIGNED:
            self.auth.check(request.query, request.body, params, key, now_ms)

    def _run(self, cmd: AnyCommand, now_ns: int) -> list[Event]:
        if self.on_command is not None:
            self.on_command(cmd, now_ns)
        events = self.venue.handle(cmd, now_ns)
        self._seen(events)
        return events

    def _seen(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, OrderAccepted):
                self._orders.setdefault(ev.instrument, []).append(ev.order_id)
            elif isinstance(ev, OrderFilled):
                self._fills.setdefault(ev.instrument, []).append(ev)
            elif isinstance(ev, OrderListStatusChanged):
                self._lists[ev.order_list_id] = ev
        if self.on_events is not None and events:
            self.on_events(events)

    def _iid(self, call: Call, required: bool = True) -> InstrumentId | None:
        sym = call.need("symbol") if required else call.get("symbol")
        if sym is None:
            return None
        try:
            iid = instrument_id(sym, Market.SPOT)
        except ValueError:
            raise ApiError(-1121, "Invalid symbol.") from None
        if iid not in self.exchange_symbols:
            raise ApiError(-1121, "Invalid symbol.")
        return iid

    def _market_of(self, call: Call) -> SymbolMarket:
        iid = self._iid(call)
        assert iid is not None
        st = self.market.symbols.get(iid)
        if st is None:
            st = self.market.ensure(iid)  # known symbol, no data yet
        return st

    def _build_routes(self) -> dict[tuple[str, str], Endpoint]:
        v = "/api/v3/"
        r = {
            ("GET", v + "ping"): Endpoint(lambda c: {}, NONE, _w(1)),
            ("GET", v + "time"): Endpoint(lambda c: {"serverTime": c.now_ms}, NONE, _w(1)),
            ("GET", v + "exchangeInfo"): Endpoint(self._exchange_info, NONE, _w(20)),
            ("GET", v + "depth"): Endpoint(self._depth, NONE, _depth_weight),
            ("GET", v + "trades"): Endpoint(self._trades, NONE, _w(25)),
            ("GET", v + "historicalTrades"): Endpoint(self._trades, NONE, _w(25)),
            ("GET", v + "aggTrades"): Endpoint(self._agg_trades, NONE, _w(4)),
            ("GET", v + "klines"): Endpoint(self._klines, NONE, _w(2)),
            ("GET", v + "uiKlines"): Endpoint(self._klines, NONE, _w(2)),
            ("GET", v + "ticker/bookTicker"): Endpoint(self._book_ticker, NONE, _symbol_or_all(2, 4)),
            ("GET", v + "ticker/price"): Endpoint(self._price, NONE, _symbol_or_all(2, 4)),
            ("GET", v + "ticker/24hr"): Endpoint(self._ticker_24h, NONE, _symbol_or_all(2, 80)),
            ("GET", v + "avgPrice"): Endpoint(self._avg_price, NONE, _w(2)),
            ("GET", v + "account"): Endpoint(self._account, SIGNED, _w(20)),
            ("GET", v + "account/commission"): Endpoint(self._commission, SIGNED, _w(20)),
            ("POST", v + "order"): Endpoint(self._new_order, SIGNED, _w(1), order=True, free_on_success=True),
            ("POST", v + "order/test"): Endpoint(self._test_order, SIGNED, _w(1)),
            ("GET", v + "order"): Endpoint(self._query_order, SIGNED, _w(4)),
            ("DELETE", v + "order"): Endpoint(self._cancel_order, SIGNED, _w(1), free_on_success=True),
            ("GET", v + "openOrders"): Endpoint(self._open_orders, SIGNED, _symbol_or_all(6, 80)),
            ("DELETE", v + "openOrders"): Endpoint(self._cancel_all, SIGNED, _w(1), free_on_success=True),
            ("GET", v + "allOrders"): Endpoint(self._all_orders, SIGNED, _w(20)),
            ("GET", v + "myTrades"): Endpoint(self._my_trades, SIGNED, _my_trades_weight),
            ("POST", v + "orderList/oco"): Endpoint(self._new_oco, SIGNED, _w(1), order=True, free_on_success=True),
            ("POST", v + "order/oco"): Endpoint(self._new_legacy_oco, SIGNED, _w(1), order=True, free_on_success=True),
            ("GET", v + "openOrderList"): Endpoint(self._open_order_lists, SIGNED, _w(6)),
            ("GET", v + "orderList"): Endpoint(self._query_order_list, SIGNED, _w(4)),
            ("DELETE", v + "orderList"): Endpoint(self._cancel_order_list, SIGNED, _w(1), free_on_success=True),
            ("POST", v + "userDataStream"): Endpoint(self._listen_key_new, USER_STREAM, _w(2)),
            ("PUT", v + "userDataStream"): Endpoint(self._listen_key_keep, USER_STREAM, _w(2)),
            ("DELETE", v + "userDataStream"): Endpoint(self._listen_key_close, USER_STREAM, _w(2)),
        }
        return r

    # ----------------------------------------------------------------- market data

    def _exchange_info(self, call: Call) -> Json:
        wanted: set[str] | None = None
        if call.get("symbol"):
            self._iid(call)
            wanted = {call.need("symbol").upper()}
        elif call.get("symbols"):
            wanted = set(_json_list(call.need("symbols"), "symbols"))
        symbols = [raw for raw in self.exchange_symbols.values() if wanted is None or raw.get("symbol") in wanted]
        if wanted is not None and len(symbols) != len(wanted):
            raise ApiError(-1121, "Invalid symbol.")
        return {
            "timezone": "UTC",
            "serverTime": call.now_ms,
            "rateLimits": self.limiter.config.rate_limits_json(),
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _depth(self, call: Call) -> Json:
        st = self._market_of(call)
        limit = call.int_("limit", 100) or 100
        if limit < 1 or limit > 5000:
            raise ApiError(-1100, "Illegal characters found in parameter 'limit'; legal range is '1-5000'.")
        uid, bids, asks = st.depth(limit)
        return {"lastUpdateId": uid, "bids": levels(bids), "asks": levels(asks)}

    def _limit(self, call: Call, default: int, maximum: int) -> int:
        limit = call.int_("limit", default) or default
        if limit < 1 or limit > maximum:
            raise ApiError(-1100, f"Illegal characters found in parameter 'limit'; legal range is '1-{maximum}'.")
        return limit

    def _trades(self, call: Call) -> list[Json]:
        st = self._market_of(call)
        limit = self._limit(call, 500, 1000)
        rows = list(st.trades)
        from_id = call.int_("fromId")
        rows = [t for t in rows if t.trade_id >= from_id][:limit] if from_id is not None else rows[-limit:]
        return [{"id": t.trade_id, "price": fmt(t.price), "qty": fmt(t.qty), "quoteQty": fmt(t.price * t.qty // 10**8),
                 "time": t.time_ms, "isBuyerMaker": t.buyer_maker, "isBestMatch": True} for t in rows]

    def _agg_trades(self, call: Call) -> list[Json]:
        st = self._market_of(call)
        limit = self._limit(call, 500, 1000)
        rows = list(st.trades)
        from_id, start, end = call.int_("fromId"), call.int_("startTime"), call.int_("endTime")
        if from_id is not None:
            rows = [t for t in rows if t.trade_id >= from_id][:limit]
        elif start is not None or end is not None:
            rows = [t for t in rows if (start is None or t.time_ms >= start) and (end is None or t.time_ms <= end)][:limit]
        else:
            rows = rows[-limit:]
        return [{"a": t.trade_id, "p": fmt(t.price), "q": fmt(t.qty), "f": t.first_id, "l": t.last_id, "T": t.time_ms,
                 "m": t.buyer_maker, "M": True} for t in rows]

    def _klines(self, call: Call) -> list[list[Any]]:
        st = self._market_of(call)
        interval = call.need("interval")
        length = KLINE_MS.get(interval)
        if length is None or length < 60_000:
            raise ApiError(-1120, "Invalid interval.")
        limit = self._limit(call, 500, 1000)
        start, end = call.int_("startTime"), call.int_("endTime")
        rows: list[list[Any]] = []
        for k in st.klines:
            open_ms = k.open_time - k.open_time % length
            if rows and rows[-1][0] == open_ms:
                _merge_row(rows[-1], k.rest_row())
            else:
                row = k.rest_row()
                row[0], row[6] = open_ms, open_ms + length - 1
                rows.append(row)
        rows = [r for r in rows if (start is None or r[0] >= start) and (end is None or r[0] <= end)]
        return rows[:limit] if start is not None else rows[-limit:]

    def _book_tickers(self, call: Call) -> list[SymbolMarket]:
        if call.get("symbol"):
            return [self._market_of(call)]
        names = _json_list(call.need("symbols"), "symbols") if call.get("symbols") else None
        out = []
        for iid in self.exchange_symbols:
            sym = self.symbol_of(iid)
            if names is None or sym in names:
                out.append(self.market.ensure(iid))
        return out

    def _book_ticker(self, call: Call) -> Json | list[Json]:
        rows = []
        for st in self._book_tickers(call):
            best = st.best()
            _, b, bq, a, aq = best if best is not None else (0, 0, 0, 0, 0)
            rows.append({"symbol": st.symbol, "bidPrice": fmt(b), "bidQty": fmt(bq), "askPrice": fmt(a), "askQty": fmt(aq)})
        return rows[0] if call.get("symbol") else rows

    def _price(self, call: Call) -> Json | list[Json]:
        rows = [{"symbol": st.symbol, "price": fmt(st.last_price or 0)} for st in self._book_tickers(call)]
        return rows[0] if call.get("symbol") else rows

    def _ticker_24h(self, call: Call) -> Json | list[Json]:
        rows = []
        for st in self._book_tickers(call):
            since = call.now_ms - 86_400_000
            trades = [t for t in st.trades if t.time_ms >= since]
            best = st.best()
            _, b, bq, a, aq = best if best is not None else (0, 0, 0, 0, 0)
            first = trades[0].price if trades else 0
            last = st.last_price or 0
            vol = sum(t.qty for t in trades)
            quote = sum(t.price * t.qty // 10**8 for t in trades)
            rows.append({
                "symbol": st.symbol, "priceChange": fmt(last - first) if last >= first else "-" + fmt(first - last),
                "priceChangePercent": f"{(last - first) * 100 / first:.3f}" if first else "0.000",
                "weightedAvgPrice": fmt(quote * 10**8 // vol if vol else 0), "prevClosePrice": fmt(first),
                "lastPrice": fmt(last), "lastQty": fmt(trades[-1].qty if trades else 0), "bidPrice": fmt(b), "bidQty": fmt(bq),
                "askPrice": fmt(a), "askQty": fmt(aq), "openPrice": fmt(first),
                "highPrice": fmt(max((t.price for t in trades), default=0)),
                "lowPrice": fmt(min((t.price for t in trades), default=0)), "volume": fmt(vol), "quoteVolume": fmt(quote),
                "openTime": since, "closeTime": call.now_ms, "firstId": trades[0].trade_id if trades else -1,
                "lastId": trades[-1].trade_id if trades else -1, "count": len(trades),
            })
        return rows[0] if call.get("symbol") else rows

    def _avg_price(self, call: Call) -> Json:
        st = self._market_of(call)
        price = st.avg_price(5, call.now_ms) or 0
        last = st.trades[-1].time_ms if st.trades else call.now_ms
        return {"mins": 5, "price": fmt(price), "closeTime": last}

    # ----------------------------------------------------------------- account

    def _account(self, call: Call) -> Json:
        balances = self.venue.balances()
        for raw in self.exchange_symbols.values():
            for key in ("baseAsset", "quoteAsset"):
                balances.setdefault(str(raw.get(key)), (0, 0))
        omit = call.get("omitZeroBalances") == "true"
        rows = [{"asset": a, "free": fmt(f), "locked": fmt(lk)} for a, (f, lk) in sorted(balances.items())
                if not (omit and f == 0 and lk == 0)]
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": _rates(), "canTrade": True, "canWithdraw": False, "canDeposit": False,
            "brokered": False, "requireSelfTradePrevention": False, "preventSor": False, "updateTime": call.now_ms,
            "accountType": "SPOT", "balances": rows, "permissions": ["SPOT"], "uid": 1,
        }

    def _commission(self, call: Call) -> Json:
        iid = self._iid(call)
        assert iid is not None
        return {"symbol": self.symbol_of(iid), "standardCommission": _rates(), "taxCommission": _rates(zero=True),
                "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB",
                             "discount": "0.25000000"}}

    # ----------------------------------------------------------------- orders

    def _order_command(self, call: Call) -> SubmitOrder:
        iid = self._iid(call)
        assert iid is not None
        side = _enum(OrderSide, call.need("side"), -1117, "Invalid side.")
        otype = _enum(OrderType, call.need("type"), -1116, "Invalid orderType.")
        tif_text = call.get("timeInForce")
        tif = _enum(TimeInForce, tif_text, -1115, "Invalid timeInForce.") if tif_text else None
        resp = call.get("newOrderRespType")
        stp = call.get("selfTradePreventionMode")
        return SubmitOrder(
            iid, side, otype, quantity=call.e8("quantity"), price=call.e8("price"), time_in_force=tif,
            quote_order_qty=call.e8("quoteOrderQty"), stop_price=call.e8("stopPrice"),
            trailing_delta=call.int_("trailingDelta", 0) or 0, iceberg_qty=call.e8("icebergQty"),
            client_order_id=call.params.get("newClientOrderId"),
            new_order_resp_type=_enum(NewOrderRespType, resp, -1100, "Invalid newOrderRespType.") if resp else None,
            stp_mode=_enum(SelfTradePreventionMode, stp, -1100, "Invalid selfTradePreventionMode.") if stp else None,
            strategy_id=call.int_("strategyId"), strategy_type=call.int_("strategyType"),
        )

    def _counted_run(self, cmd: SubmitOrder | SubmitOrderList, now_ms: int, now_ns: int, n: int) -> list[Event]:
        """Count ``n`` orders *before* the venue runs them, and give them back if none was accepted.

        Why before: an order that fills on arrival gives its count back at its first fill (the
        server's decrement rule); counted after, the decrement would meet an empty window.
        """
        self.limiter.count_orders(now_ms, n)
        events = self._run(cmd, now_ns)
        if not any(isinstance(e, OrderAccepted | OrderListStatusChanged) for e in events):
            self.limiter.count_orders(now_ms, -n)
        return events

    def _new_order(self, call: Call) -> Json:
        cmd = self._order_command(call)
        events = self._counted_run(cmd, call.now_ms, call.now_ns, 1)
        _raise_rejection(events)
        accepted = next((e for e in events if isinstance(e, OrderAccepted)), None)
        if accepted is None:
            raise ApiError(-1000, "An unknown error occurred while processing the request.", 500)
        call.order_taken = True
        snap = self.venue.order(accepted.order_id)
        assert snap is not None
        fills = [e for e in events if isinstance(e, OrderFilled)]
        return render_order(snap, cmd.new_order_resp_type, fills, call.now_ns)

    def _test_order(self, call: Call) -> Json:
        self._order_command(call)
        if call.get("computeCommissionRates") == "true":
            return {"standardCommissionForOrder": {"maker": "0.00100000", "taker": "0.00100000"},
                    "taxCommissionForOrder": {"maker": "0.00000000", "taker": "0.00000000"},
                    "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB",
                                 "discount": "0.25000000"}}
        return {}

    def _query_order(self, call: Call) -> Json:
        iid = self._iid(call)
        assert iid is not None
        cmd = QueryOrder(iid, call.int_("orderId"), call.get("origClientOrderId"))
        events = self._run(cmd, call.now_ns)
        rep = next((e for e in events if isinstance(e, OrderStatusReported)), None)
        if rep is None or rep.order is None:
            raise ApiError(rep.code if rep else -2013, rep.msg if rep else "Order does not exist.")
        return render_query(rep.order)

    def _cancel_order(self, call: Call) -> Json:
        iid = self._iid(call)
        assert iid is not None
        if call.params.get("origClientOrderId") == "":
            raise ApiError(-1119, "Original client order ID was empty.")
        cmd = CancelOrder(iid, call.int_("orderId"), call.get("origClientOrderId"), call.params.get("newClientOrderId"),
                          call.get("cancelRestrictions"))
        events = self._run(cmd, call.now_ns)
        _raise_rejection(events)
        cancels = [e for e in events if isinstance(e, OrderCanceled)]
        wanted = cmd.order_id
        first = next((e for e in cancels if wanted is None or e.order_id == wanted), cancels[0] if cancels else None)
        if first is None:
            raise ApiError(-2011, "Unknown order sent.")
        body = self._cancel_body(first)
        lst_ev = next((e for e in events if isinstance(e, OrderListStatusChanged)), None)
        if lst_ev is not None and wanted is None and cmd.orig_client_order_id is not None:
            first = next((e for e in cancels if e.client_order_id == cmd.orig_client_order_id), first)
            body = self._cancel_body(first)
        return body

    def _cancel_body(self, ev: OrderCanceled) -> Json:
        snap = self.venue.order(ev.order_id)
        body: Json = {"symbol": self.symbol_of(ev.instrument), "origClientOrderId": ev.client_order_id,
                      "orderId": ev.order_id, "orderListId": ev.order_list_id,
                      "clientOrderId": ev.cancel_client_order_id, "transactTime": ms(ev.ts_event)}
        if snap is not None:
            body.update({"price": fmt(snap.price), "origQty": fmt(snap.orig_qty), "executedQty": fmt(snap.executed_qty),
                         "origQuoteOrderQty": fmt(snap.orig_quote_order_qty), "cummulativeQuoteQty": fmt(snap.cum_quote),
                         "status": snap.status.value, "timeInForce": snap.time_in_force.value,
                         "type": snap.order_type.value, "side": snap.side.value,
                         "selfTradePreventionMode": snap.stp_mode.value})
        return body

    def _open_orders(self, call: Call) -> list[Json]:
        iid = self._iid(call, required=False)
        return [render_query(s) for s in self.venue.open_orders(iid)]

    def _cancel_all(self, call: Call) -> list[Json]:
        iid = self._iid(call)
        assert iid is not None
        events = self._run(CancelAllOrders(iid), call.now_ns)
        _raise_rejection(events)
        out: list[Json] = []
        done_lists: set[int] = set()
        for e in events:
            if isinstance(e, OrderCanceled) and e.order_list_id < 0:
                out.append(self._cancel_body(e))
            elif (isinstance(e, OrderListStatusChanged) and e.list_order_status is ListOrderStatus.ALL_DONE
                  and e.order_list_id not in done_lists):
                done_lists.add(e.order_list_id)
                out.append(self._list_cancel_body(e, events))
        return out

    def _all_orders(self, call: Call) -> list[Json]:
        iid = self._iid(call)
        assert iid is not None
        limit = self._limit(call, 500, 1000)
        from_id, start, end = call.int_("orderId"), call.int_("startTime"), call.int_("endTime")
        snaps = [s for s in (self.venue.order(oid) for oid in self._orders.get(iid, ())) if s is not None]
        snaps = [s for s in snaps if (from_id is None or s.order_id >= from_id)
                 and (start is None or ms(s.time) >= start) and (end is None or ms(s.time) <= end)]
        return [render_query(s) for s in (snaps[:limit] if from_id is not None else snaps[-limit:])]

    def _my_trades(self, call: Call) -> list[Json]:
        iid = self._iid(call)
        assert iid is not None
        limit = self._limit(call, 500, 1000)
        oid, from_id = call.int_("orderId"), call.int_("fromId")
        start, end = call.int_("startTime"), call.int_("endTime")
        rows = [f for f in self._fills.get(iid, ()) if (oid is None or f.order_id == oid)
                and (from_id is None or f.trade_id >= from_id) and (start is None or ms(f.ts_event) >= start)
                and (end is None or ms(f.ts_event) <= end)]
        rows = rows[:limit] if from_id is not None else rows[-limit:]
        sym = self.symbol_of(iid)
        return [{"symbol": sym, "id": f.trade_id, "orderId": f.order_id, "orderListId": f.order_list_id,
                 "price": fmt(f.price), "qty": fmt(f.qty), "quoteQty": fmt(f.quote_qty), "commission": fmt(f.commission),
                 "commissionAsset": f.commission_asset, "time": ms(f.ts_event), "isBuyer": f.side is OrderSide.BUY,
                 "isMaker": f.maker, "isBestMatch": True} for f in rows]

    # ----------------------------------------------------------------- order lists

    def _leg(self, call: Call, prefix: str, side: OrderSide, qty: int) -> OrderLeg:
        otype = _enum(OrderType, call.need(prefix + "Type"), -1116, "Invalid orderType.")
        tif_text = call.get(prefix + "TimeInForce")
        return OrderLeg(
            side, otype, qty, price=call.e8(prefix + "Price"), stop_price=call.e8(prefix + "StopPrice"),
            trailing_delta=call.int_(prefix + "TrailingDelta", 0) or 0,
            time_in_force=_enum(TimeInForce, tif_text, -1115, "Invalid timeInForce.") if tif_text else None,
            iceberg_qty=call.e8(prefix + "IcebergQty"), client_order_id=call.params.get(prefix + "ClientOrderId"),
            strategy_id=call.int_(prefix + "StrategyId"), strategy_type=call.int_(prefix + "StrategyType"),
        )

    def _list_common(self, call: Call) -> tuple[InstrumentId, OrderSide, int, dict[str, Any]]:
        iid = self._iid(call)
        assert iid is not None
        side = _enum(OrderSide, call.need("side"), -1117, "Invalid side.")
        qty = call.e8("quantity", required=True)
        resp = call.get("newOrderRespType")
        stp = call.get("selfTradePreventionMode")
        kw: dict[str, Any] = {
            "list_client_order_id": call.params.get("listClientOrderId"),
            "new_order_resp_type": _enum(NewOrderRespType, resp, -1100, "Invalid newOrderRespType.") if resp else None,
            "stp_mode": _enum(SelfTradePreventionMode, stp, -1100, "Invalid selfTradePreventionMode.") if stp else None,
        }
        return iid, side, qty, kw

    def _new_oco(self, call: Call) -> Json:
        iid, side, qty, kw = self._list_common(call)
        cmd = SubmitOrderList.oco(iid, side, qty, self._leg(call, "above", side, qty), self._leg(call, "below", side, qty), **kw)
        return self._place_list(call, cmd)

    def _new_legacy_oco(self, call: Call) -> Json:
        iid, side, qty, kw = self._list_common(call)
        tif_text = call.get("stopLimitTimeInForce")
        cmd = SubmitOrderList.legacy_oco(
            iid, side, qty, call.e8("price", required=True), call.e8("stopPrice", required=True),
            stop_limit_price=call.e8("stopLimitPrice"),
            stop_limit_time_in_force=_enum(TimeInForce, tif_text, -1115, "Invalid timeInForce.") if tif_text else None,
            limit_client_order_id=call.params.get("limitClientOrderId"),
            stop_client_order_id=call.params.get("stopClientOrderId"),
            limit_iceberg_qty=call.e8("limitIcebergQty"), stop_iceberg_qty=call.e8("stopIcebergQty"),
            trailing_delta=call.int_("trailingDelta", 0) or 0, **kw,
        )
        return self._place_list(call, cmd)

    def _place_list(self, call: Call, cmd: SubmitOrderList) -> Json:
        events = self._counted_run(cmd, call.now_ms, call.now_ns, 2)
        _raise_rejection(events)
        lst = next((e for e in events if isinstance(e, OrderListStatusChanged)), None)
        if lst is None:
            raise ApiError(-1000, "An unknown error occurred while processing the request.", 500)
        call.order_taken = True
        snaps = order_list_legs(self.venue, lst.order_list_id)
        fills = [e for e in events if isinstance(e, OrderFilled)]
        return render_order_list(lst, snaps, cmd.new_order_resp_type or NewOrderRespType.FULL, fills)

    def _list_body(self, ev: OrderListStatusChanged) -> Json:
        sym = self.symbol_of(ev.instrument)
        return {"orderListId": ev.order_list_id, "contingencyType": ev.contingency.value,
                "listStatusType": ev.list_status_type.value, "listOrderStatus": ev.list_order_status.value,
                "listClientOrderId": ev.list_client_order_id, "transactionTime": ms(ev.ts_event), "symbol": sym,
                "orders": [{"symbol": sym, "orderId": i, "clientOrderId": c}
                           for i, c in zip(ev.order_ids, ev.client_order_ids, strict=False)]}

    def _list_cancel_body(self, ev: OrderListStatusChanged, events: Sequence[Event]) -> Json:
        body = self._list_body(ev)
        body["orderReports"] = [self._cancel_body(e) for e in events
                                if isinstance(e, OrderCanceled) and e.order_list_id == ev.order_list_id]
        return body

    def _open_order_lists(self, call: Call) -> list[Json]:
        return [self._list_body(ev) for ev in self._lists.values() if ev.list_order_status is ListOrderStatus.EXECUTING]

    def _query_order_list(self, call: Call) -> Json:
        lid, cid = call.int_("orderListId"), call.get("origClientOrderId")
        if lid is None and cid is None:
            raise ApiError(-1102, "Param 'origClientOrderId' or 'orderListId' must be sent, but both were empty/null!")
        for ev in self._lists.values():
            if (lid is None or ev.order_list_id == lid) and (cid is None or ev.list_client_order_id == cid):
                return self._list_body(ev)
        raise ApiError(-2011, "Order list does not exist.")  # -2018 is BAL_NOT_SUFFICIENT

    def _cancel_order_list(self, call: Call) -> Json:
        iid = self._iid(call)
        assert iid is not None
        cmd = CancelOrderList(iid, call.int_("orderListId"), call.get("listClientOrderId"), call.params.get("newClientOrderId"))
        events = self._run(cmd, call.now_ns)
        _raise_rejection(events)
        lst = next((e for e in reversed(events) if isinstance(e, OrderListStatusChanged)), None)
        if lst is None:
            raise ApiError(-2011, "Unknown order sent.")
        return self._list_cancel_body(lst, events)

    # ----------------------------------------------------------------- listen keys

    def _listen_key_new(self, call: Call) -> Json:
        n = len(self.listen_keys)
        secret = self.auth.credentials.api_secret
        key = hashlib.sha256(f"{secret}:listenKey:{n}".encode()).hexdigest()[:60]
        self.listen_keys[key] = call.now_ns + 3_600_000_000_000
        return {"listenKey": key}

    def _known_key(self, call: Call) -> str:
        key = call.need("listenKey")
        if key not in self.listen_keys:
            raise ApiError(-1125, "This listenKey does not exist.")
        return key

    def _listen_key_keep(self, call: Call) -> Json:
        self.listen_keys[self._known_key(call)] = call.now_ns + 3_600_000_000_000
        return {}

    def _listen_key_close(self, call: Call) -> Json:
        del self.listen_keys[self._known_key(call)]
        return {}

    def listen_key_valid(self, key: str, now_ns: int) -> bool:
        exp = self.listen_keys.get(key)
        return exp is not None and exp > now_ns


# --------------------------------------------------------------------------- helpers


def _raise_rejection(events: Sequence[Event]) -> None:
    for e in events:
        if isinstance(e, OrderRejected | CancelRejected):
            raise ApiError(e.code, e.msg)
        if isinstance(e, OrderStatusReported) and e.order is None and e.code:
            raise ApiError(e.code, e.msg)


def _enum(cls: Any, text: str | None, code: int, msg: str) -> Any:
    try:
        return cls(text)
    except ValueError:
        raise ApiError(code, msg) from None


def _json_list(text: str, name: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is a JSON array of symbols.") from None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is a JSON array of symbols.")
    return [x.upper() for x in value]


def _merge_row(acc: list[Any], row: list[Any]) -> None:
    """Fold a 1m kline row into a longer interval's row (high/low/close/volumes/count)."""
    from engine.fixed import parse_e8 as p

    acc[2] = fmt(max(p(acc[2]), p(row[2])))
    acc[3] = fmt(min(p(acc[3]), p(row[3])))
    acc[4] = row[4]
    for i in (5, 7, 9, 10):
        acc[i] = fmt(p(acc[i]) + p(row[i]))
    acc[8] += row[8]


def _rates(zero: bool = False) -> Json:
    r = "0.00000000" if zero else "0.00100000"
    return {"maker": r, "taker": r, "buyer": "0.00000000", "seller": "0.00000000"}


def _complete_symbol(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill fields today's clients read but old exchangeInfo recordings lack (values as the venue behaves)."""
    raw.setdefault("status", "TRADING")
    raw.setdefault("baseAssetPrecision", 8)
    raw.setdefault("quoteAssetPrecision", 8)
    raw.setdefault("quotePrecision", raw["quoteAssetPrecision"])
    raw.setdefault("baseCommissionPrecision", 8)
    raw.setdefault("quoteCommissionPrecision", 8)
    raw.setdefault("icebergAllowed", True)
    raw.setdefault("ocoAllowed", True)
    raw.setdefault("otoAllowed", True)
    raw.setdefault("quoteOrderQtyMarketAllowed", True)
    raw.setdefault("allowTrailingStop", True)
    raw.setdefault("cancelReplaceAllowed", False)
    raw.setdefault("isSpotTradingAllowed", True)
    raw.setdefault("isMarginTradingAllowed", False)
    raw.setdefault("permissions", ["SPOT"])
    raw.setdefault("permissionSets", [["SPOT"]])
    raw.setdefault("defaultSelfTradePreventionMode", "NONE")
    raw.setdefault("allowedSelfTradePreventionModes", list(STP_MODES))
    return raw


__all__ = ["Call", "Endpoint", "OrderSnapshot", "Request", "Response", "VenueProtocol"]
