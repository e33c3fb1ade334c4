"""Pieces every importer shares: the bad-record error, exact field readers and time units.

Parsers are sans-I/O: they see one line, CSV row or JSON value at a time and raise
:class:`BadRecord` (an ``InputError`` without a location) when it is wrong. The driver knows
the file and line and re-raises it located (or, with ``skip_bad``, counts it by
``category``). Every number goes through :func:`engine.fixed.parse_e8`, never a float.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from engine.errors import ConfigError, InputError
from engine.events import Level
from engine.fixed import parse_e8
from engine.identifiers import Market

# Categories of bad input, the keys of ``import_stats.skipped.by_reason``.
MALFORMED_JSON = "malformed_json"
MALFORMED_LINE = "malformed_line"
UNKNOWN_TYPE = "unknown_type"
MISSING_FIELD = "missing_field"
BAD_VALUE = "bad_value"
NON_MONOTONIC = "non_monotonic"
MARKET_MISMATCH = "market_mismatch"
AMBIGUOUS_SYMBOL = "ambiguous_symbol"
TRUNCATED = "truncated_input"
ENCODING = "encoding"


class BadRecord(InputError):
    """One bad line/row/item. ``category`` groups skipped records in the import stats."""

    def __init__(
        self, message: str, *, category: str, source: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message, source=source, line=line)
        self.category = category

    def at(self, source: str, line: int | None, item: str | None = None) -> BadRecord:
        """The same error, located: the message then names the file, the line (and item)."""
        reason = f"{item}: {self.reason}" if item else self.reason
        return BadRecord(reason, category=self.category, source=source, line=line)


# --------------------------------------------------------------------------- numbers

# Real feeds repeat the same few hundred price/size strings over and over; caching the exact
# parse makes it nearly free. Errors are not cached (lru_cache does not store exceptions).
_e8_unsigned = functools.lru_cache(maxsize=1 << 16)(parse_e8)


@functools.lru_cache(maxsize=1 << 12)
def _e8_signed(text: str) -> int:
    return parse_e8(text, signed=True)


def e8_text(text: str, what: str, *, signed: bool = False) -> int:
    """Exact e8 value of a decimal string (a CSV cell or a JSON string)."""
    try:
        return _e8_signed(text) if signed else _e8_unsigned(text)
    except ValueError as exc:
        raise BadRecord(f"{what}: {exc}", category=BAD_VALUE) from None


def need(d: Mapping[str, Any], key: str, what: str) -> Any:
    """``d[key]``, or a BadRecord naming the missing field."""
    try:
        return d[key]
    except KeyError:
        raise BadRecord(f"{what}: missing field {key!r}", category=MISSING_FIELD) from None


def e8_field(d: Mapping[str, Any], key: str, what: str, *, signed: bool = False) -> int:
    """A Binance decimal-string field ("61837.63000000") as exact e8."""
    value = d.get(key)
    if type(value) is str and not signed:
        try:
            return _e8_unsigned(value)
        except ValueError:
            pass  # reported with the field's name below
    if value is None:
        value = need(d, key, what)
    if type(value) is not str:
        raise BadRecord(f"{what}: field {key!r} must be a decimal string, got {value!r}", category=BAD_VALUE)
    return e8_text(value, f"{what}: field {key!r}", signed=signed)


def int_field(d: Mapping[str, Any], key: str, what: str) -> int:
    """An integer JSON field (ids, ms times); bools and floats are rejected."""
    value = need(d, key, what)
    if type(value) is not int:
        raise BadRecord(f"{what}: field {key!r} must be an integer, got {value!r}", category=BAD_VALUE)
    return value


def id_field(d: Mapping[str, Any], key: str, what: str) -> int:
    """A non-negative integer id or time."""
    value = int_field(d, key, what)
    if value < 0:
        raise BadRecord(f"{what}: field {key!r} must not be negative, got {value}", category=BAD_VALUE)
    return value


def bool_field(d: Mapping[str, Any], key: str, what: str) -> bool:
    value = need(d, key, what)
    if type(value) is not bool:
        raise BadRecord(f"{what}: field {key!r} must be true/false, got {value!r}", category=BAD_VALUE)
    return value


def str_field(d: Mapping[str, Any], key: str, what: str) -> str:
    value = need(d, key, what)
    if type(value) is not str or not value:
        raise BadRecord(
            f"{what}: field {key!r} must be a non-empty string, got {value!r}", category=BAD_VALUE
        )
    return value


def levels_field(d: Mapping[str, Any], key: str, what: str) -> tuple[Level, ...]:
    """``[["price","qty"], ...]`` as exact (price, qty) pairs, in the order given."""
    raw = need(d, key, what)
    if type(raw) is list:
        # Fast path (book levels are most of the parsing work); anything odd is re-checked
        # item by item below to name exactly what is wrong.
        parse = _e8_unsigned
        try:
            out = [(parse(lv[0]), parse(lv[1])) for lv in raw if type(lv) is list]
        except (ValueError, TypeError, IndexError):
            pass
        else:
            if len(out) == len(raw) and all(type(lv[0]) is str and type(lv[1]) is str for lv in raw):
                return tuple(out)
    return _levels_checked(raw, key, what)


def _levels_checked(raw: Any, key: str, what: str) -> tuple[Level, ...]:
    if type(raw) is not list:
        raise BadRecord(
            f"{what}: field {key!r} must be a list of [price, qty], got {raw!r:.80}", category=BAD_VALUE
        )
    out: list[Level] = []
    for i, level in enumerate(raw):
        if (
            type(level) is not list
            or len(level) < 2
            or type(level[0]) is not str
            or type(level[1]) is not str
        ):
            raise BadRecord(
                f"{what}: {key}[{i}] must be [price, qty] strings, got {level!r}", category=BAD_VALUE
            )
        out.append(
            (e8_text(level[0], f"{what}: {key}[{i}] price"), e8_text(level[1], f"{what}: {key}[{i}] qty"))
        )
    return tuple(out)


def parse_bool_text(text: str, what: str) -> bool:
    """CSV booleans as Binance/Tardis print them (``true``/``True``/``false``/``False``)."""
    low = text.strip().lower()
    if low == "true":
        return True
    if low == "false":
        return False
    raise BadRecord(f"{what}: expected true/false, got {text!r}", category=BAD_VALUE)


def parse_int_text(text: str, what: str) -> int:
    """A non-negative decimal integer cell (ids, times)."""
    s = text.strip()
    if not s.isdigit() or not s.isascii():
        raise BadRecord(f"{what}: expected a non-negative integer, got {text!r}", category=BAD_VALUE)
    return int(s)


# --------------------------------------------------------------------------- time

MS = 1_000_000
US = 1_000


def epoch_to_ns(value: int) -> int:
    """An epoch timestamp in ms, µs or ns, told apart by magnitude, as int ns.

    data.binance.vision switched spot files from ms to µs in 2025; ms stay below 1e14 until
    the year 5138, µs stay below 1e17 until 5138 too.
    """
    if value < 0:
        raise BadRecord(f"negative timestamp {value}", category=BAD_VALUE)
    if value < 10**14:
        return value * MS
    if value < 10**17:
        return value * US
    return value


def seconds_text_to_ns(text: str) -> int:
    """``"1633998512.0633569"`` (seconds, as a recorder printed them) as exact int ns.

    Parsed from the decimal string, never through a float; digits below 1 ns are dropped.
    """
    whole, _, frac = text.strip().partition(".")
    if not whole.isdigit() or not whole.isascii() or (frac and not (frac.isdigit() and frac.isascii())):
        raise BadRecord(
            f"bad local time {text!r} (expected seconds like 1633998512.0633569)", category=BAD_VALUE
        )
    return int(whole) * 1_000_000_000 + int((frac[:9]).ljust(9, "0"))


# --------------------------------------------------------------------------- markets


def parse_market(text: str) -> Market | None:
    """``auto`` -> None, else a Market (``spot``/``usdm``/``coinm``, any case)."""
    low = text.strip().lower()
    if low == "auto":
        return None
    try:
        return Market(low.upper())
    except ValueError:
        raise ConfigError(f"unknown market {text!r} (expected auto, spot, usdm or coinm)") from None


def futures_market_of(symbol: str) -> Market:
    """USD-M or COIN-M from a futures symbol.

    COIN-M symbols are ``<BASE>USD_<PERP|yymmdd>``; USD-M quarterlies also contain ``_``
    (``BTCUSDT_240927``), so the rule is "has ``_`` and the pair ends in USD".
    """
    pair, sep, _ = symbol.partition("_")
    return Market.COINM if sep and pair.endswith("USD") else Market.USDM


# --------------------------------------------------------------------------- kline intervals

_INTERVALS_MS: dict[int, str] = {
    1_000: "1s",
    60_000: "1m",
    180_000: "3m",
    300_000: "5m",
    900_000: "15m",
    1_800_000: "30m",
    3_600_000: "1h",
    7_200_000: "2h",
    14_400_000: "4h",
    21_600_000: "6h",
    28_800_000: "8h",
    43_200_000: "12h",
    86_400_000: "1d",
    259_200_000: "3d",
    604_800_000: "1w",
}
INTERVAL_MS: dict[str, int] = {name: ms for ms, name in _INTERVALS_MS.items()}


def interval_of(open_ns: int, close_ns: int) -> str:
    """Binance's interval name from a candle's open and close times (close = next open - 1 ms).

    REST klines and data.binance.vision rows do not say their interval; the span does.
    """
    span_ms = (close_ns - open_ns) // MS + 1
    name = _INTERVALS_MS.get(span_ms)
    if name is None and 28 * 86_400_000 <= span_ms <= 31 * 86_400_000:
        name = "1M"
    if name is None:
        raise BadRecord(
            f"kline open/close times span {span_ms} ms, which is no Binance interval", category=BAD_VALUE
        )
    return name
