"""Order vocabulary: Binance's enums, the venue commands, and the order snapshot.

Everything here is a plain value (str enums, frozen msgspec Structs) so that the
simulated venue, the live adapter, strategies and the log all speak the same words.
Enum values are Binance's exact spellings (``enums.md``), so rendering a response is
``member.value`` and parsing one is ``Enum(text)``.

Where the venue *events* live: in :mod:`engine.events` (``OrderAccepted``,
``OrderFilled``, ...), not here. They must be members of ``engine.events.AnyEvent``
for the log reader to decode them, and ``events`` cannot import a module that
imports ``events`` without an import cycle; this module therefore imports nothing
from ``engine.events`` and ``events`` imports the enums from here.

Commands are frozen msgspec Structs tagged by class name (``AnyCommand`` decodes
any of them from JSON). Numeric parameters are e8 ints where **0 means "not sent"**
(Binance rejects a zero price or quantity anyway); optional enums and ids are None
when not sent. ``trailing_delta`` is in BIPS, as Binance sends it.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from engine.identifiers import InstrumentId


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_LOSS = "STOP_LOSS"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    NEW = "NEW"
    PENDING_NEW = "PENDING_NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    PENDING_CANCEL = "PENDING_CANCEL"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"


class ExecutionType(StrEnum):
    NEW = "NEW"
    CANCELED = "CANCELED"
    REPLACED = "REPLACED"
    REJECTED = "REJECTED"
    TRADE = "TRADE"
    EXPIRED = "EXPIRED"
    TRADE_PREVENTION = "TRADE_PREVENTION"


class ExpiryReason(StrEnum):
    NONE = "NONE"
    REJECTED = "REJECTED"
    EXCHANGE_CANCELED = "EXCHANGE_CANCELED"
    OCO_TRIGGER = "OCO_TRIGGER"
    OTO_PHASE_ONE_EXPIRED = "OTO_PHASE_ONE_EXPIRED"
    UNFILLED_IOC_QUANTITY_EXPIRED = "UNFILLED_IOC_QUANTITY_EXPIRED"
    UNFILLED_FOK_ORDER_EXPIRED = "UNFILLED_FOK_ORDER_EXPIRED"
    INSUFFICIENT_LIQUIDITY = "INSUFFICIENT_LIQUIDITY"
    EXECUTION_RULE_PRICE_RANGE_EXCEEDED = "EXECUTION_RULE_PRICE_RANGE_EXCEEDED"


class RejectReason(StrEnum):
    """The execution report's ``r`` field."""

    NONE = "NONE"
    INSUFFICIENT_BALANCES = "INSUFFICIENT_BALANCES"
    STOP_PRICE_WOULD_TRIGGER_IMMEDIATELY = "STOP_PRICE_WOULD_TRIGGER_IMMEDIATELY"
    WOULD_MATCH_IMMEDIATELY = "WOULD_MATCH_IMMEDIATELY"
    OCO_BAD_PRICES = "OCO_BAD_PRICES"


class SelfTradePreventionMode(StrEnum):
    NONE = "NONE"
    EXPIRE_TAKER = "EXPIRE_TAKER"
    EXPIRE_MAKER = "EXPIRE_MAKER"
    EXPIRE_BOTH = "EXPIRE_BOTH"
    DECREMENT = "DECREMENT"
    TRANSFER = "TRANSFER"


class ListStatusType(StrEnum):
    RESPONSE = "RESPONSE"
    EXEC_STARTED = "EXEC_STARTED"
    UPDATED = "UPDATED"
    ALL_DONE = "ALL_DONE"


class ListOrderStatus(StrEnum):
    EXECUTING = "EXECUTING"
    ALL_DONE = "ALL_DONE"
    REJECT = "REJECT"


class ContingencyType(StrEnum):
    OCO = "OCO"
    OTO = "OTO"


class NewOrderRespType(StrEnum):
    ACK = "ACK"
    RESULT = "RESULT"
    FULL = "FULL"


class CancelRestrictions(StrEnum):
    ONLY_NEW = "ONLY_NEW"
    ONLY_PARTIALLY_FILLED = "ONLY_PARTIALLY_FILLED"


class ListShape(StrEnum):
    """Which order-list endpoint a :class:`SubmitOrderList` stands for."""

    OCO = "OCO"  # POST /api/v3/orderList/oco (above/below legs)
    OCO_LEGACY = "OCO_LEGACY"  # POST /api/v3/order/oco (deprecated: limit-maker + stop legs)
    OTO = "OTO"  # POST /api/v3/orderList/oto (working + pending)
    OTOCO = "OTOCO"  # POST /api/v3/orderList/otoco (working + pending above + pending below)


