"""Training sets from an event log: vectorised features + triple-barrier labels -> Parquet.

``build_dataset(src, specs, label, sample)`` reads an event log directory once, streaming
batch by batch (or a Parquet catalog, :func:`read_catalog`, into the same tables): trades
and quotes of each instrument are gathered as int64 columns with numpy; book events are
decoded and replayed through ``engine.booksync.BookSync`` (the same synchronisation the
kernel runs for a strategy that subscribes to books), keeping the top
levels after each change exactly where the kernel would call ``on_book``. The columns go
through ``strategies.features.spec.compute_features`` (the vectorised twin of the
``FeatureSet`` a strategy updates), so every row equals what the ``model`` strategy sees at
that trade, bit for bit.

Rows are trades, optionally thinned (``--sample``): ``every-trade``; ``Ntrades`` keeps
every N-th trade; ``D`` (a duration such as ``5s``) keeps the last trade of each D-long
bucket of trade time. Labels are ``strategies.labels.triple_barrier`` on the instrument's
whole trade series (clocked ``ts_event``, last trade price), long side: +1 take profit
first, -1 stop first, 0 time limit. Dropped and counted: warm-up rows (any NaN feature) and
censored rows (a 0 whose horizon runs past the last trade: unknown, not flat).

Output columns: ``ts`` (int64 ns, the trade's venue time), ``symbol`` (instrument id),
``price`` (int64 e8), one float64 column per feature, ``label`` (int8), ``label_ts`` (int64
ns, when the barrier was touched, for purging). The Parquet schema metadata holds
``tickloop.dataset`` (JSON: features, columns, label, sample, source, source digest, counts,
code version) and ``tickloop.feature_spec`` (the canonical spec string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from catalogs.schema import ColumnBatch, iter_events
from engine.booksync import BookSync
from engine.errors import ConfigError, InputError
from engine.events import BookDeltaReceived, BookSnapshotReceived, Kind
from strategies.features.spec import (
    FeatureSpec,
    MarketTable,
    TableBuilder,
    book_depth,
    columns_of,
    compute_features,
    parse_duration,
    specs_text,
)
from strategies.labels import censored, triple_barrier

Progress = Callable[[str], None]
DATASET_KEY = "tickloop.dataset"
SPEC_KEY = "tickloop.feature_spec"
_TRADE, _QUOTE = int(Kind.TRADE), int(Kind.QUOTE)
_BOOK = np.array([Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT, Kind.BOOK_GAP], dtype=np.uint8)


def _quiet(_msg: str) -> None:
    """The default progress sink: says nothing."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """``triple-barrier:TP_BPS,SL_BPS,HORIZON``: barriers in basis points, horizon a duration."""

    text: str
    tp_bps: float
    sl_bps: float
    horizon_ns: int


def parse_label(text: str) -> LabelSpec:
    """``"triple-barrier:20,20,60s"`` -> LabelSpec; ConfigError naming the bad part."""
    kind, colon, args = text.strip().partition(":")
    if kind.strip() != "triple-barrier" or not colon:
        raise ConfigError(f"bad label {text!r}: expected triple-barrier:TP_BPS,SL_BPS,HORIZON (e.g. 20,20,60s)")
    parts = [p.strip() for p in args.split(",")]
    if len(parts) != 3:
        raise ConfigError(f"bad label {text!r}: expected three values TP_BPS,SL_BPS,HORIZON, got {len(parts)}")
    bps = []
    for name, p in zip(("TP_BPS", "SL_BPS"), parts[:2], strict=True):
        try:
            v = float(p)
        except ValueError:
            raise ConfigError(f"bad label {text!r}: {name} {p!r} is not a number") from None
        if not 0.0 < v < 10_000.0:
            raise ConfigError(f"bad label {text!r}: {name} must be in (0, 10000) bps, got {p!r}")
        bps.append(v)
    horizon = parse_duration(parts[2], what=f"horizon in label {text!r}")
    canonical = f"triple-barrier:{parts[0]},{parts[1]},{parts[2]}"
    return LabelSpec(canonical, bps[0], bps[1], horizon)


@dataclass(frozen=True, slots=True)
class SampleSpec:
    """Which trades become rows: all, every ``every``-th, or the last of each ``bucket_ns``."""

    text: str
    every: int = 1
    bucket_ns: int = 0

    def rows(self, ts: np.ndarray) -> np.ndarray:
        """Indices of the sampled trades (ts: the clocked trade times)."""
        n = len(ts)
        if self.bucket_ns:
            b = ts // self.bucket_ns
            return np.flatnonzero(np.append(b[1:] != b[:-1], True)) if n else np.zeros(0, np.int64)
        return np.arange(self.every - 1, n, self.every, dtype=np.int64)


_NTRADES = re.compile(r"^([0-9]+)\s*trades?$")


def parse_sample(text: str) -> SampleSpec:
    """``every-trade``, ``Ntrades`` (``100trades``) or a duration (``5s``); ConfigError otherwise."""
    t = text.strip().lower()
    if t in ("every-trade", "trade", "1trade", "1trades"):
        return SampleSpec("every-trade")
    m = _NTRADES.match(t)
    if m is not None:
        n = int(m.group(1))
        if n < 1:
            raise ConfigError(f"bad --sample {text!r}: the trade count must be >= 1")
        return SampleSpec(f"{n}trades", every=n)
    try:
        ns = parse_duration(t, what="--sample")
    except ConfigError:
        raise ConfigError(f"bad --sample {text!r}: expected every-trade, Ntrades (e.g. 10trades) or a duration (e.g. 5s)") from None
    return SampleSpec(t, bucket_ns=ns)


# --------------------------------------------------------------------------- reading the log


@dataclass(slots=True)
class _Instrument:
    trades: list[np.ndarray] = field(default_factory=list)
    quotes: list[np.ndarray] = field(default_factory=list)
    book: TableBuilder | None = None
    sync: BookSync | None = None


@dataclass(frozen=True, slots=True)
class SourceData:
    """Per instrument, its market table; plus the source's identity."""

    tables: dict[str, MarketTable]
    digest: str
    events: int


