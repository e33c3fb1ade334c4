"""``maker``: a two-sided LIMIT_MAKER quoter around the mid, skewed by inventory.

On every bookTicker of an instrument the strategy knows the mid ``m`` and its inventory
``q`` (base asset from its own fills, net of base-asset commissions). Quotes:

- reservation price ``r = m x (1 - skew_bps/10^4 x q / max_inventory)``: holding more
  lowers both quotes (sell sooner, buy later), holding less raises them;
- bid ``r x (1 - half_spread_bps/10^4)`` rounded down to ``tick``, ask
  ``r x (1 + half_spread_bps/10^4)`` rounded up; each kept off the other side of the
  touch (bid below the best ask, ask above the best bid) so a LIMIT_MAKER is not refused
  for crossing;
- a side is quoted only while its fill keeps the inventory within
  ``[min_inventory, max_inventory]`` (spot cannot sell what it does not hold, so
  ``min_inventory`` is 0 by default); the ask is sized to what is held.

Requoting: when the mid has moved more than ``requote_bps`` from the mid a side was
placed at (or the side must stop), that side's order is cancelled; the new one is sent
only once the venue confirms the order is gone (canceled, filled or expired), so there is
never more than one live order per side. Fills come from the venue's queue model (our
order waits behind the quantity shown at its price) and pay the venue's maker fee.

Every value is an exact e8 int; the only floats are the inventory signals in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar

from engine.events import (
    Event,
    Kind,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    QuoteReceived,
)
from engine.fixed import SCALE, parse_e8
from engine.identifiers import InstrumentId
from engine.orders import CancelOrder, OrderSide, OrderStatus, OrderType, SubmitOrder
from engine.portfolio import commission_side
from engine.strategy import Strategy, StrategyConfig
from strategies.imbalance import e8_of, round_down, round_up

BPS_E8 = 10_000 * SCALE
"""One, in basis points x 1e8 (the unit of the bps parameters below, taken exactly)."""


def bps_e8(name: str, d: Decimal, *, positive: bool = False) -> int:
    """A basis-point parameter as exact e8 (ValueError naming it when negative, or not positive)."""
    if not d.is_finite() or d < 0 or (positive and d == 0):
        raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} number of bps, got {d}")
    try:
        return parse_e8(format(d, "f"))
    except ValueError as exc:
        raise ValueError(f"{name} {d}: {exc}") from None


class MakerConfig(StrategyConfig, frozen=True, kw_only=True):
    """Half-spread, requote threshold and inventory skew (bps), size, inventory bounds, tick/step."""

    half_spread_bps: Decimal = Decimal("1")
    requote_bps: Decimal = Decimal("0.5")
    skew_bps: Decimal = Decimal("1")
    quantity: Decimal = Decimal("0.001")
    max_inventory: Decimal = Decimal("0.005")
    min_inventory: Decimal = Decimal("0")
    tick: Decimal = Decimal("0.01")
    step: Decimal = Decimal("0.00001")

    def __post_init__(self) -> None:
        bps_e8("half_spread_bps", self.half_spread_bps)
        bps_e8("requote_bps", self.requote_bps, positive=True)
        bps_e8("skew_bps", self.skew_bps)
        if self.half_spread_bps >= 10_000 or self.skew_bps >= 10_000:
            raise ValueError("half_spread_bps and skew_bps must be < 10000")
        for name in ("quantity", "max_inventory", "tick", "step"):
            e8_of(name, getattr(self, name))
        if not self.min_inventory.is_finite() or self.min_inventory < 0:
            raise ValueError(f"min_inventory must be >= 0 (spot holds no negative inventory), got {self.min_inventory}")
        if self.min_inventory + self.quantity > self.max_inventory:
            raise ValueError(
                f"min_inventory ({self.min_inventory}) + quantity ({self.quantity}) must be <= "
                f"max_inventory ({self.max_inventory}), or the bid could never be quoted"
            )


@dataclass(slots=True)
class Side:
    """One side's live order: at most one at a time."""

    coid: str = ""  # "" = no live order
    price: int = 0
    mid: int = 0  # the mid it was placed at
    canceling: bool = False


@dataclass(slots=True)
class Quotes:
    """One instrument's inventory and its two sides."""

    inventory: int = 0
    bid: Side = field(default_factory=Side)
    ask: Side = field(default_factory=Side)


