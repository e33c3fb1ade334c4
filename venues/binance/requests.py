"""Commands -> signed HTTP requests, and REST answers -> venue events (sans-I/O).

:class:`RequestBuilder` turns a command into the exact bytes to send (a :class:`SignedRequest`):
the moment those bytes exist is where tick-to-order latency stops. Signed parameters go in the
query string for GET/DELETE and in an ``application/x-www-form-urlencoded`` body for POST/PUT,
as Binance's own examples and the common clients do; the signature covers exactly those bytes.

The ``*_events`` functions turn a REST answer (HTTP status + JSON) into the same events the
simulated venue emits for the same outcome: an error body ``{"code", "msg"}`` on a new order is
an :class:`OrderRejected` whose ``reject_reason`` is derived from the message the way
``venues.sim`` derives it; a cancel error is a :class:`CancelRejected`; a query error is an
:class:`OrderStatusReported` with the code. REST answers carry no execution id, so their events
have ``exec_id = -1``; the live venue removes the duplicates the user data stream reports again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from engine.events import (
    CancelRejected,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    OrderStatusReported,
)
from engine.fixed import SCALE, format_e8, parse_e8
from engine.identifiers import InstrumentId, split_instrument_id
from engine.orders import (
    AnyCommand,
    CancelAllOrders,
    CancelOrder,
    CancelOrderList,
    ContingencyType,
    ExpiryReason,
    ListOrderStatus,
    ListShape,
    ListStatusType,
    NewOrderRespType,
    OrderLeg,
    OrderSide,
    OrderSnapshot,
    OrderStatus,
    OrderType,
    QueryOrder,
    RejectReason,
    SelfTradePreventionMode,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
)
from venues.binance.signing import NS_PER_MS, Signer

API_KEY_HEADER = "X-MBX-APIKEY"
FORM = "application/x-www-form-urlencoded"
NO_ID = -1
DUPLICATE_MSG = "Duplicate order sent."
MY_TRADES_WEIGHT = 20
MY_TRADES_WEIGHT_BY_ORDER = 5
"""``GET /api/v3/myTrades`` request weight without / with ``orderId`` (Binance ``rest-api.md``)."""
MY_TRADES_LIMIT = 1000
"""The largest page ``myTrades`` serves (default 500)."""
REASON_OF_MSG: dict[str, RejectReason] = {
    "Account has insufficient balance for requested action.": RejectReason.INSUFFICIENT_BALANCES,
    "Order would trigger immediately.": RejectReason.STOP_PRICE_WOULD_TRIGGER_IMMEDIATELY,
    "Order would immediately match and take.": RejectReason.WOULD_MATCH_IMMEDIATELY,
    "The relationship of the prices for the orders is not correct.": RejectReason.OCO_BAD_PRICES,
}
"""-2010 engine messages -> the execution report's reject reason (same table as venues.sim)."""