def read_log(
    src: str | Path, *, symbol: str | None, depth: int, progress: Progress = _quiet
) -> SourceData:
    """Every instrument's trades, quotes and (``depth`` > 0) book states from the log at ``src``."""
    from replay.source import filter_symbol, input_digest, open_log, symbol_matcher

    wanted = symbol_matcher(symbol) if symbol is not None else None
    acc: dict[str, _Instrument] = {}
    events = 0
    reader = open_log(src)
    with reader:
        digest = input_digest(reader)
        for batch in reader.batches():
            events += batch.length
            kept = filter_symbol(batch, wanted) if wanted is not None and batch.length else batch
            if kept is not None and kept.length:
                _absorb(kept, acc, depth)
            if events % 500_000 < batch.length:
                progress(f"read {events:,} events")
    progress(f"read {events:,} events from {src}")
    tables = {name: _table(a, depth) for name, a in sorted(acc.items())}
    return SourceData(tables, digest, events)


def _absorb(batch: ColumnBatch, acc: dict[str, _Instrument], depth: int) -> None:
    """Add one batch's trades, quotes and book changes to the per-instrument accumulators."""
    ints, kind, codes = batch.ints, batch.kind, batch.instrument
    for code in np.unique(codes).tolist():
        name = batch.instrument_dict[code]
        mine = codes == code
        a = acc.setdefault(name, _Instrument())
        rows = np.flatnonzero(mine & (kind == _TRADE))
        if len(rows):
            a.trades.append(np.stack([ints["seq"][rows], ints["ts_event"][rows], ints["price"][rows],
                                      ints["qty"][rows], ints["flags"][rows] & 1]))  # fmt: skip
        rows = np.flatnonzero(mine & (kind == _QUOTE))
        if len(rows):
            a.quotes.append(np.stack([ints["seq"][rows], ints["bid_price"][rows], ints["bid_qty"][rows],
                                      ints["ask_price"][rows], ints["ask_qty"][rows]]))  # fmt: skip
        if depth:
            rows = np.flatnonzero(mine & np.isin(kind, _BOOK))
            if len(rows):
                _replay_book(batch, rows, a, depth)


def _replay_book(batch: ColumnBatch, rows: np.ndarray, a: _Instrument, depth: int) -> None:
    """Book events through BookSync; the top levels after each change, as the kernel's on_book sees them."""
    from replay.source import take_rows

    if a.book is None:
        a.book = TableBuilder(depth)
    for ev in iter_events(take_rows(batch, rows)):
        if a.sync is None:
            a.sync = BookSync.for_instrument(ev.instrument)
        sync = a.sync
        before = sync.last_update_id
        sync.on_event(ev)
        if sync.synced and sync.last_update_id != before and isinstance(ev, BookDeltaReceived | BookSnapshotReceived):
            bids, asks = sync.book.top(depth)
            a.book.add_book(ev.seq, bids, asks)


