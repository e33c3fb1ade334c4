"""The order and order-list lifecycle tables, the account's conservation counters and the request-id record."""

from __future__ import annotations

import pytest

from engine.lifecycle import (
    EXECUTION_TYPE,
    LIST_TRANSITIONS,
    ORDER_TRANSITIONS,
    IllegalTransition,
    ListAction,
    OrderAction,
    next_list_state,
    next_status,
)
from engine.orders import (
    TERMINAL_STATUSES,
    ExecutionType,
    ListOrderStatus,
    ListStatusType,
    OrderSide,
    OrderStatus,
    OrderType,
    rises_to_trigger,
)
from venues.sim.account import Account, InsufficientBalance
from venues.sim.idempotency import RecentRequests

pytestmark = pytest.mark.edge


def test_terminal_statuses_have_no_outgoing_edge() -> None:
    for status in TERMINAL_STATUSES:
        for action in OrderAction:
            with pytest.raises(IllegalTransition, match=status.value):
                next_status(status, action, 7)


def test_binance_lifecycle_paths() -> None:
    s = next_status(None, OrderAction.ACCEPT)
    assert s is OrderStatus.NEW
    s = next_status(s, OrderAction.PARTIAL_FILL)
    assert s is OrderStatus.PARTIALLY_FILLED
    assert next_status(s, OrderAction.FILL) is OrderStatus.FILLED
    assert next_status(s, OrderAction.EXPIRE_IN_MATCH) is OrderStatus.EXPIRED_IN_MATCH
    assert next_status(s, OrderAction.PREVENT) is OrderStatus.PARTIALLY_FILLED
    pending = next_status(None, OrderAction.ACCEPT_PENDING)
    assert pending is OrderStatus.PENDING_NEW
    assert next_status(pending, OrderAction.ACTIVATE) is OrderStatus.NEW
    with pytest.raises(IllegalTransition):
        next_status(pending, OrderAction.FILL)  # a pending leg is not on the book
    with pytest.raises(IllegalTransition):
        next_status(OrderStatus.NEW, OrderAction.ACCEPT)  # accepted twice


def test_every_action_has_an_execution_type_and_every_edge_starts_open() -> None:
    assert set(EXECUTION_TYPE) == set(OrderAction)
    assert EXECUTION_TYPE[OrderAction.EXPIRE_IN_MATCH] is ExecutionType.TRADE_PREVENTION
    for (before, _), after in ORDER_TRANSITIONS.items():
        assert before not in TERMINAL_STATUSES
        assert after is not OrderStatus.PENDING_CANCEL  # unused by Binance


def test_list_lifecycle() -> None:
    state = next_list_state(None, ListAction.START)
    assert state == (ListStatusType.EXEC_STARTED, ListOrderStatus.EXECUTING)
    assert next_list_state(state[1], ListAction.UPDATE) == state
    done = next_list_state(state[1], ListAction.FINISH)
    assert done == (ListStatusType.ALL_DONE, ListOrderStatus.ALL_DONE)
    with pytest.raises(IllegalTransition):
        next_list_state(done[1], ListAction.FINISH)
    assert next_list_state(None, ListAction.REJECT) == (ListStatusType.RESPONSE, ListOrderStatus.REJECT)
    assert all(k[0] is not ListOrderStatus.ALL_DONE for k in LIST_TRANSITIONS)


@pytest.mark.parametrize(
    ("order_type", "side", "rises"),
    [
        (OrderType.STOP_LOSS, OrderSide.BUY, True),
        (OrderType.STOP_LOSS_LIMIT, OrderSide.BUY, True),
        (OrderType.TAKE_PROFIT, OrderSide.SELL, True),
        (OrderType.TAKE_PROFIT_LIMIT, OrderSide.SELL, True),
        (OrderType.STOP_LOSS, OrderSide.SELL, False),
        (OrderType.TAKE_PROFIT, OrderSide.BUY, False),
    ],
)
def test_trigger_direction_follows_the_reference(order_type: OrderType, side: OrderSide, rises: bool) -> None:
    assert rises_to_trigger(order_type, side) is rises


def test_account_conservation_counters() -> None:
    acct = Account({"USDT": 1000, "BTC": 5})
    assert acct.try_lock("USDT", 600)
    assert not acct.try_lock("USDT", 401)  # only 400 free: nothing changes
    assert (acct.free_of("USDT"), acct.locked_of("USDT")) == (400, 600)
    acct.pay_locked("USDT", 550)  # a BUY trade: quote out, base in, fee in base
    acct.receive("BTC", 3)
    acct.charge_fee("BTC", 1)
    acct.unlock("USDT", 50)
    assert (acct.free_of("USDT"), acct.locked_of("USDT"), acct.free_of("BTC")) == (450, 0, 7)
    assert acct.conservation_gap("USDT") == 0
    assert acct.conservation_gap("BTC") == 0
    assert acct.take_changes() == (("BTC", 7, 0), ("USDT", 450, 0))
    assert acct.take_changes() == ()
    with pytest.raises(InsufficientBalance):
        acct.pay_locked("USDT", 1)
    with pytest.raises(InsufficientBalance):
        acct.charge_fee("BTC", 8)


def test_recent_requests_window_and_capacity() -> None:
    rec: RecentRequests[str] = RecentRequests(ttl_ns=100, capacity=2)
    rec.remember("a", "req-a", 1, now=0)
    assert rec.retry_of("a", "req-a", now=99) == 1
    assert rec.retry_of("a", "other", now=50) is None  # same id, different request: not a retry
    assert rec.retry_of("a", "req-a", now=100) is None  # window over
    rec.remember("b", "req-b", 2, now=110)
    rec.remember("c", "req-c", 3, now=120)
    rec.remember("d", "req-d", 4, now=130)
    assert len(rec) == 2  # bounded: the oldest went
    assert rec.retry_of("b", "req-b", now=131) is None
    assert rec.retry_of("d", "req-d", now=131) == 4
    off: RecentRequests[str] = RecentRequests(ttl_ns=0, capacity=10)
    off.remember("a", "x", 1, now=0)
    assert off.retry_of("a", "x", now=0) is None
