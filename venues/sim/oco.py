"""Order lists (OCO, legacy OCO, OTO, OTOCO): the list record and the placement rules.

The venue (:mod:`venues.sim.venue`) owns the mechanics (placing legs, expiring the other
leg, moving the shared balance lock); this module owns what is specific to lists: the
allowed leg types per shape, the leg parameter names Binance uses in its error messages,
and the OCO price rules relative to the last traded price with their exact error codes
(reference §4.1/§4.2, ``errors.md`` -1158/-1165/-1166/-1168/-1196..-1199).
"""

from __future__ import annotations

from engine.errors import RequestRejected
from engine.orders import (
    ContingencyType,
    ListOrderStatus,
    ListShape,
    ListStatusType,
    OrderLeg,
    OrderSide,
    OrderType,
    SubmitOrderList,
)
from venues.sim.matching import Order

OCO_BAD_PRICES_MSG = "The relationship of the prices for the orders is not correct."

_SL = frozenset({OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT})
_LIMITISH = frozenset({OrderType.LIMIT_MAKER, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT})
OCO_LEG_TYPES = _SL | _LIMITISH
"""Types an ``orderList/oco`` leg may have. The reference lists LIMIT_MAKER only for the above
leg, but its own BUY price rule (limit below the last price) needs it below too, as the
2024 docs allowed: both positions accept it here."""
OTO_WORKING_TYPES = frozenset({OrderType.LIMIT, OrderType.LIMIT_MAKER})


class OrderList:
    """One order list's state. ``legs`` are in order-id order (how Binance reports them).

    ``pair`` holds the two OCO legs while they are still linked (neither has acted);
    ``locked`` is their shared balance lock meanwhile. ``pending`` are OTO/OTOCO legs not
    yet placed (status PENDING_NEW).
    """

    __slots__ = (
        "contingency",
        "instrument",
        "legs",
        "list_client_order_id",
        "list_id",
        "locked",
        "pair",
        "pending",
        "shape",
        "status",
        "status_type",
        "time",
        "working",
    )

    def __init__(
        self, list_id: int, list_client_order_id: str, shape: ListShape, cmd: SubmitOrderList, ts: int
    ) -> None:
        self.list_id = list_id
        self.list_client_order_id = list_client_order_id
        self.shape = shape
        self.instrument = cmd.instrument
        self.contingency = (
            ContingencyType.OCO if shape in (ListShape.OCO, ListShape.OCO_LEGACY) else ContingencyType.OTO
        )
        self.legs: list[Order] = []
        self.pair: tuple[Order, Order] | None = None
        self.pending: list[Order] = []
        self.working: Order | None = None
        self.locked = 0
        self.status: ListOrderStatus | None = None
        self.status_type: ListStatusType | None = None
        self.time = ts

    @property
    def is_open(self) -> bool:
        return self.status is ListOrderStatus.EXECUTING

    def other(self, leg: Order) -> Order | None:
        """The linked partner of an OCO leg (None once the pair is resolved)."""
        if self.pair is None:
            return None
        a, b = self.pair
        return b if leg is a else a if leg is b else None


def leg_param(shape: ListShape, index: int, name: str) -> str:
    """Binance's parameter name for leg ``index``'s ``name`` (e.g. OCO leg 0 "price" -> "abovePrice")."""
    if shape is ListShape.OCO_LEGACY:
        if index == 0:
            return {"price": "price", "icebergQty": "limitIcebergQty", "timeInForce": "timeInForce"}.get(
                name, "limit" + name[0].upper() + name[1:]
            )
        return {
            "stopPrice": "stopPrice",
            "price": "stopLimitPrice",
            "timeInForce": "stopLimitTimeInForce",
            "trailingDelta": "trailingDelta",
            "icebergQty": "stopIcebergQty",
        }.get(name, "stop" + name[0].upper() + name[1:])
    prefixes = {
        ListShape.OCO: ("above", "below"),
        ListShape.OTO: ("working", "pending"),
        ListShape.OTOCO: ("working", "pendingAbove", "pendingBelow"),
    }[shape]
    return prefixes[index] + name[0].upper() + name[1:]


