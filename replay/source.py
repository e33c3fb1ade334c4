"""The kernel's event source over an event log: ``ColumnBatch`` es as :class:`engine.ports.Chunk` s.

:class:`BatchChunk` gives the kernel what it needs without building per-row objects:
length, first/last/max ``ts_recv``, the kinds present and, per instrument, the last row of
some kinds (numpy over the columns). Only when the kernel takes the per-event path does
:meth:`BatchChunk.events` build events: trade-only chunks (the common case in trade
replays) positionally from just the columns a trade needs, anything else through the
log's own codec (``catalogs.schema.iter_events``), so both give the same objects.

Reads stream batch by batch from disk (``LogReader.batches``): a replay never holds more
than one batch of the input in memory.
"""

from __future__ import annotations

import hashlib
import itertools
import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catalogs.schema import ColumnBatch, iter_events
from engine.errors import ConfigError, LogError
from engine.events import Event, Kind, TradeReceived
from engine.identifiers import InstrumentId

if TYPE_CHECKING:
    from catalogs.log import LogReader

_TRADE = int(Kind.TRADE)
_NKINDS = 256


class BatchChunk:
    """A :class:`engine.ports.Chunk` over one log batch (zero-copy numpy columns)."""

    __slots__ = ("_batch", "_kinds", "_max_ts")

    def __init__(self, batch: ColumnBatch) -> None:
        if batch.length == 0:
            raise ValueError("a chunk holds at least one row")
        self._batch = batch
        self._kinds: frozenset[int] | None = None
        self._max_ts: int | None = None

    @property
    def batch(self) -> ColumnBatch:
        return self._batch

    def __len__(self) -> int:
        return self._batch.length

    @property
    def first_ts(self) -> int:
        return int(self._batch.ints["ts_recv"][0])

    @property
    def last_ts(self) -> int:
        return int(self._batch.ints["ts_recv"][-1])

    @property
    def max_ts(self) -> int:
        if self._max_ts is None:
            self._max_ts = int(self._batch.ints["ts_recv"].max())
        return self._max_ts

    @property
    def kinds(self) -> frozenset[int]:
        if self._kinds is None:
            kind = self._batch.kind
            first = int(kind[0])
            if first == int(kind[-1]) and bool((kind == first).all()):
                self._kinds = frozenset((first,))
            else:
                self._kinds = frozenset(np.flatnonzero(np.bincount(kind, minlength=_NKINDS)).tolist())
        return self._kinds

    def events(self) -> Iterator[Event]:
        if self.kinds == {_TRADE}:
            return self._trades()
        return iter_events(self._batch)

    def _trades(self) -> Iterator[Event]:
        """Trade rows straight from their columns (same objects as ``iter_events``)."""
        b = self._batch
        ints = b.ints
        return map(
            TradeReceived,
            ints["seq"].tolist(),
            ints["ts_event"].tolist(),
            ints["ts_recv"].tolist(),
            self._instrument_names(),
            ints["price"].tolist(),
            ints["qty"].tolist(),
            ints["id"].tolist(),
            (ints["flags"] & 1).astype(bool).tolist(),
        )

    def _instrument_names(self) -> Iterator[str] | list[str]:
        b = self._batch
        codes = b.instrument
        first = int(codes[0])
        if len(b.instrument_dict) == 1 or bool((codes == first).all()):
            return itertools.repeat(b.instrument_dict[first], b.length)
        names = b.instrument_dict
        return [names[i] for i in codes.tolist()]

    def last_by_instrument(self, kinds: frozenset[int]) -> dict[InstrumentId, Event]:
        b = self._batch
        present = self.kinds & kinds
        if not present:
            return {}
        if present == self.kinds:
            rows = None  # every row qualifies
        else:
            rows = np.flatnonzero(np.isin(b.kind, np.fromiter(present, dtype=np.uint8)))
        codes = b.instrument if rows is None else b.instrument[rows]
        first = int(codes[0])
        if bool((codes == first).all()):
            last_rows = {first: b.length - 1 if rows is None else int(rows[-1])}
        else:
            uniq, rev_index = np.unique(codes[::-1], return_index=True)
            pos = len(codes) - 1 - rev_index
            where = pos if rows is None else rows[pos]
            last_rows = dict(zip(uniq.tolist(), where.tolist(), strict=True))
        names = b.instrument_dict
        return {InstrumentId(names[code]): self._row(row) for code, row in sorted(last_rows.items())}

    def _row(self, i: int) -> Event:
        ev: Event = next(iter_events(self._batch.slice(i, i + 1)))
        return ev


# --------------------------------------------------------------------------- filtering


