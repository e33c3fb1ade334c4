"""Binance WebSocket payloads from tickloop events, sans-I/O (dicts in Binance's field order).

Market streams (``<symbol>@aggTrade``, ``@trade``, ``@depth@100ms``, ``@depth20@100ms``,
``@bookTicker``, ``@kline_1m``, ``@markPrice@1s``) follow ``web-socket-streams.md`` as summarised
in ``shared/reference/binance-spot-semantics.md`` §12-13, including the spot/futures
differences: futures diffs carry ``T`` and ``pu``, futures bookTicker/trade/aggTrade carry
``e``/``E``/``T`` and no ``M``; spot bookTicker and partial depth have no event time.

User data stream messages (``executionReport``, ``outboundAccountPosition``, ``balanceUpdate``,
``listStatus``) follow ``user-data-stream.md`` §9: every documented field of an execution
report is present, with the conditional ones under their documented conditions.

Numbers are Binance's spot strings: 8 decimals always (``"0.00100000"``); times are ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.events import (
    AggTradeReceived,
    BalanceUpdated,
    BookDeltaReceived,
    Event,
    MarkPriceReceived,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    OrderTradePrevented,
    OrderTriggered,
    QuoteReceived,
    TradeReceived,
)
from engine.fixed import format_e8_fixed
from engine.orders import OrderSnapshot, OrderStatus, TimeInForce

Json = dict[str, Any]
Level = tuple[int, int]


def fmt(v: int) -> str:
    """A price/quantity as Binance prints it on spot: 8 decimals."""
    return format_e8_fixed(v, 8)


def ms(ns: int) -> int:
    """ns -> ms (negative sentinels such as -1 stay -1)."""
    return ns // 1_000_000 if ns >= 0 else -1


def levels(side: Sequence[Level]) -> list[list[str]]:
    return [[fmt(p), fmt(q)] for p, q in side]


def combined(stream: str, data: Json) -> Json:
    """The combined-stream wrapper of ``/stream?streams=...``."""
    return {"stream": stream, "data": data}


# --------------------------------------------------------------------------- market streams


def trade_msg(symbol: str, ev: TradeReceived, futures: bool) -> Json:
    if futures:
        return {"e": "trade", "E": ms(ev.ts_recv), "T": ms(ev.ts_event), "s": symbol, "t": ev.trade_id,
                "p": fmt(ev.price), "q": fmt(ev.qty), "X": "MARKET", "m": ev.buyer_maker}
    return {"e": "trade", "E": ms(ev.ts_recv), "s": symbol, "t": ev.trade_id, "p": fmt(ev.price),
            "q": fmt(ev.qty), "T": ms(ev.ts_event), "m": ev.buyer_maker, "M": True}


def agg_trade_msg(symbol: str, ev: TradeReceived | AggTradeReceived, futures: bool) -> Json:
    """An aggTrade; a raw trade becomes an aggregate of one trade (``a`` = ``f`` = ``l`` = its id)."""
    if isinstance(ev, AggTradeReceived):
        agg, first, last = ev.agg_id, ev.first_trade_id, ev.last_trade_id
    else:
        agg = first = last = ev.trade_id
    body: Json = {"e": "aggTrade", "E": ms(ev.ts_recv), "s": symbol, "a": agg, "p": fmt(ev.price),
                  "q": fmt(ev.qty), "f": first, "l": last, "T": ms(ev.ts_event), "m": ev.buyer_maker}
    if not futures:
        body["M"] = True
    return body


def depth_update_msg(symbol: str, ev: BookDeltaReceived, futures: bool) -> Json:
    """A diff: ``U``/``u`` (and ``pu``, ``T`` on futures); quantities are absolute, "0" removes."""
    body: Json = {"e": "depthUpdate", "E": ms(ev.ts_recv)}
    if futures:
        body["T"] = ms(ev.ts_event)
    body.update({"s": symbol, "U": ev.first_update_id, "u": ev.last_update_id})
    if futures:
        body["pu"] = ev.prev_update_id
    body["b"] = levels(ev.bids)
    body["a"] = levels(ev.asks)
    return body


def partial_depth_msg(
    last_update_id: int, bids: Sequence[Level], asks: Sequence[Level], symbol: str, futures: bool, now_ns: int,
    first_update_id: int = 0, prev_update_id: int = 0,
) -> Json:
    """``depth<N>@100ms``: spot is a bare top-N snapshot; futures wraps it like a diff."""
    if not futures:
        return {"lastUpdateId": last_update_id, "bids": levels(bids), "asks": levels(asks)}
    return {"e": "depthUpdate", "E": ms(now_ns), "T": ms(now_ns), "s": symbol, "U": first_update_id,
            "u": last_update_id, "pu": prev_update_id, "b": levels(bids), "a": levels(asks)}


def book_ticker_msg(symbol: str, ev: QuoteReceived, futures: bool) -> Json:
    body: Json = {"e": "bookTicker", "u": ev.update_id} if futures else {"u": ev.update_id}
    body.update({"s": symbol, "b": fmt(ev.bid_price), "B": fmt(ev.bid_qty), "a": fmt(ev.ask_price),
                 "A": fmt(ev.ask_qty)})
    if futures:
        body.update({"T": ms(ev.ts_event), "E": ms(ev.ts_recv)})
    return body


def mark_price_msg(symbol: str, ev: MarkPriceReceived) -> Json:
    return {"e": "markPriceUpdate", "E": ms(ev.ts_recv), "s": symbol, "p": fmt(ev.mark_price),
            "i": fmt(ev.index_price), "P": fmt(ev.estimated_settle_price), "r": fmt(ev.funding_rate),
            "T": ms(ev.next_funding_time)}


@dataclass(slots=True)
class Kline:
    """One candle being built from trades (times ms, numbers e8)."""

    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    quote_volume: int = 0
    trades: int = 0
    taker_buy_volume: int = 0
    taker_buy_quote: int = 0
    first_trade_id: int = -1
    last_trade_id: int = -1

    def add(self, price: int, qty: int, trade_id: int, buyer_maker: bool) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        quote = price * qty // 100_000_000
        self.volume += qty
        self.quote_volume += quote
        self.trades += 1
        if not buyer_maker:
            self.taker_buy_volume += qty
            self.taker_buy_quote += quote
        if self.first_trade_id < 0:
            self.first_trade_id = trade_id
        self.last_trade_id = trade_id

    def rest_row(self) -> list[Any]:
        """One row of ``GET /api/v3/klines``."""
        return [self.open_time, fmt(self.open), fmt(self.high), fmt(self.low), fmt(self.close), fmt(self.volume),
                self.close_time, fmt(self.quote_volume), self.trades, fmt(self.taker_buy_volume),
                fmt(self.taker_buy_quote), "0"]


def kline_msg(symbol: str, k: Kline, interval: str, closed: bool, now_ns: int) -> Json:
    return {"e": "kline", "E": ms(now_ns), "s": symbol, "k": {
        "t": k.open_time, "T": k.close_time, "s": symbol, "i": interval, "f": k.first_trade_id,
        "L": k.last_trade_id, "o": fmt(k.open), "c": fmt(k.close), "h": fmt(k.high), "l": fmt(k.low),
        "v": fmt(k.volume), "n": k.trades, "x": closed, "q": fmt(k.quote_volume), "V": fmt(k.taker_buy_volume),
        "Q": fmt(k.taker_buy_quote), "B": "0"}}


# --------------------------------------------------------------------------- user data stream


def execution_report(ev: Event, snap: OrderSnapshot | None, symbol: str) -> Json | None:
    """The ``executionReport`` of one venue event (None for events that are not order reports).

    Static order fields (side, type, price, quantities, creation time) come from the order's
    snapshot; what changed (``x``, ``X``, ``l``, ``z``, ``L``, ``n``, ...) from the event itself.
    """
    x = _exec_type(ev)
    if x is None:
        return None
    E = ms(ev.ts_event)
    rep: Json = {
        "e": "executionReport", "E": E, "s": symbol, "c": "", "S": "", "o": "", "f": "GTC", "q": fmt(0),
        "p": fmt(0), "P": fmt(0), "F": fmt(0), "g": -1, "C": "", "x": x, "X": "", "r": "NONE", "i": -1,
        "l": fmt(0), "z": fmt(0), "L": fmt(0), "n": "0", "N": None, "T": E, "t": -1, "v": -1, "I": 0,
        "w": False, "m": False, "M": False, "O": E, "Z": fmt(0), "Y": fmt(0), "Q": fmt(0), "W": E, "V": "NONE",
    }
    if snap is not None:
        _static_fields(rep, snap)
    _event_fields(rep, ev)
    if rep.get("v", -1) < 0:
        rep.pop("v", None)
    return rep


def _exec_type(ev: Event) -> str | None:
    if isinstance(ev, OrderAccepted):
        return "NEW"
    if isinstance(ev, OrderFilled):
        return "TRADE"
    if isinstance(ev, OrderCanceled):
        return "CANCELED"
    if isinstance(ev, OrderExpired):
        return "EXPIRED"
    if isinstance(ev, OrderTradePrevented):
        return "TRADE_PREVENTION"
    if isinstance(ev, OrderRejected):
        return None  # REST answers a rejected placement; Binance's stream does not report it
    if isinstance(ev, OrderTriggered):
        return None  # a triggered stop reports through its following NEW/TRADE
    return None


def _static_fields(rep: Json, s: OrderSnapshot) -> None:
    rep.update({
        "c": s.client_order_id, "S": s.side.value, "o": s.order_type.value, "f": s.time_in_force.value,
        "q": fmt(s.orig_qty), "p": fmt(s.price), "P": fmt(s.stop_price), "F": fmt(s.iceberg_qty),
        "g": s.order_list_id, "i": s.order_id, "z": fmt(s.executed_qty), "Z": fmt(s.cum_quote),
        "X": s.status.value, "O": ms(s.time), "W": ms(s.working_time), "w": s.is_working,
        "Q": fmt(s.orig_quote_order_qty), "V": s.stp_mode.value,
    })
    if s.trailing_delta:
        rep["d"] = s.trailing_delta
        rep["D"] = ms(s.trailing_time)
    if s.strategy_id is not None:
        rep["j"] = s.strategy_id
    if s.strategy_type is not None:
        rep["J"] = s.strategy_type


def _event_fields(rep: Json, ev: Event) -> None:
    if isinstance(ev, OrderAccepted):
        rep.update({"c": ev.client_order_id, "i": ev.order_id, "X": ev.status.value, "I": ev.exec_id,
                    "z": fmt(0), "Z": fmt(0), "S": ev.side.value, "o": ev.order_type.value,
                    "f": ev.time_in_force.value, "q": fmt(ev.quantity), "p": fmt(ev.price), "P": fmt(ev.stop_price),
                    "F": fmt(ev.iceberg_qty), "g": ev.order_list_id, "Q": fmt(ev.quote_order_qty),
                    "W": ms(ev.working_time), "V": ev.stp_mode.value, "O": ms(ev.ts_event),
                    "w": ev.working_time >= 0 and ev.status is OrderStatus.NEW})
    elif isinstance(ev, OrderFilled):
        rep.update({"c": ev.client_order_id, "i": ev.order_id, "X": ev.status.value, "I": ev.exec_id,
                    "l": fmt(ev.qty), "z": fmt(ev.cum_qty), "L": fmt(ev.price), "n": fmt(ev.commission),
                    "N": ev.commission_asset, "t": ev.trade_id, "m": ev.maker, "Z": fmt(ev.cum_quote),
                    "Y": fmt(ev.quote_qty), "w": ev.status is not OrderStatus.FILLED and ev.status.value != "EXPIRED"})
    elif isinstance(ev, OrderCanceled):
        rep.update({"c": ev.cancel_client_order_id, "C": ev.client_order_id, "i": ev.order_id,
                    "X": OrderStatus.CANCELED.value, "I": ev.exec_id, "z": fmt(ev.cum_qty), "Z": fmt(ev.cum_quote),
                    "w": False})
    elif isinstance(ev, OrderExpired):
        rep.update({"c": ev.client_order_id, "i": ev.order_id, "X": ev.status.value, "I": ev.exec_id,
                    "z": fmt(ev.cum_qty), "Z": fmt(ev.cum_quote), "w": False, "eR": ev.expiry_reason.value})
    elif isinstance(ev, OrderTradePrevented):
        rep.update({"c": ev.client_order_id, "i": ev.order_id, "X": ev.status.value, "I": ev.exec_id,
                    "z": fmt(ev.cum_qty), "Z": fmt(ev.cum_quote), "v": ev.prevented_match_id,
                    "A": fmt(ev.prevented_qty), "B": fmt(ev.last_prevented_qty), "U": ev.counter_order_id,
                    "pl": fmt(ev.last_prevented_qty), "pL": fmt(ev.price),
                    "pY": fmt(ev.last_prevented_qty * ev.price // 100_000_000)})
    rep["T"] = ms(ev.ts_event)
    rep["E"] = ms(ev.ts_event)
    if rep["f"] not in TimeInForce.__members__:
        rep["f"] = "GTC"


def account_position(ev: BalanceUpdated) -> Json:
    """``outboundAccountPosition``: the changed balances."""
    return {"e": "outboundAccountPosition", "E": ms(ev.ts_event), "u": ms(ev.ts_event),
            "B": [{"a": a, "f": fmt(free), "l": fmt(locked)} for a, free, locked in ev.balances]}


def balance_update(asset: str, delta: int, now_ns: int) -> Json:
    """``balanceUpdate`` (deposits/withdrawals/transfers): sent when the balance is changed from outside."""
    return {"e": "balanceUpdate", "E": ms(now_ns), "a": asset, "d": format_e8_fixed(delta, 8), "T": ms(now_ns)}


def list_status(ev: OrderListStatusChanged, symbol: str) -> Json:
    E = ms(ev.ts_event)
    return {"e": "listStatus", "E": E, "s": symbol, "g": ev.order_list_id, "c": ev.contingency.value,
            "l": ev.list_status_type.value, "L": ev.list_order_status.value, "r": ev.list_reject_reason,
            "C": ev.list_client_order_id, "T": E,
            "O": [{"s": symbol, "i": i, "c": c} for i, c in zip(ev.order_ids, ev.client_order_ids, strict=False)]}
