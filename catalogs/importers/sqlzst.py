"""``.sql.zst`` SQLite dumps (``sqlite3 db .dump | zstd``) -> events, streamed.

The training workstation keeps market data as zstd-compressed SQLite dumps: text made of
``CREATE TABLE ...;`` and ``INSERT INTO ... VALUES(...);`` statements. This module reads them
without ever holding the dump (or the decompressed text) in memory:

1. zstd is decompressed as a stream (``zstandard``, imported lazily: it is a workstation
   package) and cut into lines; lines are joined into statements with the stdlib's
   ``sqlite3.complete_statement`` (it knows quoting, comments and ``BEGIN...END``), so a
   statement may span lines and a string may contain ``;``.
2. ``CREATE TABLE`` statements are parsed for their column names and the table is recognised
   by them (:func:`recognise`; the accepted schemas are in ``docs/research.md``). Unknown
   tables are listed and their rows skipped.
3. ``INSERT`` rows are tokenised by a small SQL-literal parser (:func:`parse_values`) that keeps
   every literal's *text*. Why not load each batch into an in-memory ``sqlite3`` database?
   Because a ``REAL`` literal becomes a binary double there and the text is gone, while the
   log wants exact e8 ints from the literal text (a dumped ``61837.63`` or ``'61837.63'`` is
   parsed exactly; a ``REAL`` dumped with float noise is rounded to 8 decimals in exact
   decimal arithmetic and accepted only if that is the same double, see :func:`literal_e8`).
4. A dump is ordered table by table, not in time: events are sorted by
   ``(ts_recv, ts_event, table, row)`` with an external merge sort (sorted runs of at most
   ``spill_events`` events spilled to msgpack temp files, then ``heapq.merge``), so memory is
   bounded by the run size. The import stats say whether the dump order had to change.

Bad rows and statements raise ``InputError`` naming the dump, the statement's first line and
its number (``--skip-bad`` counts them instead). Everything is sans-I/O except
:func:`iter_statements` and :func:`import_sqlzst`.
"""

from __future__ import annotations

import heapq
import re
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import msgspec

from engine.errors import ConfigError, InputError
from engine.events import AggTradeReceived, AnyEvent, Event, KlineReceived, QuoteReceived, TradeReceived
from engine.identifiers import InstrumentId, Market

from .common import (
    BAD_VALUE,
    INTERVAL_MS,
    MALFORMED_LINE,
    MISSING_FIELD,
    MS,
    TRUNCATED,
    US,
    BadRecord,
    e8_text,
    epoch_to_ns,
    interval_of,
)
from .driver import ImportReport, WriterFactory, _constant, _paths, _Session

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DEFAULT_SPILL_EVENTS = 250_000
TIME_UNITS = ("auto", "s", "ms", "us", "ns")
_INT64_MAX = 2**63 - 1
_UNIT_NS = {"s": 1_000_000_000, "ms": MS, "us": US, "ns": 1}


# =========================================================================== reading statements


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement of a dump: its 1-based number, first line and text (with the ``;``)."""

    number: int
    line: int
    text: str


def open_dump(path: str | Path) -> Iterator[bytes]:
    """The dump's decompressed lines (zstd by magic bytes; a plain ``.sql`` is read as is).

    A zstd stream that ends inside a frame (a cut download) raises a located ``truncated_input``
    BadRecord after every complete line before the cut was handed out.
    """
    src = str(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 -- closed in the finally below (generator)
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", source=src) from exc
    n = 0
    try:
        zstd = raw.read(4) == ZSTD_MAGIC
        raw.seek(0)
        if not zstd:
            yield from raw
            return
        for line in _split_lines(_zstd_chunks(raw, src)):
            n += 1
            yield line
    except BadRecord as exc:
        if exc.source is not None:
            raise
        raise BadRecord(
            f"{exc.reason} after line {n}", category=exc.category, source=src, line=n + 1
        ) from None
    finally:
        raw.close()


def _zstd_chunks(raw: IO[bytes], src: str) -> Iterator[bytes]:
    """Decompressed data of every zstd frame in ``raw``, 64 KiB of input at a time."""
    try:
        import zstandard
    except ImportError:
        raise ConfigError(
            f"{src} is zstd-compressed and the `zstandard` package is not installed "
            "(a workstation package: pip install zstandard, or decompress it with `zstd -d` first)"
        ) from None
    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    pending = False  # inside a frame
    while block := raw.read(1 << 16):
        while block:
            try:
                out = dobj.decompress(block)
            except zstandard.ZstdError as exc:
                raise BadRecord(f"corrupt zstd stream ({exc})", category=TRUNCATED) from None
            pending = not dobj.eof
            if out:
                yield out
            block = dobj.unused_data if dobj.eof else b""
            if dobj.eof:
                dobj = dctx.decompressobj()
    if pending:
        raise BadRecord("truncated zstd stream (the last frame is cut)", category=TRUNCATED)


def _split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for part in parts:
            yield part + b"\n"
    if rest:
        yield rest


def iter_statements(lines: Iterable[bytes], source: str) -> Iterator[Statement]:
    """Whole statements from the dump's lines (a statement may span lines)."""
    buf: list[str] = []
    first = 0
    number = 0
    lineno = 0
    for raw in lines:
        lineno += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRecord(
                f"not UTF-8 text: {exc}", category="encoding", source=source, line=lineno
            ) from None
        if not buf:
            if not text.strip():
                continue
            first = lineno
        buf.append(text)
        joined = text if len(buf) == 1 else "".join(buf)
        if sqlite3.complete_statement(joined):
            number += 1
            buf = []
            yield Statement(number, first, joined.strip())
    if buf and "".join(buf).strip():
        raise BadRecord(
            f"the dump ends inside statement {number + 1} (no closing ';': truncated dump?)",
            category=TRUNCATED,
            source=source,
            line=first,
        )


