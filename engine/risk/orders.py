"""How risk sees an order: legs, their worst-case fills, and open-order reservations.

An order list is a set of legs of which not all can fill: an OCO pair fills one leg at
most, an OTO fills both. :data:`GROUPS` encodes that as groups of legs: within a group
only the largest leg (per side) can fill, across groups everything can. A :class:`Hold`
keeps what is still open of an approved order so that "worst case" (every open order on
one side filling) is exact, neither double counting an OCO pair nor forgetting a pending
OTO leg.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import ListShape, OrderSide, OrderType, SubmitOrder, SubmitOrderList

GROUPS: dict[ListShape | None, tuple[tuple[int, ...], ...]] = {
    None: ((0,),),  # a single order
    ListShape.OCO: ((0, 1),),
    ListShape.OCO_LEGACY: ((0, 1),),
    ListShape.OTO: ((0,), (1,)),
    ListShape.OTOCO: ((0,), (1, 2)),
}
"""Leg groups per shape: at most one leg of a group fills; every group can."""

BANDED_TYPES = frozenset({OrderType.LIMIT, OrderType.LIMIT_MAKER})
"""Order types whose price the price band checks: they can execute at that price at once.
Stop-type prices only act once the market has reached the stop, i.e. near the market."""


@dataclass(frozen=True, slots=True)
class LegView:
    """One order (or list leg) as risk values it. ``qty`` is None when it cannot be known yet
    (a quote-quantity market order before any trade/mark)."""

    buy: bool
    order_type: OrderType
    qty: int | None
    price: int
    stop_price: int
    quote_qty: int
    client_order_id: str

    def value_price(self, mark: int) -> int:
        """The price the leg is valued at: its limit price, else its stop price, else the mark (0 = unknown)."""
        return self.price or self.stop_price or mark

    def notional_e16(self, mark: int) -> int | None:
        """Value x 1e8 (exact, e16), or None if unknown."""
        if self.quote_qty and not self.price:
            return self.quote_qty * SCALE
        p = self.value_price(mark)
        if self.qty is None or p <= 0:
            return None
        return self.qty * p


@dataclass(frozen=True, slots=True)
class OrderView:
    """A new order or order list: its legs, grouping and ids."""

    instrument: InstrumentId
    legs: tuple[LegView, ...]
    groups: tuple[tuple[int, ...], ...]
    client_order_id: str
    list_client_order_id: str

    @property
    def qty_known(self) -> bool:
        return all(leg.qty is not None for leg in self.legs)

    def adds(self) -> tuple[int, int]:
        """(buy, sell) quantity this order could add to the position in the worst case."""
        return reserved([leg.buy for leg in self.legs], [leg.qty or 0 for leg in self.legs], self.groups)


def reserved(buys: list[bool], remaining: list[int], groups: tuple[tuple[int, ...], ...]) -> tuple[int, int]:
    """Worst-case (buy, sell) fills of legs with ``remaining`` open quantity, grouped as in :data:`GROUPS`."""
    buy = sell = 0
    for group in groups:
        gb = gs = 0
        for i in group:
            if buys[i]:
                gb = max(gb, remaining[i])
            else:
                gs = max(gs, remaining[i])
        buy += gb
        sell += gs
    return buy, sell


def _groups_for(shape: ListShape | None, n: int) -> tuple[tuple[int, ...], ...]:
    groups = GROUPS.get(shape)
    if groups is None or sorted(i for g in groups for i in g) != list(range(n)):
        return tuple((i,) for i in range(n))  # unknown layout: assume every leg can fill
    return groups


def _qty(quantity: int, quote_qty: int, mark: int) -> int | None:
    if quantity > 0 or not quote_qty:
        return quantity
    if mark <= 0:
        return None
    return -(-quote_qty * SCALE // mark)  # rounded up: never under-estimate


def view_of(cmd: SubmitOrder | SubmitOrderList, mark: int) -> OrderView:
    """The risk view of a new order or order list, quote quantities converted at ``mark``."""
    if isinstance(cmd, SubmitOrder):
        leg = LegView(
            cmd.side is OrderSide.BUY,
            cmd.order_type,
            _qty(cmd.quantity, cmd.quote_order_qty, mark),
            cmd.price,
            cmd.stop_price,
            cmd.quote_order_qty,
            cmd.client_order_id or "",
        )
        return OrderView(cmd.instrument, (leg,), GROUPS[None], cmd.client_order_id or "", "")
    legs = tuple(
        LegView(leg.side is OrderSide.BUY, leg.order_type, leg.quantity, leg.price, leg.stop_price, 0,
                leg.client_order_id or "")
        for leg in cmd.legs
    )
    first = legs[0].client_order_id if legs else ""
    return OrderView(cmd.instrument, legs, _groups_for(cmd.shape, len(legs)), first, cmd.list_client_order_id or "")


class Hold:
    """What is still open of one approved order or order list (its reservation)."""

    __slots__ = ("buys", "client_order_ids", "groups", "instrument", "list_client_order_id", "remaining", "reserved")

    def __init__(self, view: OrderView) -> None:
        self.instrument = view.instrument
        self.buys = [leg.buy for leg in view.legs]
        self.remaining = [leg.qty or 0 for leg in view.legs]
        self.groups = view.groups
        self.client_order_ids = tuple(leg.client_order_id for leg in view.legs)
        self.list_client_order_id = view.list_client_order_id
        self.reserved = reserved(self.buys, self.remaining, self.groups)

    @property
    def done(self) -> bool:
        return not any(self.remaining)

    def recompute(self) -> tuple[int, int]:
        """New (buy, sell) reservation after ``remaining`` changed; returns the change."""
        old_buy, old_sell = self.reserved
        self.reserved = reserved(self.buys, self.remaining, self.groups)
        return self.reserved[0] - old_buy, self.reserved[1] - old_sell
