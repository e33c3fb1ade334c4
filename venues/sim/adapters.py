"""The one adapter between the venue's model ports and ``venues.sim.models``: fees.

Queue rules (``ProbabilisticQueueRule``), impact (``SquareRootImpact``) and latency models plug
into the venue and the kernel as they are. Fees cannot: the venue asks a fee model for
``(asset, amount)`` given the whole trade (side, price, quantity, both assets), which lets a model
charge in any asset (the nautilus differential test charges the quote on both sides), while the
schedules of :mod:`venues.sim.models.fees` take the received asset and amount and return a
:class:`~venues.sim.models.fees.Commission`, and need to see every fill's USD volume and the BNB
holding to move through the VIP tiers. :class:`VenueFees` is that translation, and nothing else:
the rates, the rounding (up, in the venue's favour) and the tier rule stay in the models.

Sans-I/O and deterministic like the venue: BNB prices and USD conversions come from the venue's
own last trade prices, never from outside.
"""

from __future__ import annotations

from typing import Protocol

from engine.fixed import SCALE
from engine.orders import Liquidity, OrderSide
from venues.sim.models.fees import BnbPayment, Commission, FeeModel

BNB = "BNB"
USD_ASSETS = frozenset({"USD", "USDT", "USDC", "BUSD", "FDUSD", "TUSD", "USDP", "DAI"})
"""Quote assets whose notional counts 1:1 as USD volume for the VIP tiers (stablecoins at par)."""
USD_BRIDGE = ("USDT", "USDC", "FDUSD", "BUSD")
"""Quotes tried, in this order, to price a non-USD quote asset in USD (``<ASSET><BRIDGE>`` last price)."""


class PriceSource(Protocol):
    """What the adapter reads from the venue: last prices of its symbols and the BNB balance."""

    def price_of(self, base_asset: str, quote_asset: str) -> int | None: ...

    def bnb_balance(self) -> tuple[int, int]:
        """(free, total) BNB of the account, e8."""
        ...


class VenueFees:
    """A ``venues.sim.models.fees`` schedule (``TieredFees``, ``FlatFees``) as the venue's ``FeeModel``.

    - ``commission``: the received asset and amount (BUY: the base quantity; SELL: the quote
      notional, truncated as the venue credits it) go to the schedule at the maker or taker rate;
      with ``pay_in_bnb`` and a BNB price in the received asset (the venue's ``BNB<asset>`` last
      price; 1 when the received asset is BNB), the schedule may charge discounted BNB instead.
    - ``record_trade`` (the venue calls it after every fill): the fill's quote volume in USD goes
      to ``record_fill`` so the tier follows the rolling 30-day volume. A USD stablecoin quote
      counts at par; another quote is converted at the venue's last ``<QUOTE><USD stablecoin>``
      price; with no such price the fill does not count (documented in ``docs/sim-models.md``).
    - The BNB holding is reported (``update_bnb_balance``) after every fill that could have
      changed it (a BNB pair, or fees paid in BNB), so each midnight's evaluation sees the last
      balance before it; the initial holding is the schedule's ``initial_bnb_e8``.

    ``bind(venue)`` must be called once the venue exists (the venue holds the prices).
    """

    def __init__(self, model: FeeModel, *, pay_in_bnb: bool = False) -> None:
        self.model = model
        self.pay_in_bnb = pay_in_bnb
        self.last: Commission | None = None
        self._venue: PriceSource | None = None

    def bind(self, venue: PriceSource) -> None:
        """Attach the venue whose prices and BNB balance the adapter reads."""
        self._venue = venue

    def commission(
        self,
        liquidity: Liquidity,
        quote_notional_e8: int,
        *,
        side: OrderSide,
        qty_e8: int,
        price_e8: int,
        base_asset: str,
        quote_asset: str,
        ts: int,
        pay_in_bnb: bool = True,
    ) -> tuple[str, int]:
        buy = side is OrderSide.BUY
        received_asset = base_asset if buy else quote_asset
        received = qty_e8 if buy else quote_notional_e8
        bnb = self._bnb_payment(received_asset, ts) if self.pay_in_bnb and pay_in_bnb else None
        c = self.model.commission(
            ts,
            received_asset=received_asset,
            received_e8=received,
            is_maker=liquidity is Liquidity.MAKER,
            bnb=bnb,
        )
        self.last = c
        return c.asset, c.amount_e8

    def _bnb_payment(self, received_asset: str, ts: int) -> BnbPayment | None:
        venue = self._venue
        if venue is None:
            return None
        free, _ = venue.bnb_balance()
        price = SCALE if received_asset == BNB else venue.price_of(BNB, received_asset)
        if not price or free <= 0:
            return None
        return BnbPayment(price, free)

    def record_trade(self, ts: int, base_asset: str, quote_asset: str, quote_e8: int) -> None:
        usd = self.usd_volume(quote_asset, quote_e8)
        if usd is not None:
            self.model.record_fill(ts, usd)
        if self.pay_in_bnb or BNB in (base_asset, quote_asset):
            self._report_bnb(ts)

    def _report_bnb(self, ts: int) -> None:
        if self._venue is not None:
            self.model.update_bnb_balance(ts, self._venue.bnb_balance()[1])

    def usd_volume(self, quote_asset: str, quote_e8: int) -> int | None:
        """The fill's quote volume in USD e8, or None when the venue has no price to convert it."""
        if quote_asset in USD_ASSETS:
            return quote_e8
        venue = self._venue
        if venue is None:
            return None
        for usd in USD_BRIDGE:
            price = venue.price_of(quote_asset, usd)
            if price:
                return quote_e8 * price // SCALE
        return None