# =========================================================================== SQL literals

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^']|'')*')
    | (?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<null>NULL\b)
    | (?P<blob>[xX]'[0-9a-fA-F]*')
    | (?P<punct>[(),;])
    )""",
    re.X | re.I,
)
_INSERT = re.compile(
    r"""^INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(?P<name>"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[\w$.]+)\s*
        (?:\((?P<cols>[^)]*)\)\s*)?VALUES\s*""",
    re.X | re.I | re.S,
)
_CREATE = re.compile(
    r"""^CREATE\s+(?:TEMP\w*\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?
        (?P<name>"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[\w$.]+)\s*\(""",
    re.X | re.I | re.S,
)
_CONSTRAINT = re.compile(r"^(?:CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN)\b", re.I)

Literal = str | None
"""A literal as the dump spells it: ``'text'`` (quotes kept), a number's text, or None for NULL."""


def unquote_name(name: str) -> str:
    """``"a""b"`` / ```a``` / ``[a]`` / ``a`` -> the identifier."""
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    if len(name) >= 2 and (name[0], name[-1]) in (("`", "`"), ("[", "]")):
        return name[1:-1]
    return name


def parse_values(text: str, pos: int) -> list[list[Literal]]:
    """The row tuples of ``VALUES(...),(...);`` starting at ``pos``."""
    rows: list[list[Literal]] = []
    match = _TOKEN.match
    while True:
        m = match(text, pos)
        if m is None or m.group("punct") != "(":
            raise BadRecord(f"expected '(' at offset {pos}", category=MALFORMED_LINE)
        pos = m.end()
        row: list[Literal] = []
        while True:
            m = match(text, pos)
            if m is None:
                raise BadRecord(
                    f"unreadable literal at offset {pos}: {text[pos : pos + 30]!r}", category=MALFORMED_LINE
                )
            pos = m.end()
            kind = m.lastgroup or "punct"
            if kind == "punct":
                raise BadRecord(f"expected a value at offset {m.start()}", category=MALFORMED_LINE)
            row.append(None if kind == "null" else m.group(kind))
            m = match(text, pos)
            if m is None or m.group("punct") not in (",", ")"):
                raise BadRecord(f"expected ',' or ')' at offset {pos}", category=MALFORMED_LINE)
            pos = m.end()
            if m.group("punct") == ")":
                break
        rows.append(row)
        m = match(text, pos)
        if m is None or m.group("punct") not in (",", ";"):
            raise BadRecord(f"expected ',' or ';' after a row at offset {pos}", category=MALFORMED_LINE)
        pos = m.end()
        if m.group("punct") == ";":
            return rows


def split_columns(body: str) -> list[str]:
    """Column names of a ``CREATE TABLE`` body (table constraints left out)."""
    depth, start, parts = 0, 0, []
    quote = ""
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "[":
            quote = "]"
        elif ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                parts.append(body[start:i])
                break
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    names = []
    for part in parts:
        part = part.strip()
        if not part or _CONSTRAINT.match(part):
            continue
        m = re.match(r'"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|\S+', part)
        if m:
            names.append(unquote_name(m.group(0)))
    return names


def text_of(lit: Literal, what: str) -> str:
    """A literal's value as text (a quoted string unescaped, a number's own spelling)."""
    if lit is None:
        raise BadRecord(f"{what} is NULL", category=MISSING_FIELD)
    if lit[:1] == "'":
        return lit[1:-1].replace("''", "'")
    if lit[:1] in "xX" and lit[1:2] == "'":
        raise BadRecord(f"{what} is a BLOB, expected a number or text", category=BAD_VALUE)
    return lit


def literal_e8(lit: Literal, what: str) -> int:
    """Exact e8 of a price/quantity literal, from its text, never through a float.

    Text (``'61837.63'``) and plain decimals (``61837.63``) are parsed exactly and must have at
    most 8 decimals. A ``REAL`` that SQLite dumped with float noise (``61837.629999999997``,
    ``1.0e-05``) is rounded half-even to 8 decimals in exact decimal arithmetic and accepted
    only when that decimal maps to the same double (so it is the value that was stored).
    """
    text = text_of(lit, what)
    quoted = lit is not None and lit[:1] == "'"
    if quoted or ("e" not in text and "E" not in text and len(text.partition(".")[2]) <= 8):
        return e8_text(text.strip(), what)
    try:
        exact = Decimal(text).scaleb(8)
    except InvalidOperation:
        raise BadRecord(f"{what}: not a number: {text!r}", category=BAD_VALUE) from None
    if not exact.is_finite() or exact < 0:
        raise BadRecord(f"{what}: not a finite non-negative number: {text!r}", category=BAD_VALUE)
    rounded = exact.to_integral_value(rounding=ROUND_HALF_EVEN)
    if rounded > _INT64_MAX:
        raise BadRecord(f"{what}: {text!r} is too large for an e8 int64", category=BAD_VALUE)
    if rounded != exact and float(Decimal(text)) != float(rounded.scaleb(-8)):
        raise BadRecord(f"{what}: {text!r} is not a number with at most 8 decimals", category=BAD_VALUE)
    return int(rounded)


def literal_int(lit: Literal, what: str) -> int:
    """An integer literal (ids, counts); a REAL must be integral (``12.0``)."""
    text = text_of(lit, what).strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadRecord(f"{what}: expected an integer, got {text!r}", category=BAD_VALUE) from None
    if not value.is_finite() or value != value.to_integral_value():
        raise BadRecord(f"{what}: expected an integer, got {text!r}", category=BAD_VALUE)
    return int(value)


def literal_bool(lit: Literal, what: str) -> bool:
    """``0``/``1``, ``'true'``/``'false'``, ``'t'``/``'f'`` (any case)."""
    text = text_of(lit, what).strip().lower()
    if text in ("1", "true", "t", "1.0"):
        return True
    if text in ("0", "false", "f", "0.0"):
        return False
    raise BadRecord(f"{what}: expected a boolean (0/1, true/false), got {text!r}", category=BAD_VALUE)


_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]00:?00)?$")


