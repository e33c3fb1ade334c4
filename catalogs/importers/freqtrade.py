"""freqtrade JSON candle files -> events (sans-I/O: one row of the parsed list in, events out).

freqtrade stores ``[[time_ms, open, high, low, close, volume], ...]``. In a
``*-funding_rate.json`` file ``open`` is the funding rate and ``time_ms`` the exact
fundingTime (-> FundingRateReceived); any other file is candles (-> KlineReceived with the
interval of its name, e.g. ``8h``; ``ts_event`` is the close time). The numbers are JSON
floats written by pandas: they are read as decimal text; text finer than 1e-8 (binary-float
noise such as ``523374743.8000000119``) becomes the shortest decimal of the same double
(``523374743.8``), rounded half-even to 1e-8 if still finer. No receive time exists:
``ts_recv = ts_event + latency_ns``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from engine.events import Event, FundingRateReceived, KlineReceived
from engine.fixed import SCALE, parse_e8
from engine.identifiers import InstrumentId, Market, instrument_id

from .common import BAD_VALUE, INTERVAL_MS, MS, BadRecord, epoch_to_ns

_E8 = Decimal(1).scaleb(-8)


def freqtrade_name_info(path: str | Path) -> tuple[str | None, str, str | None]:
    """``(symbol, kind, interval)`` from a freqtrade file name.

    ``XRP_USDT-8h-funding_rate.json`` -> ("XRPUSDT", "funding", "8h");
    ``XRP_USDT_USDT-8h-mark.json`` -> ("XRPUSDT", "candles", "8h").
    """
    stem = Path(path).name.split(".", 1)[0]
    parts = stem.split("-")
    pair = parts[0].split("_")
    symbol = "".join(pair[:2]).upper() if len(pair) >= 2 and all(pair[:2]) else None
    interval = parts[1] if len(parts) > 1 and parts[1] in INTERVAL_MS else None
    kind = "funding" if "funding_rate" in stem else "candles"
    return symbol, kind, interval


def number_e8(value: Any, what: str, *, signed: bool = False) -> int:
    """A freqtrade number (decimal text from ``parse_float=str``, or an int) as e8."""
    if type(value) is int:
        if value < 0 and not signed:
            raise BadRecord(f"{what}: negative value {value}", category=BAD_VALUE)
        return int(value * SCALE)
    if type(value) is not str:
        raise BadRecord(f"{what}: expected a number, got {value!r}", category=BAD_VALUE)
    if value.startswith("-") and not signed:
        raise BadRecord(f"{what}: negative value {value}", category=BAD_VALUE)
    try:
        return parse_e8(value, signed=signed)
    except ValueError:
        pass  # an exponent, or binary-float noise past 1e-8
    try:
        # The shortest text that reads back as the same double is what pandas meant
        # ("523374743.8000000119" -> "523374743.8"); anything still finer is rounded.
        dec = Decimal(repr(float(value)))
    except (InvalidOperation, ValueError):
        raise BadRecord(f"{what}: not a number: {value!r}", category=BAD_VALUE) from None
    if not dec.is_finite() or (dec < 0 and not signed):
        raise BadRecord(f"{what}: not a usable number: {value!r}", category=BAD_VALUE)
    return int(dec.quantize(_E8, rounding=ROUND_HALF_EVEN).scaleb(8))


@dataclass(frozen=True)
class FreqtradeRows:
    """Converts rows of one freqtrade file; ``kind`` is ``funding`` or ``candles``."""

    instrument: InstrumentId
    kind: str
    interval: str = "8h"
    latency_ns: int = 0

    @classmethod
    def build(
        cls,
        *,
        symbol: str,
        kind: str,
        interval: str | None = None,
        market: Market = Market.USDM,
        latency_ns: int = 0,
    ) -> FreqtradeRows:
        if kind not in ("funding", "candles"):
            raise ValueError(f"kind must be funding or candles, got {kind!r}")
        if interval is not None and interval not in INTERVAL_MS:
            raise ValueError(f"interval must be one of {sorted(INTERVAL_MS)}, got {interval!r}")
        return cls(instrument_id(symbol, market), kind, interval or "8h", latency_ns)

    def row_events(self, row: Any) -> list[Event]:
        what = "row"
        if type(row) is not list or len(row) < 6:
            raise BadRecord(
                f"{what}: expected [time_ms, open, high, low, close, volume], got {row!r:.80}",
                category=BAD_VALUE,
            )
        if type(row[0]) is not int:
            raise BadRecord(f"{what}: time must be integer ms, got {row[0]!r}", category=BAD_VALUE)
        ts = epoch_to_ns(row[0])
        if self.kind == "funding":
            rate = number_e8(row[1], "funding rate", signed=True)
            return [FundingRateReceived(0, ts, ts + self.latency_ns, self.instrument, rate, 0)]
        close_ns = ts + INTERVAL_MS[self.interval] * MS - MS
        o, h, low, c, v = (
            number_e8(row[i], name)
            for i, name in enumerate(("open", "high", "low", "close", "volume"), start=1)
        )
        return [
            KlineReceived(
                0,
                close_ns,
                close_ns + self.latency_ns,
                self.instrument,
                self.interval,
                ts,
                close_ns,
                o,
                h,
                low,
                c,
                v,
                0,
                0,
                0,
                0,
                True,
            )
        ]
