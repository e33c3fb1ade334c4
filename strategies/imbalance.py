"""``imbalance``: order-book imbalance + trade-flow imbalance momentum with an OCO bracket exit.

Signal, per instrument: OBI over the top ``levels`` of the synced L2 book
(``strategies.features.OrderBookImbalance``; the bookTicker's top quantities while no book
is synced) and TFI over the trades of the last ``window_ns``
(``strategies.features.TradeFlowImbalance``). Both above their thresholds is *bullish*,
both below minus their thresholds is *bearish*. Decisions are taken on trades (the TFI
moves there); each one is a ``SignalEmitted`` and at most one decision per ``cooldown_ns``.

- Bullish while flat: BUY ``quantity`` at MARKET (the entry).
- When the entry is final (FILLED, or EXPIRED/CANCELED after partial fills), the bracket
  is sent as one ``orderList/oco``: a SELL LIMIT_MAKER take-profit ``tp_bps`` above the
  entry's average price (rounded up to ``tick``) and a SELL STOP_LOSS_LIMIT ``sl_bps``
  below it (stop rounded down to ``tick``, limit ``sl_limit_bps`` further down), both for
  what the fills left us holding (net of a base-asset commission) rounded down to ``step``
  -- the venue locks exactly that, so a bracket of the gross fill would be refused.
- A leg fill moves the position; once no order of ours is open the strategy is flat (or,
  if something is still held, sells it at MARKET).
- Bearish while long on spot: cancel the bracket, then sell what is held at MARKET. Spot
  cannot go short, so "short" means "exit"; on a market that can (an instrument not
  ending in ``.SPOT``) bearish-while-flat enters short with the mirrored bracket.
- Rejections (the venue's or risk's ``RiskDenied``): a refused entry leaves us flat; a
  refused bracket (the market already crossed a leg's price) exits at MARKET; a refused
  exit is retried on the first trade after ``cooldown_ns``.

Tick and step are parameters because strategies do not see exchangeInfo (the kernel
delivers market data and order events only); the defaults are BTCUSDT spot's rules.
Nothing reads the wall clock: time is the event's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum
from typing import ClassVar

from engine.book import L2Book
from engine.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    Kind,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    QuoteReceived,
    TradeReceived,
)
from engine.fixed import parse_e8
from engine.identifiers import InstrumentId
from engine.orders import (
    CancelOrderList,
    ListOrderStatus,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
)
from engine.portfolio import commission_side
from engine.strategy import Strategy, StrategyConfig
from strategies.features import OrderBookImbalance, TradeFlowImbalance

BPS = 10_000
_FINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED,
                    OrderStatus.EXPIRED_IN_MATCH})


def e8_of(name: str, d: Decimal) -> int:
    """A positive decimal parameter as e8 (ValueError naming ``name`` otherwise)."""
    if not d.is_finite() or d <= 0:
        raise ValueError(f"{name} must be a positive decimal, got {d}")
    try:
        return parse_e8(format(d, "f"))
    except ValueError as exc:
        raise ValueError(f"{name} {d}: {exc}") from None


def round_down(x: int, unit: int) -> int:
    return x // unit * unit


def round_up(x: int, unit: int) -> int:
    return -(-x // unit) * unit


class ImbalanceConfig(StrategyConfig, frozen=True, kw_only=True):
    """Thresholds (0..1), OBI depth, TFI window, bracket distances (bps), size, cooldown, tick/step."""

    levels: int = 5
    obi_threshold: float = 0.3
    tfi_threshold: float = 0.3
    window_ns: int = 5_000_000_000
    tp_bps: int = 20
    sl_bps: int = 20
    sl_limit_bps: int = 10
    quantity: Decimal = Decimal("0.001")
    cooldown_ns: int = 10_000_000_000
    tick: Decimal = Decimal("0.01")
    step: Decimal = Decimal("0.00001")

    def __post_init__(self) -> None:
        for name in ("levels", "window_ns", "tp_bps", "sl_bps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.sl_limit_bps < BPS or self.sl_bps >= BPS:
            raise ValueError(f"sl_bps ({self.sl_bps}) and sl_limit_bps ({self.sl_limit_bps}) must be < {BPS}")
        if self.cooldown_ns < 0:
            raise ValueError(f"cooldown_ns must be >= 0, got {self.cooldown_ns}")
        for name in ("obi_threshold", "tfi_threshold"):
            v = getattr(self, name)
            if not math.isfinite(v) or not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be within [0, 1), got {v}")
        for name in ("quantity", "tick", "step"):
            e8_of(name, getattr(self, name))


class Phase(IntEnum):
    """Where one instrument's trade cycle is."""

    FLAT = 0
    ENTERING = 1  # entry order in flight
    BRACKETED = 2  # OCO bracket sent / working
    EXITING = 3  # bracket cancel and/or market exit in flight
    HOLDING = 4  # holding without a bracket after a refused exit: retry after the cooldown