def literal_time_ns(lit: Literal, what: str, unit: str) -> int:
    """A time as int ns: an epoch number (``unit``, or ms/µs/ns told apart by magnitude when
    ``auto``) or ISO-8601 text (``2024-08-09 00:00:00.123``; naive times are UTC)."""
    text = text_of(lit, what).strip()
    iso = _ISO.match(text)
    if iso is not None:
        try:
            base = datetime.fromisoformat(f"{iso.group(1)}T{iso.group(2)}").replace(tzinfo=UTC)
        except ValueError:
            raise BadRecord(f"{what}: bad date/time {text!r}", category=BAD_VALUE) from None
        frac = (iso.group(3) or "").ljust(9, "0")
        return int(base.timestamp()) * 1_000_000_000 + int(frac)
    value = literal_int(lit, what)
    if value < 0:
        raise BadRecord(f"{what}: negative time {value}", category=BAD_VALUE)
    return epoch_to_ns(value) if unit == "auto" else value * _UNIT_NS[unit]


# =========================================================================== table recognition

SYMBOL_COLS = ("symbol", "s", "pair", "instrument")
TIME_COLS = ("ts_event", "ts", "timestamp", "time", "transact_time", "trade_time", "event_time", "t")
RECV_COLS = ("ts_recv", "local_ts", "local_timestamp", "recv_ts", "recv_time", "receive_time")
QTY_COLS = ("qty", "quantity", "amount", "size", "q")
SIDE_BOOL_COLS = ("is_buyer_maker", "buyer_maker", "isbuyermaker", "m")
KLINE_TIME_COLS = ("open_time", "ts", "timestamp", "time", "t")
_UNIT_SUFFIXES = (("", None), ("_s", "s"), ("_ms", "ms"), ("_us", "us"), ("_ns", "ns"))
QUOTE_COLS = {
    "bid_price": ("bid_price", "best_bid_price", "bid", "best_bid", "bid_px"),
    "bid_qty": ("bid_qty", "best_bid_qty", "bid_size", "bid_quantity", "bid_amount", "bid_sz"),
    "ask_price": ("ask_price", "best_ask_price", "ask", "best_ask", "ask_px"),
    "ask_qty": ("ask_qty", "best_ask_qty", "ask_size", "ask_quantity", "ask_amount", "ask_sz"),
}


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A table of the dump and what it was recognised as (``kind`` None: unknown, skipped)."""

    name: str
    columns: tuple[str, ...]
    kind: str | None
    mapping: dict[str, str] = field(default_factory=dict)
    """role -> column name used (``price``: ``price``, ``time``: ``ts_ms`` ...)."""

    def to_json(self) -> dict[str, Any]:
        return {"table": self.name, "kind": self.kind, "columns": list(self.columns), "mapping": self.mapping}


def _pick(cols: Sequence[str], names: Sequence[str]) -> str | None:
    low = {c.lower(): c for c in cols}
    for n in names:
        if n in low:
            return low[n]
    return None


def _pick_time(cols: Sequence[str], names: Sequence[str]) -> tuple[str, str | None] | None:
    """(column, unit from its suffix or None)."""
    low = {c.lower(): c for c in cols}
    for n in names:
        for suffix, unit in _UNIT_SUFFIXES:
            if n + suffix in low:
                return low[n + suffix], unit
    return None


def recognise(name: str, columns: Sequence[str]) -> TableInfo:
    """What a table holds, by its column names (case-insensitive); see docs/research.md."""
    cols = tuple(columns)
    found: dict[str, str] = {}

    def put(role: str, col: str | None) -> bool:
        if col is not None:
            found[role] = col
        return col is not None

    put("symbol", _pick(cols, SYMBOL_COLS))
    recv = _pick_time(cols, RECV_COLS)
    if recv is not None:
        found["ts_recv"] = recv[0]
    kline_cols = {r: _pick(cols, (r,)) for r in ("open", "high", "low", "close", "volume")}
    if all(kline_cols.values()):
        t = _pick_time(cols, KLINE_TIME_COLS)
        if t is not None:
            found.update({r: c for r, c in kline_cols.items() if c is not None})
            found["time"] = t[0]
            close_t = _pick_time(cols, ("close_time",))
            if close_t is not None:
                found["close_time"] = close_t[0]
            put("interval", _pick(cols, ("interval",)))
            put("quote_volume", _pick(cols, ("quote_volume", "quote_asset_volume")))
            put("trades", _pick(cols, ("trades", "num_trades", "number_of_trades", "count")))
            put("taker_buy_volume", _pick(cols, ("taker_buy_volume", "taker_buy_base_asset_volume")))
            put(
                "taker_buy_quote_volume",
                _pick(cols, ("taker_buy_quote_volume", "taker_buy_quote_asset_volume")),
            )
            return TableInfo(name, cols, "kline", found)
    quote = {r: _pick(cols, names) for r, names in QUOTE_COLS.items()}
    t = _pick_time(cols, TIME_COLS)
    if all(quote.values()) and t is not None:
        found.update({r: c for r, c in quote.items() if c is not None})
        found["time"] = t[0]
        put("update_id", _pick(cols, ("update_id", "u", "last_update_id")))
        return TableInfo(name, cols, "quote", found)
    price, qty = _pick(cols, ("price", "p")), _pick(cols, QTY_COLS)
    if price is not None and qty is not None and t is not None:
        found.update(price=price, qty=qty, time=t[0])
        if not put("buyer_maker", _pick(cols, SIDE_BOOL_COLS)):
            put("side", _pick(cols, ("side", "taker_side")))
        agg = _pick(cols, ("agg_trade_id", "agg_id", "a"))
        first, last = _pick(cols, ("first_trade_id", "f")), _pick(cols, ("last_trade_id", "l"))
        if agg is not None or (first is not None and last is not None):
            put("agg_id", agg)
            put("first_trade_id", first)
            put("last_trade_id", last)
            return TableInfo(name, cols, "agg_trade", found)
        put("trade_id", _pick(cols, ("trade_id", "id", "tid")))
        return TableInfo(name, cols, "trade", found)
    return TableInfo(name, cols, None, {})


def time_unit_of(info: TableInfo, role: str, default: str) -> str:
    """The unit of a time column: its name's suffix (``ts_ms``), else ``default``."""
    col = info.mapping[role].lower()
    for suffix, unit in _UNIT_SUFFIXES[1:]:
        if col.endswith(suffix) and unit is not None:
            return unit
    return default


