"""Trading fees: Binance's VIP tier table (rolling 30-day volume or BNB holding, re-evaluated
daily at 00:00 UTC), maker/taker by liquidity flag, rebates, BNB discount; and flat fees.

Why exact integers: commissions move balances, and the venue's conservation invariant
(balances + fees paid == initial, per asset) must hold to the last e8 unit. Rates are e8 ints
(0.1 % = 0.001 = ``100_000``), so a negative maker rate (a rebate) is just a negative int.

Rounding (documented choice, ``docs/sim-models.md``): Binance rounds commission to the asset's
commission precision (``base/quoteCommissionPrecision``, 8 in every 2021 recording). We round
the exact rational fee *up* (ceiling) to that precision: a fee is never under-charged and a
rebate (negative) is rounded toward zero, i.e. always in the venue's favour, so a simulated
account never looks better than the real one would.

Time comes only from the event timestamps passed in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Literal, Protocol

import msgspec

from engine.errors import ConfigError
from engine.fixed import SCALE as _SCALE_ANY
from engine.fixed import SCALE_DIGITS

SCALE: int = _SCALE_ANY
DAY_NS = 86_400 * 1_000_000_000
WINDOW_DAYS = 30
BPS_E8 = 10_000
"""One basis point (0.01 %) as an e8 rate."""


def rate_e8(value: str | int | Decimal, *, unit: Literal["bps", "percent", "fraction"] = "bps") -> int:
    """An exact e8 rate from bps ("4.2"), percent ("0.042") or a fraction ("0.00042").

    Raises ConfigError when the value is not a number or needs more than 8 decimals as a fraction.
    """
    factor = {"bps": Decimal("0.0001"), "percent": Decimal("0.01"), "fraction": Decimal(1)}[unit]
    try:
        frac = Decimal(str(value)) * factor
    except InvalidOperation as exc:
        raise ConfigError(f"fee rate {value!r} ({unit}) is not a number") from exc
    scaled = frac * SCALE
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise ConfigError(f"fee rate {value!r} ({unit}) is not exact in units of 1e-8")
    return int(scaled)


def _ceil_div(num: int, den: int) -> int:
    """Ceiling of num/den for den > 0 (any sign of num): toward +inf."""
    return -(-num // den)


def round_commission(num: int, den: int, precision: int = SCALE_DIGITS) -> int:
    """``num/den`` e8 units rounded up to ``precision`` decimals (see module doc for why up)."""
    if not 0 <= precision <= SCALE_DIGITS:
        raise ConfigError(f"commission precision must be 0..{SCALE_DIGITS}, got {precision}")
    unit: int = 10 ** (SCALE_DIGITS - precision)
    return _ceil_div(num, den * unit) * unit


class VipTier(msgspec.Struct, frozen=True, gc=False):
    """One row of the tier table. Volumes are 30-day spot volume in USD (e8); BNB in e8."""

    level: int
    min_volume_e8: int
    min_bnb_e8: int
    maker_rate_e8: int
    taker_rate_e8: int


def _tier(level: int, volume_musd: str, bnb: str, maker_pct: str, taker_pct: str) -> VipTier:
    return VipTier(
        level=level,
        min_volume_e8=int(Decimal(volume_musd) * 1_000_000 * SCALE),
        min_bnb_e8=int(Decimal(bnb) * SCALE),
        maker_rate_e8=rate_e8(maker_pct, unit="percent"),
        taker_rate_e8=rate_e8(taker_pct, unit="percent"),
    )


SPOT_VIP_TIERS: tuple[VipTier, ...] = (
    _tier(0, "0", "0", "0.1000", "0.1000"),
    _tier(1, "1", "25", "0.0900", "0.1000"),
    _tier(2, "5", "100", "0.0800", "0.1000"),
    _tier(3, "20", "250", "0.0420", "0.0600"),
    _tier(4, "75", "500", "0.0420", "0.0540"),
    _tier(5, "100", "1000", "0.0360", "0.0480"),
    _tier(6, "250", "1750", "0.0300", "0.0420"),
    _tier(7, "500", "3000", "0.0240", "0.0360"),
    _tier(8, "1000", "4500", "0.0180", "0.0300"),
    _tier(9, "2500", "5500", "0.0120", "0.0240"),
)
"""Spot regular tiers from the reference (§11; an unofficial table, VIP 4 at the 75M volume of
the 2024 notice). Thresholds in USD volume over 30 days, or BNB held; rates maker/taker."""


def validate_tiers(tiers: Iterable[VipTier]) -> tuple[VipTier, ...]:
    """A usable table: levels strictly ascending from a free tier, thresholds non-decreasing."""
    out = tuple(tiers)
    if not out:
        raise ConfigError("fee tier table is empty")
    if out[0].min_volume_e8 != 0 or out[0].min_bnb_e8 != 0:
        raise ConfigError(f"the first fee tier (level {out[0].level}) must need no volume and no BNB")
    for a, b in zip(out, out[1:], strict=False):
        if b.level <= a.level or b.min_volume_e8 < a.min_volume_e8 or b.min_bnb_e8 < a.min_bnb_e8:
            raise ConfigError(f"fee tiers out of order between level {a.level} and level {b.level}")
    return out


class BnbPayment(msgspec.Struct, frozen=True, gc=False):
    """Pay the commission in BNB: the price of 1 BNB in the received asset (``SCALE`` when the
    received asset is BNB itself), the free BNB balance, and BNB's commission precision."""

    price_e8: int
    available_e8: int
    precision: int = SCALE_DIGITS


