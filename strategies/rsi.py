"""``rsi``: Wilder RSI over trade prices per instrument; signals buy/sell decisions.

The RSI is exactly the peer benchmark's (``shared/bench/nautilus_peer.py``): prices as
floats, the first ``period`` changes averaged (``avg += x / period``), then Wilder
smoothing ``avg = (avg * (period - 1) + x) / period``; RSI = 100 when the average loss is
0, else ``100 - 100 / (1 + avg_gain / avg_loss)``. The first RSI exists after ``period``
changes, i.e. on the ``period + 1``-th trade.

Decisions, each one ``SignalEmitted`` (value = the RSI) and one MARKET order, as the peer
benchmark's strategy does: RSI < ``lower`` while flat -> BUY ``quantity``; RSI > ``upper``
while long -> SELL what is held. No new order while one is in flight (``pending``): the flag
is set on submission and cleared when the order reaches a final status (FILLED, EXPIRED,
CANCELED) or is rejected (by the venue or by risk).

The position comes from the venue's fills, not from intentions: each ``OrderFilled`` adds
(BUY) or removes (SELL) its quantity, minus the commission when it was charged in the base
asset (Binance charges a BUY's fee in the asset received; the base asset is the symbol's
prefix). What a SELL sends is the holding rounded down to ``step`` (the symbol's LOT_SIZE
step: the fee leaves a remainder off the buy's grid); the strategy is long while that is
positive. ``on_trade`` is the benchmarked hot path: state is a flat list per instrument, the
steady state is tested first, and nothing is allocated per trade.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import ClassVar

from engine.events import Event, Kind, OrderCanceled, OrderExpired, OrderFilled, OrderRejected, TradeReceived
from engine.fixed import SCALE, parse_e8
from engine.identifiers import InstrumentId
from engine.orders import OrderSide, OrderStatus
from engine.portfolio import commission_side
from engine.strategy import Strategy, StrategyConfig

# indices into the per-instrument state list
_PREV, _COUNT, _GAIN, _LOSS, _MODE = range(5)
# _MODE values: which decision is possible now
FLAT, LONG, PENDING = 0, 1, 2
_MARGIN = 1e-9
"""Margin of the rs pre-check, in RSI points. The float RSI formula is off by ~1e-13 points
at most (absolute: ``1 + rs`` rounds), so 1e-9 can never be crossed by rounding."""


def rs_bounds(lower: float, upper: float) -> tuple[float, float]:
    """(rs at or above which no buy is possible, rs at or below which no sell is possible).

    RSI = 100 - 100 / (1 + rs) is increasing in rs = gain / loss, and RSI = x exactly when
    rs = x / (100 - x). The bounds are taken at ``lower + _MARGIN`` and ``upper - _MARGIN``,
    so on the skipped side the computed RSI is at least ``_MARGIN`` points from the
    threshold; an rs inside the margin takes the exact formula.
    """
    lo = lower + _MARGIN
    no_buy = lo / (100.0 - lo) if lo < 100.0 else math.inf
    hi = upper - _MARGIN
    no_sell = hi / (100.0 - hi) if hi > 0.0 else -math.inf
    return no_buy, no_sell


class RsiConfig(StrategyConfig, frozen=True, kw_only=True):
    """RSI period, thresholds (0..100, lower < upper), the BUY size and the SELL rounding step."""

    period: int = 14
    lower: float = 30.0
    upper: float = 70.0
    quantity: Decimal = Decimal("0.01")
    step: Decimal = Decimal("0.00001")

    def __post_init__(self) -> None:
        if self.period < 1:
            raise ValueError(f"period must be >= 1, got {self.period}")
        for name, v in (("lower", self.lower), ("upper", self.upper)):
            if not math.isfinite(v) or not 0.0 <= v <= 100.0:
                raise ValueError(f"{name} must be within 0..100, got {v}")
        if not self.lower < self.upper:
            raise ValueError(f"lower ({self.lower}) must be < upper ({self.upper})")
        for name, d in (("quantity", self.quantity), ("step", self.step)):
            if not d.is_finite() or d <= 0:
                raise ValueError(f"{name} must be a positive decimal, got {d}")
            try:
                parse_e8(format(d, "f"))
            except ValueError as exc:
                raise ValueError(f"{name} {d}: {exc}") from None


class RsiStrategy(Strategy[RsiConfig]):
    """See module doc."""

    name: ClassVar[str] = "rsi"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.TRADE})

    def __init__(self, config: RsiConfig) -> None:
        super().__init__(config)
        self._n = config.period
        # float copies of the int constants: float*float takes CPython's fast path, and
        # x * 13.0 == x * 13 exactly (13 is exact in binary), so results are bit-identical.
        self._nf = float(config.period)
        self._nm1 = float(config.period - 1)
        self._lower = config.lower
        self._upper = config.upper
        self._rs_no_buy, self._rs_no_sell = rs_bounds(config.lower, config.upper)
        self.quantity_e8 = parse_e8(format(config.quantity, "f"))
        self.step_e8 = parse_e8(format(config.step, "f"))
        self._state: dict[InstrumentId, list[float]] = {}
        self.position_e8: dict[InstrumentId, int] = {}
        """Base asset held per instrument, from fills (net of base-asset commissions)."""
        self.decisions = 0
        self.fills = 0
        self.rejections = 0

    def on_trade(self, trade: TradeReceived) -> None:
        st = self._state.get(trade.instrument)
        px = trade.price / SCALE
        if st is None:  # first trade of this instrument: nothing to compare with yet
            self._state[trade.instrument] = [px, 0, 0.0, 0.0, 0]
            return
        change = px - st[_PREV]
        st[_PREV] = px
        if st[_COUNT] >= self._n:  # steady state: Wilder smoothing (peer: (avg * (n - 1) + x) / n)
            nf = self._nf
            nm1 = self._nm1
            if change > 0.0:
                gain = st[_GAIN] = (st[_GAIN] * nm1 + change) / nf
                loss = st[_LOSS] = st[_LOSS] * nm1 / nf  # the peer adds x = 0.0: a no-op
            elif change < 0.0:
                gain = st[_GAIN] = st[_GAIN] * nm1 / nf
                loss = st[_LOSS] = (st[_LOSS] * nm1 - change) / nf
            else:
                gain = st[_GAIN] = st[_GAIN] * nm1 / nf
                loss = st[_LOSS] = st[_LOSS] * nm1 / nf
        else:  # seeding: simple average of the first n changes
            n = self._n
            count = st[_COUNT] = st[_COUNT] + 1
            if change > 0.0:  # (the peer also adds 0.0 / n to the other side: a no-op)
                st[_GAIN] += change / n
            elif change < 0.0:
                st[_LOSS] += -change / n
            if count < n:
                return
            gain, loss = st[_GAIN], st[_LOSS]
        # Skip the RSI formula when rs = gain/loss is clearly on the no-decision side
        # (see rs_bounds); near a threshold the exact formula below decides.
        mode = st[_MODE]
        if mode == LONG:
            if loss != 0.0 and gain / loss <= self._rs_no_sell:
                return
        elif mode != FLAT or loss == 0.0 or gain / loss >= self._rs_no_buy:
            return  # (an order in flight, or no buy possible)
        rsi = 100.0 if loss == 0.0 else 100.0 - 100.0 / (1.0 + gain / loss)
        if mode == LONG:
            if rsi > self._upper:
                self._decide(trade.instrument, st, OrderSide.SELL, rsi)
        elif rsi < self._lower:
            self._decide(trade.instrument, st, OrderSide.BUY, rsi)

    def _decide(self, instrument: InstrumentId, st: list[float], side: OrderSide, rsi: float) -> None:
        """Signal the decision and send the MARKET order; nothing more until it is final."""
        buy = side is OrderSide.BUY
        qty = self.quantity_e8 if buy else self.sellable_e8(instrument)
        st[_MODE] = PENDING
        self.decisions += 1
        self.ctx.emit_signal("buy" if buy else "sell", rsi, instrument)
        self.ctx.submit_order(instrument, side, qty)

    def sellable_e8(self, instrument: InstrumentId) -> int:
        """The holding rounded down to ``step``: what a SELL can send."""
        held = self.position_e8.get(instrument, 0)
        return held // self.step_e8 * self.step_e8 if held > 0 else 0

    def on_order_event(self, event: Event) -> None:
        """Fills move the position; a final status or a rejection ends the pending order."""
        if type(event) is OrderFilled:
            iid = event.instrument
            held = self.position_e8.get(iid, 0)
            held += event.qty if event.side is OrderSide.BUY else -event.qty
            if event.commission and commission_side(iid, event.commission_asset) == "base":
                held -= event.commission  # charged in the base asset: we hold that much less
            self.position_e8[iid] = held
            self.fills += 1
            if event.status is OrderStatus.FILLED:
                self._settle(iid)
        elif isinstance(event, OrderExpired | OrderCanceled | OrderRejected):
            if isinstance(event, OrderRejected):
                self.rejections += 1
            self._settle(event.instrument)

    def _settle(self, instrument: InstrumentId) -> None:
        st = self._state.get(instrument)
        if st is not None:
            st[_MODE] = LONG if self.sellable_e8(instrument) > 0 else FLAT

    def rsi_of(self, instrument: InstrumentId) -> float | None:
        """The instrument's current RSI, or None before ``period`` changes were seen."""
        st = self._state.get(instrument)
        if st is None or st[_COUNT] < self._n:
            return None
        gain, loss = st[_GAIN], st[_LOSS]
        return 100.0 if loss == 0.0 else 100.0 - 100.0 / (1.0 + gain / loss)