def _table(a: _Instrument, depth: int) -> MarketTable:
    empty = TableBuilder(depth).build()
    t = np.concatenate(a.trades, axis=1) if a.trades else np.zeros((5, 0), np.int64)
    q = np.concatenate(a.quotes, axis=1) if a.quotes else np.zeros((5, 0), np.int64)
    b = a.book.build() if a.book is not None else empty
    return MarketTable(
        trade_pos=t[0], trade_ts=t[1], trade_price=t[2], trade_qty=t[3], trade_buyer_maker=t[4] != 0,
        quote_pos=q[0], quote_bid_price=q[1], quote_bid_qty=q[2], quote_ask_price=q[3], quote_ask_qty=q[4],
        book_pos=b.book_pos, book_bid_qty=b.book_bid_qty, book_ask_qty=b.book_ask_qty,
    )  # fmt: skip


# --------------------------------------------------------------------------- reading a catalog

_CATALOG_KINDS = ("trade", "quote", "book_delta", "book_snapshot", "book_gap")
_LOG_SHIFT = 1 << 40
"""Row order key in a catalog: ``log rank * 2**40 + seq`` (logs replayed one after another)."""


def read_catalog(
    catdir: str | Path, *, symbol: str | None, depth: int, progress: Progress = _quiet
) -> SourceData:
    """The same tables as :func:`read_log`, from a Parquet catalog (``tickloop catalog compact``).

    Rows keep each log's own order (``seq``); several logs are taken one after another,
    ordered by their earliest ``ts_recv`` (then log id), as if replayed in sequence. The
    source digest is the log's ``input_digest`` for a one-log catalog (so a dataset from the
    catalog equals the dataset from the log, metadata included), else the SHA-256 of the
    sorted ``log_id:digest`` lines.
    """
    import hashlib

    import pyarrow.parquet as pq

    from replay.source import symbol_matcher

    root = Path(catdir)
    logs: dict[str, Any] = json.loads((root / "catalog.json").read_text())["logs"]
    wanted = symbol_matcher(symbol) if symbol is not None else None
    files: dict[tuple[str, str], list[tuple[str, Path]]] = {}
    for log_id, info in sorted(logs.items()):
        for seg in info.get("segments", {}).values():
            for rel in seg.get("files", []):
                parts = dict(p.split("=", 1) for p in rel.split("/")[:-1] if "=" in p)
                kind, sym = parts.get("kind", ""), parts.get("symbol", "")
                if kind in _CATALOG_KINDS and (wanted is None or _symbol_matches(sym, wanted)):
                    files.setdefault((sym, kind), []).append((log_id, root / rel))
    cols: dict[tuple[str, str], dict[str, Any]] = {}
    for key, entries in sorted(files.items()):
        tables = [pq.read_table(path).append_column("log_id_", _const(pq, log_id, path)) for log_id, path in entries]
        cols[key] = _concat(tables)
    rank = _log_ranks(cols)
    acc: dict[str, _Instrument] = {}
    for (sym, kind), c in sorted(cols.items()):
        a = acc.setdefault(sym, _Instrument())
        pos = np.array([rank[i] for i in c["log_id_"]], dtype=np.int64) * _LOG_SHIFT + c["seq"]
        if kind == "trade":
            a.trades.append(np.stack([pos, c["ts_event"], c["price"], c["qty"], c["buyer_maker"].astype(np.int64)]))
        elif kind == "quote":
            a.quotes.append(np.stack([pos, c["bid_price"], c["bid_qty"], c["ask_price"], c["ask_qty"]]))
    if depth:
        for sym in sorted(acc):
            _catalog_book(sym, cols, rank, acc[sym], depth)
    for a in acc.values():  # files come per date: restore event order
        a.trades = [_sorted_cols(a.trades)] if a.trades else []
        a.quotes = [_sorted_cols(a.quotes)] if a.quotes else []
    events = sum(int(info.get("events", 0)) for info in logs.values())
    progress(f"read the catalog {root} ({len(logs)} logs)")
    if len(logs) == 1:
        digest = str(next(iter(logs.values()))["digest"])
    else:
        lines = "".join(f"{i}:{info['digest']}\n" for i, info in sorted(logs.items()))
        digest = hashlib.sha256(lines.encode()).hexdigest()
    return SourceData({n: _table(a, depth) for n, a in sorted(acc.items())}, digest, events)


def _symbol_matches(name: str, wanted: tuple[str, bool]) -> bool:
    s, exact = wanted
    return name.upper() == s if exact else name.upper().rpartition(".")[0] == s


def _const(pq: Any, value: str, path: Path) -> Any:
    import pyarrow as pa

    return pa.array([value] * pq.read_metadata(path).num_rows, pa.string())