class MakerStrategy(Strategy[MakerConfig]):
    """See module doc."""

    name: ClassVar[str] = "maker"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.QUOTE})

    def __init__(self, config: MakerConfig) -> None:
        super().__init__(config)
        self.half_e8 = bps_e8("half_spread_bps", config.half_spread_bps)
        self.requote_e8 = bps_e8("requote_bps", config.requote_bps, positive=True)
        self.skew_e8 = bps_e8("skew_bps", config.skew_bps)
        self.quantity_e8 = e8_of("quantity", config.quantity)
        self.max_inv = e8_of("max_inventory", config.max_inventory)
        self.min_inv = parse_e8(format(config.min_inventory, "f"))
        self.tick_e8 = e8_of("tick", config.tick)
        self.step_e8 = e8_of("step", config.step)
        self.books: dict[InstrumentId, Quotes] = {}
        self.placed = 0
        self.cancels = 0
        self.maker_fills = 0
        self.rejections = 0
        self.max_seen_inventory = 0

    def on_quote(self, quote: QuoteReceived) -> None:
        self._requote(quote, self.books.setdefault(quote.instrument, Quotes()))

    # ----------------------------------------------------------------- pricing

    def prices(self, quote: QuoteReceived, inventory: int) -> tuple[int, int]:
        """(bid, ask) to quote now: around the skewed mid, tick-rounded, never crossing the touch."""
        mid2 = quote.bid_price + quote.ask_price  # 2 x mid, exact
        skew = self.skew_e8 * inventory // self.max_inv  # bps e8, signed
        res2 = mid2 * (BPS_E8 - skew) // BPS_E8
        bid = round_down(res2 * (BPS_E8 - self.half_e8) // (2 * BPS_E8), self.tick_e8)
        ask = round_up(-(-res2 * (BPS_E8 + self.half_e8) // (2 * BPS_E8)), self.tick_e8)
        bid = min(bid, quote.ask_price - self.tick_e8)
        ask = max(ask, quote.bid_price + self.tick_e8)
        return bid, ask

    def sizes(self, inventory: int) -> tuple[int, int]:
        """(bid qty, ask qty); 0 = do not quote that side (it could break an inventory bound)."""
        qty = self.quantity_e8
        bid = qty if inventory + qty <= self.max_inv else 0
        ask = min(qty, round_down(inventory - self.min_inv, self.step_e8)) if inventory > self.min_inv else 0
        return bid, ask

    # ----------------------------------------------------------------- quoting

    def _requote(self, quote: QuoteReceived, q: Quotes) -> None:
        if quote.bid_price <= 0 or quote.ask_price <= quote.bid_price:
            return  # no usable mid (one side empty, or a crossed print)
        mid = (quote.bid_price + quote.ask_price) // 2
        bid_px, ask_px = self.prices(quote, q.inventory)
        bid_qty, ask_qty = self.sizes(q.inventory)
        self._side(quote.instrument, q.bid, OrderSide.BUY, bid_px, bid_qty, mid)
        self._side(quote.instrument, q.ask, OrderSide.SELL, ask_px, ask_qty, mid)

    def _side(self, iid: InstrumentId, s: Side, side: OrderSide, price: int, qty: int, mid: int) -> None:
        if s.coid:
            if s.canceling:
                return
            moved = abs(mid - s.mid) * BPS_E8 > self.requote_e8 * s.mid
            if moved or qty == 0:
                s.canceling = True
                self.cancels += 1
                self.ctx.send(CancelOrder(iid, orig_client_order_id=s.coid))
            return
        if qty <= 0 or price <= 0:
            return
        coid = self.ctx.next_client_order_id()
        s.coid, s.price, s.mid, s.canceling = coid, price, mid, False
        self.placed += 1
        self.ctx.send(SubmitOrder(iid, side, OrderType.LIMIT_MAKER, qty, price, client_order_id=coid))

    # ----------------------------------------------------------------- order events

    def on_order_event(self, event: Event) -> None:
        q = self.books.get(event.instrument)
        if q is None:
            return
        t = type(event)
        if t is OrderFilled:
            assert isinstance(event, OrderFilled)
            self._on_fill(q, event)
            if event.status is OrderStatus.FILLED:
                self._gone(event.instrument, q, event.client_order_id)
        elif isinstance(event, OrderRejected):  # the venue's (e.g. would cross) or risk's
            self.rejections += 1
            self._gone(event.instrument, q, event.client_order_id, requote=False)
        elif t is OrderCanceled or t is OrderExpired:
            assert isinstance(event, OrderCanceled | OrderExpired)
            self._gone(event.instrument, q, event.client_order_id)

    def _on_fill(self, q: Quotes, fill: OrderFilled) -> None:
        held = fill.qty if fill.side is OrderSide.BUY else -fill.qty
        if fill.commission and commission_side(fill.instrument, fill.commission_asset) == "base":
            held -= fill.commission  # paid in the base asset
        q.inventory += held
        self.max_seen_inventory = max(self.max_seen_inventory, q.inventory)
        if fill.maker:
            self.maker_fills += 1
        self.ctx.emit_signal("inventory", q.inventory / SCALE, fill.instrument)

    def _gone(self, iid: InstrumentId, q: Quotes, coid: str, *, requote: bool = True) -> None:
        """The side's order is final: free the side and quote it again at the last bookTicker.

        Not after a rejection: the same book would refuse the same price again at once (a
        loop at one instant with zero latency); the next bookTicker retries.
        """
        for s in (q.bid, q.ask):
            if s.coid == coid:
                s.coid, s.canceling = "", False
                last = self.ctx.last_quote(iid)
                if requote and last is not None:
                    self._requote(last, q)
                return
