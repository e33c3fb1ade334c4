"""The Parquet catalog: sealed event logs compacted into typed, partitioned tables for SQL.

Layout (hive-style, so DuckDB and pyarrow.dataset read the partition keys from paths)::

    CATDIR/kind=<kind>/symbol=<SYMBOL.MARKET>/date=<YYYY-MM-DD>/<log_id>-<segment>[-<n>].parquet
    CATDIR/kind=instrument/date=<YYYY-MM-DD>/<log_id>-<segment>[-<n>].parquet   (symbol is a column)
    CATDIR/catalog.json     what was compacted: per log id its path, digest, row counts, and per
                            segment its SHA-256, rows and files (this is what makes compaction idempotent)
    CATDIR/catalog.duckdb   one VIEW per kind over the Parquet files (for the duckdb CLI and notebooks)
    CATDIR/catalog.lock     flock held while compacting (one writer at a time)

Decisions, and why:

- **One typed table per kind.** The log's wide schema (``catalogs.schema``) is right for an
  append-only log, wrong for analysis; each kind gets exactly its event's fields as columns,
  named as in ``engine.events`` (``price``, ``trade_id``, ``first_update_id``...), after the
  common ``log_id, seq, ts_event, ts_recv``. Kinds stored as JSON in the log are decoded and
  flattened the same way. ``kind``, ``symbol`` and ``date`` live only in the directory names.
- **Exact ints stay; floats only in the views.** Prices/quantities/rates are int64 e8 in
  Parquet (field metadata ``unit=e8``), never floats, so a round trip is exact. The DuckDB
  views add ``<name>_f`` DOUBLE columns (``price_f = price / 1e8``) and ``time`` (ts_event as
  a UTC TIMESTAMP, microsecond precision) for convenience; storing them would double the
  data and invite two sources of truth.
- **Book levels** are ``list<struct<price int64, qty int64>>`` (one list per side), so SQL can
  ``unnest(bids)`` and a level's price and quantity never drift apart.
- **date** is the UTC date of ``ts_event`` (venue time), as in the brief.
- **Instruments are not split by symbol** (:data:`NOT_BY_SYMBOL`): one exchangeInfo is a
  snapshot of ~1,700 symbols at one instant, and a directory per symbol meant ~1,700
  one-row files per snapshot (measured: 4-11 s to compact one 1.9 MB exchangeInfo, and
  every query paid to glob them). Their files hold ``symbol`` as a column instead; the
  ``instruments`` view looks the same as the others.
- **Streaming.** The log is read batch by batch; rows are routed to their partition and
  buffered per partition up to a byte budget, then written as a row group (zstd). At most
  :data:`MAX_OPEN_WRITERS` files are open at once; a partition whose writer was closed to
  respect that limit continues in a new part file (``-<n>``). Memory is bounded by the
  buffer budget, not by the log.
- **Idempotency.** File names are ``<log_id>-<segment>``: the log id comes from the manifest
  when it carries one (``log_id``/``uuid``), else from the SHA-256 of the first segment, so
  the same log compacted again, from any path, maps to the same names. A segment whose
  SHA-256 is already listed in catalog.json (with its files present) is skipped; otherwise
  its old files are deleted and it is rewritten (files are written as ``*.tmp`` and renamed).
  Unsealed segments (an open or crashed writer's tail) are skipped with a note.
- **Payload kinds are derived, not hand-listed.** Every event class in ``engine.events``
  gets a table from its msgspec type info: ints, bools, floats and strings (enums by value)
  become typed columns, tuples of ints/strings become lists, anything nested becomes a
  ``json`` text column. So a new event kind reaches the catalog without touching this file.
  Which payload ints are e8 amounts (and get ``_f`` view columns) is :data:`E8_FIELDS`.
- **Views for every kind**, empty ones (with the right column types) for kinds not present,
  so a query never fails just because a catalog holds no liquidations. Views: trades,
  agg_trades, book_deltas, book_snapshots, quotes, mark_prices, funding_rates, klines,
  liquidations, instruments, book_gaps, signals, timers; every other kind's view is named
  after the kind (run_started, order_filled, ...); and ``events`` (the common columns of
  every kind, with ``kind``). :func:`connect` builds the same
  views in an in-memory DuckDB each time, so ``tickloop sql`` works even after CATDIR moves.
  Note ``interval`` (klines) is an SQL keyword: quote it (``"interval"``).

pyarrow and duckdb are imported lazily: this module imports on the edge profile, and says
clearly that the catalog needs them when they are missing.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
import numpy as np

from catalogs.schema import ColumnBatch
from engine.errors import ConfigError, InputError, LogError
from engine.events import CLASS_OF_KIND, EVENT_TYPES, AnyEvent, Event, Kind

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

CATALOG_FORMAT = 1
CATALOG_JSON = "catalog.json"
CATALOG_DB = "catalog.duckdb"
MAX_OPEN_WRITERS = 32
"""Parquet files open at once while compacting one segment (file handles, writer buffers)."""
PARTITION_FLUSH_BYTES = 32 << 20
"""A partition's buffered rows are written as a row group once they reach this size."""
BUFFER_BYTES = 128 << 20
"""Total buffered bytes across partitions; beyond it the largest partitions are flushed."""
_NS_PER_DAY = 86_400 * 1_000_000_000
_EPOCH = date(1970, 1, 1)
_MISSING = "the catalog needs pyarrow and duckdb, which the edge profile does not install"

