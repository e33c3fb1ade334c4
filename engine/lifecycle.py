"""Order and order-list lifecycles as transition tables: the one place that says what may follow what.

Every status change of a simulated order goes through :func:`next_status` (and every
order-list change through :func:`next_list_state`), so an impossible sequence (a fill
after a cancel, a second ALL_DONE) raises at once instead of corrupting balances. The
live adapter can run Binance's reports through the same tables to detect a venue that
contradicts its own protocol, hence :class:`IllegalTransition` is a ``VenueMisbehaved``.

Statuses and execution types are Binance's (``enums.md``). ``OrderAction`` is finer than
the execution type because the next status depends on more than ``x``: a TRADE either
partially fills or fills, a TRADE_PREVENTION either expires the order or only decrements it.
"""

from __future__ import annotations

from enum import StrEnum

from engine.errors import VenueMisbehaved
from engine.orders import ExecutionType, ListOrderStatus, ListStatusType, OrderStatus


class IllegalTransition(VenueMisbehaved):
    """An order or order list was asked to move along an edge its lifecycle does not have."""


class OrderAction(StrEnum):
    """What happened to an order (the input of the order lifecycle)."""

    ACCEPT = "ACCEPT"  # placed and working or waiting for its trigger -> NEW
    ACCEPT_PENDING = "ACCEPT_PENDING"  # pending leg of an OTO/OTOCO -> PENDING_NEW
    ACTIVATE = "ACTIVATE"  # pending leg placed on the book -> NEW
    TRIGGER = "TRIGGER"  # stop condition met; status unchanged
    PARTIAL_FILL = "PARTIAL_FILL"
    FILL = "FILL"
    PREVENT = "PREVENT"  # DECREMENT STP took some quantity; the order stays open
    EXPIRE_IN_MATCH = "EXPIRE_IN_MATCH"  # STP expired the remainder
    CANCEL = "CANCEL"
    EXPIRE = "EXPIRE"
    REJECT = "REJECT"


_N, _PN, _PF = OrderStatus.NEW, OrderStatus.PENDING_NEW, OrderStatus.PARTIALLY_FILLED
_F, _C, _E, _EM, _R = (
    OrderStatus.FILLED,
    OrderStatus.CANCELED,
    OrderStatus.EXPIRED,
    OrderStatus.EXPIRED_IN_MATCH,
    OrderStatus.REJECTED,
)
A = OrderAction

ORDER_TRANSITIONS: dict[tuple[OrderStatus | None, OrderAction], OrderStatus] = {
    (None, A.ACCEPT): _N,
    (None, A.ACCEPT_PENDING): _PN,
    (None, A.REJECT): _R,
    (_PN, A.ACTIVATE): _N,
    (_PN, A.CANCEL): _C,
    (_PN, A.EXPIRE): _E,
    (_N, A.TRIGGER): _N,
    (_N, A.PARTIAL_FILL): _PF,
    (_N, A.FILL): _F,
    (_N, A.PREVENT): _N,
    (_N, A.EXPIRE_IN_MATCH): _EM,
    (_N, A.CANCEL): _C,
    (_N, A.EXPIRE): _E,
    (_PF, A.PARTIAL_FILL): _PF,
    (_PF, A.FILL): _F,
    (_PF, A.PREVENT): _PF,
    (_PF, A.EXPIRE_IN_MATCH): _EM,
    (_PF, A.CANCEL): _C,
    (_PF, A.EXPIRE): _E,
}
"""(status before, action) -> status after; None is "not yet created". Terminal statuses have no edges."""

EXECUTION_TYPE: dict[OrderAction, ExecutionType] = {
    A.ACCEPT: ExecutionType.NEW,
    A.ACCEPT_PENDING: ExecutionType.NEW,
    A.ACTIVATE: ExecutionType.NEW,
    A.TRIGGER: ExecutionType.NEW,
    A.PARTIAL_FILL: ExecutionType.TRADE,
    A.FILL: ExecutionType.TRADE,
    A.PREVENT: ExecutionType.TRADE_PREVENTION,
    A.EXPIRE_IN_MATCH: ExecutionType.TRADE_PREVENTION,
    A.CANCEL: ExecutionType.CANCELED,
    A.EXPIRE: ExecutionType.EXPIRED,
    A.REJECT: ExecutionType.REJECTED,
}
"""The execution report's ``x`` for each action."""


def next_status(status: OrderStatus | None, action: OrderAction, order_id: int = -1) -> OrderStatus:
    """The status after ``action``; raises IllegalTransition if the lifecycle has no such edge."""
    try:
        return ORDER_TRANSITIONS[(status, action)]
    except KeyError:
        raise IllegalTransition(
            f"order {order_id}: no transition from {status.value if status else 'None'} on {action.value}"
        ) from None


def is_allowed(status: OrderStatus | None, action: OrderAction) -> bool:
    """True if the order lifecycle has this edge."""
    return (status, action) in ORDER_TRANSITIONS


# --------------------------------------------------------------------------- order lists


class ListAction(StrEnum):
    """What happened to an order list."""

    START = "START"  # placed
    REJECT = "REJECT"  # placement refused (RESPONSE / REJECT)
    UPDATE = "UPDATE"  # a leg changed while the list still executes
    FINISH = "FINISH"  # the list is done


ListState = tuple[ListStatusType, ListOrderStatus]

LIST_TRANSITIONS: dict[tuple[ListOrderStatus | None, ListAction], ListState] = {
    (None, ListAction.START): (ListStatusType.EXEC_STARTED, ListOrderStatus.EXECUTING),
    (None, ListAction.REJECT): (ListStatusType.RESPONSE, ListOrderStatus.REJECT),
    (ListOrderStatus.EXECUTING, ListAction.UPDATE): (ListStatusType.EXEC_STARTED, ListOrderStatus.EXECUTING),
    (ListOrderStatus.EXECUTING, ListAction.FINISH): (ListStatusType.ALL_DONE, ListOrderStatus.ALL_DONE),
}
"""(listOrderStatus before, action) -> (listStatusType, listOrderStatus) after."""


def next_list_state(status: ListOrderStatus | None, action: ListAction, list_id: int = -1) -> ListState:
    """The list state after ``action``; raises IllegalTransition if the list lifecycle has no such edge."""
    try:
        return LIST_TRANSITIONS[(status, action)]
    except KeyError:
        raise IllegalTransition(
            f"order list {list_id}: no transition from {status.value if status else 'None'} on {action.value}"
        ) from None