@dataclass(slots=True)
class Book:
    """One instrument's features and trade cycle."""

    obi: OrderBookImbalance
    tfi: TradeFlowImbalance
    phase: Phase = Phase.FLAT
    position: int = 0  # e8 base, from fills (net of base-asset commission); < 0 = short
    direction: int = 0  # +1 long / -1 short of the current cycle
    last_decision: int | None = None  # ns
    entry_qty: int = 0
    entry_quote: int = 0  # e16 (price x qty sum) of the entry fills
    bracket_id: str = ""
    live: dict[str, str] = field(default_factory=dict)  # open client order id -> role


class ImbalanceStrategy(Strategy[ImbalanceConfig]):
    """See module doc."""

    name: ClassVar[str] = "imbalance"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset(
        {Kind.TRADE, Kind.QUOTE, Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT}
    )

    def __init__(self, config: ImbalanceConfig) -> None:
        super().__init__(config)
        self.quantity_e8 = e8_of("quantity", config.quantity)
        self.tick_e8 = e8_of("tick", config.tick)
        self.step_e8 = e8_of("step", config.step)
        self.books: dict[InstrumentId, Book] = {}
        self.entries = 0
        self.brackets = 0
        self.exits = 0
        self.rejections = 0

    def _book(self, iid: InstrumentId) -> Book:
        b = self.books.get(iid)
        if b is None:
            cfg = self.config
            b = self.books[iid] = Book(OrderBookImbalance(cfg.levels), TradeFlowImbalance(window_ns=cfg.window_ns))
        return b

    # ----------------------------------------------------------------- features

    def on_book(self, event: BookDeltaReceived | BookSnapshotReceived, book: L2Book) -> None:
        bids, asks = book.top(self.config.levels)
        self._book(event.instrument).obi.update(bids, asks)

    def on_quote(self, quote: QuoteReceived) -> None:
        if self.ctx.book(quote.instrument) is None:  # no synced depth: the top of book is all we have
            self._book(quote.instrument).obi.update_top(quote.bid_qty, quote.ask_qty)

    def on_trade(self, trade: TradeReceived) -> None:
        b = self._book(trade.instrument)
        tfi = b.tfi.update(trade.ts_recv, trade.qty, trade.buyer_maker)
        obi = b.obi.value
        now = trade.ts_recv
        if b.last_decision is not None and now - b.last_decision < self.config.cooldown_ns:
            return
        if b.phase is Phase.HOLDING:
            self._exit(trade.instrument, b, now)
            return
        if tfi is None or obi is None:
            return
        cfg = self.config
        if obi > cfg.obi_threshold and tfi > cfg.tfi_threshold:
            self._on_signal(trade.instrument, b, +1, obi, now)
        elif obi < -cfg.obi_threshold and tfi < -cfg.tfi_threshold:
            self._on_signal(trade.instrument, b, -1, obi, now)

    # ----------------------------------------------------------------- decisions

    def _on_signal(self, iid: InstrumentId, b: Book, direction: int, obi: float, now: int) -> None:
        if b.phase is Phase.FLAT and (direction > 0 or not iid.endswith(".SPOT")):
            self._enter(iid, b, direction, obi, now)
        elif b.phase is Phase.BRACKETED and direction != b.direction:
            self.ctx.emit_signal("exit", obi, iid)
            b.last_decision = now
            b.phase = Phase.EXITING
            self.ctx.send(CancelOrderList(iid, list_client_order_id=b.bracket_id))

    def _enter(self, iid: InstrumentId, b: Book, direction: int, obi: float, now: int) -> None:
        self.ctx.emit_signal("enter_long" if direction > 0 else "enter_short", obi, iid)
        b.last_decision = now
        b.phase = Phase.ENTERING
        b.direction = direction
        b.entry_qty = b.entry_quote = 0
        coid = self.ctx.next_client_order_id()
        b.live[coid] = "entry"
        side = OrderSide.BUY if direction > 0 else OrderSide.SELL
        self.ctx.send(SubmitOrder(iid, side, OrderType.MARKET, self.quantity_e8, client_order_id=coid))
        self.entries += 1

    def bracket_prices(self, avg_price: int, direction: int) -> tuple[int, int, int]:
        """(take-profit price, stop price, stop-limit price), tick-rounded away from the entry."""
        cfg, tick = self.config, self.tick_e8
        if direction > 0:
            tp = round_up(avg_price * (BPS + cfg.tp_bps) // BPS, tick)
            stop = round_down(avg_price * (BPS - cfg.sl_bps) // BPS, tick)
            limit = round_down(stop * (BPS - cfg.sl_limit_bps) // BPS, tick)
        else:
            tp = round_down(avg_price * (BPS - cfg.tp_bps) // BPS, tick)
            stop = round_up(-(-avg_price * (BPS + cfg.sl_bps) // BPS), tick)
            limit = round_up(-(-stop * (BPS + cfg.sl_limit_bps) // BPS), tick)
        return tp, stop, max(limit, tick)

    def _place_bracket(self, iid: InstrumentId, b: Book) -> None:
        """Send the OCO exit for what the entry left us holding (nothing filled: flat again)."""
        qty = round_down(abs(b.position), self.step_e8)
        if qty <= 0 or b.entry_qty <= 0:
            b.phase = Phase.FLAT
            return
        avg = b.entry_quote // b.entry_qty
        tp, stop, limit = self.bracket_prices(avg, b.direction)
        ctx = self.ctx
        tp_id, sl_id, list_id = ctx.next_client_order_id(), ctx.next_client_order_id(), ctx.next_client_order_id()
        take = OrderLeg(OrderSide.SELL, OrderType.LIMIT_MAKER, qty, price=tp, client_order_id=tp_id)
        stop_leg = OrderLeg(OrderSide.SELL, OrderType.STOP_LOSS_LIMIT, qty, price=limit, stop_price=stop,
                            time_in_force=TimeInForce.GTC, client_order_id=sl_id)
        if b.direction > 0:
            above, below, side = take, stop_leg, OrderSide.SELL
        else:
            above = msgspec_replace(stop_leg, OrderSide.BUY)
            below = msgspec_replace(take, OrderSide.BUY)
            side = OrderSide.BUY
        b.live[tp_id], b.live[sl_id] = "tp", "sl"
        b.bracket_id = list_id
        b.phase = Phase.BRACKETED
        self.brackets += 1
        ctx.send(SubmitOrderList.oco(iid, side, qty, above, below, list_client_order_id=list_id))

    def _exit(self, iid: InstrumentId, b: Book, now: int) -> None:
        """Close what is held at MARKET (or go flat when nothing sellable is left)."""
        qty = round_down(abs(b.position), self.step_e8)
        if qty <= 0:
            b.phase = Phase.FLAT
            return
        b.last_decision = now
        b.phase = Phase.EXITING
        coid = self.ctx.next_client_order_id()
        b.live[coid] = "exit"
        side = OrderSide.SELL if b.position > 0 else OrderSide.BUY
        self.ctx.send(SubmitOrder(iid, side, OrderType.MARKET, qty, client_order_id=coid))
        self.exits += 1

    # ----------------------------------------------------------------- order events

    def on_order_event(self, event: Event) -> None:
        b = self.books.get(event.instrument)
        if b is None:
            return
        t = type(event)
        if t is OrderFilled:
            assert isinstance(event, OrderFilled)
            self._on_fill(b, event)
            if event.status is OrderStatus.FILLED:
                self._final(event.instrument, b, event.client_order_id)
        elif isinstance(event, OrderRejected):  # the venue's or risk's (RiskDenied)
            self.rejections += 1
            if event.list_client_order_id and event.list_client_order_id == b.bracket_id:
                for cid in [c for c, r in b.live.items() if r in ("tp", "sl")]:
                    del b.live[cid]  # the whole bracket was refused: exit at MARKET instead
                self._exit(event.instrument, b, self.ctx.clock.now_ns())
            else:
                self._final(event.instrument, b, event.client_order_id, rejected=True)
        elif t is OrderCanceled or t is OrderExpired:
            assert isinstance(event, OrderCanceled | OrderExpired)
            self._final(event.instrument, b, event.client_order_id)
        elif t is OrderListStatusChanged:
            assert isinstance(event, OrderListStatusChanged)
            if event.list_order_status is not ListOrderStatus.EXECUTING and event.list_client_order_id == b.bracket_id:
                for cid in event.client_order_ids:
                    if b.live.get(cid) in ("tp", "sl"):
                        self._final(event.instrument, b, cid)

    def _on_fill(self, b: Book, fill: OrderFilled) -> None:
        held = fill.qty if fill.side is OrderSide.BUY else -fill.qty
        if fill.commission and commission_side(fill.instrument, fill.commission_asset) == "base":
            held -= fill.commission  # paid in the base asset: we hold that much less
        b.position += held
        if b.live.get(fill.client_order_id) == "entry":
            b.entry_qty += fill.qty
            b.entry_quote += fill.price * fill.qty

    def _final(self, iid: InstrumentId, b: Book, coid: str, *, rejected: bool = False) -> None:
        """One of our orders is done: move the cycle on once nothing of this step is still open."""
        role = b.live.pop(coid, None)
        if role is None:
            return
        if role == "entry":  # filled, or expired after partial fills: bracket what we got
            self._place_bracket(iid, b)
        elif role == "exit":
            if rejected:
                b.phase = Phase.HOLDING
            elif not b.live:
                b.phase = Phase.FLAT if round_down(abs(b.position), self.step_e8) == 0 else Phase.HOLDING
        elif not any(r in ("tp", "sl") for r in b.live.values()):  # the bracket is over
            self._exit(iid, b, self.ctx.clock.now_ns())


def msgspec_replace(leg: OrderLeg, side: OrderSide) -> OrderLeg:
    """``leg`` on the other side (the mirrored bracket of a short)."""
    import msgspec

    return msgspec.structs.replace(leg, side=side)