# =========================================================================== rows -> events

RowConverter = Callable[[Sequence[Literal], int], Event]


@dataclass(frozen=True, slots=True)
class Options:
    """Import settings that rows need: symbol of tables without one, market, units, latency."""

    symbol: str | None = None
    market: Market = Market.SPOT
    time_unit: str = "auto"
    interval: str | None = None
    recv_latency_ns: int = 0


def converter(info: TableInfo, order: Sequence[str], opts: Options) -> RowConverter:
    """A function turning one row (literals in ``order`` of columns) into an event."""
    pos = {c.lower(): i for i, c in enumerate(order)}
    m = info.mapping
    idx: dict[str, int] = {}
    for role, col in m.items():
        if col.lower() not in pos:
            raise BadRecord(f"INSERT into {info.name!r} lacks column {col!r}", category=MISSING_FIELD)
        idx[role] = pos[col.lower()]
    if "symbol" not in idx and not opts.symbol:
        raise ConfigError(
            f"table {info.name!r} has no symbol column ({'/'.join(SYMBOL_COLS)}): give --symbol"
        )
    fixed = InstrumentId(f"{opts.symbol.upper()}.{opts.market.value}") if opts.symbol else None
    suffix = f".{opts.market.value}"
    units: dict[str, str] = {
        r: time_unit_of(info, r, opts.time_unit) for r in ("time", "ts_recv", "close_time") if r in m
    }
    width = len(order)

    def common(row: Sequence[Literal]) -> tuple[int, int, InstrumentId]:
        if len(row) != width:
            raise BadRecord(
                f"row has {len(row)} values, the table has {width} columns", category=MALFORMED_LINE
            )
        ts = literal_time_ns(row[idx["time"]], m["time"], units["time"])
        if "ts_recv" in idx:
            recv = literal_time_ns(row[idx["ts_recv"]], m["ts_recv"], units["ts_recv"])
        else:
            recv = ts + opts.recv_latency_ns
        if fixed is not None and "symbol" not in idx:
            return ts, recv, fixed
        sym = text_of(row[idx["symbol"]], m["symbol"]).strip().upper()
        if not sym:
            raise BadRecord(f"{m['symbol']} is empty", category=BAD_VALUE)
        return ts, recv, InstrumentId(sym if "." in sym else sym + suffix)

    build = {"trade": _trade, "agg_trade": _agg_trade, "quote": _quote, "kline": _kline}[info.kind or ""]
    return build(info, idx, common, opts, units)


