"""Binance spot symbol filters, parsed once from exchangeInfo and applied to each new order.

Why a module of its own: the filters are the part of the venue most often wrong in simulators
(an order a backtest accepts but Binance rejects is a strategy bug found only in production),
so they are kept apart from matching, checked exactly (e8 integers, never floats) and tested
against every symbol of real exchangeInfo recordings by an independent Decimal oracle.

Rules applied (``../shared/reference/binance-spot-semantics.md`` §5 and Binance ``filters.md``):
every failure is ``RequestRejected(-1013, "Filter failure: NAME")``; a value with more decimals
than the symbol's asset precision is ``RequestRejected(-1111, "Parameter 'NAME' has too much
precision.")`` and is checked before any filter. Filters are evaluated in the order the
exchangeInfo lists them and the first failure is reported (Binance does not document an order).
Choices the reference leaves open are listed in ``docs/sim-models.md`` and repeated where they
are made below.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import msgspec

from engine.errors import InputError, RequestRejected
from engine.fixed import SCALE as _SCALE_ANY
from engine.fixed import SCALE_DIGITS, parse_e8
from engine.orders import SubmitOrder

ALGO_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
"""Order types counted by MAX_NUM_ALGO_ORDERS."""
MARKET_TYPES = frozenset({"MARKET", "STOP_LOSS", "TAKE_PROFIT"})
"""Types that execute as MARKET orders (at once or on trigger): the *ToMarket flags and
MARKET_LOT_SIZE apply to them. Choice: the stop-market types are treated as MARKET orders."""
_TRAILING_ABOVE = frozenset(
    {("STOP_LOSS", "BUY"), ("STOP_LOSS_LIMIT", "BUY"), ("TAKE_PROFIT", "SELL"), ("TAKE_PROFIT_LIMIT", "SELL")}
)

SCALE: int = _SCALE_ANY
"""1e8 as a typed int (engine.fixed's ``10**8`` is untyped for mypy)."""

AvgPrice = Callable[[int], int | None]
"""``avgPriceMins`` -> the weighted average price over that window (None: no trade in it)."""
RefPrice = int | Callable[[int], int | None] | None
"""The weighted average price: one e8 int for every ``avgPriceMins`` > 0, or a function of the
minutes (the venue may keep one average per window), or None when no trade exists yet."""


class OrderParams(msgspec.Struct, frozen=True, gc=False):
    """What the filters look at in a new-order request; e8 ints, None when the param is absent.

    ``trailing_delta`` is in BIPS (a plain int, as Binance sends it), not e8.
    ``iceberg_qty`` of 0 means "not an iceberg" (same as absent).
    """

    symbol: str
    side: str
    type: str
    price: int | None = None
    quantity: int | None = None
    quote_order_qty: int | None = None
    stop_price: int | None = None
    iceberg_qty: int | None = None
    trailing_delta: int | None = None

    @property
    def is_iceberg(self) -> bool:
        return bool(self.iceberg_qty)


# --------------------------------------------------------------------------- the filters
#
# Each filter states its rule for one order type as a Python expression that is true when the
# order violates it, with the symbol's numbers written in as int literals and disabled sub-rules
# (a 0 bound) left out; None when it can never fail for that type (MARKET_LOT_SIZE for a LIMIT,
# MAX_NUM_ALGO_ORDERS for a non-stop). The expressions read the order's fields by their
# OrderParams names (``price``, ``quantity``, ``side``...) and the context by the names of
# ``_ARGS``. :class:`CompiledRules` joins them into one function per (symbol, order type).
# Only ints, the filter names and the fixed text below reach the generated source.


def _band(field: str, lo: int, hi: int, step: int, from_min: bool, zero_is_absent: bool = False) -> str:
    """``field`` present and outside [lo, hi] or off the step grid; a 0 bound disables its sub-rule.

    The grid is ``(value - min) % step == 0`` (older docs, the brief) or ``value % step == 0``
    (docs since 2022); both agree whenever min is a multiple of step, as in every real file.
    ``zero_is_absent``: 0 means "not sent" (icebergQty).
    """
    rules = []
    if lo:
        rules.append(f"{field} < {lo}")
    if hi:
        rules.append(f"{field} > {hi}")
    if step:
        offset = lo % step if from_min else 0  # (v - lo) % step == 0 <=> (v - lo % step) % step == 0
        rules.append(f"({field} - {offset}) % {step} != 0" if offset else f"{field} % {step} != 0")
    if not rules:
        return ""
    present = field if zero_is_absent else f"{field} is not None"
    return f"({present} and ({' or '.join(rules)}))"


def _any(*conditions: str) -> str | None:
    """Join the non-empty conditions with ``or``; None when there is none (the filter cannot fail)."""
    parts = [x for x in conditions if x]
    return " or ".join(parts) if parts else None


def _ref(mins: int) -> str:
    """The filter's reference price: the last price when ``avgPriceMins`` is 0, else the average."""
    return "last_price" if mins == 0 else f"avg_price({mins})"


def _outside_multipliers(up: str, down: str, mins: int) -> str:
    """``ref*down <= price <= ref*up`` violated, exactly (multipliers are e8, so compare at e16).
    Choice: no trade yet -> no reference -> the band cannot be applied."""
    return (
        f"(price is not None and (_ref := {_ref(mins)}) is not None"
        f" and ((_scaled := price * {SCALE}) > _ref * {up} or _scaled < _ref * {down}))"
    )


def _notional_e16(is_market: bool, mins: int) -> str:
    """price x qty in e16 units, or None when it cannot be known (a MARKET order before any trade).
    quoteOrderQty is the notional itself; stop-market orders use their stopPrice."""
    price = f"(stop_price if stop_price is not None else {_ref(mins)})" if is_market else "price"
    return (
        f"((0 if quote_order_qty is None else quote_order_qty * {SCALE}) if quantity is None"
        f" else (None if (_px := {price}) is None else _px * quantity))"
    )


class PriceFilter(msgspec.Struct, frozen=True, gc=False):
    """``price`` and ``stopPrice``: within [minPrice, maxPrice] on the tick grid (0 disables)."""

    name: ClassVar[str] = "PRICE_FILTER"
    min_price: int
    max_price: int
    tick_size: int
    grid_from_min: bool = True

    def condition(self, order_type: str) -> str | None:
        band = (self.min_price, self.max_price, self.tick_size, self.grid_from_min)
        return _any(_band("price", *band), _band("stop_price", *band))


class PercentPrice(msgspec.Struct, frozen=True, gc=False):
    """``price`` within [avg*multiplierDown, avg*multiplierUp]; orders without a price pass."""

    name: ClassVar[str] = "PERCENT_PRICE"
    multiplier_up: int
    multiplier_down: int
    avg_price_mins: int

    def condition(self, order_type: str) -> str | None:
        return _outside_multipliers(str(self.multiplier_up), str(self.multiplier_down), self.avg_price_mins)


class PercentPriceBySide(msgspec.Struct, frozen=True, gc=False):
    """Like PERCENT_PRICE with bid multipliers for BUY and ask multipliers for SELL.

    Its failure message is ``Filter failure: PERCENT_PRICE_BY_SIDE`` (the reference leaves the
    text UNCONFIRMED; the filter's own name is the consistent choice with every other filter).
    """

    name: ClassVar[str] = "PERCENT_PRICE_BY_SIDE"
    bid_multiplier_up: int
    bid_multiplier_down: int
    ask_multiplier_up: int
    ask_multiplier_down: int
    avg_price_mins: int

    def condition(self, order_type: str) -> str | None:
        up = f"({self.bid_multiplier_up} if side == 'BUY' else {self.ask_multiplier_up})"
        down = f"({self.bid_multiplier_down} if side == 'BUY' else {self.ask_multiplier_down})"
        return _outside_multipliers(up, down, self.avg_price_mins)


class LotSize(msgspec.Struct, frozen=True, gc=False):
    """``quantity`` and ``icebergQty`` within [minQty, maxQty] on the step grid (0 disables)."""

    name: ClassVar[str] = "LOT_SIZE"
    min_qty: int
    max_qty: int
    step_size: int
    grid_from_min: bool = True

    def condition(self, order_type: str) -> str | None:
        band = (self.min_qty, self.max_qty, self.step_size, self.grid_from_min)
        return _any(_band("quantity", *band), _band("iceberg_qty", *band, zero_is_absent=True))


class MarketLotSize(LotSize, frozen=True, gc=False):
    """LOT_SIZE's rule for MARKET-executing orders' ``quantity`` (quoteOrderQty orders skip it)."""

    name: ClassVar[str] = "MARKET_LOT_SIZE"

    def condition(self, order_type: str) -> str | None:
        if order_type not in MARKET_TYPES:
            return None
        return _any(_band("quantity", self.min_qty, self.max_qty, self.step_size, self.grid_from_min))


class MinNotional(msgspec.Struct, frozen=True, gc=False):
    """``price*qty >= minNotional``; MARKET orders only if ``applyToMarket`` (at the avg price)."""

    name: ClassVar[str] = "MIN_NOTIONAL"
    min_notional: int
    apply_to_market: bool
    avg_price_mins: int

    def condition(self, order_type: str) -> str | None:
        is_market = order_type in MARKET_TYPES
        if is_market and not self.apply_to_market:
            return None
        notional = _notional_e16(is_market, self.avg_price_mins)
        return f"((_n := {notional}) is None or _n < {self.min_notional * SCALE})"


class Notional(msgspec.Struct, frozen=True, gc=False):
    """``minNotional <= price*qty <= maxNotional``; each bound applies to MARKET orders only if
    its flag is set. Choice: ``maxNotional`` of 0 disables the upper bound."""

    name: ClassVar[str] = "NOTIONAL"
    min_notional: int
    apply_min_to_market: bool
    max_notional: int
    apply_max_to_market: bool
    avg_price_mins: int

    def condition(self, order_type: str) -> str | None:
        is_market = order_type in MARKET_TYPES
        check_min = not is_market or self.apply_min_to_market
        check_max = bool(self.max_notional) and (not is_market or self.apply_max_to_market)
        if not (check_min or check_max):
            return None
        bounds = [f"_n < {self.min_notional * SCALE}"] if check_min else []
        if check_max:
            bounds.append(f"_n > {self.max_notional * SCALE}")
        notional = _notional_e16(is_market, self.avg_price_mins)
        return f"((_n := {notional}) is None or {' or '.join(bounds)})"


class IcebergParts(msgspec.Struct, frozen=True, gc=False):
    """``ceil(quantity / icebergQty) <= limit`` for iceberg orders."""

    name: ClassVar[str] = "ICEBERG_PARTS"
    limit: int

    def condition(self, order_type: str) -> str | None:
        return f"(iceberg_qty and quantity is not None and -(-quantity // iceberg_qty) > {self.limit})"


class MaxNumOrders(msgspec.Struct, frozen=True, gc=False):
    """Open orders on the symbol (normal + algo), counting the new one(s), must stay <= limit."""

    name: ClassVar[str] = "MAX_NUM_ORDERS"
    limit: int

    def condition(self, order_type: str) -> str | None:
        return f"open_orders + adding > {self.limit}"


class MaxNumAlgoOrders(msgspec.Struct, frozen=True, gc=False):
    """Open STOP_LOSS/TAKE_PROFIT(_LIMIT) orders, counting the new one, must stay <= limit."""

    name: ClassVar[str] = "MAX_NUM_ALGO_ORDERS"
    limit: int

    def condition(self, order_type: str) -> str | None:
        return f"open_algo + adding > {self.limit}" if order_type in ALGO_TYPES else None


class MaxNumIcebergOrders(msgspec.Struct, frozen=True, gc=False):
    """Open iceberg orders, counting the new one, must stay <= limit."""

    name: ClassVar[str] = "MAX_NUM_ICEBERG_ORDERS"
    limit: int

    def condition(self, order_type: str) -> str | None:
        return f"(iceberg_qty and open_iceberg + adding > {self.limit})"


class MaxPosition(msgspec.Struct, frozen=True, gc=False):
    """BUY: free+locked base + open BUY qty (``base_position_e8``) + this order's qty <= max.

    Skipped when the caller passes no position; a quoteOrderQty BUY adds nothing (its base
    quantity is unknown until it executes)."""

    name: ClassVar[str] = "MAX_POSITION"
    max_position: int

    def condition(self, order_type: str) -> str | None:
        return (
            "(side == 'BUY' and base_position is not None"
            f" and base_position + (quantity or 0) > {self.max_position})"
        )


class TrailingDelta(msgspec.Struct, frozen=True, gc=False):
    """``trailingDelta`` (BIPS) bounds: "above" bounds for STOP_LOSS* BUY and TAKE_PROFIT* SELL,
    "below" bounds for the other side."""

    name: ClassVar[str] = "TRAILING_DELTA"
    min_trailing_above_delta: int
    max_trailing_above_delta: int
    min_trailing_below_delta: int
    max_trailing_below_delta: int

    def condition(self, order_type: str) -> str | None:
        if order_type not in ALGO_TYPES:
            return None
        above_side = "BUY" if (order_type, "BUY") in _TRAILING_ABOVE else "SELL"
        above = f"{self.min_trailing_above_delta} <= trailing_delta <= {self.max_trailing_above_delta}"
        below = f"{self.min_trailing_below_delta} <= trailing_delta <= {self.max_trailing_below_delta}"
        return f"(trailing_delta is not None and not (({above}) if side == {above_side!r} else ({below})))"


SymbolFilter = (
    PriceFilter
    | PercentPrice
    | PercentPriceBySide
    | LotSize
    | MarketLotSize
    | MinNotional
    | Notional
    | IcebergParts
    | MaxNumOrders
    | MaxNumAlgoOrders
    | MaxNumIcebergOrders
    | MaxPosition
    | TrailingDelta
)


class SymbolRules(msgspec.Struct, frozen=True, gc=False):
    """One symbol's trading rules: the exchangeInfo entry, its filters parsed to e8 ints.

    ``filters`` holds the checked filters in exchangeInfo order; ``raw_filters`` keeps every
    filter verbatim (read-only mappings); ``ignored_filters`` names the filter types present
    but not checked by :func:`check_order` (unknown types, and order-list/amend limits that
    need state this function does not see).
    """

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    base_asset_precision: int
    quote_precision: int
    base_commission_precision: int
    quote_commission_precision: int
    order_types: tuple[str, ...]
    iceberg_allowed: bool
    oco_allowed: bool
    quote_order_qty_market_allowed: bool
    filters: tuple[SymbolFilter, ...]
    raw_filters: tuple[Mapping[str, Any], ...]
    ignored_filters: tuple[str, ...]

    def get(self, name: str) -> SymbolFilter | None:
        """The parsed filter of that type, or None when the symbol has none."""
        for f in self.filters:
            if f.name == name:
                return f
        return None

    @property
    def tick_size(self) -> int:
        """PRICE_FILTER tickSize in e8 (0 = no tick rule)."""
        f = self.get("PRICE_FILTER")
        return f.tick_size if isinstance(f, PriceFilter) else 0

    @property
    def step_size(self) -> int:
        """LOT_SIZE stepSize in e8 (0 = no step rule)."""
        f = self.get("LOT_SIZE")
        return f.step_size if isinstance(f, LotSize) else 0

    @property
    def avg_price_windows(self) -> tuple[int, ...]:
        """Distinct ``avgPriceMins`` the filters need: the venue keeps one average per window."""
        mins = {getattr(f, "avg_price_mins", None) for f in self.filters}
        return tuple(sorted(m for m in mins if m is not None))


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Reads typed fields of one filter dict; every error names the symbol and the filter."""

    def __init__(self, raw: Mapping[str, Any], where: str, source: str | None) -> None:
        self.raw = raw
        self.where = where
        self.source = source

    def fail(self, msg: str) -> InputError:
        return InputError(f"{self.where}: {msg}", source=self.source)

    def e8(self, *keys: str) -> int:
        """A decimal-string field in e8; ``keys`` are aliases (USD-M spells some differently)."""
        for k in keys:
            if k in self.raw:
                v = self.raw[k]
                try:
                    return parse_e8(str(v))
                except ValueError as exc:
                    raise self.fail(f"field {k!r}: {exc}") from exc
        raise self.fail(f"missing field {' or '.join(repr(k) for k in keys)}")

    def int_(self, *keys: str, default: int | None = None) -> int:
        for k in keys:
            if k in self.raw:
                v = self.raw[k]
                if isinstance(v, bool) or not isinstance(v, int | str) or not str(v).lstrip("-").isdigit():
                    raise self.fail(f"field {k!r} is not an integer: {v!r}")
                return int(v)
        if default is not None:
            return default
        raise self.fail(f"missing field {' or '.join(repr(k) for k in keys)}")

    def bool_(self, key: str, default: bool) -> bool:
        v = self.raw.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(f"field {key!r} is not a boolean: {v!r}")
        return v


def _parse_filter(r: _Reader, kind: str, from_min: bool) -> SymbolFilter | None:
    """One exchangeInfo filter dict -> its parsed struct (None for types not checked here)."""
    if kind == "PRICE_FILTER":
        return PriceFilter(r.e8("minPrice"), r.e8("maxPrice"), r.e8("tickSize"), from_min)
    if kind == "PERCENT_PRICE":
        return PercentPrice(r.e8("multiplierUp"), r.e8("multiplierDown"), r.int_("avgPriceMins", default=0))
    if kind == "PERCENT_PRICE_BY_SIDE":
        return PercentPriceBySide(
            r.e8("bidMultiplierUp"),
            r.e8("bidMultiplierDown"),
            r.e8("askMultiplierUp"),
            r.e8("askMultiplierDown"),
            r.int_("avgPriceMins", default=0),
        )
    if kind in ("LOT_SIZE", "MARKET_LOT_SIZE"):
        cls = LotSize if kind == "LOT_SIZE" else MarketLotSize
        return cls(r.e8("minQty"), r.e8("maxQty"), r.e8("stepSize"), from_min)
    if kind == "MIN_NOTIONAL":
        return MinNotional(
            r.e8("minNotional", "notional"), r.bool_("applyToMarket", True), r.int_("avgPriceMins", default=0)
        )
    if kind == "NOTIONAL":
        return Notional(
            r.e8("minNotional"),
            r.bool_("applyMinToMarket", True),
            r.e8("maxNotional") if "maxNotional" in r.raw else 0,
            r.bool_("applyMaxToMarket", False),
            r.int_("avgPriceMins", default=0),
        )
    return _parse_count_filter(r, kind)


def _parse_count_filter(r: _Reader, kind: str) -> SymbolFilter | None:
    if kind == "ICEBERG_PARTS":
        return IcebergParts(r.int_("limit"))
    if kind == "MAX_NUM_ORDERS":
        return MaxNumOrders(r.int_("maxNumOrders", "limit"))
    if kind == "MAX_NUM_ALGO_ORDERS":
        return MaxNumAlgoOrders(r.int_("maxNumAlgoOrders", "limit"))
    if kind == "MAX_NUM_ICEBERG_ORDERS":
        return MaxNumIcebergOrders(r.int_("maxNumIcebergOrders", "limit"))
    if kind == "MAX_POSITION":
        return MaxPosition(r.e8("maxPosition"))
    if kind == "TRAILING_DELTA":
        return TrailingDelta(
            r.int_("minTrailingAboveDelta"),
            r.int_("maxTrailingAboveDelta"),
            r.int_("minTrailingBelowDelta"),
            r.int_("maxTrailingBelowDelta"),
        )
    return None


def _precision(sym: Mapping[str, Any], where: str, source: str | None, *keys: str) -> int:
    for k in keys:
        v = sym.get(k)
        if isinstance(v, int) and not isinstance(v, bool):
            if not 0 <= v <= SCALE_DIGITS:
                raise InputError(f"{where}: {k}={v} outside 0..{SCALE_DIGITS}", source=source)
            return v
    return SCALE_DIGITS


def symbol_rules(
    sym: Mapping[str, Any], *, source: str | None = None, grid_from_min: bool = True
) -> SymbolRules:
    """Build one symbol's rules from its exchangeInfo dict (spot; USD-M spellings accepted).

    ``grid_from_min`` picks ``(x - min) % step`` (True, the rule as documented when the 2021
    recordings were made) or ``x % step``; they agree on every symbol of the real files.
    Raises InputError naming the symbol and filter on a malformed entry.
    """
    name = sym.get("symbol")
    if not isinstance(name, str) or not name:
        raise InputError(
            f"exchangeInfo symbol entry without a symbol name: {dict(sym)!r:.200}", source=source
        )
    raw_list = sym.get("filters", [])
    if not isinstance(raw_list, list):
        raise InputError(f"{name}: 'filters' is not a list", source=source)
    parsed: list[SymbolFilter] = []
    ignored: list[str] = []
    for i, raw in enumerate(raw_list):
        kind = raw.get("filterType") if isinstance(raw, dict) else None
        if not isinstance(kind, str):
            raise InputError(f"{name}: filter #{i} has no filterType: {raw!r:.200}", source=source)
        f = _parse_filter(_Reader(raw, f"{name} {kind}", source), kind, grid_from_min)
        if f is None:
            ignored.append(kind)
        else:
            parsed.append(f)
    where = f"{name}"
    return SymbolRules(
        symbol=name,
        status=str(sym.get("status", "TRADING")),
        base_asset=str(sym.get("baseAsset", "")),
        quote_asset=str(sym.get("quoteAsset", "")),
        base_asset_precision=_precision(sym, where, source, "baseAssetPrecision"),
        quote_precision=_precision(sym, where, source, "quoteAssetPrecision", "quotePrecision"),
        base_commission_precision=_precision(sym, where, source, "baseCommissionPrecision"),
        quote_commission_precision=_precision(sym, where, source, "quoteCommissionPrecision"),
        order_types=tuple(str(t) for t in sym.get("orderTypes", ())),
        iceberg_allowed=bool(sym.get("icebergAllowed", False)),
        oco_allowed=bool(sym.get("ocoAllowed", False)),
        quote_order_qty_market_allowed=bool(sym.get("quoteOrderQtyMarketAllowed", False)),
        filters=tuple(parsed),
        raw_filters=tuple(MappingProxyType(dict(raw)) for raw in raw_list),
        ignored_filters=tuple(ignored),
    )


def rules_from_exchange_info(
    info: Mapping[str, Any], *, source: str | None = None, grid_from_min: bool = True
) -> dict[str, SymbolRules]:
    """Every symbol of a parsed ``GET /api/v3/exchangeInfo`` body, by symbol name."""
    symbols = info.get("symbols")
    if not isinstance(symbols, list):
        raise InputError("exchangeInfo has no 'symbols' list", source=source)
    out: dict[str, SymbolRules] = {}
    for sym in symbols:
        if not isinstance(sym, dict):
            raise InputError(f"exchangeInfo symbol entry is not an object: {sym!r:.200}", source=source)
        rules = symbol_rules(sym, source=source, grid_from_min=grid_from_min)
        if rules.symbol in out:
            raise InputError(f"symbol {rules.symbol} listed twice", source=source)
        out[rules.symbol] = rules
    return out


# --------------------------------------------------------------------------- checking


def parse_param(param: str, text: str) -> int:
    """Parse one numeric request parameter (``"0.00100000"``) to e8 the way the venue's
    request layer must: more than 8 significant decimals is -1111 (no asset has more), anything
    that is not a plain non-negative decimal is -1100."""
    whole, _, frac = text.partition(".")
    if not text or not (whole + frac).isdigit() or not whole.isascii() or not frac.isascii():
        raise RequestRejected(-1100, f"Illegal characters found in parameter '{param}'.")
    if len(frac.rstrip("0")) > SCALE_DIGITS:
        raise RequestRejected(-1111, f"Parameter '{param}' has too much precision.")
    return parse_e8(text)


_PRECISION_PARAMS: tuple[tuple[str, str, bool], ...] = (
    # (OrderParams field, Binance parameter name, uses the base asset precision)
    ("price", "price", False),
    ("quantity", "quantity", True),
    ("quote_order_qty", "quoteOrderQty", False),
    ("stop_price", "stopPrice", False),
    ("iceberg_qty", "icebergQty", True),
)


def _precision_units(rules: SymbolRules) -> tuple[int, int]:
    """(base unit, quote unit) in e8: the smallest value each asset's precision allows."""
    return 10 ** (SCALE_DIGITS - rules.base_asset_precision), 10 ** (SCALE_DIGITS - rules.quote_precision)


def _check_units(order: OrderParams, base_unit: int, quote_unit: int) -> None:
    for field, param, base in _PRECISION_PARAMS:
        value = getattr(order, field)
        if value is not None and value % (base_unit if base else quote_unit):
            raise RequestRejected(-1111, f"Parameter '{param}' has too much precision.")


def check_precision(rules: SymbolRules, order: OrderParams) -> None:
    """-1111 when a value has more decimals than its asset's precision (base for quantities,
    quote for prices and quoteOrderQty); fields checked in OrderParams order."""
    base_unit, quote_unit = _precision_units(rules)
    if base_unit == quote_unit == 1:
        return  # 8 decimals: every e8 int fits (the common case, kept cheap)
    _check_units(order, base_unit, quote_unit)


FirstFailure = Callable[[OrderParams, AvgPrice, int | None, int, int, int, int, int | None], str | None]
"""One symbol's filters for one order type: ``(order, *_ARGS)`` -> the name of the first filter the
order violates, or None."""

CommandCheck = Callable[[SubmitOrder, AvgPrice, int | None, int, int, int, int, int | None], str | None]
"""A :data:`FirstFailure` reading a ``SubmitOrder`` (0 = absent) instead of an :class:`OrderParams`."""

_ARGS = "avg_price, last_price, open_orders, open_algo, open_iceberg, adding, base_position"
"""The context every generated check takes after the order (see :meth:`CompiledRules.check`)."""
_FIELDS = ("side", "price", "quantity", "quote_order_qty", "stop_price", "iceberg_qty", "trailing_delta")
"""The OrderParams fields the conditions read (bound to locals first: one attribute read each)."""

_GENERATED: dict[str, FirstFailure] = {}
"""Generated functions by source text: symbols with the same numbers share one."""
_GENERATED_MAX = 4096


def filter_source(filters: Iterable[SymbolFilter], order_type: str, zero_absent: bool = False) -> str:
    """Python source of the check for ``order_type``: each filter's condition, in listing order.

    ``zero_absent``: the order object says "absent" with 0 instead of None (``engine.orders.SubmitOrder``),
    so each number is read as ``o.<field> or None``: the venue then checks its command as it is,
    without building an :class:`OrderParams` per order.
    """
    body = []
    for f in filters:
        cond = f.condition(order_type)
        if cond is not None:
            body.append(f"    if {cond}:")
            body.append(f"        return {f.name!r}")
    used = [f for f in _FIELDS if any(re.search(rf"\b{f}\b", line) for line in body)]
    reads = [f"    {f} = o.{f} or None" if zero_absent and f != "side" else f"    {f} = o.{f}" for f in used]
    lines = [f"def first_failure(o, {_ARGS}):", *reads, *body, "    return None"]
    return "\n".join(lines) + "\n"


def _generated(source: str) -> FirstFailure:
    fn = _GENERATED.get(source)
    if fn is None:
        if len(_GENERATED) >= _GENERATED_MAX:
            _GENERATED.clear()
        namespace: dict[str, Any] = {}
        exec(compile(source, "<venues.sim.filters: generated check>", "exec"), namespace)
        fn = _GENERATED[source] = namespace["first_failure"]
    return fn


class CompiledRules:
    """One symbol's filters as one generated function per order type: every rule inline, int literals.

    Why: the venue checks every new order, and walking generic filter objects (a Python call
    per filter, attribute chains, flags that are constant for the symbol, filters that cannot
    apply to the order's type) cost more than all the rest of a placement. Each filter states
    its rule as an expression (``condition``); the function for a type is those expressions in
    listing order, generated on first use and cached (``source(type)`` shows it).
    :func:`check_order` runs the same functions, so every rule has one implementation, the one
    the real-exchangeInfo tests check against an independent Decimal oracle.
    """

    __slots__ = ("_filters", "_units", "by_type", "by_type_cmd", "symbol")

    def __init__(self, rules: SymbolRules) -> None:
        self.symbol = rules.symbol
        self._filters = rules.filters
        units = _precision_units(rules)
        self._units: tuple[int, int] | None = None if units == (1, 1) else units
        self.by_type: dict[str, FirstFailure] = {}
        """The functions generated so far, by order type (``by_type.get(t) or for_type(t)``: no call once made)."""
        self.by_type_cmd: dict[str, CommandCheck] = {}
        """The same checks reading a command whose absent numbers are 0 (see :meth:`for_command`)."""

    def source(self, order_type: str) -> str:
        """The generated check for this order type, as Python source."""
        return filter_source(self._filters, order_type)

    def for_type(self, order_type: str) -> FirstFailure:
        """The check for this order type (generated once)."""
        fn = self.by_type.get(order_type)
        if fn is None:
            fn = self.by_type[order_type] = _generated(self.source(order_type))
        return fn

    def for_command(self, order_type: str) -> CommandCheck:
        """The check for this order type taking a ``SubmitOrder``-shaped object (absent numbers are 0, read
        as None): same rules, same answers as :meth:`for_type` on the equivalent :class:`OrderParams`."""
        fn = self.by_type_cmd.get(order_type)
        if fn is None:
            made: Any = _generated(filter_source(self._filters, order_type, zero_absent=True))
            fn = self.by_type_cmd[order_type] = made  # (the generated function reads any such object)
        return fn

    def adds_nothing_for(self, symbol: str) -> bool:
        """True when :meth:`check` of an order of ``symbol`` is exactly ``for_type(type)(...)`` plus the raise:
        same symbol and no -1111 precision rule to apply (a hot caller may then call the function itself)."""
        return symbol == self.symbol and self._units is None

    def check(
        self,
        order: OrderParams,
        avg_price: AvgPrice,
        last_price: int | None,
        open_orders: int,
        open_algo: int,
        open_iceberg: int,
        adding: int = 1,
        base_position: int | None = None,
    ) -> None:
        """Raise the rejection :func:`check_order` would raise (-1121, -1111, -1013), else return.

        ``avg_price(mins)`` is the weighted average price over ``avgPriceMins`` (None: no trade);
        the counts are the symbol's open orders before this request; ``adding`` how many it creates.
        """
        if order.symbol != self.symbol:
            raise RequestRejected(-1121, "Invalid symbol.")
        if self._units is not None:
            _check_units(order, *self._units)
        fn = self.by_type.get(order.type) or self.for_type(order.type)
        name = fn(order, avg_price, last_price, open_orders, open_algo, open_iceberg, adding, base_position)
        if name is not None:
            raise RequestRejected(-1013, f"Filter failure: {name}")


def avg_price_reader(avg_price_e8: RefPrice) -> AvgPrice:
    """A RefPrice as the function of ``avgPriceMins`` that :meth:`CompiledRules.check` takes."""
    if callable(avg_price_e8):
        return avg_price_e8

    def constant(mins: int) -> int | None:
        return avg_price_e8

    return constant


def check_order(
    rules: SymbolRules,
    order: OrderParams,
    *,
    avg_price_e8: RefPrice,
    last_price_e8: int | None,
    open_orders_count: int,
    open_algo_count: int,
    open_iceberg_count: int,
    adding: int = 1,
    base_position_e8: int | None = None,
) -> None:
    """Raise the Binance rejection the order earns from its symbol's filters, else return.

    ``open_*_count`` are the account's open orders on this symbol *before* this request;
    ``adding`` is how many orders the request creates (2 for an OCO leg pair checked as one).
    ``base_position_e8`` (free + locked base + open BUY quantity) enables MAX_POSITION.
    Checking many orders of one symbol: keep a :class:`CompiledRules` instead (same result).
    """
    CompiledRules(rules).check(
        order,
        avg_price_reader(avg_price_e8),
        last_price_e8,
        open_orders_count,
        open_algo_count,
        open_iceberg_count,
        adding,
        base_position_e8,
    )


def failing_filter(
    rules: SymbolRules,
    order: OrderParams,
    **kwargs: Any,
) -> str | None:
    """The rejection check_order would raise, as ``"CODE MSG"`` text, or None: for tests and tools."""
    try:
        check_order(rules, order, **kwargs)
    except RequestRejected as exc:
        return f"{exc.code} {exc.msg}"
    return None


# --------------------------------------------------------------------------- exchange filters


class ExchangeLimits(msgspec.Struct, frozen=True, gc=False):
    """Account-wide EXCHANGE_MAX_NUM_* filters (0 = absent); empty in the 2021 recordings."""

    max_num_orders: int = 0
    max_num_algo_orders: int = 0
    max_num_iceberg_orders: int = 0
    max_num_order_lists: int = 0


def exchange_limits(raw_filters: Iterable[Mapping[str, Any]], *, source: str | None = None) -> ExchangeLimits:
    """Parse ``exchangeInfo.exchangeFilters``; unknown types are ignored."""
    keys = {
        "EXCHANGE_MAX_NUM_ORDERS": ("max_num_orders", "maxNumOrders"),
        "EXCHANGE_MAX_NUM_ALGO_ORDERS": ("max_num_algo_orders", "maxNumAlgoOrders"),
        "EXCHANGE_MAX_NUM_ICEBERG_ORDERS": ("max_num_iceberg_orders", "maxNumIcebergOrders"),
        "EXCHANGE_MAX_NUM_ORDER_LISTS": ("max_num_order_lists", "maxNumOrderLists"),
    }
    values: dict[str, int] = {}
    for raw in raw_filters:
        kind = str(raw.get("filterType"))
        if kind in keys:
            field, key = keys[kind]
            values[field] = _Reader(raw, kind, source).int_(key, "limit")
    return ExchangeLimits(**values)


def check_exchange_limits(
    limits: ExchangeLimits,
    order: OrderParams,
    *,
    open_orders_count: int,
    open_algo_count: int,
    open_iceberg_count: int,
    adding: int = 1,
) -> None:
    """Account-wide counts (all symbols) before this request; -1013 with the exchange filter's name."""
    if limits.max_num_orders and open_orders_count + adding > limits.max_num_orders:
        raise RequestRejected(-1013, "Filter failure: EXCHANGE_MAX_NUM_ORDERS")
    if (
        limits.max_num_algo_orders
        and order.type in ALGO_TYPES
        and open_algo_count + adding > limits.max_num_algo_orders
    ):
        raise RequestRejected(-1013, "Filter failure: EXCHANGE_MAX_NUM_ALGO_ORDERS")
    if (
        limits.max_num_iceberg_orders
        and order.is_iceberg
        and open_iceberg_count + adding > limits.max_num_iceberg_orders
    ):
        raise RequestRejected(-1013, "Filter failure: EXCHANGE_MAX_NUM_ICEBERG_ORDERS")
