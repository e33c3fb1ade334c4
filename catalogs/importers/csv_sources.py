"""CSV sources -> events (sans-I/O: one line in, events out): data.binance.vision klines,
aggTrades and trades; Tardis.dev normalised trades/quotes/book snapshots; nautilus' flattened
depth CSV.

Cells are split on commas (none of these formats quotes), so line numbers stay exact.
A header the parser does not understand is a ``bad_header`` record: it ends that file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from engine.events import (
    AggTradeReceived,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    KlineReceived,
    Level,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import InstrumentId, Market, instrument_id

from .common import (
    BAD_VALUE,
    INTERVAL_MS,
    MALFORMED_LINE,
    NON_MONOTONIC,
    US,
    BadRecord,
    e8_text,
    epoch_to_ns,
    futures_market_of,
    interval_of,
    parse_bool_text,
    parse_int_text,
)
from .sources import decode_text

BAD_HEADER = "bad_header"


def _cells(line: bytes | str, expected: int | Sequence[int], what: str) -> list[str]:
    text = decode_text(line) if isinstance(line, bytes) else line
    cells = text.rstrip("\r\n").split(",")
    ok = len(cells) == expected if isinstance(expected, int) else len(cells) in expected
    if not ok:
        raise BadRecord(
            f"{what}: expected {expected} comma-separated values, got {len(cells)}", category=MALFORMED_LINE
        )
    return cells


def _instrument(symbol: str, market: Market) -> InstrumentId:
    try:
        return instrument_id(symbol, market)
    except ValueError as exc:
        raise BadRecord(str(exc), category=BAD_VALUE) from None


# =========================================================================== data.binance.vision

VISION_KINDS = ("klines", "aggtrades", "trades")
_VISION_NAME = re.compile(r"^(?P<symbol>[A-Z0-9_]+)-(?P<part>[A-Za-z0-9]+)-\d{4}-\d{2}(?:-\d{2})?$")


def vision_name_info(path: str | Path) -> tuple[str | None, str | None, str | None]:
    """``(symbol, kind, interval)`` from a data.binance.vision file name, None where unknown.

    ``ADABTC-1m-2021-11-27.csv`` -> ("ADABTC", "klines", "1m");
    ``BTCUSDT-aggTrades-2025-01-01.zip`` -> ("BTCUSDT", "aggtrades", None).
    """
    name = Path(path).name
    stem = name.split(".", 1)[0]
    m = _VISION_NAME.match(stem)
    if not m:
        return None, None, None
    part = m["part"]
    if part in INTERVAL_MS or part == "1M":
        return m["symbol"], "klines", part
    if part.lower() in ("aggtrades", "trades"):
        return m["symbol"], part.lower(), None
    return m["symbol"], None, None


class VisionParser:
    """data.binance.vision rows: klines (12 columns), aggTrades (``a,p,q,f,l,T,m[,M]``) or
    trades (``id,price,qty,quoteQty,time,isBuyerMaker[,isBestMatch]``), with or without a
    header, timestamps in ms or µs (told by magnitude). No local receive time exists:
    ``ts_recv = ts_event + latency_ns``. A kline's ``ts_event`` is its close time.
    """

    def __init__(
        self,
        *,
        symbol: str,
        kind: str | None = None,
        market: Market = Market.SPOT,
        interval: str | None = None,
        latency_ns: int = 0,
    ) -> None:
        if kind is not None and kind not in VISION_KINDS:
            raise ValueError(f"kind must be one of {VISION_KINDS}, got {kind!r}")
        self._iid = instrument_id(symbol, market)
        self._kind = kind
        self._interval = interval
        self._latency = latency_ns
        self._rows = 0
        self.ignored: Counter[str] = Counter()

    def feed(self, line: bytes | str) -> list[Event]:
        text = decode_text(line) if isinstance(line, bytes) else line
        if not text.strip():
            self.ignored["blank"] += 1
            return []
        self._rows += 1
        first = text.split(",", 1)[0].strip()
        if self._rows == 1 and first and not first.isdigit():
            self.ignored["header"] += 1
            return []
        if self._kind is None:
            n = text.count(",") + 1
            if n in (11, 12):
                self._kind = "klines"
            elif n in (7, 8):
                self._kind = "aggtrades"
            else:
                raise BadRecord(
                    f"cannot tell the file kind from {n} columns (give --kind)", category=BAD_HEADER
                )
        if self._kind == "klines":
            return [self._kline(text)]
        if self._kind == "aggtrades":
            return [self._agg_trade(text)]
        return [self._trade(text)]

    def _kline(self, text: str) -> Event:
        what = "klines row"
        c = _cells(text, (11, 12), what)
        open_ns = epoch_to_ns(parse_int_text(c[0], f"{what}: open time"))
        close_ns = epoch_to_ns(parse_int_text(c[6], f"{what}: close time"))
        interval = self._interval or interval_of(open_ns, close_ns)
        return KlineReceived(
            0,
            close_ns,
            close_ns + self._latency,
            self._iid,
            interval,
            open_ns,
            close_ns,
            e8_text(c[1], f"{what}: open"),
            e8_text(c[2], f"{what}: high"),
            e8_text(c[3], f"{what}: low"),
            e8_text(c[4], f"{what}: close"),
            e8_text(c[5], f"{what}: volume"),
            e8_text(c[7], f"{what}: quote volume"),
            parse_int_text(c[8], f"{what}: trades"),
            e8_text(c[9], f"{what}: taker buy volume"),
            e8_text(c[10], f"{what}: taker buy quote volume"),
            True,
        )

    def _agg_trade(self, text: str) -> Event:
        what = "aggTrades row"
        c = _cells(text, (7, 8), what)
        ts = epoch_to_ns(parse_int_text(c[5], f"{what}: transact time"))
        return AggTradeReceived(
            0,
            ts,
            ts + self._latency,
            self._iid,
            e8_text(c[1], f"{what}: price"),
            e8_text(c[2], f"{what}: quantity"),
            parse_int_text(c[0], f"{what}: agg trade id"),
            parse_int_text(c[3], f"{what}: first trade id"),
            parse_int_text(c[4], f"{what}: last trade id"),
            parse_bool_text(c[6], f"{what}: is buyer maker"),
        )

    def _trade(self, text: str) -> Event:
        what = "trades row"
        c = _cells(text, (6, 7), what)
        ts = epoch_to_ns(parse_int_text(c[4], f"{what}: time"))
        return TradeReceived(
            0,
            ts,
            ts + self._latency,
            self._iid,
            e8_text(c[1], f"{what}: price"),
            e8_text(c[2], f"{what}: qty"),
            parse_int_text(c[0], f"{what}: id"),
            parse_bool_text(c[5], f"{what}: is buyer maker"),
        )


# =========================================================================== Tardis.dev

TARDIS_EXCHANGES: dict[str, Market] = {
    "binance": Market.SPOT,
    "binance-futures": Market.USDM,
    "binance-delivery": Market.COINM,
}
_TARDIS_COMMON = ["exchange", "symbol", "timestamp", "local_timestamp"]
_TARDIS_TRADES = [*_TARDIS_COMMON, "id", "side", "price", "amount"]
_TARDIS_QUOTES = [*_TARDIS_COMMON, "ask_amount", "ask_price", "bid_price", "bid_amount"]


class TardisParser:
    """Tardis.dev normalised CSVs: ``trades``, ``quotes`` (-> QuoteReceived with update id 0)
    and ``book_snapshot_N`` (-> BookSnapshotReceived(partial=True), update id 0). Timestamps
    are µs; ``local_timestamp`` is the recorded receive time. The ``exchange`` column gives the
    market (``binance`` spot, ``binance-futures`` USD-M, ``binance-delivery`` COIN-M) unless
    one is forced. Empty cells (a side with no quote, a missing level) mean "none".
    """

    def __init__(self, *, market: Market | None = None) -> None:
        self._forced = market
        self._header: list[str] | None = None
        self._kind = ""
        self._depth = 0
        self._ids: dict[tuple[str, str], InstrumentId] = {}
        self.ignored: Counter[str] = Counter()

    @property
    def kind(self) -> str:
        """``trades``, ``quotes`` or ``book_snapshot_<N>`` once the header was seen."""
        return self._kind

    def feed(self, line: bytes | str) -> list[Event]:
        text = decode_text(line) if isinstance(line, bytes) else line
        if not text.strip():
            self.ignored["blank"] += 1
            return []
        if self._header is None:
            self._read_header(text.strip().split(","))
            return []
        assert self._header is not None
        c = _cells(text, len(self._header), f"tardis {self._kind} row")
        iid = self._instrument(c[0], c[1])
        ts_event = parse_int_text(c[2], "timestamp") * US
        ts_recv = parse_int_text(c[3], "local_timestamp") * US
        if self._kind == "trades":
            return [self._trade(c, iid, ts_event, ts_recv)]
        if self._kind == "quotes":
            bid, bid_qty = _opt_e8(c[6], "bid_price"), _opt_e8(c[7], "bid_amount")
            ask, ask_qty = _opt_e8(c[5], "ask_price"), _opt_e8(c[4], "ask_amount")
            return [QuoteReceived(0, ts_event, ts_recv, iid, 0, bid, bid_qty, ask, ask_qty)]
        asks = _tardis_levels(c, 4, self._depth, "asks")
        bids = _tardis_levels(c, 6, self._depth, "bids")
        return [BookSnapshotReceived(0, ts_event, ts_recv, iid, 0, bids, asks, True)]

    def _read_header(self, cols: list[str]) -> None:
        if cols == _TARDIS_TRADES:
            self._kind = "trades"
        elif cols == _TARDIS_QUOTES:
            self._kind = "quotes"
        elif cols[:4] == _TARDIS_COMMON and len(cols) > 4 and (len(cols) - 4) % 4 == 0:
            depth = (len(cols) - 4) // 4
            expected = [
                f"{side}[{i}].{f}"
                for i in range(depth)
                for side in ("asks", "bids")
                for f in ("price", "amount")
            ]
            if cols[4:] != expected:
                raise BadRecord(f"unsupported Tardis CSV columns {cols[:8]}...", category=BAD_HEADER)
            self._kind, self._depth = f"book_snapshot_{depth}", depth
        else:
            raise BadRecord(
                f"unsupported Tardis CSV columns {cols[:8]} (expected trades, quotes or book_snapshot_N)",
                category=BAD_HEADER,
            )
        self._header = cols
        self.ignored["header"] += 1

    def _instrument(self, exchange: str, symbol: str) -> InstrumentId:
        key = (exchange, symbol)
        iid = self._ids.get(key)
        if iid is None:
            market = self._forced or TARDIS_EXCHANGES.get(exchange)
            if market is None:
                raise BadRecord(
                    f"exchange {exchange!r} is not a Binance market {sorted(TARDIS_EXCHANGES)}",
                    category=BAD_VALUE,
                )
            iid = self._ids[key] = _instrument(symbol.upper(), market)
        return iid

    @staticmethod
    def _trade(c: list[str], iid: InstrumentId, ts_event: int, ts_recv: int) -> Event:
        side = c[5]
        if side not in ("buy", "sell"):
            raise BadRecord(f"trade side must be buy or sell, got {side!r}", category=BAD_VALUE)
        # Tardis' side is the taker's: a taker sell means the buyer was the maker.
        return TradeReceived(
            0,
            ts_event,
            ts_recv,
            iid,
            e8_text(c[6], "price"),
            e8_text(c[7], "amount"),
            parse_int_text(c[4], "id"),
            side == "sell",
        )


def _opt_e8(text: str, what: str) -> int:
    return e8_text(text, what) if text else 0


def _tardis_levels(c: list[str], start: int, depth: int, what: str) -> tuple[Level, ...]:
    out: list[Level] = []
    for i in range(depth):
        price, amount = c[start + 4 * i], c[start + 4 * i + 1]
        if not price and not amount:
            continue
        out.append((e8_text(price, f"{what}[{i}].price"), e8_text(amount, f"{what}[{i}].amount")))
    return tuple(out)


# =========================================================================== nautilus depth CSV

_DEPTH_COLUMNS = [
    "symbol",
    "timestamp",
    "first_update_id",
    "last_update_id",
    "side",
    "update_type",
    "price",
    "qty",
]


class DepthCsvParser:
    """nautilus_trader's flattened depth CSV (one level per row): consecutive ``snap`` rows make
    one BookSnapshotReceived, consecutive ``set`` rows of one message one BookDeltaReceived.

    ``timestamp`` is the event time in ms; there is no receive time, so
    ``ts_recv = ts_event + latency_ns``. Market: forced, or futures when the header has a
    ``pu`` column (USD-M/COIN-M by symbol), else spot. A message is emitted when the next one
    starts; call :meth:`finish` at the end of the file for the last one.
    """

    def __init__(self, *, market: Market | None = None, latency_ns: int = 0) -> None:
        self._forced = market
        self._latency = latency_ns
        self._has_pu = False
        self._header: list[str] | None = None
        self._key: tuple[InstrumentId, int, int, int, str, int] | None = None
        self._rejected = False
        self._ready: list[Event] = []
        self._bids: list[Level] = []
        self._asks: list[Level] = []
        self._last_ids: dict[InstrumentId, tuple[int, int]] = {}
        self.ignored: Counter[str] = Counter()

    def feed(self, line: bytes | str) -> list[Event]:
        text = decode_text(line) if isinstance(line, bytes) else line
        if not text.strip():
            self.ignored["blank"] += 1
            return []
        if self._header is None:
            cols = text.strip().split(",")
            if cols[:8] != _DEPTH_COLUMNS or cols[8:] not in ([], ["pu"]):
                raise BadRecord(
                    f"unsupported depth CSV columns {cols} (expected {_DEPTH_COLUMNS}[,pu])",
                    category=BAD_HEADER,
                )
            self._header, self._has_pu = cols, cols[8:] == ["pu"]
            self.ignored["header"] += 1
            return []
        what = "depth row"
        c = _cells(text, len(self._header), what)
        symbol = c[0].strip().upper()
        ts = epoch_to_ns(parse_int_text(c[1], f"{what}: timestamp"))
        first = parse_int_text(c[2], f"{what}: first_update_id")
        last = parse_int_text(c[3], f"{what}: last_update_id")
        side, kind = c[4].strip().lower(), c[5].strip().lower()
        pu = _signed_int(c[8], f"{what}: pu") if self._has_pu else -1
        if side not in ("b", "a", "bid", "ask") or kind not in ("snap", "set"):
            raise BadRecord(
                f"{what}: side must be b/a and update_type snap/set, got {c[4]!r}, {c[5]!r}",
                category=BAD_VALUE,
            )
        level = (e8_text(c[6], f"{what}: price"), e8_text(c[7], f"{what}: qty"))
        market = self._forced or (futures_market_of(symbol) if self._has_pu else Market.SPOT)
        iid = _instrument(symbol, market)
        key = (iid, ts, first, last, kind, pu)
        if key != self._key:
            # A finished message waits in _ready, so a bad next row cannot lose it.
            self._ready.extend(self._flush())
            self._key, self._rejected = key, False
            if kind == "set":
                self._check_order(iid, first, last)
        elif self._rejected:
            self.ignored["row_of_rejected_message"] += 1
            return self._take_ready()
        (self._bids if side.startswith("b") else self._asks).append(level)
        return self._take_ready()

    def _take_ready(self) -> list[Event]:
        out, self._ready = self._ready, []
        return out

    def _check_order(self, iid: InstrumentId, first: int, last: int) -> None:
        before = self._last_ids.get(iid)
        if before is not None and (first < before[0] or last < before[1]):
            self._rejected = True
            raise BadRecord(
                f"depth update ids go backwards (U={first}, u={last} after U={before[0]}, u={before[1]})",
                category=NON_MONOTONIC,
            )
        self._last_ids[iid] = (first, last)

    def finish(self) -> list[Event]:
        """The last message of the file."""
        self._ready.extend(self._flush())
        return self._take_ready()

    def _flush(self) -> list[Event]:
        if self._key is None or self._rejected:
            return []
        iid, ts, first, last, kind, pu = self._key
        bids, asks = tuple(self._bids), tuple(self._asks)
        self._key, self._bids, self._asks = None, [], []
        if kind == "snap":
            return [BookSnapshotReceived(0, ts, ts + self._latency, iid, last, bids, asks, False)]
        return [BookDeltaReceived(0, ts, ts + self._latency, iid, first, last, pu, bids, asks)]


def _signed_int(text: str, what: str) -> int:
    s = text.strip()
    body = s[1:] if s.startswith("-") else s
    if not body.isdigit() or not body.isascii():
        raise BadRecord(f"{what}: expected an integer, got {text!r}", category=BAD_VALUE)
    return int(s)
