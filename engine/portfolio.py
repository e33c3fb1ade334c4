"""A spot portfolio in exact e8 integers: balances, FIFO positions, PnL, fees and round trips.

Fed by ``OrderFilled`` events (what the venue says happened) and market prices (marks). Every
amount is an e8 int of some asset; nothing here is a float, so the identities below hold to the
last unit and the property tests check them exactly.

Accounting (spot, no leverage, one valuation asset: the quote, e.g. USDT):

- **Balances** move exactly as the venue moves them: a BUY of ``q`` for ``Y`` quote
  (``OrderFilled.quote_qty``, Binance's ``Y``) adds ``q`` base and removes ``Y`` quote, a SELL
  the opposite, and the commission is taken from its asset.
- **Positions** are FIFO lots per instrument. A fill's position change ``dq`` is ``+q`` (BUY) or
  ``-q`` (SELL), minus the commission when it is charged in the base asset (you received less,
  or gave more, base). So a position is exactly the base the run's trades left you with, and
  selling it flat closes it to zero. A fill against the position closes lots first (oldest
  first), and any remainder opens a new lot on the other side (a SELL beyond the position opens
  a short lot; on spot that only happens when selling base held before the run).
- Each fill has a quote **flow** (``-Y`` for a BUY, ``+Y`` for a SELL) and a **fee value** in
  quote: the commission itself when paid in quote; ``commission x fill price`` (truncated) when
  paid in the base asset, and then that same value is added back to the flow, so that
  ``flow - fee value`` is still the quote that actually moved; for any other asset (BNB)
  ``commission x that asset's last mark`` (truncated), or 0 and counted in ``unvalued_fees`` when
  the asset has no price yet. Flow, fee value and traded notional are split across the lots a
  fill touches in proportion to quantity, with integer parts that always sum to the whole
  (:class:`_Split`), so nothing is lost to rounding.
- A **round trip** is one (entry order, exit order) pair of FIFO-matched quantity: consecutive
  matches between the same two orders (partial fills) are merged into one record.
  ``gross_pnl`` = entry flow + exit flow of the matched quantity; ``fees`` = the fee values of
  both legs' matched parts; ``net_pnl = gross_pnl - fees``. With fees in the quote or base asset,
  a round trip's ``net_pnl`` equals exactly the change in quote cash that its two legs caused.
- **Marks**: the last trade (or aggregate trade) price; a bookTicker mid only until the
  instrument's first trade is seen (the same "last price" the kernel and the venue use); a fill
  marks its instrument at the fill price only if it has no mark yet.
- **Unrealised PnL** of an instrument = market value of its position + the flows of its open lots
  (the entry fees of open lots are kept apart as ``open_fees``). Market value of a signed
  quantity at price ``p`` is ``sign x (|qty| x p // 1e8)``.
- **Equity** (in quote) = quote balance + every other asset's balance valued at its mark (an
  asset is priced by the instrument ``<asset><quote>``); assets without a price are left out and
  listed by :meth:`Portfolio.unpriced_assets`.

Identity (exact; initial balances only in quote, fees in quote or base, one instrument per base):
``equity == initial + realised_pnl + unrealised_pnl - open_fees``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from engine.errors import InputError
from engine.events import (
    AggTradeReceived,
    Event,
    MarkPriceReceived,
    OrderFilled,
    QuoteReceived,
    TradeReceived,
)
from engine.fixed import SCALE, format_e8
from engine.identifiers import Market
from engine.orders import OrderSide

KNOWN_QUOTES: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT", "FDUSD", "USDC", "BUSD", "TUSD", "USDP", "DAI", "PAX", "UST", "USDS", "AEUR", "EURI",
            "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL", "VAI",
            "EUR", "GBP", "TRY", "BRL", "AUD", "RUB", "UAH", "NGN", "ZAR", "IDRT", "BIDR", "BVND", "JPY",
            "ARS", "PLN", "RON", "MXN", "COP", "CZK",
        ),
        key=lambda q: (-len(q), q),
    )
)  # fmt: skip
"""Quote assets recognised when a symbol has to be split without exchangeInfo (longest first)."""


@dataclass(frozen=True, slots=True)
class AssetPair:
    """The base and quote asset of a spot instrument."""

    base: str
    quote: str


def spot_pair(instrument: str) -> AssetPair:
    """Split ``BTCUSDT.SPOT`` into BTC/USDT by the longest known quote suffix.

    Why a heuristic: a log (and a run) can exist without exchangeInfo; callers that have it
    pass explicit pairs to :class:`Portfolio` instead.
    """
    symbol, dot, market = instrument.rpartition(".")
    if not dot or not symbol:
        raise InputError(f"invalid instrument id {instrument!r} (expected SYMBOL.MARKET)")
    if market != Market.SPOT.value:
        raise InputError(f"{instrument}: the portfolio models spot only (market {market})")
    for quote in KNOWN_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return AssetPair(symbol[: -len(quote)], quote)
    raise InputError(f"{instrument}: cannot tell base from quote asset; pass the pair explicitly")


def commission_side(instrument: str, asset: str) -> str:
    """Which leg of ``instrument`` a commission in ``asset`` is charged to: "base", "quote" or "other".

    One rule for every strategy that keeps its own position: a commission in the base asset
    means we hold that much less of it, one in the quote asset costs cash, anything else (BNB)
    touches neither. The pair comes from :func:`spot_pair` when the quote is a known one (so
    ``BTCDOMUSDT`` paying in ``BTC`` is not mistaken for base); otherwise the symbol's prefix
    or suffix decides, because a strategy must not crash on an exotic listing.
    """
    if not asset:
        return "other"
    symbol = instrument.rpartition(".")[0] or instrument
    try:
        pair = spot_pair(instrument)
    except InputError:
        pair = None
    if pair is not None:
        return "base" if asset == pair.base else "quote" if asset == pair.quote else "other"
    if symbol.startswith(asset):
        return "base"
    return "quote" if symbol.endswith(asset) else "other"


def market_value(qty: int, price: int) -> int:
    """Value in quote of a signed base quantity at ``price``: ``sign x (|qty| x price // 1e8)``.

    Symmetric truncation (toward zero), so a long and a short of the same size are worth
    exactly opposite amounts.
    """
    v = abs(qty) * price // SCALE
    return v if qty >= 0 else -v


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One FIFO-matched entry/exit pair (see the module doc); money in quote e8, time in ns.

    ``side`` is +1 for a long (bought, then sold), -1 for a short. ``entry_value`` and
    ``exit_value`` are the quote amounts of the matched quantity (costs and proceeds, base
    commissions folded in); ``notional`` is the traded value (``Y``) of both legs' parts, for
    turnover. Attribute names match ``replay.metrics.TradeLike``.
    """

    instrument: str
    side: int
    qty: int
    entry_ts: int
    exit_ts: int
    entry_value: int
    exit_value: int
    gross_pnl: int
    fees: int
    notional: int
    entry_order_id: int
    exit_order_id: int

    @property
    def net_pnl(self) -> int:
        """Gross PnL minus the fees of both legs."""
        return self.gross_pnl - self.fees

    @property
    def entry_price(self) -> int:
        """Average entry price (e8, rounded half up)."""
        return _avg_price(self.entry_value, self.qty)

    @property
    def exit_price(self) -> int:
        """Average exit price (e8, rounded half up)."""
        return _avg_price(self.exit_value, self.qty)


def _avg_price(value: int, qty: int) -> int:
    return (abs(value) * SCALE + qty // 2) // qty if qty else 0


@dataclass(frozen=True, slots=True)
class Position:
    """An instrument's open position at the current mark (see the module doc)."""

    instrument: str
    qty: int
    avg_price: int
    open_flow: int
    open_fees: int
    mark: int | None
    market_value: int
    unrealised_pnl: int


@dataclass(frozen=True, slots=True)
class BalanceMismatch:
    """The venue reported ``reported`` (free + locked) where the portfolio has ``expected``."""

    asset: str
    expected: int
    reported: int


class _Split:
    """Hands out integer parts of ``amount`` in proportion to quantities; the parts sum to it exactly."""

    __slots__ = ("amount", "qty")

    def __init__(self, amount: int, qty: int) -> None:
        self.amount = amount
        self.qty = qty

    def take(self, q: int) -> int:
        part = self.amount if q >= self.qty else self.amount * q // self.qty
        self.amount -= part
        self.qty -= q
        return part


class _Lot:
    """Open quantity from one entry order: ``qty`` > 0 (the side is the book's), its flow, fee, notional."""

    __slots__ = ("fee", "flow", "notional", "order_id", "qty", "ts")

    def __init__(self, qty: int, flow: int, fee: int, notional: int, ts: int, order_id: int) -> None:
        self.qty = qty
        self.flow = flow
        self.fee = fee
        self.notional = notional
        self.ts = ts
        self.order_id = order_id

    def take(self, q: int) -> tuple[int, int, int]:
        """Remove ``q`` of the lot; returns that part's (flow, fee, notional)."""
        if q >= self.qty:
            out = (self.flow, self.fee, self.notional)
            self.qty = self.flow = self.fee = self.notional = 0
            return out
        flow = self.flow * q // self.qty
        fee = self.fee * q // self.qty
        notional = self.notional * q // self.qty
        self.qty -= q
        self.flow -= flow
        self.fee -= fee
        self.notional -= notional
        return flow, fee, notional


class _Book:
    """One instrument's FIFO lots and their running sums (``qty`` signed)."""

    __slots__ = ("fee", "flow", "last_trip", "lots", "qty", "side")

    def __init__(self) -> None:
        self.lots: deque[_Lot] = deque()
        self.side = 0
        self.qty = 0
        self.flow = 0
        self.fee = 0
        self.last_trip = -1  # index in Portfolio._trips of this instrument's latest round trip


class Portfolio:
    """Exact spot portfolio valued in ``quote_asset`` (see the module doc)."""

    def __init__(
        self,
        quote_asset: str = "USDT",
        initial: Mapping[str, int] | None = None,
        pairs: Mapping[str, AssetPair] | None = None,
    ) -> None:
        self.quote_asset = quote_asset
        self.initial: dict[str, int] = {a: int(v) for a, v in (initial or {}).items() if v}
        self._balances: dict[str, int] = dict(self.initial)
        self._pairs: dict[str, AssetPair] = dict(pairs or {})
        self._marks: dict[str, int] = {}
        self._traded_seen: set[str] = set()
        self._asset_price: dict[str, int] = {}
        self._books: dict[str, _Book] = {}
        self._trips: list[RoundTrip] = []
        self._fees_paid: dict[str, int] = {}
        self._unvalued: dict[str, int] = {}
        self._fees_value = 0
        self._notional = 0
        self._realised_gross = 0
        self._realised_fees = 0
        self._fills = 0

    # ----------------------------------------------------------------- inputs

    def pair(self, instrument: str) -> AssetPair:
        """The instrument's assets: given at construction, else :func:`spot_pair`."""
        p = self._pairs.get(instrument)
        if p is None:
            p = self._pairs[instrument] = spot_pair(instrument)
        return p

    def apply(self, event: Event) -> None:
        """Feed any event: fills move the portfolio, trades/quotes/mark prices mark it, others are ignored."""
        if isinstance(event, OrderFilled):
            self.apply_fill(event)
        elif isinstance(event, TradeReceived | AggTradeReceived):
            self.mark(event.instrument, event.price, trade=True)
        elif isinstance(event, QuoteReceived):
            if event.bid_price > 0 and event.ask_price > 0:
                self.mark(event.instrument, (event.bid_price + event.ask_price) // 2, trade=False)
        elif isinstance(event, MarkPriceReceived) and event.mark_price > 0:
            self.mark(event.instrument, event.mark_price, trade=True)

    def mark(self, instrument: str, price: int, *, trade: bool = True) -> None:
        """Set the instrument's mark. A non-trade mark (a quote mid) is ignored once a trade was seen."""
        if price <= 0:
            raise InputError(f"{instrument}: mark price must be positive, got {price}")
        if trade:
            self._traded_seen.add(instrument)
        elif instrument in self._traded_seen:
            return
        self._marks[instrument] = price
        try:
            p = self.pair(instrument)
        except InputError:
            return  # an instrument we cannot split prices no asset
        if p.quote == self.quote_asset:
            self._asset_price[p.base] = price

    def apply_fill(self, fill: OrderFilled) -> None:
        """Apply one trade of one of our orders (see the module doc for every rule)."""
        inst = fill.instrument
        p = self.pair(inst)
        if p.quote != self.quote_asset:
            raise InputError(
                f"fill of {inst} (seq {fill.seq}) quotes in {p.quote}; this portfolio values in {self.quote_asset}"
            )
        q = fill.qty
        if q <= 0 or fill.price <= 0:
            raise InputError(
                f"fill of {inst} (seq {fill.seq}) has price {fill.price} and qty {q}; both must be > 0"
            )
        notional = fill.quote_qty if fill.quote_qty else fill.price * q // SCALE
        buy = fill.side is OrderSide.BUY
        self._add(p.base, q if buy else -q)
        self._add(p.quote, -notional if buy else notional)
        c, asset = fill.commission, fill.commission_asset
        dq = q if buy else -q
        flow = -notional if buy else notional
        fee = 0
        if c:
            self._add(asset, -c)
            self._fees_paid[asset] = self._fees_paid.get(asset, 0) + c
            if asset == p.quote:
                fee = c
            elif asset == p.base:
                fee = market_value(c, fill.price)
                dq -= c
                flow += fee
            else:
                price = self.price_of(asset)
                if price is None:
                    self._unvalued[asset] = self._unvalued.get(asset, 0) + c
                else:
                    fee = market_value(c, price)
        if dq == 0:
            raise InputError(f"fill of {inst} (seq {fill.seq}): the commission consumes the whole quantity")
        if inst not in self._marks:
            self.mark(inst, fill.price, trade=False)
        self._fees_value += fee
        self._notional += notional
        self._fills += 1
        self._trade(inst, dq, flow, fee, notional, fill.ts_event, fill.order_id)

    def _add(self, asset: str, amount: int) -> None:
        self._balances[asset] = self._balances.get(asset, 0) + amount

    def _trade(self, inst: str, dq: int, flow: int, fee: int, notional: int, ts: int, order_id: int) -> None:
        book = self._books.get(inst)
        if book is None:
            book = self._books[inst] = _Book()
        sign = 1 if dq > 0 else -1
        remaining = abs(dq)
        parts = (_Split(flow, remaining), _Split(fee, remaining), _Split(notional, remaining))
        while remaining and book.lots and book.side != sign:
            lot = book.lots[0]
            take = min(remaining, lot.qty)
            e_flow, e_fee, e_not = lot.take(take)
            x_flow, x_fee, x_not = (s.take(take) for s in parts)
            book.qty += sign * take
            book.flow -= e_flow
            book.fee -= e_fee
            self._close(book, inst, take, lot, e_flow, e_fee + x_fee, e_not + x_not, x_flow, ts, order_id)
            if lot.qty == 0:
                book.lots.popleft()
            remaining -= take
        if not book.lots:
            book.side = 0
        if remaining:
            o_flow, o_fee, o_not = (s.take(remaining) for s in parts)
            tail = book.lots[-1] if book.lots else None
            if tail is not None and tail.order_id == order_id:
                tail.qty += remaining
                tail.flow += o_flow
                tail.fee += o_fee
                tail.notional += o_not
            else:
                book.lots.append(_Lot(remaining, o_flow, o_fee, o_not, ts, order_id))
            book.side = sign
            book.qty += sign * remaining
            book.flow += o_flow
            book.fee += o_fee

    def _close(
        self,
        book: _Book,
        inst: str,
        qty: int,
        lot: _Lot,
        e_flow: int,
        fees: int,
        notional: int,
        x_flow: int,
        ts: int,
        order_id: int,
    ) -> None:
        side = book.side
        gross = e_flow + x_flow
        self._realised_gross += gross
        self._realised_fees += fees
        entry_value, exit_value = -side * e_flow, side * x_flow
        i = book.last_trip
        prev = self._trips[i] if i >= 0 else None
        if prev is not None and prev.entry_order_id == lot.order_id and prev.exit_order_id == order_id:
            self._trips[i] = replace(
                prev,
                qty=prev.qty + qty,
                exit_ts=ts,
                entry_value=prev.entry_value + entry_value,
                exit_value=prev.exit_value + exit_value,
                gross_pnl=prev.gross_pnl + gross,
                fees=prev.fees + fees,
                notional=prev.notional + notional,
            )
            return
        trip = RoundTrip(
            inst,
            side,
            qty,
            lot.ts,
            ts,
            entry_value,
            exit_value,
            gross,
            fees,
            notional,
            lot.order_id,
            order_id,
        )
        book.last_trip = len(self._trips)
        self._trips.append(trip)

    # ----------------------------------------------------------------- reads

    @property
    def balances(self) -> dict[str, int]:
        """Every asset's balance (free + locked, as the venue would report it), zeros dropped."""
        return {a: v for a, v in sorted(self._balances.items()) if v}

    def balance(self, asset: str) -> int:
        return self._balances.get(asset, 0)

    def price_of(self, asset: str) -> int | None:
        """Price of one unit of ``asset`` in quote (e8): 1 for the quote itself, else its last mark."""
        if asset == self.quote_asset:
            return SCALE
        return self._asset_price.get(asset)

    def mark_of(self, instrument: str) -> int | None:
        return self._marks.get(instrument)

    @property
    def round_trips(self) -> tuple[RoundTrip, ...]:
        """Closed (and partly closed) round trips, in the order they were opened by their exit."""
        return tuple(self._trips)

    @property
    def fills(self) -> int:
        return self._fills

    @property
    def fees_paid(self) -> dict[str, int]:
        """Commissions paid per asset (negative for net rebates)."""
        return dict(sorted(self._fees_paid.items()))

    @property
    def unvalued_fees(self) -> dict[str, int]:
        """Commissions in an asset that had no price when charged (their fee value counted 0)."""
        return dict(sorted(self._unvalued.items()))

    @property
    def fees_value(self) -> int:
        """Every commission valued in quote when it was charged (see the module doc)."""
        return self._fees_value

    @property
    def traded_notional(self) -> int:
        """Sum of ``Y`` over every fill, in quote."""
        return self._notional

    @property
    def realised_gross_pnl(self) -> int:
        return self._realised_gross

    @property
    def realised_fees(self) -> int:
        return self._realised_fees

    @property
    def realised_pnl(self) -> int:
        """Net PnL of the closed round trips."""
        return self._realised_gross - self._realised_fees

    def instruments(self) -> list[str]:
        """Instruments the portfolio has traded, sorted."""
        return sorted(self._books)

    def position(self, instrument: str) -> Position:
        """The open position (qty 0 when flat or never traded) at the current mark."""
        book = self._books.get(instrument)
        mark = self._marks.get(instrument)
        if book is None or book.qty == 0:
            return Position(instrument, 0, 0, 0, 0, mark, 0, 0)
        value = market_value(book.qty, mark) if mark is not None else 0
        unrealised = value + book.flow if mark is not None else 0
        avg = _avg_price(book.flow, abs(book.qty))
        return Position(instrument, book.qty, avg, book.flow, book.fee, mark, value, unrealised)

    def positions(self) -> dict[str, Position]:
        """Every non-flat position, by instrument."""
        return {i: self.position(i) for i in self.instruments() if self._books[i].qty}

    def unrealised_pnl(self) -> int:
        return sum(p.unrealised_pnl for p in self.positions().values())

    def open_fees(self) -> int:
        """Entry fee values still attached to open lots."""
        return sum(b.fee for b in self._books.values())

    def gross_exposure(self) -> int:
        """Sum of |market value| of the open positions."""
        return sum(abs(p.market_value) for p in self.positions().values())

    def net_exposure(self) -> int:
        return sum(p.market_value for p in self.positions().values())

    def unpriced_assets(self) -> tuple[str, ...]:
        """Assets with a non-zero balance and no price: left out of :meth:`equity`."""
        return tuple(a for a, v in sorted(self._balances.items()) if v and self.price_of(a) is None)

    def equity(self) -> int:
        """Quote balance + every priced asset's balance at its mark, in quote e8."""
        total = 0
        for asset, amount in self._balances.items():
            price = self.price_of(asset)
            if amount and price is not None:
                total += amount if asset == self.quote_asset else market_value(amount, price)
        return total

    def reconcile(self, balances: Iterable[tuple[str, int, int]]) -> tuple[BalanceMismatch, ...]:
        """Compare a venue report ``(asset, free, locked)`` (``BalanceUpdated.balances``) with ours."""
        out = []
        for asset, free, locked in balances:
            if free + locked != self.balance(asset):
                out.append(BalanceMismatch(asset, self.balance(asset), free + locked))
        return tuple(out)

    def summary(self) -> dict[str, object]:
        """Exact figures as decimal strings (for reports and JSON)."""
        return {
            "quote_asset": self.quote_asset,
            "equity": format_e8(self.equity()),
            "balances": {a: format_e8(v) for a, v in self.balances.items()},
            "realised_gross_pnl": format_e8(self.realised_gross_pnl),
            "realised_fees": format_e8(self.realised_fees),
            "realised_pnl": format_e8(self.realised_pnl),
            "unrealised_pnl": format_e8(self.unrealised_pnl()),
            "open_fees": format_e8(self.open_fees()),
            "fees_paid": {a: format_e8(v) for a, v in self.fees_paid.items()},
            "unvalued_fees": {a: format_e8(v) for a, v in self.unvalued_fees.items()},
            "fees_value": format_e8(self.fees_value),
            "traded_notional": format_e8(self.traded_notional),
            "gross_exposure": format_e8(self.gross_exposure()),
            "net_exposure": format_e8(self.net_exposure()),
            "fills": self.fills,
            "round_trips": len(self._trips),
            "unpriced_assets": list(self.unpriced_assets()),
            "positions": {
                i: {
                    "qty": format_e8(p.qty),
                    "avg_price": format_e8(p.avg_price),
                    "mark": None if p.mark is None else format_e8(p.mark),
                    "market_value": format_e8(p.market_value),
                    "unrealised_pnl": format_e8(p.unrealised_pnl),
                    "open_fees": format_e8(p.open_fees),
                }
                for i, p in self.positions().items()
            },
        }
