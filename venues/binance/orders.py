"""Exactly-once order submission: never a second order, whatever the network does.

Every new order carries a ``newClientOrderId`` (the kernel assigns one to every order) and every
order list a ``listClientOrderId``. When the answer to the placement is lost -- a timeout, a
dropped connection, an HTTP 5xx ("execution status unknown", per Binance) -- we do not know
whether the order exists, so we ask:

1. ``GET /api/v3/order?origClientOrderId=`` (``GET /api/v3/orderList`` for lists).
2. Found: the order exists; report its state (``OrderAccepted`` + ``OrderStatusReported``; its
   fills arrive on the user data stream).
3. Not found (``-2013``): the placement may still be in flight. A request can only be executed
   while the venue's clock is within ``timestamp + recvWindow`` of its signed timestamp, so we
   wait until that has passed by server time and ask once more. Still not found: it never
   landed, and it never will.
4. Re-send with the **same** client id. If the first one did land after all, the venue answers
   ``-2010 Duplicate order sent.`` (the id is in use by an open order): go back to 1.

Step 3 closes the window the plain "query, then resend" loop leaves open: an order still in
flight when queried that fills at once (so its id is free again) would be placed twice.
The loop is bounded (``max_rounds``); if it cannot decide it raises :class:`UnknownOutcome`, and
the venue reports that rather than guessing. Configuration errors (bad key or signature, a clock
the venue keeps refusing) propagate as ``RequestRejected`` subclasses from ``venues.binance.rest``:
nothing was placed, and the operator must hear about it (the venue reports them to ``on_error``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from engine.clock import Clock, LiveClock
from engine.events import Event, OrderAccepted
from engine.orders import (
    OrderSnapshot,
    OrderStatus,
    QueryOrder,
    SubmitOrder,
    SubmitOrderList,
)
from venues.binance.requests import (
    ApiError,
    SignedRequest,
    answer_events,
    api_error,
    list_events,
    status_event,
)
from venues.binance.rest import RestClient, RestResponse, UnknownOutcome

NOT_FOUND_CODES = frozenset({-2013, -2011})
"""``-2013`` Order does not exist; ``-2011`` for order lists ("Order list does not exist.")."""
WAIT_MARGIN_MS = 50


def is_duplicate(err: ApiError) -> bool:
    """The venue's "that client id is in use" answer."""
    return err.code in (-2010, -1013, -4116) and ("uplicate" in err.msg or "already" in err.msg)


def accepted_from(snap: OrderSnapshot, ts_recv: int) -> OrderAccepted:
    """What a found order means to a strategy that never heard back: it was accepted."""
    first = OrderStatus.PENDING_NEW if snap.status is OrderStatus.PENDING_NEW else OrderStatus.NEW
    return OrderAccepted(
        0, snap.time or ts_recv, ts_recv, snap.instrument, snap.order_id, snap.client_order_id, snap.side,
        snap.order_type, snap.time_in_force, snap.orig_qty, snap.price, snap.stop_price, snap.orig_quote_order_qty,
        snap.iceberg_qty, snap.order_list_id, first, snap.working_time, snap.stp_mode, -1, snap.trailing_delta,
    )