class Commission(msgspec.Struct, frozen=True, gc=False):
    """One fill's commission. ``amount_e8`` is in ``asset``; ``rate_e8`` is the rate applied."""

    asset: str
    amount_e8: int
    rate_e8: int
    is_maker: bool
    tier: int
    paid_in_bnb: bool


class FeeModel(Protocol):
    """What the venue calls: rates now, a fill's commission, and the volume it traded."""

    def rates_e8(self, ts_ns: int) -> tuple[int, int]:
        """(maker, taker) rates in force at ``ts_ns``."""
        ...

    def commission(
        self,
        ts_ns: int,
        *,
        received_asset: str,
        received_e8: int,
        is_maker: bool,
        precision: int = SCALE_DIGITS,
        bnb: BnbPayment | None = None,
    ) -> Commission: ...

    def record_fill(self, ts_ns: int, volume_usd_e8: int) -> None: ...

    def update_bnb_balance(self, ts_ns: int, bnb_e8: int) -> None: ...


def received_e8(side: str, price_e8: int, qty_e8: int) -> int:
    """What a fill gives the account (commission is charged on it): BUY -> the base quantity,
    SELL -> the quote notional, truncated to e8 (the venue credits that same truncated amount)."""
    return qty_e8 if side == "BUY" else price_e8 * qty_e8 // SCALE


class _FeesBase:
    """Commission arithmetic shared by the tiered and flat schedules."""

    bnb_discount_e8: int
    tier_level: int

    def rates_e8(self, ts_ns: int) -> tuple[int, int]:
        raise NotImplementedError

    def _check_discount(self) -> None:
        if not 0 <= self.bnb_discount_e8 <= SCALE:
            raise ConfigError(f"BNB discount must be within 0..1, got {self.bnb_discount_e8 / SCALE}")

    def commission(
        self,
        ts_ns: int,
        *,
        received_asset: str,
        received_e8: int,
        is_maker: bool,
        precision: int = SCALE_DIGITS,
        bnb: BnbPayment | None = None,
    ) -> Commission:
        """Charge ``rate x received`` in the received asset, or the discounted amount in BNB when
        ``bnb`` is given, the rate is positive and the BNB balance covers it (else the full fee
        falls back to the received asset, as Binance does). Rebates are paid in the received asset."""
        if received_e8 < 0:
            raise ValueError(f"received amount must be >= 0, got {received_e8}")
        maker, taker = self.rates_e8(ts_ns)
        rate = maker if is_maker else taker
        if bnb is not None and rate > 0:
            if bnb.price_e8 <= 0:
                raise ValueError(f"BNB price must be positive, got {bnb.price_e8}")
            num = received_e8 * rate * (SCALE - self.bnb_discount_e8)
            amount = round_commission(num, SCALE * bnb.price_e8, bnb.precision)
            if amount <= bnb.available_e8:
                return Commission("BNB", amount, rate, is_maker, self.tier_level, True)
        amount = round_commission(received_e8 * rate, SCALE, precision)
        return Commission(received_asset, amount, rate, is_maker, self.tier_level, False)