# --------------------------------------------------------------------------- table specs


@dataclass(frozen=True, slots=True)
class Column:
    """One Parquet column. ``type``: i64 | e8 | bool | str | f64 | levels.

    ``source`` names where a hot kind's value sits in a ColumnBatch (an int64 column,
    ``flag`` = bit 0 of ``flags``, or ``bids``/``asks``); empty means "decoded from the payload".
    """

    name: str
    type: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """How one kind is stored (``kind=<dir>``) and viewed (``view``)."""

    kind: Kind
    view: str
    columns: tuple[Column, ...]
    by_symbol: bool = True
    """False: partitioned by kind/date only, with ``symbol`` as a column in the files."""

    @property
    def dir(self) -> str:
        return self.kind.name.lower()

    @property
    def file_columns(self) -> tuple[Column, ...]:
        """The Parquet columns, in order (the event's fields after the common ones)."""
        symbol = () if self.by_symbol else (Column("symbol", "str"),)
        return (*COMMON, *symbol, *self.columns)

    @property
    def hot(self) -> bool:
        """True when built straight from the log's typed columns (no payload to decode)."""
        return all(c.source for c in self.columns)


def _c(name: str, type_: str, source: str = "") -> Column:
    return Column(name, type_, source)


COMMON: tuple[Column, ...] = (
    _c("log_id", "str"),
    _c("seq", "i64"),
    _c("ts_event", "i64"),
    _c("ts_recv", "i64"),
)
"""Leading columns of every table (then the event's own fields, in event order)."""

_HOT: tuple[Table, ...] = (
    Table(Kind.TRADE, "trades", (
        _c("price", "e8", "price"), _c("qty", "e8", "qty"), _c("trade_id", "i64", "id"),
        _c("buyer_maker", "bool", "flag"),
    )),
    Table(Kind.AGG_TRADE, "agg_trades", (
        _c("price", "e8", "price"), _c("qty", "e8", "qty"), _c("agg_id", "i64", "id"),
        _c("first_trade_id", "i64", "first_id"), _c("last_trade_id", "i64", "last_id"),
        _c("buyer_maker", "bool", "flag"),
    )),
    Table(Kind.BOOK_DELTA, "book_deltas", (
        _c("first_update_id", "i64", "first_id"), _c("last_update_id", "i64", "last_id"),
        _c("prev_update_id", "i64", "prev_id"), _c("bids", "levels", "bids"), _c("asks", "levels", "asks"),
    )),
    Table(Kind.BOOK_SNAPSHOT, "book_snapshots", (
        _c("last_update_id", "i64", "last_id"), _c("bids", "levels", "bids"), _c("asks", "levels", "asks"),
        _c("partial", "bool", "flag"),
    )),
    Table(Kind.QUOTE, "quotes", (
        _c("update_id", "i64", "id"), _c("bid_price", "e8", "bid_price"), _c("bid_qty", "e8", "bid_qty"),
        _c("ask_price", "e8", "ask_price"), _c("ask_qty", "e8", "ask_qty"),
    )),
)  # fmt: skip
"""Kinds stored in the log's typed columns: built straight from them, no payload to decode."""

VIEW_NAMES: dict[Kind, str] = {
    Kind.MARK_PRICE: "mark_prices",
    Kind.FUNDING_RATE: "funding_rates",
    Kind.KLINE: "klines",
    Kind.LIQUIDATION: "liquidations",
    Kind.INSTRUMENT: "instruments",
    Kind.BOOK_GAP: "book_gaps",
    Kind.SIGNAL: "signals",
    Kind.TIMER: "timers",
}
"""View names of payload kinds; any other kind's view is named after it (``order_filled``...)."""

E8_FIELDS = frozenset(
    {
        "price", "qty", "quantity", "bid_price", "bid_qty", "ask_price", "ask_qty", "mark_price",
        "index_price", "estimated_settle_price", "funding_rate", "open", "high", "low", "close", "volume",
        "quote_volume", "taker_buy_volume", "taker_buy_quote_volume", "avg_price", "filled_qty",
        "stop_price", "quote_order_qty", "iceberg_qty", "quote_qty", "cum_qty", "cum_quote", "commission",
        "trigger_price", "last_prevented_qty", "prevented_qty",
    }
)  # fmt: skip
"""Integer payload fields that are e8 amounts (they get ``<name>_f`` in the views). Every other
int (ids, ns times, counts, codes, bips) is only an int. Hot kinds declare theirs explicitly."""