def check_shape(cmd: SubmitOrderList) -> None:
    """Leg count, leg types and same side/quantity for OCO pairs; raises RequestRejected."""
    legs = cmd.legs
    want = {ListShape.OCO: 2, ListShape.OCO_LEGACY: 2, ListShape.OTO: 2, ListShape.OTOCO: 3}[cmd.shape]
    if len(legs) != want:
        raise RequestRejected(
            -1102, "Mandatory parameter 'legs' was not sent, was empty/null, or malformed."
        )
    if cmd.shape is ListShape.OCO:
        check_oco_types(legs[0], legs[1])
    elif cmd.shape is ListShape.OCO_LEGACY:
        if legs[0].order_type is not OrderType.LIMIT_MAKER or legs[1].order_type not in _SL:
            raise RequestRejected(-1158, "Order type not supported in OCO.")
        if not legs[1].stop_price:
            raise RequestRejected(
                -1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed."
            )
    else:
        if legs[0].order_type not in OTO_WORKING_TYPES:
            raise RequestRejected(-1116, "Invalid orderType.")
        if cmd.shape is ListShape.OTOCO:
            check_oco_types(legs[1], legs[2])
    pair = legs[-2:] if cmd.shape is not ListShape.OTO else ()
    if pair and (pair[0].side is not pair[1].side or pair[0].quantity != pair[1].quantity):
        raise RequestRejected(
            -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."
        )


def check_oco_types(above: OrderLeg, below: OrderLeg) -> None:
    """One leg LIMIT_MAKER/TAKE_PROFIT(_LIMIT), the other STOP_LOSS(_LIMIT)."""
    if above.order_type not in OCO_LEG_TYPES or below.order_type not in OCO_LEG_TYPES:
        raise RequestRejected(-1158, "Order type not supported in OCO.")
    if above.order_type is OrderType.LIMIT_MAKER and below.order_type is OrderType.LIMIT_MAKER:
        raise RequestRejected(-1168, "At least one OCO order must be contingent.")
    if (above.order_type in _SL) == (below.order_type in _SL):
        raise RequestRejected(-1158, "Order type not supported in OCO.")


def _ref_price(leg: OrderLeg) -> int:
    """The price an OCO leg is judged by: the limit price of LIMIT_MAKER/TAKE_PROFIT_LIMIT, else the stop."""
    if leg.order_type is OrderType.LIMIT_MAKER or leg.order_type is OrderType.TAKE_PROFIT_LIMIT:
        return leg.price
    return leg.stop_price


def check_oco_prices(above: OrderLeg, below: OrderLeg, last: int | None) -> None:
    """``orderList/oco`` price rules against the last traded price (``last`` None: only the order of legs).

    Each leg first by its own type and side (the specific -11xx codes), then the pair: the
    above leg's price must be above the below leg's (else the generic -2010 OCO_BAD_PRICES).
    A trailing-only stop leg (no stopPrice) is not judged.
    """
    if last is not None:
        for leg in (above, below):
            _check_leg_vs_last(leg, last)
    a, b = _ref_price(above), _ref_price(below)
    if a and b and a <= b:
        raise RequestRejected(-2010, OCO_BAD_PRICES_MSG)


def _check_leg_vs_last(leg: OrderLeg, last: int) -> None:
    ref = _ref_price(leg)
    if not ref:
        return
    sell = leg.side is OrderSide.SELL
    t = leg.order_type
    if t in _SL:
        if sell and ref >= last:
            raise RequestRejected(-1197, "A stop loss order in a sell OCO must be below.")
        if not sell and ref <= last:
            raise RequestRejected(-1196, "A stop loss order in a buy OCO must be above.")
    elif t is OrderType.TAKE_PROFIT:
        if sell and ref <= last:
            raise RequestRejected(-1199, "A take profit order in a sell OCO must be above.")
        if not sell and ref >= last:
            raise RequestRejected(-1198, "A take profit order in a buy OCO must be below.")
    else:
        if sell and ref <= last:
            raise RequestRejected(-1166, "A limit order in a sell OCO must be above.")
        if not sell and ref >= last:
            raise RequestRejected(-1165, "A limit order in a buy OCO must be below.")


def check_legacy_prices(limit: OrderLeg, stop: OrderLeg, last: int | None) -> None:
    """``order/oco``: SELL limit > last > stop; BUY limit < last < stop (else -2010 OCO_BAD_PRICES)."""
    lo, hi = (
        (stop.stop_price, limit.price) if limit.side is OrderSide.SELL else (limit.price, stop.stop_price)
    )
    ok = lo < hi if last is None else lo < last < hi
    if not ok:
        raise RequestRejected(-2010, OCO_BAD_PRICES_MSG)


def placement_order(cmd: SubmitOrderList) -> list[int]:
    """Leg indexes in the order they get order ids: the stop-loss leg of an OCO pair first
    (as Binance's documented responses show), the working order of an OTO first."""
    if cmd.shape is ListShape.OCO or cmd.shape is ListShape.OCO_LEGACY:
        return [1, 0] if cmd.legs[1].order_type in _SL else [0, 1]
    if cmd.shape is ListShape.OTOCO:
        return [0, 2, 1] if cmd.legs[2].order_type in _SL else [0, 1, 2]
    return [0, 1]