def take_rows(batch: ColumnBatch, rows: np.ndarray) -> ColumnBatch:
    """A new batch of the given rows (ascending indices), list and binary columns regathered."""
    rows = np.asarray(rows, dtype=np.int64)

    def gather(offsets: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts = offsets[:-1][rows].astype(np.int64)
        lens = offsets[1:][rows].astype(np.int64) - starts
        new_off = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=new_off[1:])
        idx = np.repeat(starts - new_off[:-1], lens) + np.arange(int(new_off[-1]), dtype=np.int64)
        return new_off.astype(np.int32), values[idx]

    bo, bv = gather(batch.bids_offsets, batch.bids_values)
    ao, av = gather(batch.asks_offsets, batch.asks_values)
    po, pv = gather(batch.payload_offsets, np.frombuffer(batch.payload_data, dtype=np.uint8))
    return ColumnBatch(
        length=len(rows),
        ints={k: v[rows] for k, v in batch.ints.items()},
        kind=batch.kind[rows],
        instrument=batch.instrument[rows],
        instrument_dict=batch.instrument_dict,
        bids_offsets=bo,
        bids_values=bv,
        asks_offsets=ao,
        asks_values=av,
        payload_offsets=po,
        payload_data=pv.tobytes(),
    )


def symbol_matcher(symbol: str) -> tuple[str, bool]:
    """``BTCUSDT`` matches every market of the symbol; ``BTCUSDT.SPOT`` exactly that instrument."""
    s = symbol.strip().upper()
    if not s:
        raise ConfigError("--symbol must not be empty")
    return (s, "." in s)


def _matches(name: str, wanted: tuple[str, bool]) -> bool:
    s, exact = wanted
    return name.upper() == s if exact else name.upper().rpartition(".")[0] == s


def filter_symbol(batch: ColumnBatch, wanted: tuple[str, bool]) -> ColumnBatch | None:
    """Only the rows of the wanted instrument(s); None if the batch has none."""
    codes = [i for i, name in enumerate(batch.instrument_dict) if _matches(name, wanted)]
    if not codes:
        return None
    mask = np.isin(batch.instrument, codes)
    if bool(mask.all()):
        return batch
    rows = np.flatnonzero(mask)
    return take_rows(batch, rows) if len(rows) else None


# --------------------------------------------------------------------------- logs


def open_log(path: str | Path) -> LogReader:
    """A reader over the log directory ``path``, LogError if it is not one."""
    from catalogs.log import LogReader

    p = Path(path)
    if not p.is_dir():
        raise LogError(f"{p}: not a log directory (no such directory)")
    return LogReader(p)


def log_chunks(reader: LogReader, *, symbol: str | None = None) -> Iterator[BatchChunk]:
    """The log's batches as chunks, in log order, optionally restricted to one symbol.

    Pages of the input already consumed are handed back to the OS as the replay advances
    (:class:`PageReleaser`), so peak memory is bounded by a batch, not by a segment.
    """
    wanted = symbol_matcher(symbol) if symbol is not None else None
    releaser = PageReleaser()
    for batch in reader.batches():
        releaser.release_before(batch)
        if batch.length == 0:
            continue
        if wanted is not None:
            kept = filter_symbol(batch, wanted)
            if kept is None:
                continue
            batch = kept
        yield BatchChunk(batch)


class PageReleaser:
    """Drops already-read pages of a memory-mapped segment from this process's RSS.

    The log reader yields zero-copy views into an mmap of the segment; every page touched
    stays resident until the segment is unmapped, so a 256 MB segment would cost 256 MB of
    RSS. Before a batch is used, everything in its mmap below the page holding the batch's
    first column is released with ``madvise(MADV_DONTNEED)``: for a read-only file mapping
    this only unmaps pages (a later access re-reads them from the page cache), so it is
    safe even if some old view were still alive. Best effort: a batch that is not a view
    into an mmap (pyarrow reader, in-memory batch), or a platform without ``madvise``, is
    left alone.
    """

    def __init__(self) -> None:
        self._map: mmap.mmap | None = None
        self._base = 0
        self._released = 0
        self._enabled = hasattr(mmap, "MADV_DONTNEED") and hasattr(mmap.mmap, "madvise")

    def release_before(self, batch: ColumnBatch) -> None:
        if not self._enabled:
            return
        column = batch.ints["seq"]
        mapped = _mmap_of(column)
        if mapped is None or mapped.closed:
            return
        if mapped is not self._map:
            self._map = mapped
            self._base = int(np.frombuffer(mapped, dtype=np.uint8, count=1).ctypes.data)
            self._released = 0
        offset = int(column.ctypes.data) - self._base
        upto = offset - offset % mmap.PAGESIZE
        if upto > self._released:
            mapped.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
            self._released = upto


def _mmap_of(arr: np.ndarray) -> mmap.mmap | None:
    """The mmap an array is a view into (through numpy bases and memoryviews), or None."""
    obj: object = arr
    for _ in range(8):
        if isinstance(obj, mmap.mmap):
            return obj
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
        if obj is None:
            return None
    return None


def input_digest(reader: LogReader) -> str:
    """SHA-256 over the log's per-segment SHA-256s (``name:sha`` lines, in order).

    Sealed segments use the manifest's hash; a segment not sealed yet (a log still being
    written) is hashed from its bytes now.
    """
    infos = {seg.name: seg for seg in reader.manifest.segments}
    lines = []
    for name in reader.segments:
        info = infos.get(name)
        sha = (
            info.sha256
            if info is not None and info.sealed and info.sha256
            else _file_sha256(reader.path / name)
        )
        lines.append(f"{name}:{sha}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