_Common = Callable[[Sequence[Literal]], tuple[int, int, InstrumentId]]


def _side(row: Sequence[Literal], idx: dict[str, int], m: dict[str, str]) -> bool:
    """buyer_maker: from a boolean column, else from the taker side (a SELL taker = buyer maker)."""
    if "buyer_maker" in idx:
        return literal_bool(row[idx["buyer_maker"]], m["buyer_maker"])
    if "side" in idx:
        side = text_of(row[idx["side"]], m["side"]).strip().lower()
        if side in ("sell", "s", "ask"):
            return True
        if side in ("buy", "b", "bid"):
            return False
        raise BadRecord(f"{m['side']}: expected buy/sell, got {side!r}", category=BAD_VALUE)
    raise BadRecord("no is_buyer_maker/side column", category=MISSING_FIELD)


def _opt_int(row: Sequence[Literal], idx: dict[str, int], m: Mapping[str, str], key: str, default: int) -> int:
    """An optional integer column of a row (``default`` when the table has no such column)."""
    return literal_int(row[idx[key]], m[key]) if key in idx else default


def _trade(
    info: TableInfo, idx: dict[str, int], common: _Common, opts: Options, units: dict[str, str]
) -> RowConverter:
    m = info.mapping

    def row_event(row: Sequence[Literal], rowno: int) -> Event:
        ts, recv, inst = common(row)
        tid = _opt_int(row, idx, m, "trade_id", rowno)
        return TradeReceived(
            0,
            ts,
            recv,
            inst,
            literal_e8(row[idx["price"]], m["price"]),
            literal_e8(row[idx["qty"]], m["qty"]),
            tid,
            _side(row, idx, m),
        )

    return row_event