class FlatFees(_FeesBase):
    """Fixed maker/taker rates given in bps (negative maker bps = rebate)."""

    def __init__(
        self,
        maker_bps: str | int | Decimal,
        taker_bps: str | int | Decimal,
        *,
        bnb_discount: str | Decimal = "0.25",
    ) -> None:
        self.maker_rate_e8 = rate_e8(maker_bps)
        self.taker_rate_e8 = rate_e8(taker_bps)
        self.bnb_discount_e8 = rate_e8(bnb_discount, unit="fraction")
        self.tier_level = 0
        self._check_discount()

    def rates_e8(self, ts_ns: int) -> tuple[int, int]:
        return self.maker_rate_e8, self.taker_rate_e8

    def record_fill(self, ts_ns: int, volume_usd_e8: int) -> None:
        """Flat fees do not depend on volume."""

    def update_bnb_balance(self, ts_ns: int, bnb_e8: int) -> None:
        """Flat fees do not depend on BNB holdings."""


class TieredFees(_FeesBase):
    """Binance VIP tiers, re-evaluated at each 00:00 UTC from the 30 complete days before it.

    The venue reports each fill's volume in USD (``record_fill``) and the BNB balance when it
    changes (``update_bnb_balance``). The first event at or after a midnight first closes the
    evaluation of that midnight, using only what happened before it, so a lazily evaluated tier
    equals the one a midnight timer would have computed. Until the first midnight the
    ``initial_tier`` applies (an account's tier is not zero just because the backtest started).
    ``qualify="or"``: a tier is reached by volume *or* BNB (the reference's table); ``"and"``
    needs both (Binance's older rule).
    """

    def __init__(
        self,
        tiers: Iterable[VipTier] = SPOT_VIP_TIERS,
        *,
        bnb_discount: str | Decimal = "0.25",
        initial_tier: int = 0,
        initial_bnb_e8: int = 0,
        qualify: Literal["or", "and"] = "or",
    ) -> None:
        self.tiers = validate_tiers(tiers)
        self._by_level: Mapping[int, VipTier] = {t.level: t for t in self.tiers}
        if initial_tier not in self._by_level:
            raise ConfigError(f"initial fee tier {initial_tier} is not in the table {sorted(self._by_level)}")
        if qualify not in ("or", "and"):
            raise ConfigError(f"qualify must be 'or' or 'and', got {qualify!r}")
        self.qualify = qualify
        self.bnb_discount_e8 = rate_e8(bnb_discount, unit="fraction")
        self._check_discount()
        self.tier_level = initial_tier
        self._bnb_e8 = initial_bnb_e8
        self._daily: dict[int, int] = {}
        self._day: int | None = None

    # ------------------------------------------------------------------ tier rule

    def tier_for(self, volume_30d_e8: int, bnb_e8: int) -> VipTier:
        """The highest tier whose thresholds the volume and/or BNB holding reach."""
        best = self.tiers[0]
        for t in self.tiers:
            by_volume = volume_30d_e8 >= t.min_volume_e8
            by_bnb = bnb_e8 >= t.min_bnb_e8
            if (by_volume or by_bnb) if self.qualify == "or" else (by_volume and by_bnb):
                best = t
        return best

    def volume_30d_e8(self, day: int) -> int:
        """Volume of the 30 complete UTC days before ``day`` (day index = ts // DAY_NS)."""
        return sum(v for d, v in self._daily.items() if day - WINDOW_DAYS <= d < day)

    # ------------------------------------------------------------------ event-time driving

    def _roll(self, ts_ns: int) -> None:
        day = ts_ns // DAY_NS
        if self._day is None:
            self._day = day
            return
        if day <= self._day:
            return  # same day, or an out-of-order timestamp: the current tier stands
        self._day = day
        self.tier_level = self.tier_for(self.volume_30d_e8(day), self._bnb_e8).level
        for d in [d for d in self._daily if d < day - WINDOW_DAYS]:
            del self._daily[d]

    def rates_e8(self, ts_ns: int) -> tuple[int, int]:
        self._roll(ts_ns)
        t = self._by_level[self.tier_level]
        return t.maker_rate_e8, t.taker_rate_e8

    def record_fill(self, ts_ns: int, volume_usd_e8: int) -> None:
        """Add one fill's USD volume to its UTC day (the caller converts non-USD quotes)."""
        if volume_usd_e8 < 0:
            raise ValueError(f"volume must be >= 0, got {volume_usd_e8}")
        self._roll(ts_ns)
        day = ts_ns // DAY_NS
        self._daily[day] = self._daily.get(day, 0) + volume_usd_e8

    def update_bnb_balance(self, ts_ns: int, bnb_e8: int) -> None:
        """The BNB holding as of ``ts_ns``; the next midnight's evaluation uses the latest one."""
        self._roll(ts_ns)
        self._bnb_e8 = bnb_e8