class Liquidity(StrEnum):
    """Which side of a trade we were: the fee model's input."""

    MAKER = "MAKER"
    TAKER = "TAKER"


STOP_TYPES = frozenset({OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT})
"""Contingent ("algo") types: they wait for a trigger and report ``stopPrice``."""
LIMIT_PRICED_TYPES = frozenset(
    {OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT}
)
"""Types that carry a limit ``price``."""
TIF_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT})
"""Types that require (and accept) ``timeInForce``."""
TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.EXPIRED_IN_MATCH}
)
"""An order in one of these is no longer open: its client order id may be reused."""


def default_resp_type(order_type: OrderType) -> NewOrderRespType:
    """Binance's default: FULL for MARKET and LIMIT, ACK for every other type."""
    if order_type is OrderType.MARKET or order_type is OrderType.LIMIT:
        return NewOrderRespType.FULL
    return NewOrderRespType.ACK


def rises_to_trigger(order_type: OrderType, side: OrderSide) -> bool:
    """True if the stop triggers when the market price rises to ``stopPrice``.

    Binance's trigger rules: stop above the market for STOP_LOSS BUY and TAKE_PROFIT SELL;
    below it for STOP_LOSS SELL and TAKE_PROFIT BUY.
    """
    stop_loss = order_type is OrderType.STOP_LOSS or order_type is OrderType.STOP_LOSS_LIMIT
    return stop_loss == (side is OrderSide.BUY)


# --------------------------------------------------------------------------- commands


class Command(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="command"):
    """Base of every venue command: what to do, on which instrument."""

    instrument: InstrumentId


class SubmitOrder(Command, frozen=True, gc=False):
    """``POST /api/v3/order``. e8 ints, 0 = not sent; ``trailing_delta`` in BIPS."""

    side: OrderSide
    order_type: OrderType
    quantity: int = 0
    price: int = 0
    time_in_force: TimeInForce | None = None
    quote_order_qty: int = 0
    stop_price: int = 0
    trailing_delta: int = 0
    iceberg_qty: int = 0
    client_order_id: str | None = None
    new_order_resp_type: NewOrderRespType | None = None
    stp_mode: SelfTradePreventionMode | None = None
    strategy_id: int | None = None
    strategy_type: int | None = None


class CancelOrder(Command, frozen=True, gc=False):
    """``DELETE /api/v3/order``: by ``order_id`` or ``orig_client_order_id`` (both: id wins, cid must match)."""

    order_id: int | None = None
    orig_client_order_id: str | None = None
    new_client_order_id: str | None = None
    cancel_restrictions: str | None = None


class CancelAllOrders(Command, frozen=True, gc=False):
    """``DELETE /api/v3/openOrders``: every open order and order list on the symbol."""


class CancelOrderList(Command, frozen=True, gc=False):
    """``DELETE /api/v3/orderList``: by ``order_list_id`` or ``list_client_order_id``."""

    order_list_id: int | None = None
    list_client_order_id: str | None = None
    new_client_order_id: str | None = None


class QueryOrder(Command, frozen=True, gc=False):
    """``GET /api/v3/order``: by ``order_id`` or ``orig_client_order_id``; answered by OrderStatusReported."""

    order_id: int | None = None
    orig_client_order_id: str | None = None


class OrderLeg(msgspec.Struct, frozen=True, gc=False):
    """One order of an order list; same conventions as :class:`SubmitOrder` (0 / None = not sent)."""

    side: OrderSide
    order_type: OrderType
    quantity: int
    price: int = 0
    stop_price: int = 0
    trailing_delta: int = 0
    time_in_force: TimeInForce | None = None
    iceberg_qty: int = 0
    client_order_id: str | None = None
    strategy_id: int | None = None
    strategy_type: int | None = None