def _agg_trade(
    info: TableInfo, idx: dict[str, int], common: _Common, opts: Options, units: dict[str, str]
) -> RowConverter:
    m = info.mapping

    def row_event(row: Sequence[Literal], rowno: int) -> Event:
        ts, recv, inst = common(row)
        agg = _opt_int(row, idx, m, "agg_id", rowno)
        first = _opt_int(row, idx, m, "first_trade_id", -1)
        last = _opt_int(row, idx, m, "last_trade_id", -1)
        return AggTradeReceived(
            0,
            ts,
            recv,
            inst,
            literal_e8(row[idx["price"]], m["price"]),
            literal_e8(row[idx["qty"]], m["qty"]),
            agg,
            first,
            last,
            _side(row, idx, m),
        )

    return row_event


def _quote(
    info: TableInfo, idx: dict[str, int], common: _Common, opts: Options, units: dict[str, str]
) -> RowConverter:
    m = info.mapping

    def row_event(row: Sequence[Literal], rowno: int) -> Event:
        ts, recv, inst = common(row)
        uid = _opt_int(row, idx, m, "update_id", 0)
        e8 = [literal_e8(row[idx[r]], m[r]) for r in ("bid_price", "bid_qty", "ask_price", "ask_qty")]
        return QuoteReceived(0, ts, recv, inst, uid, e8[0], e8[1], e8[2], e8[3])

    return row_event


def _kline(
    info: TableInfo, idx: dict[str, int], common: _Common, opts: Options, units: dict[str, str]
) -> RowConverter:
    m = info.mapping
    if "close_time" not in idx and "interval" not in idx and opts.interval is None:
        raise ConfigError(f"kline table {info.name!r} has no close_time or interval column: give --interval")
    if opts.interval is not None and opts.interval not in INTERVAL_MS:
        raise ConfigError(
            f"unknown kline interval {opts.interval!r} (expected one of {', '.join(INTERVAL_MS)})"
        )

    def opt_e8(row: Sequence[Literal], role: str) -> int:
        return literal_e8(row[idx[role]], m[role]) if role in idx and row[idx[role]] is not None else 0

    def row_event(row: Sequence[Literal], rowno: int) -> Event:
        open_ns, _, inst = common(row)
        if "close_time" in idx:
            close_ns = literal_time_ns(row[idx["close_time"]], m["close_time"], units["close_time"])
            interval = interval_of(open_ns, close_ns)
        else:
            interval = (
                text_of(row[idx["interval"]], m["interval"]) if "interval" in idx else str(opts.interval)
            )
            if interval not in INTERVAL_MS:
                raise BadRecord(
                    f"{m.get('interval', '--interval')}: unknown interval {interval!r}", category=BAD_VALUE
                )
            close_ns = open_ns + INTERVAL_MS[interval] * MS - MS
        recv = (
            literal_time_ns(row[idx["ts_recv"]], m["ts_recv"], units["ts_recv"])
            if "ts_recv" in idx
            else close_ns + opts.recv_latency_ns
        )
        o, h, lo, c, v = (literal_e8(row[idx[r]], m[r]) for r in ("open", "high", "low", "close", "volume"))
        trades = literal_int(row[idx["trades"]], m["trades"]) if "trades" in idx and row[idx["trades"]] else 0
        return KlineReceived(
            0,
            close_ns,
            recv,
            inst,
            interval,
            open_ns,
            close_ns,
            o,
            h,
            lo,
            c,
            v,
            opt_e8(row, "quote_volume"),
            trades,
            opt_e8(row, "taker_buy_volume"),
            opt_e8(row, "taker_buy_quote_volume"),
            True,
        )

    return row_event


# =========================================================================== the dump as events