def _concat(tables: list[Any]) -> dict[str, Any]:
    """Columns of the tables, stacked: ints as int64 numpy, lists/strings as Python lists."""
    import pyarrow as pa

    t = pa.concat_tables(tables)
    out: dict[str, Any] = {}
    for name in t.column_names:
        col = t.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_boolean(col.type):
            out[name] = col.to_numpy().astype(np.int64 if pa.types.is_integer(col.type) else bool)
        else:
            out[name] = col.to_pylist()
    return out


def _log_ranks(cols: dict[tuple[str, str], dict[str, Any]]) -> dict[str, int]:
    first: dict[str, int] = {}
    for c in cols.values():
        for log_id, ts in zip(c["log_id_"], c["ts_recv"].tolist(), strict=True):
            if ts < first.get(log_id, ts + 1):
                first[log_id] = ts
    return {log_id: r for r, log_id in enumerate(sorted(first, key=lambda i: (first[i], i)))}


def _sorted_cols(parts: list[np.ndarray]) -> np.ndarray:
    m = np.concatenate(parts, axis=1)
    return m[:, np.argsort(m[0], kind="stable")]


def _catalog_book(
    sym: str, cols: dict[tuple[str, str], dict[str, Any]], rank: dict[str, int], a: _Instrument, depth: int
) -> None:
    """Book events of one symbol in event order, replayed through BookSync (as :func:`_replay_book`)."""
    from engine.events import BookGapDetected
    from engine.identifiers import InstrumentId

    iid = InstrumentId(sym)
    rows: list[tuple[int, Any]] = []
    for kind in ("book_delta", "book_snapshot", "book_gap"):
        c = cols.get((sym, kind))
        if c is None:
            continue
        for i in range(len(c["seq"])):
            pos = rank[c["log_id_"][i]] * _LOG_SHIFT + int(c["seq"][i])
            head = (int(c["seq"][i]), int(c["ts_event"][i]), int(c["ts_recv"][i]), iid)
            if kind == "book_delta":
                ev: Any = BookDeltaReceived(*head, int(c["first_update_id"][i]), int(c["last_update_id"][i]),
                                            int(c["prev_update_id"][i]), _lv(c["bids"][i]), _lv(c["asks"][i]))  # fmt: skip
            elif kind == "book_snapshot":
                ev = BookSnapshotReceived(*head, int(c["last_update_id"][i]), _lv(c["bids"][i]), _lv(c["asks"][i]),
                                          bool(c["partial"][i]))  # fmt: skip
            else:
                ev = BookGapDetected(*head, int(c["last_update_id"][i]), int(c["next_first_update_id"][i]),
                                     str(c["reason"][i]))  # fmt: skip
            rows.append((pos, ev))
    rows.sort(key=lambda r: r[0])
    a.book = TableBuilder(depth)
    sync = BookSync.for_instrument(iid)
    for pos, ev in rows:
        before = sync.last_update_id
        sync.on_event(ev)
        if sync.synced and sync.last_update_id != before and isinstance(ev, BookDeltaReceived | BookSnapshotReceived):
            bids, asks = sync.book.top(depth)
            a.book.add_book(pos, bids, asks)