class OrderExecutor:
    """Places orders and order lists exactly once (see module doc)."""

    def __init__(
        self,
        rest: RestClient,
        *,
        clock: Clock | None = None,
        max_rounds: int = 6,
        wait_recv_window: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rest = rest
        self.builder = rest.builder
        self.clock = clock or LiveClock()
        self.max_rounds = max_rounds
        self.wait_recv_window = wait_recv_window
        self._sleep = sleep
        self.resends = 0
        self.reconciliations = 0

    def _now(self) -> int:
        return self.clock.now_ns()

    async def submit(self, cmd: SubmitOrder | SubmitOrderList, first: SignedRequest | None = None) -> list[Event]:
        """Place ``cmd`` (``first``: its already-signed request, sent as is on the first attempt)."""
        pending = [first] if first is not None else []

        def build(ns: int) -> SignedRequest:
            return pending.pop() if pending else self.builder.build(cmd, ns)

        sent_at: list[SignedRequest] = []

        def tracked(ns: int) -> SignedRequest:
            req = build(ns)
            sent_at.append(req)
            return req

        try:
            resp = await self.rest.send(tracked)
        except UnknownOutcome:
            return await self.reconcile(cmd, sent_at[-1] if sent_at else None)
        return await self._answered(cmd, resp, sent_at[-1] if sent_at else None)

    async def _answered(self, cmd: SubmitOrder | SubmitOrderList, resp: RestResponse,
                        req: SignedRequest | None) -> list[Event]:
        err = api_error(resp.status, resp.doc)
        if err is not None and is_duplicate(err):
            return await self.reconcile(cmd, req, duplicate=True)
        return answer_events(cmd, resp.status, resp.doc, resp.received_ns)

    async def reconcile(self, cmd: SubmitOrder | SubmitOrderList, last: SignedRequest | None,
                        *, duplicate: bool = False) -> list[Event]:
        """Find out whether ``cmd`` exists; re-send it (same id) only once it provably does not."""
        self.reconciliations += 1
        waited = False
        for _ in range(self.max_rounds):
            found = await self._lookup(cmd)
            if found is not None:
                return found
            if duplicate:  # the venue says the id is in use but cannot find it: ask again shortly
                duplicate = False
                await self._sleep(WAIT_MARGIN_MS / 1000)
                continue
            if self.wait_recv_window and last is not None and not waited:
                waited = True
                if await self._wait_out(last):
                    continue
            outcome = await self._resend(cmd)
            if isinstance(outcome, list):
                return outcome
            last, duplicate = outcome
            waited = False
        cid = _cid(cmd)
        raise UnknownOutcome(f"order {cid!r}: could not establish whether it exists after {self.max_rounds} rounds")

    async def _wait_out(self, req: SignedRequest) -> bool:
        """Sleep until ``req`` can no longer be executed by the venue; True if we had to wait."""
        expires_ms = req.timestamp_ms + req.recv_window_ms + WAIT_MARGIN_MS
        left_ms = expires_ms - self.rest.server_time.server_ms(self._now())
        if left_ms <= 0:
            return False
        await self._sleep(left_ms / 1000)
        return True

    async def _resend(self, cmd: SubmitOrder | SubmitOrderList) -> list[Event] | tuple[SignedRequest | None, bool]:
        """Re-send with the same client id: events when decided, else (request, was_duplicate)."""
        self.resends += 1
        sent: list[SignedRequest] = []

        def build(ns: int) -> SignedRequest:
            req = self.builder.build(cmd, ns)
            sent.append(req)
            return req

        try:
            resp = await self.rest.send(build)
        except UnknownOutcome:
            return (sent[-1] if sent else None, False)
        err = api_error(resp.status, resp.doc)
        if err is not None and is_duplicate(err):
            return (sent[-1] if sent else None, True)
        return answer_events(cmd, resp.status, resp.doc, resp.received_ns)

    async def _lookup(self, cmd: SubmitOrder | SubmitOrderList) -> list[Event] | None:
        """The order's (list's) current state as events, or None when the venue does not know it."""
        if isinstance(cmd, SubmitOrder):
            query = QueryOrder(cmd.instrument, orig_client_order_id=cmd.client_order_id)
            resp = await self.rest.send(lambda ns: self.builder.query(query, ns))
            report = status_event(resp.status, resp.doc, query, resp.received_ns)
            if report.order is not None:
                return [accepted_from(report.order, resp.received_ns), report]
            return self._not_found(report.code, report.msg, cmd)
        lid = cmd.list_client_order_id or ""
        resp = await self.rest.send(lambda ns: self.builder.query_list(lid, ns))
        err = api_error(resp.status, resp.doc)
        if err is None:
            return list_events(resp.doc, cmd.instrument, resp.received_ns)
        return self._not_found(err.code, err.msg, cmd)

    @staticmethod
    def _not_found(code: int, msg: str, cmd: SubmitOrder | SubmitOrderList) -> None:
        if code in NOT_FOUND_CODES:
            return None
        raise UnknownOutcome(f"order {_cid(cmd)!r}: query failed with {code} {msg}")


def _cid(cmd: SubmitOrder | SubmitOrderList) -> str:
    return (cmd.client_order_id if isinstance(cmd, SubmitOrder) else cmd.list_client_order_id) or ""


__all__ = ["NOT_FOUND_CODES", "OrderExecutor", "accepted_from", "is_duplicate"]