@dataclass
class DumpReader:
    """Sans-I/O over statements: tables recognised, rows converted into (key, event) pairs.

    ``key`` = ``(ts_recv, ts_event, table number, row number)``: the log's order, with the
    dump's own order breaking ties, so the result is deterministic.
    """

    opts: Options
    tables: dict[str, TableInfo] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    _numbers: dict[str, int] = field(default_factory=dict)
    _converters: dict[tuple[str, str | None], RowConverter] = field(default_factory=dict)

    def feed(self, st: Statement) -> list[tuple[tuple[int, int, int, int], Event]]:
        text = st.text
        head = text[:12].upper()
        if head.startswith("INSERT"):
            return self._insert(text)
        if head.startswith("CREATE") and _CREATE.match(text):
            self._create(text)
            return []
        verb = text.split(None, 1)[0].rstrip(";").upper() if text.split() else ""
        self.ignored[f"statement:{verb}"] += 1
        return []

    def _create(self, text: str) -> None:
        m = _CREATE.match(text)
        assert m is not None
        name = unquote_name(m.group("name"))
        if name.lower().startswith("sqlite_"):
            return
        info = recognise(name, split_columns(text[m.end() :]))
        self.tables[name] = info
        self._numbers[name] = len(self._numbers) + 1

    def _insert(self, text: str) -> list[tuple[tuple[int, int, int, int], Event]]:
        m = _INSERT.match(text)
        if m is None:
            raise BadRecord(f"unreadable INSERT statement: {text[:60]!r}", category=MALFORMED_LINE)
        name = unquote_name(m.group("name"))
        if name.lower().startswith("sqlite_"):
            self.ignored["sqlite_internal_rows"] += 1
            return []
        info = self.tables.get(name)
        if info is None:
            raise BadRecord(f"INSERT into table {name!r} before its CREATE TABLE", category=MALFORMED_LINE)
        rows = parse_values(text, m.end())
        if info.kind is None:
            self.ignored[f"unknown_table:{name}"] += len(rows)
            return []
        conv = self._converter(info, m.group("cols"))
        table_no = self._numbers[name]
        out = []
        for row in rows:
            self.rows[name] += 1
            rowno = self.rows[name]
            try:
                ev = conv(row, rowno)
            except BadRecord as exc:
                raise BadRecord(f"table {name!r} row {rowno}: {exc.reason}", category=exc.category) from None
            out.append(((ev.ts_recv, ev.ts_event, table_no, rowno), ev))
        return out

    def _converter(self, info: TableInfo, cols: str | None) -> RowConverter:
        key = (info.name, cols)
        conv = self._converters.get(key)
        if conv is None:
            order = [unquote_name(c) for c in cols.split(",")] if cols else list(info.columns)
            conv = self._converters[key] = converter(info, order, self.opts)
        return conv


# =========================================================================== external sort

Key = tuple[int, int, int, int]
_Chunk = list[tuple[Key, AnyEvent]]
_CHUNK = 4096


class ExternalSorter:
    """Sorts (key, event) pairs with bounded memory: sorted runs spilled to temp files, merged.

    ``add`` keeps at most ``run_events`` pairs in memory; each full run is sorted and written
    as msgpack chunks of 4,096 pairs. ``merged`` yields every pair in key order (one chunk of
    each run in memory at a time). ``out_of_order`` counts pairs whose key was below the one
    added before it: 0 means the dump was already in log order.
    """

    def __init__(self, run_events: int = DEFAULT_SPILL_EVENTS, tmp_dir: str | Path | None = None) -> None:
        if run_events < 1:
            raise ConfigError(f"run_events must be >= 1, got {run_events}")
        self.run_events = run_events
        self.out_of_order = 0
        self.count = 0
        self._buf: list[tuple[Key, Event]] = []
        self._last: Key | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="tickloop-sqlzst-", dir=tmp_dir)
        self._runs: list[Path] = []
        self._enc = msgspec.msgpack.Encoder()

    def add(self, pairs: Iterable[tuple[Key, Event]]) -> None:
        for key, ev in pairs:
            if self._last is not None and key < self._last:
                self.out_of_order += 1
            self._last = key
            self._buf.append((key, ev))
            self.count += 1
            if len(self._buf) >= self.run_events:
                self._spill()

    @property
    def runs(self) -> int:
        return len(self._runs)

    def _spill(self) -> None:
        self._buf.sort(key=lambda p: p[0])
        path = Path(self._tmp.name) / f"run{len(self._runs):05d}.msgpack"
        with open(path, "wb") as f:
            for i in range(0, len(self._buf), _CHUNK):
                data = self._enc.encode(self._buf[i : i + _CHUNK])
                f.write(len(data).to_bytes(8, "little"))
                f.write(data)
        self._runs.append(path)
        self._buf = []

    def merged(self) -> Iterator[Event]:
        """Every event in key order (then the temp files are removed)."""
        try:
            if not self._runs:
                self._buf.sort(key=lambda p: p[0])
                yield from (ev for _, ev in self._buf)
                return
            if self._buf:
                self._spill()
            streams = [self._read_run(p) for p in self._runs]
            for _, ev in heapq.merge(*streams, key=lambda p: p[0]):
                yield ev
        finally:
            self.close()

    @staticmethod
    def _read_run(path: Path) -> Iterator[tuple[Key, AnyEvent]]:
        dec = msgspec.msgpack.Decoder(_Chunk)
        with open(path, "rb") as f:
            while header := f.read(8):
                yield from dec.decode(f.read(int.from_bytes(header, "little")))

    def close(self) -> None:
        self._buf = []
        self._tmp.cleanup()