def _lv(levels: list[dict[str, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((int(d["price"]), int(d["qty"])) for d in levels)


# --------------------------------------------------------------------------- building


@dataclass(frozen=True, slots=True)
class Dataset:
    """The rows (column name -> numpy array, in output order) and how they came about."""

    columns: dict[str, np.ndarray]
    feature_columns: tuple[str, ...]
    metadata: dict[str, Any]

    @property
    def rows(self) -> int:
        return len(self.columns["ts"])


def build_dataset(
    src: str | Path,
    specs: Sequence[FeatureSpec],
    label: LabelSpec,
    sample: SampleSpec,
    *,
    symbol: str | None = None,
    progress: Progress = _quiet,
) -> Dataset:
    """Features + labels for every instrument with trades in the log ``src`` (see module doc)."""
    path = Path(src)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such directory (give an event log or a catalog directory)")
    if (path / "catalog.json").exists():
        source_kind = "catalog"
        data = read_catalog(path, symbol=symbol, depth=book_depth(specs), progress=progress)
    elif (path / "manifest.json").exists():
        source_kind = "log"
        data = read_log(path, symbol=symbol, depth=book_depth(specs), progress=progress)
    else:
        raise ConfigError(f"{path}: neither an event log (manifest.json) nor a catalog (catalog.json)")
    if not any(t.n_trades for t in data.tables.values()):
        what = f" for symbol {symbol}" if symbol else ""
        raise InputError(f"no trades{what}: a dataset row is a trade", source=str(path))
    cols = columns_of(specs)
    parts: list[dict[str, np.ndarray]] = []
    counts = {"trades": 0, "sampled": 0, "warmup_dropped": 0, "censored_dropped": 0}
    for name, table in data.tables.items():
        if table.n_trades:
            progress(f"{name}: computing {len(cols)} feature columns over {table.n_trades:,} trades")
            parts.append(_instrument_rows(name, table, specs, label, sample, counts))
    merged = _merge(parts, cols)
    labels = merged["label"]
    counts["rows"] = len(labels)
    meta = {
        "features": specs_text(specs),
        "columns": list(cols),
        "label": label.text,
        "label_side": "long",
        "sample": sample.text,
        "symbol": symbol,
        "source": str(path.resolve()),
        "source_kind": source_kind,
        "source_digest": data.digest,
        "source_events": data.events,
        "counts": counts,
        "labels": {str(v): int(np.sum(labels == v)) for v in (-1, 0, 1)},
        "code_version": _code_version(),
    }
    return Dataset(merged, cols, meta)


def _instrument_rows(
    name: str,
    table: MarketTable,
    specs: Sequence[FeatureSpec],
    label: LabelSpec,
    sample: SampleSpec,
    counts: dict[str, int],
) -> dict[str, np.ndarray]:
    from strategies.features.vectorized import clock

    feats = compute_features(specs, table)
    ts = clock(table.trade_ts)
    lab = triple_barrier(ts, table.trade_price, tp=label.tp_bps / 1e4, sl=label.sl_bps / 1e4,
                         horizon_ns=label.horizon_ns)  # fmt: skip
    rows = sample.rows(ts)
    warm = np.zeros(len(rows), dtype=bool)
    for col in feats.values():
        warm |= np.isnan(col[rows])
    cens = censored(ts, lab.label, label.horizon_ns)[rows] & ~warm
    keep = rows[~warm & ~cens]
    counts["trades"] += table.n_trades
    counts["sampled"] += len(rows)
    counts["warmup_dropped"] += int(warm.sum())
    counts["censored_dropped"] += int(cens.sum())
    out = {
        "ts": ts[keep],
        "symbol": np.full(len(keep), name, dtype=object),
        "price": table.trade_price[keep],
        **{c: v[keep] for c, v in feats.items()},
        "label": lab.label[keep].astype(np.int8),
        "label_ts": lab.t_hit[keep].astype(np.int64),
    }
    return out


def _merge(parts: list[dict[str, np.ndarray]], cols: Sequence[str]) -> dict[str, np.ndarray]:
    """Concatenate instruments and order rows by (ts, symbol) with a stable sort."""
    names = ["ts", "symbol", "price", *cols, "label", "label_ts"]
    merged = {n: np.concatenate([p[n] for p in parts]) for n in names}
    if len(parts) > 1:
        order = np.lexsort((merged["symbol"].astype(str), merged["ts"]))
        merged = {n: v[order] for n, v in merged.items()}
    return merged


def _code_version() -> str:
    from catalogs.manifest import code_version

    return code_version()


# --------------------------------------------------------------------------- writing


def write_parquet(dataset: Dataset, out: str | Path) -> Path:
    """Write the dataset as one Parquet file (needs pyarrow); metadata in the schema."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError(f"writing Parquet needs pyarrow (not installed here): {exc}") from exc
    path = Path(out)
    if path.parent and not path.parent.is_dir():
        raise ConfigError(f"--out {path}: directory {path.parent} does not exist")
    c = dataset.columns
    arrays: dict[str, Any] = {
        "ts": pa.array(c["ts"], pa.int64()),
        "symbol": pa.array(c["symbol"].astype(str).tolist(), pa.string()),
        "price": pa.array(c["price"], pa.int64()),
    }
    for name in dataset.feature_columns:
        arrays[name] = pa.array(c[name], pa.float64())
    arrays["label"] = pa.array(c["label"], pa.int8())
    arrays["label_ts"] = pa.array(c["label_ts"], pa.int64())
    meta = {
        DATASET_KEY: json.dumps(dataset.metadata, sort_keys=True, separators=(",", ":")),
        SPEC_KEY: dataset.metadata["features"],
    }
    table = pa.table(arrays).replace_schema_metadata(meta)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``tickloop.dataset`` metadata of a dataset file (needs pyarrow)."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    raw = (schema.metadata or {}).get(DATASET_KEY.encode())
    if raw is None:
        raise InputError(f"no {DATASET_KEY} metadata: not a tickloop dataset", source=str(path))
    out: dict[str, Any] = json.loads(raw)
    return out