def _logical_type(name: str, info: Any) -> str:
    """Catalog column type of one payload field, from msgspec's type info.

    Scalars map to typed columns (str enums by value); variable tuples of ints or strs to
    lists; anything else (nested structs, optional values, tuples of tuples) to ``json``,
    the field's msgspec JSON, so nothing is lost and DuckDB's json functions can reach in.
    """
    from msgspec import inspect as mi

    if isinstance(info, mi.BoolType):
        return "bool"
    if isinstance(info, mi.IntType):
        return "e8" if name in E8_FIELDS else "i64"
    if isinstance(info, mi.FloatType):
        return "f64"
    if isinstance(info, mi.StrType):
        return "str"
    if isinstance(info, mi.EnumType | mi.LiteralType):
        values = [m.value for m in info.cls] if not isinstance(info, mi.LiteralType) else list(info.values)
        if all(isinstance(v, str) for v in values):
            return "str"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "i64"
    if isinstance(info, mi.VarTupleType | mi.ListType):
        if isinstance(info.item_type, mi.IntType):
            return "list_i64"
        if isinstance(info.item_type, mi.StrType):
            return "list_str"
    return "json"


def _derived(cls: type[Event]) -> Table:
    """The table of a kind stored as payload: one column per event field, in field order."""
    from msgspec import inspect as mi

    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    columns = tuple(
        _c(f.name, _logical_type(f.name, f.type)) for f in info.fields if f.name not in _BASE_FIELDS
    )
    view = VIEW_NAMES.get(cls.kind, cls.kind.name.lower())
    return Table(cls.kind, view, columns, by_symbol=cls.kind not in NOT_BY_SYMBOL)


NOT_BY_SYMBOL = frozenset({Kind.INSTRUMENT})
"""Kinds written as a snapshot of every symbol at once (exchangeInfo: ~1,700 rows): partitioned by
kind/date only, since one directory per symbol would mean one tiny Parquet file per symbol."""


_BASE_FIELDS = frozenset({"seq", "ts_event", "ts_recv", "instrument"})
TABLES: dict[Kind, Table] = {t.kind: t for t in _HOT} | {
    cls.kind: _derived(cls) for cls in EVENT_TYPES if cls.kind not in {t.kind for t in _HOT}
}
"""Every event kind's table, hot ones first, the rest in ``engine.events`` order."""

_SQL_TYPES = {
    "json": "VARCHAR",
    "list_i64": "BIGINT[]",
    "list_str": "VARCHAR[]",
    "i64": "BIGINT",
    "e8": "BIGINT",
    "bool": "BOOLEAN",
    "str": "VARCHAR",
    "f64": "DOUBLE",
    "levels": "STRUCT(price BIGINT, qty BIGINT)[]",
}

# --------------------------------------------------------------------------- reports


@dataclass(frozen=True, slots=True)
class LogReport:
    """What compaction did with one log."""

    path: str
    log_id: str
    written: tuple[str, ...]
    """Segments compacted by this call."""
    unchanged: tuple[str, ...]
    """Sealed segments already in the catalog with the same SHA-256 (skipped)."""
    unsealed: tuple[str, ...]
    """Segments not sealed yet (skipped)."""
    rows: dict[str, int]
    """Rows per kind written by this call."""
    files: int