# =========================================================================== the import


def import_sqlzst(
    files: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    symbol: str | None = None,
    market: Market = Market.SPOT,
    time_unit: str = "auto",
    interval: str | None = None,
    recv_latency_ns: int = 0,
    skip_bad: bool = False,
    spill_events: int = DEFAULT_SPILL_EVENTS,
    writer_factory: WriterFactory | None = None,
) -> ImportReport:
    """SQLite dumps (``.sql.zst`` or plain ``.sql``) into one log, sorted into log order.

    ``symbol`` names the symbol of tables without a symbol column; ``time_unit`` the unit of
    epoch time columns whose name carries none (``auto``: ms/µs/ns by magnitude);
    ``interval`` that of kline tables with neither ``close_time`` nor ``interval``. Tables with
    a receive-time column use it, others get ``ts_recv = ts_event + recv_latency_ns``.
    Returns the ``ImportReport``; the manifest meta also gets ``sqlzst`` (tables found, how they
    were mapped, whether the dump order had to change).
    """
    if time_unit not in TIME_UNITS:
        raise ConfigError(f"unknown time unit {time_unit!r} (expected one of {', '.join(TIME_UNITS)})")
    paths = _paths(files)
    opts = Options(symbol, market, time_unit, interval, recv_latency_ns)
    model = _constant(recv_latency_ns)
    with _Session(Path(out), model, skip_bad, writer_factory, [(p, "sqlzst") for p in paths]) as s:
        sorter = ExternalSorter(spill_events)
        tables: list[dict[str, Any]] = []
        try:
            for path in paths:
                reader = DumpReader(opts)
                _read_dump(s, path, reader, sorter)
                tables.extend(
                    {"dump": str(path), **t.to_json(), "rows": reader.rows[t.name]}
                    for t in reader.tables.values()
                )
                s.ignored.update(reader.ignored)
            s.append(sorter.merged())
        finally:
            sorter.close()
        if any("ts_recv" in t["mapping"] for t in tables if t["kind"]):
            s.ts_recv_model = {
                **model,
                "recorded_tables": sorted(t["table"] for t in tables if "ts_recv" in t["mapping"]),
            }
        update = getattr(s.writer, "update_meta", None)
        if callable(update):
            update(
                {
                    "sqlzst": {
                        "tables": tables,
                        "reordered": sorter.out_of_order > 0,
                        "out_of_order": sorter.out_of_order,
                        "sort_runs": sorter.runs,
                    }
                }
            )
    assert s.report is not None
    return s.report


def _read_dump(s: _Session, path: str | Path, reader: DumpReader, sorter: ExternalSorter) -> None:
    src = str(path)
    counted = _Counting(open_dump(path))
    stmts = iter_statements(counted, src)
    while True:
        try:
            st = next(stmts)
        except StopIteration:
            break
        except BadRecord as exc:  # truncated/corrupt dump or bad text: ends this dump
            s.bad(exc, src, exc.line)
            break
        finally:
            s.sources[src].lines = counted.n
        try:
            sorter.add(reader.feed(st))
        except ConfigError as exc:
            raise ConfigError(f"{src}:{st.line}: statement {st.number}: {exc}") from None
        except BadRecord as exc:
            verb = " ".join(st.text.split(None, 3)[:3])
            s.bad(
                BadRecord(f"statement {st.number} ({verb}): {exc.reason}", category=exc.category),
                src,
                st.line,
            )


class _Counting:
    """Counts the lines handed out (the source's ``lines`` in the manifest)."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines
        self.n = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self._lines:
            self.n += 1
            yield line
