"""The risk engine's configuration: one frozen Struct, every limit off (None) by default.

Units, so that nothing is ever a float where money is concerned:

- money (notional, exposure, equity, loss) in **e8 units of the quote asset** (``1000 USDT``
  is ``100_000_000_000``); every instrument a risk engine watches is assumed to be quoted in
  the same asset (e.g. all ``*USDT``), so exposures can be added up;
- quantities in **e8 units of the base asset**;
- ratios in **basis points** (1 bp = 0.01 %);
- time in **int ns of event time** (the replay or live clock, never the wall clock).

:func:`load_risk_config` builds one from TOML / ``--param`` values, where money and quantity
fields are written in human units ("1000", 0.5) and converted exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec

from engine.errors import ConfigError
from engine.fixed import parse_e8

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
BPS = 10_000
"""Basis points in one."""


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits of the risk engine. ``None`` turns a limit off; the defaults check nothing.

    Attributes (see the module doc for units):

    starting_equity
        Quote-asset cash at the start (e8). Equity = cash + positions at their marks;
        the drawdown breaker needs it positive.
    max_order_notional
        Largest value of one order (each leg of an order list), quantity x its price (its
        limit price, else stop price, else the last trade/mark).
    max_position_qty / position_qty_limits
        Largest absolute worst-case position per instrument (e8 base units): the position
        plus every open order on one side filling. ``position_qty_limits`` overrides
        ``max_position_qty`` per instrument id (``"BTCUSDT.SPOT"``).
    max_symbol_exposure / max_gross_exposure
        Largest worst-case position value at the mark, per instrument and summed over all
        instruments (e8 quote).
    price_band_bps
        LIMIT / LIMIT_MAKER prices may lie at most this far from the last trade/mark.
    max_orders / rate_window_ns
        At most ``max_orders`` approved orders (list legs count one each) in any window of
        ``rate_window_ns`` of event time.
    daily_loss_limit
        When equity falls this far (e8) below its value at the start of the UTC day, the
        breaker trips until the next UTC midnight.
    max_drawdown_bps
        When equity falls this far below its running peak, the breaker trips until
        :meth:`engine.risk.RiskEngine.reset`.
    flatten_on_kill / flatten_on_daily_loss
        Whether the kill switch also sends market orders closing every position (after
        cancelling every open order, which it always does), for each breaker.
    mark_from_quotes
        Also take the bookTicker mid as the mark (off: trades and mark prices only, which
        keeps quote-only chunks on the kernel's fast path).
    require_reference_price
        Deny orders that a configured limit cannot value because no trade/mark has been
        seen yet (fail closed). Off: such a limit is skipped for that order.
    """

    starting_equity: int = 0
    max_order_notional: int | None = None
    max_position_qty: int | None = None
    position_qty_limits: dict[str, int] = {}
    max_symbol_exposure: int | None = None
    max_gross_exposure: int | None = None
    price_band_bps: int | None = None
    max_orders: int | None = None
    rate_window_ns: int = NS_PER_SECOND
    daily_loss_limit: int | None = None
    max_drawdown_bps: int | None = None
    flatten_on_kill: bool = False
    flatten_on_daily_loss: bool = False
    mark_from_quotes: bool = False
    require_reference_price: bool = True

    def __post_init__(self) -> None:
        for name in _NON_NEGATIVE:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 (or None to turn it off), got {value}")
        for sym, qty in self.position_qty_limits.items():
            if qty < 0:
                raise ValueError(f"position_qty_limits[{sym!r}] must be >= 0, got {qty}")
        if self.rate_window_ns <= 0:
            raise ValueError(f"rate_window_ns must be > 0, got {self.rate_window_ns}")
        if self.max_drawdown_bps is not None and not 0 < self.max_drawdown_bps <= BPS:
            raise ValueError(f"max_drawdown_bps must be within 1..{BPS}, got {self.max_drawdown_bps}")

    def position_limit(self, instrument: str) -> int | None:
        """The worst-case position limit of one instrument (its override, else the default)."""
        return self.position_qty_limits.get(instrument, self.max_position_qty)


_NON_NEGATIVE = (
    "starting_equity",
    "max_order_notional",
    "max_position_qty",
    "max_symbol_exposure",
    "max_gross_exposure",
    "price_band_bps",
    "max_orders",
    "daily_loss_limit",
)

E8_FIELDS = frozenset(
    {
        "starting_equity",
        "max_order_notional",
        "max_position_qty",
        "max_symbol_exposure",
        "max_gross_exposure",
        "daily_loss_limit",
    }
)
"""Fields written in human units in :func:`load_risk_config` ("1000" -> 1000 x 1e8)."""


def _human_to_e8(name: str, value: Any) -> Any:
    """Convert one human-unit amount exactly; None / "none" / "" mean "off"."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        return None
    if isinstance(value, bool):
        raise ConfigError(f"risk parameter {name!r}: expected an amount, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"risk parameter {name!r}: expected a finite amount, got {value!r}")
    text = format(Decimal(str(value)), "f") if isinstance(value, int | float | Decimal) else str(value).strip()
    try:
        return parse_e8(text, signed=True)
    except ValueError as exc:
        raise ConfigError(f"risk parameter {name!r}: {exc}") from None


def load_risk_config(params: Mapping[str, Any]) -> RiskConfig:
    """A validated :class:`RiskConfig` from loose values (TOML table, ``--param`` strings).

    Money and quantity fields (:data:`E8_FIELDS`, and each ``position_qty_limits`` value)
    are in human units and converted exactly to e8; the rest take their Struct types
    (strings are converted). Raises ConfigError naming the bad parameter.
    """
    fields = {f.name for f in msgspec.structs.fields(RiskConfig)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ConfigError(f"unknown risk parameter(s) {unknown}; valid: {', '.join(sorted(fields))}")
    values: dict[str, Any] = {}
    for key, value in params.items():
        if key in E8_FIELDS:
            values[key] = _human_to_e8(key, value)
        elif key == "position_qty_limits":
            if not isinstance(value, Mapping):
                raise ConfigError(f"risk parameter 'position_qty_limits' must be a table, got {value!r}")
            values[key] = {str(k): _human_to_e8(f"position_qty_limits[{k}]", v) for k, v in value.items()}
        elif isinstance(value, str) and value.strip().lower() in ("none", "off"):
            values[key] = None
        else:
            values[key] = value
    try:
        return msgspec.convert(values, RiskConfig, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"invalid risk config: {exc}") from exc
