"""The log's one Arrow schema and the codec between events and columns.

One wide schema serves every event kind so that a segment is a single Arrow IPC
stream and ``seq`` order is file order. Hot kinds (trades, quotes, book diffs and
snapshots) live in typed columns; every other kind is stored as the msgspec JSON
of the whole event in ``payload`` (the common columns are still filled, so
``kind``/``instrument``/time filters work on every row). Unused numeric cells are
0, never null: no validity bitmaps, so the pyarrow-free encoder stays small.

Per-kind column use (anything not listed is 0 / empty):

=============  =====================================================================
TRADE          price, qty, id=trade_id, flags bit0=buyer_maker
AGG_TRADE      price, qty, id=agg_id, first_id, last_id, flags bit0=buyer_maker
BOOK_DELTA     first_id=U, last_id=u, prev_id=pu (-1 on spot), bids, asks
BOOK_SNAPSHOT  last_id=lastUpdateId, bids, asks, flags bit0=partial
QUOTE          id=update_id, bid_price, bid_qty, ask_price, ask_qty
other kinds    payload = msgspec JSON of the event
=============  =====================================================================

``bids``/``asks`` are list<int64> of interleaved (price, qty) pairs; ``instrument``
is dictionary-encoded utf8 (int32 indices) with delta dictionaries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from engine.errors import LogCorruptError
from engine.events import (
    CLASS_OF_KIND,
    AggTradeReceived,
    AnyEvent,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    Kind,
    Level,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import InstrumentId

SCHEMA_VERSION = 1

INT64_COLUMNS: tuple[str, ...] = (
    "seq",
    "ts_event",
    "ts_recv",
    "price",
    "qty",
    "bid_price",
    "bid_qty",
    "ask_price",
    "ask_qty",
    "id",
    "first_id",
    "last_id",
    "prev_id",
    "flags",
)
"""Plain int64 columns; with ``kind`` (uint8), ``instrument`` (dictionary<int32, utf8>),
``bids``/``asks`` (list<int64>) and ``payload`` (binary) they make the schema."""

COLUMN_ORDER: tuple[str, ...] = (
    "seq",
    "ts_event",
    "ts_recv",
    "kind",
    "instrument",
    "price",
    "qty",
    "bid_price",
    "bid_qty",
    "ask_price",
    "ask_qty",
    "id",
    "first_id",
    "last_id",
    "prev_id",
    "flags",
    "bids",
    "asks",
    "payload",
)
"""Field order of the Arrow schema (what pyarrow shows)."""

_NUMERIC_AFTER_INSTRUMENT = INT64_COLUMNS[3:]
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder(AnyEvent)


@dataclass(slots=True)
class ColumnBatch:
    """One record batch as numpy arrays; what the IPC reader yields and the writer takes.

    ``instrument_dict`` is the whole dictionary known at this batch (indices in
    ``instrument`` point into it). ``bids_offsets``/``asks_offsets``/``payload_offsets``
    have ``length + 1`` entries, as in Arrow.
    """

    length: int
    ints: dict[str, np.ndarray]  # every INT64_COLUMNS entry, dtype int64
    kind: np.ndarray  # uint8
    instrument: np.ndarray  # int32 indices into instrument_dict
    instrument_dict: list[str]
    bids_offsets: np.ndarray  # int32
    bids_values: np.ndarray  # int64
    asks_offsets: np.ndarray  # int32
    asks_values: np.ndarray  # int64
    payload_offsets: np.ndarray  # int32
    payload_data: bytes | memoryview

    @property
    def seq(self) -> np.ndarray:
        return self.ints["seq"]

    def slice(self, start: int, stop: int) -> ColumnBatch:
        """Rows [start, stop) as a new batch (list/binary offsets rebased)."""
        bo = self.bids_offsets[start : stop + 1]
        ao = self.asks_offsets[start : stop + 1]
        po = self.payload_offsets[start : stop + 1]
        return ColumnBatch(
            length=stop - start,
            ints={k: v[start:stop] for k, v in self.ints.items()},
            kind=self.kind[start:stop],
            instrument=self.instrument[start:stop],
            instrument_dict=self.instrument_dict,
            bids_offsets=bo - bo[0],
            bids_values=self.bids_values[bo[0] : bo[-1]],
            asks_offsets=ao - ao[0],
            asks_values=self.asks_values[ao[0] : ao[-1]],
            payload_offsets=po - po[0],
            payload_data=bytes(self.payload_data[int(po[0]) : int(po[-1])]),
        )


def _flat(levels: Sequence[Level]) -> list[int]:
    out: list[int] = []
    for p, q in levels:
        out.append(p)
        out.append(q)
    return out


def _pairs(values: list[int]) -> tuple[Level, ...]:
    it = iter(values)
    return tuple(zip(it, it, strict=True))


class BatchBuilder:
    """Accumulates events as rows (plain Python lists) and emits a ColumnBatch.

    The writer owns seq: ``add`` takes the seq to store, whatever the event says.
    The instrument dictionary grows monotonically across batches of one stream.
    """

    def __init__(self, instrument_dict: list[str] | None = None) -> None:
        self.instrument_dict: list[str] = list(instrument_dict or [])
        self._index = {s: i for i, s in enumerate(self.instrument_dict)}
        self._reset()

    def _reset(self) -> None:
        self._ints: dict[str, list[int]] = {c: [] for c in INT64_COLUMNS}
        self._kind: list[int] = []
        self._instr: list[int] = []
        self._bids: list[int] = []
        self._bids_off: list[int] = [0]
        self._asks: list[int] = []
        self._asks_off: list[int] = [0]
        self._payload: list[bytes] = []

    def __len__(self) -> int:
        return len(self._kind)

    def _instrument_index(self, iid: str) -> int:
        idx = self._index.get(iid)
        if idx is None:
            idx = self._index[iid] = len(self.instrument_dict)
            self.instrument_dict.append(iid)
        return idx

    def add(self, event: Event, seq: int) -> None:
        row = _encode_row(event)
        ints = self._ints
        ints["seq"].append(seq)
        ints["ts_event"].append(event.ts_event)
        ints["ts_recv"].append(event.ts_recv)
        for name, value in zip(_NUMERIC_AFTER_INSTRUMENT, row[0], strict=True):
            ints[name].append(value)
        self._kind.append(int(event.kind))
        self._instr.append(self._instrument_index(event.instrument))
        self._bids.extend(row[1])
        self._bids_off.append(len(self._bids))
        self._asks.extend(row[2])
        self._asks_off.append(len(self._asks))
        self._payload.append(row[3])

    def build(self) -> ColumnBatch:
        """Return the accumulated rows as a batch and start a new one."""
        offsets = [0]
        total = 0
        for p in self._payload:
            total += len(p)
            offsets.append(total)
        batch = ColumnBatch(
            length=len(self._kind),
            ints={k: np.asarray(v, dtype=np.int64) for k, v in self._ints.items()},
            kind=np.asarray(self._kind, dtype=np.uint8),
            instrument=np.asarray(self._instr, dtype=np.int32),
            instrument_dict=list(self.instrument_dict),
            bids_offsets=np.asarray(self._bids_off, dtype=np.int32),
            bids_values=np.asarray(self._bids, dtype=np.int64),
            asks_offsets=np.asarray(self._asks_off, dtype=np.int32),
            asks_values=np.asarray(self._asks, dtype=np.int64),
            payload_offsets=np.asarray(offsets, dtype=np.int32),
            payload_data=b"".join(self._payload),
        )
        self._reset()
        return batch


_Row = tuple[tuple[int, ...], list[int], list[int], bytes]
_Z11 = (0,) * 11


def _encode_row(ev: Event) -> _Row:
    """(numeric columns price..flags, bids, asks, payload) for one event."""
    k = ev.kind
    if k is Kind.TRADE:
        assert isinstance(ev, TradeReceived)
        return ((ev.price, ev.qty, 0, 0, 0, 0, ev.trade_id, 0, 0, 0, int(ev.buyer_maker)), [], [], b"")
    if k is Kind.QUOTE:
        assert isinstance(ev, QuoteReceived)
        nums = (0, 0, ev.bid_price, ev.bid_qty, ev.ask_price, ev.ask_qty, ev.update_id, 0, 0, 0, 0)
        return (nums, [], [], b"")
    if k is Kind.BOOK_DELTA:
        assert isinstance(ev, BookDeltaReceived)
        nums = (0, 0, 0, 0, 0, 0, 0, ev.first_update_id, ev.last_update_id, ev.prev_update_id, 0)
        return (nums, _flat(ev.bids), _flat(ev.asks), b"")
    if k is Kind.BOOK_SNAPSHOT:
        assert isinstance(ev, BookSnapshotReceived)
        nums = (0, 0, 0, 0, 0, 0, 0, 0, ev.last_update_id, 0, int(ev.partial))
        return (nums, _flat(ev.bids), _flat(ev.asks), b"")
    if k is Kind.AGG_TRADE:
        assert isinstance(ev, AggTradeReceived)
        agg = (ev.price, ev.qty, 0, 0, 0, 0, ev.agg_id, ev.first_trade_id, ev.last_trade_id, 0)
        return (agg + (int(ev.buyer_maker),), [], [], b"")
    return (_Z11, [], [], _json_encoder.encode(ev))


def iter_events(batch: ColumnBatch) -> Iterator[AnyEvent]:
    """Decode a batch back into events, in row order.

    This is the replay hot path: columns are turned into Python lists once per
    batch and events are built positionally.
    """
    n = batch.length
    if n == 0:
        return
    ints = {k: v.tolist() for k, v in batch.ints.items()}
    kinds = batch.kind.tolist()
    names = batch.instrument_dict
    instr = [names[i] for i in batch.instrument.tolist()]
    seq, tse, tsr = ints["seq"], ints["ts_event"], ints["ts_recv"]
    price, qty, ident, flags = ints["price"], ints["qty"], ints["id"], ints["flags"]
    for i in range(n):
        k = kinds[i]
        if k == 1:
            yield TradeReceived(seq[i], tse[i], tsr[i], InstrumentId(instr[i]), price[i], qty[i], ident[i], flags[i] & 1 == 1)
        else:
            yield _decode_other(batch, ints, i, k, instr[i])


def _levels(offsets: np.ndarray, values: np.ndarray, i: int) -> tuple[Level, ...]:
    return _pairs(values[int(offsets[i]) : int(offsets[i + 1])].tolist())


def _decode_other(batch: ColumnBatch, ints: dict[str, list[int]], i: int, k: int, iid: str) -> AnyEvent:
    seq, tse, tsr = ints["seq"][i], ints["ts_event"][i], ints["ts_recv"][i]
    inst = InstrumentId(iid)
    if k == Kind.QUOTE:
        return QuoteReceived(
            seq, tse, tsr, inst, ints["id"][i],
            ints["bid_price"][i], ints["bid_qty"][i], ints["ask_price"][i], ints["ask_qty"][i],
        )
    if k == Kind.BOOK_DELTA:
        bids = _levels(batch.bids_offsets, batch.bids_values, i)
        asks = _levels(batch.asks_offsets, batch.asks_values, i)
        return BookDeltaReceived(
            seq, tse, tsr, inst, ints["first_id"][i], ints["last_id"][i], ints["prev_id"][i], bids, asks
        )
    if k == Kind.BOOK_SNAPSHOT:
        bids = _levels(batch.bids_offsets, batch.bids_values, i)
        asks = _levels(batch.asks_offsets, batch.asks_values, i)
        return BookSnapshotReceived(seq, tse, tsr, inst, ints["last_id"][i], bids, asks, ints["flags"][i] & 1 == 1)
    if k == Kind.AGG_TRADE:
        return AggTradeReceived(
            seq, tse, tsr, inst, ints["price"][i], ints["qty"][i], ints["id"][i],
            ints["first_id"][i], ints["last_id"][i], ints["flags"][i] & 1 == 1,
        )
    if k not in CLASS_OF_KIND:
        raise LogCorruptError(f"unknown event kind {k} at seq {seq}")
    start, stop = int(batch.payload_offsets[i]), int(batch.payload_offsets[i + 1])
    try:
        ev: AnyEvent = _json_decoder.decode(bytes(batch.payload_data[start:stop]))
    except msgspec.DecodeError as exc:
        raise LogCorruptError(f"undecodable payload of kind {k} at seq {seq}: {exc}") from exc
    return msgspec.structs.replace(ev, seq=seq)