class SubmitOrderList(Command, frozen=True, gc=False):
    """An order list; ``legs`` depend on ``shape``.

    - OCO: ``(above, below)``; same side and quantity.
    - OCO_LEGACY: ``(limit_maker, stop)``; the stop leg is STOP_LOSS, or STOP_LOSS_LIMIT when
      it has a price (``stopLimitPrice``); its ``stop_price`` is mandatory.
    - OTO: ``(working, pending)``; OTOCO: ``(working, pending_above, pending_below)``.

    Build them with :meth:`oco`, :meth:`legacy_oco`, :meth:`oto` and :meth:`otoco`.
    """

    shape: ListShape
    legs: tuple[OrderLeg, ...]
    list_client_order_id: str | None = None
    new_order_resp_type: NewOrderRespType | None = None
    stp_mode: SelfTradePreventionMode | None = None

    @classmethod
    def oco(
        cls,
        instrument: InstrumentId,
        side: OrderSide,
        quantity: int,
        above: OrderLeg | dict[str, object],
        below: OrderLeg | dict[str, object],
        **kw: object,
    ) -> SubmitOrderList:
        """``orderList/oco``: ``above``/``below`` as legs or dicts of OrderLeg fields (side/quantity filled in)."""
        legs = tuple(_leg(x, side, quantity) for x in (above, below))
        return cls(instrument, ListShape.OCO, legs, **kw)  # type: ignore[arg-type]

    @classmethod
    def legacy_oco(
        cls,
        instrument: InstrumentId,
        side: OrderSide,
        quantity: int,
        price: int,
        stop_price: int,
        *,
        stop_limit_price: int = 0,
        stop_limit_time_in_force: TimeInForce | None = None,
        limit_client_order_id: str | None = None,
        stop_client_order_id: str | None = None,
        limit_iceberg_qty: int = 0,
        stop_iceberg_qty: int = 0,
        trailing_delta: int = 0,
        **kw: object,
    ) -> SubmitOrderList:
        """``order/oco`` (deprecated shape): a LIMIT_MAKER leg and a STOP_LOSS(_LIMIT) leg."""
        limit = OrderLeg(side, OrderType.LIMIT_MAKER, quantity, price=price, iceberg_qty=limit_iceberg_qty,
                         client_order_id=limit_client_order_id)
        stop_type = OrderType.STOP_LOSS_LIMIT if stop_limit_price else OrderType.STOP_LOSS
        stop = OrderLeg(side, stop_type, quantity, price=stop_limit_price, stop_price=stop_price,
                        trailing_delta=trailing_delta, time_in_force=stop_limit_time_in_force,
                        iceberg_qty=stop_iceberg_qty, client_order_id=stop_client_order_id)
        return cls(instrument, ListShape.OCO_LEGACY, (limit, stop), **kw)  # type: ignore[arg-type]

    @classmethod
    def oto(cls, instrument: InstrumentId, working: OrderLeg, pending: OrderLeg, **kw: object) -> SubmitOrderList:
        """``orderList/oto``: the pending order is placed once the working order is fully filled."""
        return cls(instrument, ListShape.OTO, (working, pending), **kw)  # type: ignore[arg-type]

    @classmethod
    def otoco(
        cls, instrument: InstrumentId, working: OrderLeg, above: OrderLeg, below: OrderLeg, **kw: object
    ) -> SubmitOrderList:
        """``orderList/otoco``: an OCO pair placed once the working order is fully filled."""
        return cls(instrument, ListShape.OTOCO, (working, above, below), **kw)  # type: ignore[arg-type]


def _leg(x: OrderLeg | dict[str, object], side: OrderSide, quantity: int) -> OrderLeg:
    if isinstance(x, OrderLeg):
        return x
    fields = dict(x)
    fields.setdefault("side", side)
    fields.setdefault("quantity", quantity)
    return msgspec.convert(fields, OrderLeg)


AnyCommand = SubmitOrder | CancelOrder | CancelAllOrders | CancelOrderList | QueryOrder | SubmitOrderList
"""Every venue command; ``msgspec.json.decode(data, type=AnyCommand)`` picks the class by its tag."""


# --------------------------------------------------------------------------- snapshots


class OrderSnapshot(msgspec.Struct, frozen=True, gc=False):
    """Everything ``GET /api/v3/order`` reports about one order, at one moment (e8 ints, ns times).

    ``working_time`` / ``trailing_time`` are -1 while not working / not tracking;
    ``prevented_match_id`` is -1 when the order was never in a prevented match.
    """

    instrument: InstrumentId
    symbol: str
    order_id: int
    order_list_id: int
    client_order_id: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    price: int
    orig_qty: int
    executed_qty: int
    cum_quote: int
    orig_quote_order_qty: int
    status: OrderStatus
    stop_price: int
    iceberg_qty: int
    time: int
    update_time: int
    working_time: int
    is_working: bool
    stp_mode: SelfTradePreventionMode
    prevented_qty: int = 0
    prevented_match_id: int = -1
    trailing_delta: int = 0
    trailing_time: int = -1
    strategy_id: int | None = None
    strategy_type: int | None = None
    expiry_reason: ExpiryReason = ExpiryReason.NONE
    iceberg_sent: bool = False