@dataclass(frozen=True, slots=True)
class CompactReport:
    """Result of :func:`compact`; ``notes`` are human-readable remarks (skipped segments)."""

    catalog: str
    logs: tuple[LogReport, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "catalog": self.catalog,
            "logs": [
                {
                    "path": r.path,
                    "log_id": r.log_id,
                    "segments_written": list(r.written),
                    "segments_unchanged": list(r.unchanged),
                    "segments_unsealed": list(r.unsealed),
                    "rows_written": r.rows,
                    "files_written": r.files,
                }
                for r in self.logs
            ],
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- optional deps


def _pyarrow() -> tuple[ModuleType, ModuleType]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ConfigError(f"{_MISSING} (pyarrow: {exc})") from exc
    return pyarrow, pyarrow.parquet


def _duckdb() -> ModuleType:
    try:
        import duckdb
    except ImportError as exc:
        raise ConfigError(f"{_MISSING} (duckdb: {exc})") from exc
    return duckdb


@functools.cache
def arrow_schema(table: Table) -> pa.Schema:
    """The Parquet/Arrow schema of one kind's table (e8 fields carry metadata ``unit=e8``)."""
    pa, _ = _pyarrow()
    fields = [
        pa.field(
            c.name,
            _arrow_type(pa, c.type),
            nullable=c.type == "json",
            metadata={"unit": "e8"} if c.type == "e8" else None,
        )
        for c in table.file_columns
    ]
    return pa.schema(fields, metadata={"tickloop.kind": table.dir, "tickloop.format": str(CATALOG_FORMAT)})


def _arrow_type(pa: Any, logical: str) -> Any:
    if logical == "levels":
        return pa.list_(
            pa.struct(
                [pa.field("price", pa.int64(), nullable=False), pa.field("qty", pa.int64(), nullable=False)]
            )
        )
    simple = {
        "i64": pa.int64(),
        "e8": pa.int64(),
        "bool": pa.bool_(),
        "str": pa.string(),
        "json": pa.string(),
        "f64": pa.float64(),
        "list_i64": pa.list_(pa.int64()),
        "list_str": pa.list_(pa.string()),
    }
    return simple[logical]


_json_encode = msgspec.json.Encoder().encode


def _python_values(logical: str, values: list[Any]) -> list[Any]:
    """Payload field values as what the Arrow column holds (enums by value, json as text)."""
    if logical == "json":
        return [None if v is None else _json_encode(v).decode() for v in values]
    if logical in ("str", "i64") and values and isinstance(values[0], Enum):
        return [v.value for v in values]
    if logical in ("list_i64", "list_str"):
        return [list(v) for v in values]
    return values


# --------------------------------------------------------------------------- batch -> typed tables


_payload_decoder = msgspec.json.Decoder(AnyEvent)


class _BatchTables:
    """Turns one ColumnBatch into per-(kind, instrument, date) Arrow tables."""

    def __init__(self, batch: ColumnBatch, log_id: str) -> None:
        self.pa, _ = _pyarrow()
        self.batch = batch
        self.log_id = log_id
        self._levels: dict[str, Any] = {}

    def partitions(self) -> Iterator[tuple[_Key, pa.Table]]:
        """Yield ((kind dir, symbol dir or None, date), table) with rows in log order within each."""
        batch = self.batch
        days = np.floor_divide(batch.ints["ts_event"], _NS_PER_DAY)
        for code in np.unique(batch.kind).tolist():
            rows = np.flatnonzero(batch.kind == code)
            table = _table_of(code)
            if table is None:
                seq = int(batch.ints["seq"][rows[0]])
                raise LogError(f"seq {seq}: unknown event kind {code} (log written by a newer tickloop?)")
            typed = self._table(table, rows)
            instr = (
                batch.instrument[rows].astype(np.int64) if table.by_symbol else np.zeros(len(rows), np.int64)
            )
            day = days[rows]
            key = instr * (int(day.max() - day.min()) + 1) + (day - day.min())
            order = np.argsort(key, kind="stable")
            sorted_key = key[order]
            starts = np.flatnonzero(np.diff(sorted_key, prepend=sorted_key[0] - 1))
            bounds = [*starts.tolist(), len(order)]
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                first = int(order[a])
                part = typed.take(self.pa.array(order[a:b])) if b - a < len(order) else typed
                symbol = _symbol_dir(batch.instrument_dict[int(instr[first])]) if table.by_symbol else None
                yield (table.dir, symbol, _day_iso(int(day[first]))), part

    def _table(self, table: Table, rows: np.ndarray) -> pa.Table:
        pa = self.pa
        ints = self.batch.ints
        schema = arrow_schema(table)
        arrays: list[Any] = [pa.repeat(pa.scalar(self.log_id), len(rows))]
        arrays += [pa.array(ints[name][rows]) for name in ("seq", "ts_event", "ts_recv")]
        if not table.by_symbol:
            names = self.batch.instrument_dict
            arrays.append(
                pa.array([names[i] for i in self.batch.instrument[rows].tolist()], type=pa.string())
            )
        if table.hot:
            arrays += [self._hot_column(c, rows) for c in table.columns]
        else:
            arrays += self._payload_columns(table, rows)
        return pa.Table.from_arrays(arrays, schema=schema)

    def _hot_column(self, column: Column, rows: np.ndarray) -> Any:
        pa = self.pa
        if column.source == "flag":
            return pa.array((self.batch.ints["flags"][rows] & 1) == 1)
        if column.source in ("bids", "asks"):
            return self._level_lists(column.source).take(pa.array(rows))
        return pa.array(self.batch.ints[column.source][rows])

    def _level_lists(self, side: str) -> Any:
        """The whole batch's bids or asks as list<struct<price, qty>> (built once per batch)."""
        if side not in self._levels:
            pa, b = self.pa, self.batch
            offsets, values = (
                (b.bids_offsets, b.bids_values) if side == "bids" else (b.asks_offsets, b.asks_values)
            )
            struct = pa.StructArray.from_arrays(
                [pa.array(values[0::2]), pa.array(values[1::2])],
                fields=[
                    pa.field("price", pa.int64(), nullable=False),
                    pa.field("qty", pa.int64(), nullable=False),
                ],
            )
            self._levels[side] = pa.ListArray.from_arrays(pa.array(offsets // 2, type=pa.int32()), struct)
        return self._levels[side]

    def _payload_columns(self, table: Table, rows: np.ndarray) -> list[Any]:
        pa, b = self.pa, self.batch
        cls = CLASS_OF_KIND[table.kind]
        offsets = b.payload_offsets
        data = memoryview(b.payload_data)
        events = []
        for i in rows.tolist():
            raw = data[int(offsets[i]) : int(offsets[i + 1])]
            try:
                ev = _payload_decoder.decode(raw)
            except msgspec.DecodeError as exc:
                raise LogError(
                    f"seq {int(b.ints['seq'][i])}: undecodable {table.dir} payload: {exc}"
                ) from exc
            if not isinstance(ev, cls):
                raise LogError(
                    f"seq {int(b.ints['seq'][i])}: kind {table.dir} but payload is {type(ev).__name__}"
                )
            events.append(ev)
        out = []
        for c in table.columns:
            values = _python_values(c.type, [getattr(ev, c.name) for ev in events])
            try:
                out.append(pa.array(values, type=_arrow_type(pa, c.type)))
            except (OverflowError, pa.ArrowException) as exc:
                first = int(b.ints["seq"][rows[0]])
                raise LogError(
                    f"{table.dir}.{c.name} in the batch from seq {first}: cannot store: {exc}"
                ) from exc
        return out


def _table_of(code: int) -> Table | None:
    try:
        return TABLES.get(Kind(code))
    except ValueError:
        return None


_SAFE_SYMBOL = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _symbol_dir(symbol: str) -> str:
    """The ``symbol=`` directory value: the id itself (``BTCUSDT.SPOT``); odd ids percent-encoded."""
    if not symbol:
        return "_"
    return symbol if _SAFE_SYMBOL.match(symbol) else quote(symbol, safe="")


def _day_iso(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


# --------------------------------------------------------------------------- partition sink

_Key = tuple[str, str | None, str]
"""A partition: (kind dir, symbol dir or None when the kind is not split by symbol, date)."""


@dataclass(slots=True)
class _Part:
    """One partition's state within one segment: buffered tables and its current file."""

    directory: Path
    pending: list[Any] = field(default_factory=list)
    pending_bytes: int = 0
    writer: Any = None
    part: int = -1
    files: list[Path] = field(default_factory=list)


class _SegmentSink:
    """Routes partition tables of one segment into Parquet files, within a memory budget.

    Files are written as ``<final>.tmp`` and renamed by :meth:`commit`; :meth:`abort`
    deletes them, so a failure never leaves half a segment visible.
    """

    def __init__(self, catdir: Path, stem: str) -> None:
        self.pa, self.pq = _pyarrow()
        self.catdir = catdir
        self.stem = stem
        self.parts: dict[_Key, _Part] = {}
        self.open: list[_Key] = []  # LRU order of open writers
        self.buffered = 0
        self.rows: dict[str, int] = {}

    def add(self, key: _Key, table: Any) -> None:
        part = self.parts.get(key)
        if part is None:
            kind, symbol, day = key
            where = self.catdir / f"kind={kind}"
            where = where / f"symbol={symbol}" if symbol is not None else where
            part = self.parts[key] = _Part(where / f"date={day}")
        part.pending.append(table)
        part.pending_bytes += table.nbytes
        self.buffered += table.nbytes
        self.rows[key[0]] = self.rows.get(key[0], 0) + table.num_rows
        if part.pending_bytes >= PARTITION_FLUSH_BYTES:
            self._flush(key)
        while self.buffered > BUFFER_BYTES:
            self._flush(max(self.parts, key=lambda k: self.parts[k].pending_bytes))

    def _flush(self, key: _Key) -> None:
        part = self.parts[key]
        if not part.pending:
            return
        if part.writer is None:
            self._open(key, part)
        elif key in self.open:
            self.open.remove(key)
            self.open.append(key)
        table = self.pa.concat_tables(part.pending)
        part.writer.write_table(table)
        self.buffered -= part.pending_bytes
        part.pending, part.pending_bytes = [], 0

    def _open(self, key: _Key, part: _Part) -> None:
        while len(self.open) >= MAX_OPEN_WRITERS:
            self._close(self.open[0])
        part.part += 1
        suffix = "" if part.part == 0 else f"-{part.part}"
        final = part.directory / f"{self.stem}{suffix}.parquet"
        part.directory.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + ".tmp")
        part.writer = self.pq.ParquetWriter(tmp, part.pending[0].schema, compression="zstd")
        part.files.append(final)
        self.open.append(key)

    def _close(self, key: _Key) -> None:
        part = self.parts[key]
        if part.writer is not None:
            part.writer.close()
            part.writer = None
        if key in self.open:
            self.open.remove(key)

    def commit(self) -> list[str]:
        """Write what is buffered, close every file, rename into place; returns relative paths."""
        for key in list(self.parts):
            self._flush(key)
            self._close(key)
        out: list[str] = []
        for part in self.parts.values():
            for final in part.files:
                os.replace(final.with_name(final.name + ".tmp"), final)
                out.append(final.relative_to(self.catdir).as_posix())
        return sorted(out)

    def abort(self) -> None:
        """Close and delete every temporary file of this segment."""
        for key, part in self.parts.items():
            try:
                self._close(key)
            except Exception:
                part.writer = None
            for final in part.files:
                final.with_name(final.name + ".tmp").unlink(missing_ok=True)


# --------------------------------------------------------------------------- catalog.json


class _State:
    """catalog.json: ``{"format": 1, "logs": {log_id: {...}}}``, saved atomically after each segment."""

    def __init__(self, catdir: Path) -> None:
        self.path = catdir / CATALOG_JSON
        self.logs: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if not isinstance(data, dict) or data.get("format") != CATALOG_FORMAT:
                    raise ValueError(f"expected an object with format {CATALOG_FORMAT}")
                self.logs = dict(data["logs"])
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"not a tickloop catalog index: {exc}", source=str(self.path)) from exc

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(
            json.dumps({"format": CATALOG_FORMAT, "logs": self.logs}, indent=2, sort_keys=True) + "\n"
        )
        os.replace(tmp, self.path)

    def current(self, catdir: Path, log_id: str, name: str, sha256: str | None) -> bool:
        """Is this segment already compacted, from the same bytes, with all its files present?"""
        seg = self.logs.get(log_id, {}).get("segments", {}).get(name)
        if seg is None or sha256 is None or seg.get("sha256") != sha256:
            return False
        return all((catdir / f).exists() for f in seg.get("files", []))

    def forget(self, catdir: Path, log_id: str, name: str) -> None:
        """Delete a segment's files (before rewriting it) and its entry."""
        seg = self.logs.get(log_id, {}).get("segments", {}).pop(name, None)
        for f in (seg or {}).get("files", []):
            (catdir / f).unlink(missing_ok=True)

    def record(self, log_id: str, path: Path, name: str, info: dict[str, Any]) -> None:
        entry = self.logs.setdefault(log_id, {"segments": {}})
        entry["path"] = str(path)
        entry["segments"][name] = info
        segs = entry["segments"]
        counts: dict[str, int] = {}
        for seg in segs.values():
            for kind, n in seg["rows"].items():
                counts[kind] = counts.get(kind, 0) + n
        entry["counts"] = dict(sorted(counts.items()))
        entry["events"] = sum(counts.values())
        entry["digest"] = hashlib.sha256(
            "".join(f"{n}:{segs[n]['sha256']}\n" for n in sorted(segs)).encode()
        ).hexdigest()


# --------------------------------------------------------------------------- compaction


def log_id_of(manifest: Any) -> str:
    """Stable id of a log: the manifest's own id if it has one, else derived from its first segment.

    Content-derived ids make "compact the same log twice" idempotent even when the log was
    moved or named by another path.
    """
    meta = getattr(manifest, "meta", None) or {}
    for key in ("log_id", "uuid", "id"):
        value = getattr(manifest, key, None) or meta.get(key)
        if isinstance(value, str) and value:
            return (
                re.sub(r"[^A-Za-z0-9_\-]", "", value)[:36] or hashlib.sha256(value.encode()).hexdigest()[:16]
            )
    segments = list(getattr(manifest, "segments", []))
    if not segments or not getattr(segments[0], "sha256", None):
        raise LogError("log has no sealed first segment to derive a catalog id from")
    first = segments[0]
    return hashlib.sha256(f"{first.name}:{first.sha256}".encode()).hexdigest()[:16]


def _segment_stem(name: str) -> str:
    return Path(name).name.split(".")[0]


def _route(batches: Iterable[ColumnBatch], sealed: Sequence[Any]) -> Iterator[tuple[Any | None, ColumnBatch]]:
    """Pair each batch with the sealed segment holding its seqs (None: an unsealed segment's)."""
    firsts = [int(s.first_seq) for s in sealed]
    for batch in batches:
        if batch.length == 0:
            continue
        first, last = int(batch.seq[0]), int(batch.seq[-1])
        i = bisect.bisect_right(firsts, first) - 1
        if i < 0 or first > int(sealed[i].last_seq):
            yield None, batch
            continue
        if last > int(sealed[i].last_seq):
            raise LogError(f"segment {sealed[i].name}: a batch spans seq {first}..{last} past its last seq")
        yield sealed[i], batch


def compact(
    logs: Sequence[str | Path],
    catalog: str | Path,
    *,
    note: Callable[[str], None] | None = None,
) -> CompactReport:
    """Compact the sealed segments of each log into the catalog, then refresh catalog.duckdb.

    ``note`` receives human-readable remarks (skipped unsealed segments) as they happen.
    """
    from catalogs.log import LogReader

    _pyarrow()
    _duckdb()
    catdir = Path(catalog)
    if catdir.exists() and not catdir.is_dir():
        raise ConfigError(f"{catdir}: the catalog must be a directory")
    catdir.mkdir(parents=True, exist_ok=True)
    with _exclusive(catdir):
        state = _State(catdir)
        notes: list[str] = []

        def say(text: str) -> None:
            notes.append(text)
            if note is not None:
                note(text)

        reports = []
        for raw in logs:
            path = Path(raw)
            if not path.is_dir():
                raise LogError(f"{path}: no such log directory")
            with LogReader(path) as reader:
                reports.append(_compact_log(reader, path.resolve(), catdir, state, say))
        state.save()  # even when nothing was written: an empty catalog is still a catalog
        refresh_database(catdir)
    return CompactReport(catalog=str(catdir), logs=tuple(reports), notes=tuple(notes))


@contextlib.contextmanager
def _exclusive(catdir: Path) -> Iterator[None]:
    """Hold ``CATDIR/catalog.lock`` (flock): two compactions at once would race on files and catalog.json."""
    fd = os.open(catdir / "catalog.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{catdir}: another compaction is writing this catalog") from None
        yield
    finally:
        os.close(fd)


def _compact_log(
    reader: Any, path: Path, catdir: Path, state: _State, say: Callable[[str], None]
) -> LogReport:
    manifest = reader.manifest
    segments = list(manifest.segments)
    sealed = [s for s in segments if s.sealed]
    sealed_names = {s.name for s in sealed}
    unsealed = tuple(name for name in reader.segments if name not in sealed_names)
    for name in unsealed:
        say(f"{path}: segment {name} is not sealed; skipped (compact again once the writer has closed it)")
    if not sealed:
        return LogReport(str(path), "", (), (), unsealed, {}, 0)
    log_id = log_id_of(manifest)
    todo = {s.name for s in sealed if not state.current(catdir, log_id, s.name, s.sha256)}
    unchanged = tuple(s.name for s in sealed if s.name not in todo)
    rows: dict[str, int] = {}
    files = 0
    if todo:
        written = _write_segments(reader, path, catdir, state, log_id, sealed, todo)
        for seg_rows, seg_files in written:
            files += seg_files
            for kind, n in seg_rows.items():
                rows[kind] = rows.get(kind, 0) + n
    written_names = tuple(s.name for s in sealed if s.name in todo)
    return LogReport(str(path), log_id, written_names, unchanged, unsealed, dict(sorted(rows.items())), files)


def _write_segments(
    reader: Any, path: Path, catdir: Path, state: _State, log_id: str, sealed: list[Any], todo: set[str]
) -> list[tuple[dict[str, int], int]]:
    """Stream the log once, writing each segment in ``todo``; returns (rows per kind, files) per segment."""
    done: list[tuple[dict[str, int], int]] = []
    current: Any = None
    sink: _SegmentSink | None = None
    events = 0
    recorded: set[str] = set()

    def finish() -> None:
        nonlocal sink
        if sink is None:
            return
        if current.events is not None and events != int(current.events):
            raise LogError(
                f"{path}: segment {current.name} holds {events} events, its manifest says {current.events}"
            )
        files = sink.commit()
        state.record(log_id, path, current.name, {
            "sha256": current.sha256, "first_seq": int(current.first_seq), "last_seq": int(current.last_seq),
            "events": events, "rows": dict(sorted(sink.rows.items())), "files": files,
        })  # fmt: skip
        state.save()
        done.append((dict(sink.rows), len(files)))
        recorded.add(current.name)
        sink = None

    try:
        # Start at the first segment to write: sealed segments before it are not even read.
        start = min(int(s.first_seq) for s in sealed if s.name in todo)
        for seg, batch in _route(reader.batches(start_seq=start), [s for s in sealed if s.events]):
            if seg is not current:
                finish()
                current, events = seg, 0
                if seg is not None and seg.name in todo:
                    state.forget(catdir, log_id, seg.name)
                    sink = _SegmentSink(catdir, f"{log_id}-{_segment_stem(seg.name)}")
            if sink is None:
                continue
            events += batch.length
            for key, table in _BatchTables(batch, log_id).partitions():
                sink.add(key, table)
        finish()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    for seg in sealed:  # sealed segments without a single batch still count as compacted
        if seg.name in todo and seg.name not in recorded:
            state.forget(catdir, log_id, seg.name)
            state.record(log_id, path, seg.name, {
                "sha256": seg.sha256, "first_seq": seg.first_seq, "last_seq": seg.last_seq,
                "events": 0, "rows": {}, "files": [],
            })  # fmt: skip
            state.save()
    return done


# --------------------------------------------------------------------------- DuckDB views


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _e8_float(name: str) -> str:
    return f"CAST({_ident(name)} AS DOUBLE) / CAST(100000000 AS DOUBLE) AS {_ident(name + '_f')}"


def _glob(table: Table) -> str:
    return f"kind={table.dir}/*/*/*.parquet" if table.by_symbol else f"kind={table.dir}/*/*.parquet"


def _read(catdir: Path, table: Table) -> str:
    """``read_parquet`` over one kind's files; partition keys typed explicitly (never guessed)."""
    path = (catdir.resolve() / _glob(table)).as_posix()
    types = "{'symbol': VARCHAR, 'date': DATE}" if table.by_symbol else "{'date': DATE}"
    return f"read_parquet({_sql_str(path)}, hive_partitioning = true, union_by_name = true, hive_types = {types})"


def view_statements(catdir: Path) -> list[str]:
    """``CREATE OR REPLACE VIEW`` statements for every kind and ``events``, over ``catdir``'s files."""
    out = []
    common = ["symbol", "date", *(c.name for c in COMMON)]
    for table in TABLES.values():
        cols = [*common, *(c.name for c in table.columns)]
        floats = [_e8_float(c.name) for c in table.columns if c.type == "e8"]
        time = "make_timestamp(ts_event // 1000) AS time"
        if any(catdir.glob(_glob(table))):
            select = ", ".join([*map(_ident, cols), time, *floats])
            body = f"SELECT {select} FROM {_read(catdir, table)}"
        else:
            typed = {"symbol": "VARCHAR", "date": "DATE"} | {
                c.name: _SQL_TYPES[c.type] for c in (*COMMON, *table.columns)
            }
            nulls = ", ".join(f"CAST(NULL AS {typed[c]}) AS {_ident(c)}" for c in cols)
            body = f"SELECT *, {', '.join([time, *floats])} FROM (SELECT {nulls} WHERE false)"
        out.append(f"CREATE OR REPLACE VIEW {_ident(table.view)} AS {body}")
    parts = [
        f"SELECT {_sql_str(t.dir)} AS kind, symbol, date, log_id, seq, ts_event, ts_recv, time FROM {_ident(t.view)}"
        for t in TABLES.values()
    ]
    out.append("CREATE OR REPLACE VIEW events AS " + " UNION ALL ".join(parts))
    return out


def views() -> list[str]:
    """Names of the views the catalog defines."""
    return [t.view for t in TABLES.values()] + ["events"]


def _require_catalog(catdir: Path) -> None:
    if not catdir.is_dir():
        raise ConfigError(f"{catdir}: no such catalog directory (build one with `tickloop catalog compact`)")
    if not (catdir / CATALOG_JSON).exists():
        raise ConfigError(
            f"{catdir}: not a catalog ({CATALOG_JSON} missing; build one with `tickloop catalog compact`)"
        )


def refresh_database(catdir: str | Path) -> Path:
    """(Re)create the views in ``CATDIR/catalog.duckdb`` (absolute paths: move the catalog, re-run this)."""
    duck = _duckdb()
    root = Path(catdir)
    db = root / CATALOG_DB
    try:
        con = duck.connect(str(db))
    except duck.Error as exc:
        raise ConfigError(f"{db}: cannot open the catalog database: {exc}") from exc
    try:
        _create_views(duck, con, root)
    finally:
        con.close()
    return db


def _create_views(duck: ModuleType, con: Any, root: Path) -> None:
    """Run :func:`view_statements`; a file DuckDB cannot read becomes an InputError naming the catalog."""
    for stmt in view_statements(root):
        try:
            con.execute(stmt)
        except duck.Error as exc:
            raise InputError(f"cannot define the catalog's views: {exc}", source=str(root)) from exc


def connect(catdir: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the catalog's views (built fresh from the files)."""
    duck = _duckdb()
    root = Path(catdir)
    _require_catalog(root)
    con: duckdb.DuckDBPyConnection = duck.connect(":memory:")
    try:
        _create_views(duck, con, root)
    except BaseException:
        con.close()
        raise
    return con


@dataclass(slots=True)
class QueryResult:
    """A running query: column names and a way to fetch rows in chunks (close when done)."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    _con: Any

    def chunks(self, size: int = 10_000) -> Iterator[list[tuple[Any, ...]]]:
        duck = _duckdb()
        while True:
            try:
                rows = self._con.fetchmany(size)
            except duck.Error as exc:
                raise ConfigError(f"SQL error: {exc}") from exc
            if not rows:
                return
            yield rows

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> QueryResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def query(catdir: str | Path, sql: str) -> QueryResult:
    """Run ``sql`` over the catalog's views; DuckDB errors become :class:`ConfigError`."""
    duck = _duckdb()
    con = connect(catdir)
    try:
        con.execute(sql)
    except duck.Error as exc:
        con.close()
        hint = ""
        if isinstance(exc, duck.CatalogException):
            hint = f" (the catalog's views: {', '.join(views())})"
        raise ConfigError(f"SQL error: {exc}{hint}") from exc
    description = con.description or []
    return QueryResult(
        columns=tuple(str(d[0]) for d in description),
        types=tuple(str(d[1]) for d in description),
        _con=con,
    )