_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One HTTP request, ready to send: these bytes are what the venue receives and verifies.

    ``weight`` is the endpoint's request weight (client-side throttling); ``idempotent``
    requests may be retried blindly after a 5xx or a timeout, the others need reconciliation;
    ``order`` marks requests that count towards the ORDERS limits; ``timestamp_ms`` is the
    signed timestamp (0 when unsigned): after ``timestamp_ms + recv_window_ms`` of server time
    the venue can no longer accept this request.
    """

    method: str
    path: str
    query: bytes
    body: bytes
    headers: tuple[tuple[str, str], ...]
    weight: int = 1
    idempotent: bool = False
    order: bool = False
    timestamp_ms: int = 0
    recv_window_ms: int = 0

    @property
    def target(self) -> str:
        """Path plus query string, as in the request line."""
        return f"{self.path}?{self.query.decode()}" if self.query else self.path


def symbol_of(instrument: InstrumentId) -> str:
    """``BTCUSDT.SPOT`` -> ``BTCUSDT``."""
    return split_instrument_id(instrument)[0]


def _num(params: list[tuple[str, str]], name: str, value: int) -> None:
    if value:
        params.append((name, format_e8(value)))


def _opt(params: list[tuple[str, str]], name: str, value: object) -> None:
    if value is not None and value != "":
        params.append((name, str(value)))


class RequestBuilder:
    """Builds :class:`SignedRequest` s for one account (sans-I/O; ``local_ns`` comes from the caller's clock)."""

    __slots__ = ("signer", "default_resp_type", "_key_header")

    def __init__(self, signer: Signer, default_resp_type: NewOrderRespType = NewOrderRespType.FULL) -> None:
        self.signer = signer
        self.default_resp_type = default_resp_type
        self._key_header = ((API_KEY_HEADER, signer.credentials.api_key),)

    # ----------------------------------------------------------------- plumbing

    def signed(
        self, method: str, path: str, params: list[tuple[str, str]], local_ns: int, *, weight: int = 1,
        idempotent: bool = False, order: bool = False,
    ) -> SignedRequest:
        """Sign ``params`` and place them in the query (GET/DELETE) or the form body (POST/PUT)."""
        payload, ts_ms = self.signer.sign(params, local_ns)
        rw = self.signer.recv_window_ms
        if method in ("GET", "DELETE"):
            return SignedRequest(method, path, payload, b"", self._key_header, weight, idempotent, order, ts_ms, rw)
        headers = (*self._key_header, ("Content-Type", FORM))
        return SignedRequest(method, path, b"", payload, headers, weight, idempotent, order, ts_ms, rw)

    def keyed(self, method: str, path: str, params: list[tuple[str, str]] | None = None) -> SignedRequest:
        """An API-key-only request (``USER_STREAM`` endpoints): key header, no signature."""
        from venues.binance.signing import encode_params

        body = encode_params(params or []).encode()
        if method == "GET" or method == "DELETE":
            return SignedRequest(method, path, body, b"", self._key_header, 2, True)
        headers = (*self._key_header, ("Content-Type", FORM)) if body else self._key_header
        return SignedRequest(method, path, b"", body, headers, 2, method == "PUT")

    @staticmethod
    def public(path: str, params: list[tuple[str, str]] | None = None, weight: int = 1) -> SignedRequest:
        """An unsigned GET (market data, server time)."""
        from venues.binance.signing import encode_params

        return SignedRequest("GET", path, encode_params(params or []).encode(), b"", (), weight, True)

    # ----------------------------------------------------------------- commands

    def build(self, command: AnyCommand, local_ns: int) -> SignedRequest:
        """The request for any venue command."""
        if isinstance(command, SubmitOrder):
            return self.new_order(command, local_ns)
        if isinstance(command, SubmitOrderList):
            return self.order_list(command, local_ns)
        if isinstance(command, CancelOrder):
            return self.cancel(command, local_ns)
        if isinstance(command, CancelAllOrders):
            return self.cancel_all(command, local_ns)
        if isinstance(command, CancelOrderList):
            return self.cancel_list(command, local_ns)
        if isinstance(command, QueryOrder):
            return self.query(command, local_ns)
        raise TypeError(f"no Binance request for {type(command).__name__}")

    def new_order(self, cmd: SubmitOrder, local_ns: int) -> SignedRequest:
        """``POST /api/v3/order``; the command must carry its client order id (exactly-once needs it)."""
        if not cmd.client_order_id:
            raise ValueError("a live order needs a client_order_id (the kernel assigns one)")
        p: list[tuple[str, str]] = [
            ("symbol", symbol_of(cmd.instrument)), ("side", cmd.side.value), ("type", cmd.order_type.value)
        ]
        _opt(p, "timeInForce", cmd.time_in_force and cmd.time_in_force.value)
        _num(p, "quantity", cmd.quantity)
        _num(p, "quoteOrderQty", cmd.quote_order_qty)
        _num(p, "price", cmd.price)
        p.append(("newClientOrderId", cmd.client_order_id))
        _num(p, "stopPrice", cmd.stop_price)
        _opt(p, "trailingDelta", cmd.trailing_delta or None)
        _num(p, "icebergQty", cmd.iceberg_qty)
        p.append(("newOrderRespType", (cmd.new_order_resp_type or self.default_resp_type).value))
        _opt(p, "selfTradePreventionMode", cmd.stp_mode and cmd.stp_mode.value)
        _opt(p, "strategyId", cmd.strategy_id)
        _opt(p, "strategyType", cmd.strategy_type)
        return self.signed("POST", "/api/v3/order", p, local_ns, order=True)

    def order_list(self, cmd: SubmitOrderList, local_ns: int) -> SignedRequest:
        """``orderList/oco`` (above/below), legacy ``order/oco``, ``orderList/oto`` or ``orderList/otoco``."""
        if not cmd.list_client_order_id:
            raise ValueError("a live order list needs a list_client_order_id (the kernel assigns one)")
        p: list[tuple[str, str]] = [("symbol", symbol_of(cmd.instrument)), ("listClientOrderId", cmd.list_client_order_id)]
        shape = cmd.shape
        if shape is ListShape.OCO:
            above, below = cmd.legs
            p += [("side", above.side.value), ("quantity", format_e8(above.quantity))]
            _leg_params(p, "above", above, with_side_qty=False)
            _leg_params(p, "below", below, with_side_qty=False)
            path = "/api/v3/orderList/oco"
        elif shape is ListShape.OCO_LEGACY:
            limit, stop = cmd.legs
            p += [("side", limit.side.value), ("quantity", format_e8(limit.quantity))]
            _opt(p, "limitClientOrderId", limit.client_order_id)
            _num(p, "price", limit.price)
            _num(p, "limitIcebergQty", limit.iceberg_qty)
            _opt(p, "stopClientOrderId", stop.client_order_id)
            _num(p, "stopPrice", stop.stop_price)
            _opt(p, "trailingDelta", stop.trailing_delta or None)
            _num(p, "stopLimitPrice", stop.price)
            _opt(p, "stopLimitTimeInForce", stop.time_in_force and stop.time_in_force.value)
            _num(p, "stopIcebergQty", stop.iceberg_qty)
            path = "/api/v3/order/oco"
        elif shape is ListShape.OTO:
            working, pending = cmd.legs
            _leg_params(p, "working", working)
            _leg_params(p, "pending", pending)
            path = "/api/v3/orderList/oto"
        else:
            working, above, below = cmd.legs
            _leg_params(p, "working", working)
            p += [("pendingSide", above.side.value), ("pendingQuantity", format_e8(above.quantity))]
            _leg_params(p, "pendingAbove", above, with_side_qty=False)
            _leg_params(p, "pendingBelow", below, with_side_qty=False)
            path = "/api/v3/orderList/otoco"
        p.append(("newOrderRespType", (cmd.new_order_resp_type or self.default_resp_type).value))
        _opt(p, "selfTradePreventionMode", cmd.stp_mode and cmd.stp_mode.value)
        return self.signed("POST", path, p, local_ns, order=True)

    def cancel(self, cmd: CancelOrder, local_ns: int) -> SignedRequest:
        """``DELETE /api/v3/order``."""
        p = [("symbol", symbol_of(cmd.instrument))]
        _opt(p, "orderId", cmd.order_id)
        _opt(p, "origClientOrderId", cmd.orig_client_order_id)
        _opt(p, "newClientOrderId", cmd.new_client_order_id)
        _opt(p, "cancelRestrictions", cmd.cancel_restrictions)
        return self.signed("DELETE", "/api/v3/order", p, local_ns, idempotent=True)

    def cancel_all(self, cmd: CancelAllOrders, local_ns: int) -> SignedRequest:
        """``DELETE /api/v3/openOrders``."""
        return self.signed("DELETE", "/api/v3/openOrders", [("symbol", symbol_of(cmd.instrument))], local_ns,
                           idempotent=True)

    def cancel_list(self, cmd: CancelOrderList, local_ns: int) -> SignedRequest:
        """``DELETE /api/v3/orderList``."""
        p = [("symbol", symbol_of(cmd.instrument))]
        _opt(p, "orderListId", cmd.order_list_id)
        _opt(p, "listClientOrderId", cmd.list_client_order_id)
        _opt(p, "newClientOrderId", cmd.new_client_order_id)
        return self.signed("DELETE", "/api/v3/orderList", p, local_ns, idempotent=True)

    def query(self, cmd: QueryOrder, local_ns: int) -> SignedRequest:
        """``GET /api/v3/order`` (weight 4)."""
        p = [("symbol", symbol_of(cmd.instrument))]
        _opt(p, "orderId", cmd.order_id)
        _opt(p, "origClientOrderId", cmd.orig_client_order_id)
        return self.signed("GET", "/api/v3/order", p, local_ns, weight=4, idempotent=True)

    def query_list(self, list_client_order_id: str, local_ns: int) -> SignedRequest:
        """``GET /api/v3/orderList`` by its client id (weight 4)."""
        return self.signed("GET", "/api/v3/orderList", [("origClientOrderId", list_client_order_id)], local_ns,
                           weight=4, idempotent=True)

    def query_list_by_id(self, order_list_id: int, local_ns: int) -> SignedRequest:
        """``GET /api/v3/orderList`` by ``orderListId`` (weight 4): a list this session did not name itself."""
        return self.signed("GET", "/api/v3/orderList", [("orderListId", str(order_list_id))], local_ns,
                           weight=4, idempotent=True)

    def my_trades(self, symbol: str, local_ns: int, *, order_id: int | None = None, from_id: int | None = None,
                  limit: int = MY_TRADES_LIMIT) -> SignedRequest:
        """``GET /api/v3/myTrades``: weight 5 with ``orderId``, 20 without (Binance ``rest-api.md``).

        ``symbol`` + ``orderId`` + ``fromId`` is one of the parameter combinations Binance accepts;
        ``fromId`` pages forward (trades with id >= it), whereas without it the *most recent*
        ``limit`` trades come back, so a recovery that must not miss old fills always sends it.
        """
        p: list[tuple[str, str]] = [("symbol", symbol)]
        _opt(p, "orderId", order_id)
        _opt(p, "fromId", from_id)
        p.append(("limit", str(limit)))
        weight = MY_TRADES_WEIGHT_BY_ORDER if order_id is not None else MY_TRADES_WEIGHT
        return self.signed("GET", "/api/v3/myTrades", p, local_ns, weight=weight, idempotent=True)

    def account(self, local_ns: int) -> SignedRequest:
        """``GET /api/v3/account`` (weight 20)."""
        return self.signed("GET", "/api/v3/account", [("omitZeroBalances", "true")], local_ns, weight=20,
                           idempotent=True)

    def open_orders(self, local_ns: int, symbol: str | None = None) -> SignedRequest:
        """``GET /api/v3/openOrders`` (weight 6 for one symbol, 80 for all)."""
        p: list[tuple[str, str]] = [("symbol", symbol)] if symbol else []
        return self.signed("GET", "/api/v3/openOrders", p, local_ns, weight=6 if symbol else 80, idempotent=True)


def _leg_params(p: list[tuple[str, str]], prefix: str, leg: OrderLeg, *, with_side_qty: bool = True) -> None:
    p.append((f"{prefix}Type", leg.order_type.value))
    if with_side_qty:
        p += [(f"{prefix}Side", leg.side.value), (f"{prefix}Quantity", format_e8(leg.quantity))]
    _opt(p, f"{prefix}ClientOrderId", leg.client_order_id)
    _num(p, f"{prefix}IcebergQty", leg.iceberg_qty)
    _num(p, f"{prefix}Price", leg.price)
    _num(p, f"{prefix}StopPrice", leg.stop_price)
    _opt(p, f"{prefix}TrailingDelta", leg.trailing_delta or None)
    _opt(p, f"{prefix}TimeInForce", leg.time_in_force and leg.time_in_force.value)
    _opt(p, f"{prefix}StrategyId", leg.strategy_id)
    _opt(p, f"{prefix}StrategyType", leg.strategy_type)


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class ApiError:
    """Binance's error body ``{"code": -2010, "msg": "..."}`` (``code`` 0 if the body had none)."""

    code: int
    msg: str


def decode_body(body: bytes) -> Any:
    """The JSON of a response body (None when it is not JSON, e.g. an HTML error page)."""
    try:
        return _decode(body) if body else None
    except msgspec.DecodeError:
        return None


def api_error(status: int, doc: Any) -> ApiError | None:
    """The error an answer carries, or None for a success."""
    if isinstance(doc, dict) and isinstance(doc.get("code"), int) and "msg" in doc and doc["code"] != 0:
        return ApiError(doc["code"], str(doc["msg"]))
    if status >= 400:
        return ApiError(-1000 - status if status >= 500 else -1000, f"HTTP {status}")
    return None


def _e8(doc: Mapping[str, Any], key: str) -> int:
    value = doc.get(key)
    return parse_e8(value) if isinstance(value, str) and value else 0


def _ms(doc: Mapping[str, Any], key: str, default: int = NO_ID) -> int:
    value = doc.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value * NS_PER_MS if value >= 0 else value
    return default


def _ts(doc: Mapping[str, Any], fallback: int) -> int:
    for key in ("transactTime", "updateTime", "time", "transactionTime"):
        v = _ms(doc, key)
        if v >= 0:
            return v
    return fallback


def rejected(cmd: SubmitOrder | SubmitOrderList, err: ApiError, ts_recv: int) -> OrderRejected:
    """A new order / order list refused with Binance's code and message."""
    reason = REASON_OF_MSG.get(err.msg, RejectReason.NONE) if err.code == -2010 else RejectReason.NONE
    if isinstance(cmd, SubmitOrder):
        return OrderRejected(0, ts_recv, ts_recv, cmd.instrument, cmd.client_order_id or "", err.code, err.msg, reason)
    cid = cmd.legs[0].client_order_id or "" if cmd.legs else ""
    return OrderRejected(0, ts_recv, ts_recv, cmd.instrument, cid, err.code, err.msg, reason,
                         cmd.list_client_order_id or "")


def _default_expiry(order_type: OrderType, tif: TimeInForce) -> ExpiryReason:
    if tif is TimeInForce.IOC:
        return ExpiryReason.UNFILLED_IOC_QUANTITY_EXPIRED
    if tif is TimeInForce.FOK:
        return ExpiryReason.UNFILLED_FOK_ORDER_EXPIRED
    if order_type is OrderType.MARKET:
        return ExpiryReason.INSUFFICIENT_LIQUIDITY
    return ExpiryReason.NONE


def order_events(doc: Mapping[str, Any], instrument: InstrumentId, ts_recv: int,
                 cmd: SubmitOrder | None = None) -> list[Event]:
    """A new-order answer (ACK, RESULT or FULL) -> OrderAccepted, OrderFilled per fill, final state."""
    ts = _ts(doc, ts_recv)
    oid = int(doc["orderId"])
    cid = str(doc.get("clientOrderId", cmd.client_order_id if cmd else ""))
    list_id = int(doc.get("orderListId", NO_ID))
    if "status" not in doc:  # ACK: only the ids are known; the rest is what we sent
        if cmd is None:
            raise ValueError("an ACK answer needs the command it answers")
        acc = OrderAccepted(0, ts, ts_recv, instrument, oid, cid, cmd.side, cmd.order_type,
                            cmd.time_in_force or TimeInForce.GTC, cmd.quantity, cmd.price, cmd.stop_price,
                            cmd.quote_order_qty, cmd.iceberg_qty, list_id, OrderStatus.NEW, NO_ID,
                            cmd.stp_mode or SelfTradePreventionMode.NONE, NO_ID, cmd.trailing_delta)
        return [acc]
    side, otype = OrderSide(doc["side"]), OrderType(doc["type"])
    tif = TimeInForce(doc.get("timeInForce") or "GTC")
    status = OrderStatus(doc["status"])
    orig_qty = _e8(doc, "origQty")
    first_status = OrderStatus.PENDING_NEW if status is OrderStatus.PENDING_NEW else OrderStatus.NEW
    out: list[Event] = [
        OrderAccepted(0, ts, ts_recv, instrument, oid, cid, side, otype, tif, orig_qty, _e8(doc, "price"),
                      _e8(doc, "stopPrice"), _e8(doc, "origQuoteOrderQty"), _e8(doc, "icebergQty"), list_id,
                      first_status, _ms(doc, "workingTime"),
                      SelfTradePreventionMode(doc.get("selfTradePreventionMode") or "NONE"), NO_ID,
                      int(doc.get("trailingDelta", 0)))
    ]
    cum_qty = cum_quote = 0
    for fill in doc.get("fills") or ():
        px, qty = _e8(fill, "price"), _e8(fill, "qty")
        quote = px * qty // SCALE
        cum_qty += qty
        cum_quote += quote
        fstatus = OrderStatus.FILLED if cum_qty >= orig_qty > 0 else OrderStatus.PARTIALLY_FILLED
        out.append(OrderFilled(0, ts, ts_recv, instrument, oid, cid, side, px, qty, quote, cum_qty, cum_quote,
                               fstatus, _e8(fill, "commission"), str(fill.get("commissionAsset") or ""),
                               int(fill.get("tradeId", NO_ID)), False, list_id, NO_ID))
    executed, cum_q = _e8(doc, "executedQty"), _e8(doc, "cummulativeQuoteQty")
    if status in (OrderStatus.EXPIRED, OrderStatus.EXPIRED_IN_MATCH):
        reason = ExpiryReason(doc.get("expiryReason") or _default_expiry(otype, tif).value)
        out.append(OrderExpired(0, ts, ts_recv, instrument, oid, cid, status, reason, executed, cum_q, list_id, NO_ID))
    elif status is OrderStatus.CANCELED:
        out.append(OrderCanceled(0, ts, ts_recv, instrument, oid, cid, "", executed, cum_q, list_id, NO_ID))
    return out


def list_events(doc: Mapping[str, Any], instrument: InstrumentId, ts_recv: int) -> list[Event]:
    """An order-list answer -> OrderListStatusChanged, then each leg's report (when sent)."""
    ts = _ts(doc, ts_recv)
    orders = doc.get("orders") or ()
    out: list[Event] = [
        OrderListStatusChanged(
            0, ts, ts_recv, instrument, int(doc["orderListId"]), str(doc.get("listClientOrderId", "")),
            ContingencyType(doc.get("contingencyType") or "OCO"), ListStatusType(doc["listStatusType"]),
            ListOrderStatus(doc["listOrderStatus"]), tuple(int(o["orderId"]) for o in orders),
            tuple(str(o.get("clientOrderId", "")) for o in orders),
        )
    ]
    for report in doc.get("orderReports") or ():
        if "status" not in report:
            continue
        if report.get("status") == "CANCELED":
            out.append(canceled_event(report, instrument, ts_recv))
        else:
            out.extend(order_events(report, instrument, ts_recv))
    return out


def canceled_event(doc: Mapping[str, Any], instrument: InstrumentId, ts_recv: int) -> OrderCanceled:
    """A ``DELETE /api/v3/order`` answer (``origClientOrderId`` is the order's id, ``clientOrderId`` the cancel's)."""
    orig = str(doc.get("origClientOrderId") or doc.get("clientOrderId") or "")
    cancel_cid = str(doc.get("clientOrderId") or "") if "origClientOrderId" in doc else ""
    return OrderCanceled(0, _ts(doc, ts_recv), ts_recv, instrument, int(doc["orderId"]), orig, cancel_cid,
                         _e8(doc, "executedQty"), _e8(doc, "cummulativeQuoteQty"), int(doc.get("orderListId", NO_ID)),
                         NO_ID)


def snapshot_of(doc: Mapping[str, Any], instrument: InstrumentId) -> OrderSnapshot:
    """A ``GET /api/v3/order`` / ``openOrders`` item as an :class:`OrderSnapshot` (ns times)."""
    return OrderSnapshot(
        instrument, str(doc["symbol"]), int(doc["orderId"]), int(doc.get("orderListId", NO_ID)),
        str(doc["clientOrderId"]), OrderSide(doc["side"]), OrderType(doc["type"]),
        TimeInForce(doc.get("timeInForce") or "GTC"), _e8(doc, "price"), _e8(doc, "origQty"),
        _e8(doc, "executedQty"), _e8(doc, "cummulativeQuoteQty"), _e8(doc, "origQuoteOrderQty"),
        OrderStatus(doc["status"]), _e8(doc, "stopPrice"), _e8(doc, "icebergQty"), _ms(doc, "time", 0),
        _ms(doc, "updateTime", 0), _ms(doc, "workingTime"), bool(doc.get("isWorking", False)),
        SelfTradePreventionMode(doc.get("selfTradePreventionMode") or "NONE"),
        prevented_qty=_e8(doc, "preventedQuantity"), prevented_match_id=int(doc.get("preventedMatchId", NO_ID)),
        trailing_delta=int(doc.get("trailingDelta", 0)), trailing_time=_ms(doc, "trailingTime"),
        expiry_reason=ExpiryReason(doc.get("expiryReason") or "NONE"),
    )


def status_event(status: int, doc: Any, cmd: QueryOrder, ts_recv: int) -> OrderStatusReported:
    """A query answer: the snapshot, or the error code (-2013 when the order does not exist)."""
    err = api_error(status, doc)
    if err is not None:
        return OrderStatusReported(0, ts_recv, ts_recv, cmd.instrument, None, err.code, err.msg)
    snap = snapshot_of(doc, cmd.instrument)
    return OrderStatusReported(0, snap.update_time or ts_recv, ts_recv, cmd.instrument, snap)


def cancel_rejected(cmd: CancelOrder | CancelOrderList | CancelAllOrders, err: ApiError, ts_recv: int) -> CancelRejected:
    """A refused cancel, naming what it tried to cancel."""
    if isinstance(cmd, CancelOrder):
        return CancelRejected(0, ts_recv, ts_recv, cmd.instrument, err.code, err.msg,
                              order_id=cmd.order_id if cmd.order_id is not None else NO_ID,
                              client_order_id=cmd.orig_client_order_id or "")
    if isinstance(cmd, CancelOrderList):
        return CancelRejected(0, ts_recv, ts_recv, cmd.instrument, err.code, err.msg,
                              order_list_id=cmd.order_list_id if cmd.order_list_id is not None else NO_ID)
    return CancelRejected(0, ts_recv, ts_recv, cmd.instrument, err.code, err.msg)


def answer_events(cmd: AnyCommand, status: int, doc: Any, ts_recv: int) -> list[Event]:
    """Any command's final REST answer -> the venue events it means (errors included)."""
    err = api_error(status, doc)
    if isinstance(cmd, QueryOrder):
        return [status_event(status, doc, cmd, ts_recv)]
    if isinstance(cmd, SubmitOrder | SubmitOrderList):
        if err is not None:
            return [rejected(cmd, err, ts_recv)]
        if isinstance(cmd, SubmitOrder):
            return order_events(doc, cmd.instrument, ts_recv, cmd)
        return list_events(doc, cmd.instrument, ts_recv)
    if err is not None:
        return [cancel_rejected(cmd, err, ts_recv)]
    return _cancel_answer(cmd, doc, ts_recv)


def _cancel_answer(cmd: CancelOrder | CancelOrderList | CancelAllOrders, doc: Any, ts_recv: int) -> list[Event]:
    items: list[Any] = doc if isinstance(doc, list) else [doc]
    out: list[Event] = []
    handlers: dict[bool, Callable[[Mapping[str, Any]], list[Event]]] = {
        True: lambda d: list_events(d, cmd.instrument, ts_recv),
        False: lambda d: [canceled_event(d, cmd.instrument, ts_recv)],
    }
    for item in items:
        if isinstance(item, dict):
            out.extend(handlers["listStatusType" in item](item))
    return out
