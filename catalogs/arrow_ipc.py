"""A pyarrow-free Arrow IPC *stream* encoder and decoder for the log's one schema.

Why: the recorder and live loop run on a riscv64 board without pyarrow, yet the log
must be plain Arrow that pyarrow, DuckDB & co. read directly. The schema is fixed
(``catalogs.schema``), so the codec only knows int64, uint8, dictionary<int32, utf8>,
list<int64> and binary columns, never nulls. Tests prove pyarrow reads our bytes and
we read pyarrow's.

Stream layout (Arrow columnar spec, "IPC streaming format"): a Schema message, then
DictionaryBatch and RecordBatch messages, then the end-of-stream marker. Each
*encapsulated message* is::

    0xFFFFFFFF | int32 metadata length L | L bytes: flatbuffer Message + zero padding | body

with ``8 + L`` and the body a multiple of 8. Body buffers are 8-aligned, padded with
zeros; validity bitmaps are zero-length (null_count 0). The encoder is a pure
function of its input, so the bytes are deterministic.

The decoder is the replay hot path: columns are ``np.frombuffer`` views into the
caller's buffer (an mmap of a segment), so reading costs one metadata parse per
batch. It trusts nothing: message framing, flatbuffer offsets, buffer bounds, list
and binary offsets, dictionary indices, event kinds and seq order are checked, and
anything wrong raises ``LogCorruptError`` naming the file and byte offset. A final
message cut short (the file ends inside it) is a *torn tail*, reported separately
(:class:`TornTailError`, or recorded when the caller allows it) because a crash
mid-write legitimately leaves one, while damage before the end never does.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from catalogs.flatbuf import (
    FlatbufferError,
    Item,
    Reader,
    Scalar,
    String,
    StructVector,
    Table,
    TableVector,
    build,
)
from catalogs.schema import COLUMN_ORDER, INT64_COLUMNS, SCHEMA_VERSION, ColumnBatch
from engine.errors import LogCorruptError, LogError
from engine.events import CLASS_OF_KIND

CONTINUATION: Final = 0xFFFFFFFF
EOS: Final = b"\xff\xff\xff\xff\x00\x00\x00\x00"
"""End-of-stream marker: a continuation token followed by a zero metadata length."""

SCHEMA_METADATA: Final = {"tickloop.schema_version": str(SCHEMA_VERSION)}
DICTIONARY_ID: Final = 0
MAX_METADATA_BYTES: Final = 1 << 20
"""Our metadata is ~2 KiB; a larger length prefix is damage, not a torn write."""

_METADATA_V4, _METADATA_V5 = 3, 4
_HEADER_SCHEMA, _HEADER_DICTIONARY, _HEADER_RECORD_BATCH = 1, 2, 3
_TYPE_INT, _TYPE_BINARY, _TYPE_UTF8, _TYPE_LIST = 2, 4, 5, 12
_HEADER_NAMES = {
    0: "NONE",
    1: "Schema",
    2: "DictionaryBatch",
    3: "RecordBatch",
    4: "Tensor",
    5: "SparseTensor",
}
_PREFIX = struct.Struct("<Ii")

_VALID_KIND = np.zeros(256, dtype=bool)
_VALID_KIND[list(CLASS_OF_KIND)] = True


class TornTailError(LogCorruptError):
    """The stream ends inside a message: what a crash mid-write leaves behind."""

    def __init__(self, source: str, offset: int, nbytes: int) -> None:
        self.source = source
        self.offset = offset
        self.nbytes = nbytes
        super().__init__(f"{source}: torn tail at offset {offset} ({nbytes} bytes of an incomplete message)")


# --------------------------------------------------------------------------- the schema


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of the schema as the codec sees it (nullability is not part of it)."""

    name: str
    type_id: int
    bit_width: int = 0
    signed: bool = False
    dictionary: bool = False
    children: tuple[FieldSpec, ...] = ()

    def describe(self) -> str:
        names = {_TYPE_INT: "int", _TYPE_BINARY: "binary", _TYPE_UTF8: "utf8", _TYPE_LIST: "list"}
        t = names.get(self.type_id, f"type#{self.type_id}")
        if self.type_id == _TYPE_INT:
            t = f"{'int' if self.signed else 'uint'}{self.bit_width}"
        if self.dictionary:
            t = f"dictionary<int32, {t}>"
        kids = ", ".join(c.describe() for c in self.children)
        return f"{self.name!r}: {t}" + (f"<{kids}>" if kids else "")


_INT64 = (_TYPE_INT, 64, True)


def _field_spec(name: str) -> FieldSpec:
    if name in INT64_COLUMNS:
        return FieldSpec(name, *_INT64)
    if name == "kind":
        return FieldSpec(name, _TYPE_INT, 8, False)
    if name == "instrument":
        return FieldSpec(name, _TYPE_UTF8, dictionary=True)
    if name in ("bids", "asks"):
        return FieldSpec(name, _TYPE_LIST, children=(FieldSpec("item", *_INT64),))
    if name == "payload":
        return FieldSpec(name, _TYPE_BINARY)
    raise AssertionError(f"column {name!r} has no Arrow type")  # pragma: no cover


SCHEMA_FIELDS: Final = tuple(_field_spec(n) for n in COLUMN_ORDER)
_N_NODES: Final = sum(1 + len(f.children) for f in SCHEMA_FIELDS)
_N_BUFFERS: Final = 2 * len(SCHEMA_FIELDS) + 2 + 2 + 1  # +2 per list child, +1 binary offsets
_LIST_COLUMNS: Final = ("bids", "asks")

# --------------------------------------------------------------------------- encoding


def _field_table(f: FieldSpec) -> Table:
    if f.type_id == _TYPE_INT:
        type_table = Table(((0, Scalar("i", f.bit_width)), (1, Scalar("?", int(f.signed)))))
    else:
        type_table = Table(())
    fields: list[tuple[int, Item]] = [
        (0, String(f.name.encode())),
        (1, Scalar("?", 0)),
        (2, Scalar("B", f.type_id)),
        (3, type_table),
    ]
    if f.dictionary:
        index_type = Table(((0, Scalar("i", 32)), (1, Scalar("?", 1))))
        fields.append((4, Table(((0, Scalar("q", DICTIONARY_ID)), (1, index_type), (2, Scalar("?", 0))))))
    fields.append((5, TableVector(tuple(_field_table(c) for c in f.children))))
    return Table(tuple(fields))


def _message(header_type: int, header: Table, body_length: int) -> bytes:
    meta = build(
        Table(
            (
                (0, Scalar("h", _METADATA_V5)),
                (1, Scalar("B", header_type)),
                (2, header),
                (3, Scalar("q", body_length)),
            )
        )
    )
    pad = -len(meta) % 8
    return _PREFIX.pack(CONTINUATION, len(meta) + pad) + meta + bytes(pad)


def encode_schema() -> bytes:
    """The stream's first message: our schema with its custom metadata."""
    kv = tuple(
        Table(((0, String(k.encode())), (1, String(v.encode())))) for k, v in sorted(SCHEMA_METADATA.items())
    )
    schema = Table(
        (
            (0, Scalar("h", 0)),  # little endian
            (1, TableVector(tuple(_field_table(f) for f in SCHEMA_FIELDS))),
            (2, TableVector(kv)),
        )
    )
    return _message(_HEADER_SCHEMA, schema, 0)


class _Body:
    """Accumulates body buffers, each padded to 8 bytes, and their (offset, length)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.buffers: list[int] = []  # flat offset, length pairs
        self.nodes: list[int] = []  # flat length, null_count pairs

    def node(self, length: int) -> None:
        self.nodes += (length, 0)

    def add(self, data: bytes) -> None:
        n = len(data)
        self.buffers += (self.size, n)
        if n:
            pad = -n % 8
            self.parts.append(data + bytes(pad) if pad else data)
            self.size += n + pad

    def record_batch(self, length: int) -> Table:
        nodes = np.asarray(self.nodes, dtype="<i8").tobytes()
        buffers = np.asarray(self.buffers, dtype="<i8").tobytes()
        return Table(
            (
                (0, Scalar("q", length)),
                (1, StructVector(len(self.nodes) // 2, nodes)),
                (2, StructVector(len(self.buffers) // 2, buffers)),
            )
        )

    def message(self, header_type: int, header: Table) -> bytes:
        return _message(header_type, header, self.size) + b"".join(self.parts)


def _le(arr: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(arr, dtype=dtype).tobytes()


def _add_varlen(body: _Body, length: int, offsets: np.ndarray) -> tuple[int, int]:
    """Node, empty validity and int32 offsets rebased to 0; returns the (start, stop) of the values used."""
    body.node(length)
    body.add(b"")
    start, stop = int(offsets[0]), int(offsets[-1])
    body.add(_le(offsets - start if start else offsets, "<i4"))
    return start, stop


def _dictionary_message(values: list[str], *, delta: bool) -> bytes:
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype="<i4")
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    body = _Body()
    _add_varlen(body, len(encoded), offsets)
    body.add(b"".join(encoded))
    header = Table(
        (
            (0, Scalar("q", DICTIONARY_ID)),
            (1, body.record_batch(len(encoded))),
            (2, Scalar("?", int(delta))),
        )
    )
    return body.message(_HEADER_DICTIONARY, header)


def _check_encodable(batch: ColumnBatch, known_dict_len: int) -> None:
    n = batch.length
    bad: list[str] = []
    for name in INT64_COLUMNS:
        if batch.ints[name].shape != (n,):
            bad.append(name)
    if batch.kind.shape != (n,) or batch.instrument.shape != (n,):
        bad.append("kind/instrument")
    for name, offs in (
        ("bids", batch.bids_offsets),
        ("asks", batch.asks_offsets),
        ("payload", batch.payload_offsets),
    ):
        if offs.shape != (n + 1,) or (n and np.any(offs[1:] < offs[:-1])) or int(offs[0]) < 0:
            bad.append(f"{name} offsets")
    if bad:
        raise LogError(f"cannot encode a {n}-row batch: malformed column(s) {', '.join(bad)}")
    if int(batch.bids_offsets[-1]) > len(batch.bids_values) or int(batch.asks_offsets[-1]) > len(
        batch.asks_values
    ):
        raise LogError("cannot encode batch: list offsets point past the values")
    if int(batch.payload_offsets[-1]) > len(batch.payload_data):
        raise LogError("cannot encode batch: payload offsets point past the data")
    if known_dict_len > len(batch.instrument_dict):
        raise LogError(
            f"dictionary shrank: {known_dict_len} entries already written, batch has {len(batch.instrument_dict)}"
        )
    if n and (int(batch.instrument.min()) < 0 or int(batch.instrument.max()) >= len(batch.instrument_dict)):
        raise LogError("cannot encode batch: instrument index outside its dictionary")


def encode_batch(batch: ColumnBatch, known_dict_len: int) -> bytes:
    """The messages for one batch: a DictionaryBatch when it brings new instruments, then the RecordBatch.

    ``known_dict_len`` is how many dictionary entries this stream already carries:
    0 means none yet (the first dictionary message is a full, non-delta one),
    otherwise only ``batch.instrument_dict[known_dict_len:]`` is sent, as a delta.
    """
    _check_encodable(batch, known_dict_len)
    out: list[bytes] = []
    new = batch.instrument_dict[known_dict_len:]
    if new:
        out.append(_dictionary_message(new, delta=known_dict_len > 0))
    n = batch.length
    body = _Body()
    for name in COLUMN_ORDER:
        if name in _LIST_COLUMNS:
            offs, vals = (
                (batch.bids_offsets, batch.bids_values)
                if name == "bids"
                else (batch.asks_offsets, batch.asks_values)
            )
            start, stop = _add_varlen(body, n, offs)
            body.node(stop - start)
            body.add(b"")
            body.add(_le(vals[start:stop], "<i8"))
        elif name == "payload":
            start, stop = _add_varlen(body, n, batch.payload_offsets)
            body.add(bytes(batch.payload_data[start:stop]))
        else:
            body.node(n)
            body.add(b"")
            if name == "kind":
                body.add(_le(batch.kind, "u1"))
            elif name == "instrument":
                body.add(_le(batch.instrument, "<i4"))
            else:
                body.add(_le(batch.ints[name], "<i8"))
    out.append(body.message(_HEADER_RECORD_BATCH, body.record_batch(n)))
    return b"".join(out)


_OUR_SCHEMA_MESSAGE: Final = encode_schema()

# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True, slots=True)
class StreamScan:
    """What the framing of a stream says, without decoding batches.

    ``end`` is the offset just past the last complete message (the EOS marker
    included when present); ``torn_bytes`` counts the bytes after it that start a
    message the stream ends inside of (0 when the stream ends cleanly).
    """

    end: int
    eos: bool
    torn_bytes: int
    messages: int


@dataclass(frozen=True, slots=True)
class _Frame:
    offset: int
    header_type: int
    reader: Reader
    header: int  # position of the header table in the reader (-1 for EOS)
    body: int  # absolute offset of the body
    body_length: int
    end: int


class StreamDecoder:
    """Walks one Arrow IPC stream held in ``buf`` (bytes, memoryview or mmap).

    ``source`` names the stream in errors (a segment path). ``prev_seq`` is the
    last seq before this stream (the previous segment's), so seq order is checked
    across segments too. After :meth:`batches` (or :meth:`scan`) returns, ``torn``
    holds the ``(offset, nbytes)`` of a torn tail it stopped at, ``eos`` whether it
    met the end-of-stream marker, ``end`` the offset after the last complete message
    and ``last_seq`` the highest seq it yielded.
    """

    def __init__(self, buf: bytes | memoryview | object, source: str, *, prev_seq: int = 0) -> None:
        self._mv = memoryview(buf)  # type: ignore[arg-type]
        if self._mv.ndim != 1 or self._mv.itemsize != 1:
            self._mv = self._mv.cast("B")
        self._n = len(self._mv)
        self._u8 = np.frombuffer(self._mv, dtype=np.uint8)  # columns are views sliced from this one
        self.source = source
        self.last_seq = prev_seq
        self.torn: tuple[int, int] | None = None
        self.eos = False
        self.end = 0
        self._dict: list[str] = []
        self._dict_id: int | None = None

    def _corrupt(self, offset: int, what: str) -> LogCorruptError:
        return LogCorruptError(f"{self.source}: byte {offset}: {what}")

    # ------------------------------------------------------------------ framing

    def _frame(self, pos: int) -> _Frame | int:
        """The complete message at ``pos``; an int (bytes present) when the stream ends inside it."""
        rem = self._n - pos
        if rem < 8:
            head = bytes(self._mv[pos : pos + min(rem, 4)])
            if head != b"\xff" * len(head):
                raise self._corrupt(pos, f"expected a continuation marker, found {head.hex()}")
            return rem
        marker, meta_len = _PREFIX.unpack_from(self._mv, pos)
        if marker != CONTINUATION:
            raise self._corrupt(pos, f"expected continuation marker 0xFFFFFFFF, found {marker:#010x}")
        if meta_len == 0:
            return _Frame(pos, 0, Reader(b""), -1, pos + 8, 0, pos + 8)
        if meta_len < 0 or meta_len % 8 or meta_len > MAX_METADATA_BYTES:
            raise self._corrupt(pos, f"invalid metadata length {meta_len}")
        if meta_len > rem - 8:
            return rem
        reader = Reader(self._mv[pos + 8 : pos + 8 + meta_len])
        try:
            msg = reader.root()
            version = reader.scalar(msg, 0, "h", 0)
            header_type = reader.scalar(msg, 1, "B", 0)
            header = reader.table(msg, 2)
            body_length = reader.scalar(msg, 3, "q", 0)
        except FlatbufferError as exc:
            raise self._corrupt(pos, f"bad message metadata: {exc}") from exc
        if version not in (_METADATA_V4, _METADATA_V5):
            raise self._corrupt(pos, f"unsupported metadata version {version}")
        if header is None or header_type not in (_HEADER_SCHEMA, _HEADER_DICTIONARY, _HEADER_RECORD_BATCH):
            raise self._corrupt(pos, f"unexpected message type {_HEADER_NAMES.get(header_type, header_type)}")
        if body_length < 0 or body_length % 8:
            raise self._corrupt(pos, f"invalid body length {body_length}")
        body = pos + 8 + meta_len
        if body_length > self._n - body:
            return rem
        return _Frame(pos, header_type, reader, header, body, body_length, body + body_length)

    def _frames(self) -> Iterator[_Frame]:
        """Complete data messages in order; records EOS (``eos``), a torn tail (``torn``) and ``end``."""
        pos = 0
        while pos < self._n:
            frame = self._frame(pos)
            if isinstance(frame, int):
                self.torn = (pos, frame)
                return
            self.end = frame.end
            if frame.header_type == 0:
                if frame.end != self._n:
                    raise self._corrupt(
                        frame.end, f"{self._n - frame.end} bytes after the end-of-stream marker"
                    )
                self.eos = True
                return
            yield frame
            pos = frame.end

    def scan(self) -> StreamScan:
        """Walk the message framing only (cheap): where complete messages end, EOS, torn bytes."""
        count = 0
        for frame in self._frames():
            if count == 0 and frame.header_type != _HEADER_SCHEMA:
                raise self._corrupt(0, "stream does not start with a Schema message")
            count += 1
        torn = self.torn[1] if self.torn else 0
        return StreamScan(end=self.end, eos=self.eos, torn_bytes=torn, messages=count + self.eos)

    # ------------------------------------------------------------------ decoding

    def batches(self, *, allow_torn: bool = True) -> Iterator[ColumnBatch]:
        """Decode and validate every message; yield the record batches as zero-copy views.

        A torn tail ends the iteration (``self.torn`` set) when ``allow_torn``,
        else raises :class:`TornTailError`.
        """
        first = True
        for frame in self._frames():
            if first != (frame.header_type == _HEADER_SCHEMA):
                what = "does not start with a Schema message" if first else "has a second Schema message"
                raise self._corrupt(frame.offset, f"stream {what}")
            batch = self._decode(frame)
            first = False
            if batch is not None:
                yield batch
        if self.torn is not None and not allow_torn:
            raise TornTailError(self.source, *self.torn)

    def _decode(self, frame: _Frame) -> ColumnBatch | None:
        """Apply one message: check the schema, update the dictionary, or decode a record batch."""
        try:
            if frame.header_type == _HEADER_SCHEMA:
                self._check_schema(frame)
            elif frame.header_type == _HEADER_DICTIONARY:
                self._read_dictionary(frame)
            else:
                return self._read_batch(frame)
        except FlatbufferError as exc:
            raise self._corrupt(frame.offset, f"bad message metadata: {exc}") from exc
        return None

    def _check_schema(self, frame: _Frame) -> None:
        if self._mv[frame.offset : frame.end] == _OUR_SCHEMA_MESSAGE:
            self._dict_id = DICTIONARY_ID  # byte-identical to what we write: nothing to parse
            return
        r, schema = frame.reader, frame.header
        if r.scalar(schema, 0, "h", 0) != 0:
            raise self._corrupt(frame.offset, "big-endian streams are not supported")
        vec = r.vector(schema, 1, 4)
        found = (
            tuple(self._parse_field(r, r.vector_table(vec[0], i), 0) for i in range(vec[1])) if vec else ()
        )
        if found != SCHEMA_FIELDS:
            pairs = enumerate(zip(SCHEMA_FIELDS, found, strict=False))
            diff = next(
                (
                    f"field {i}: expected {a.describe()}, found {b.describe()}"
                    for i, (a, b) in pairs
                    if a != b
                ),
                f"expected {len(SCHEMA_FIELDS)} fields, found {len(found)}",
            )
            raise self._corrupt(frame.offset, f"schema is not tickloop's schema v{SCHEMA_VERSION}: {diff}")
        metadata = self._key_values(r, schema, 2)
        for key, value in SCHEMA_METADATA.items():
            if metadata.get(key) != value:
                raise self._corrupt(
                    frame.offset, f"schema metadata {key}={metadata.get(key)!r}, expected {value!r}"
                )
        if frame.body_length:
            raise self._corrupt(frame.offset, "Schema message with a body")

    def _key_values(self, r: Reader, table: int, slot: int) -> dict[str, str]:
        vec = r.vector(table, slot, 4)
        out: dict[str, str] = {}
        for i in range(vec[1] if vec else 0):
            kv = r.vector_table(vec[0], i)  # type: ignore[index]
            key, value = r.string(kv, 0) or b"", r.string(kv, 1) or b""
            out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        return out

    def _parse_field(self, r: Reader, field: int, depth: int) -> FieldSpec:
        name = (r.string(field, 0) or b"").decode("utf-8", "replace")
        type_id = r.scalar(field, 2, "B", 0)
        type_table = r.table(field, 3)
        bit_width, signed = 0, False
        if type_id == _TYPE_INT and type_table is not None:
            bit_width, signed = r.scalar(type_table, 0, "i", 0), bool(r.scalar(type_table, 1, "?", 0))
        dictionary = r.table(field, 4)
        if dictionary is not None:
            self._dict_id = r.scalar(dictionary, 0, "q", 0)
            index = r.table(dictionary, 1)
            index_type = (
                (32, 1) if index is None else (r.scalar(index, 0, "i", 0), r.scalar(index, 1, "?", 0))
            )
            if index_type != (32, 1) or r.scalar(dictionary, 2, "?", 0):
                # Not ours: make the comparison with SCHEMA_FIELDS fail and say why.
                name = f"{name} (dictionary index {index_type} or ordered flag)"
        children: tuple[FieldSpec, ...] = ()
        vec = r.vector(field, 5, 4)
        if vec and depth < 2:
            children = tuple(
                self._parse_field(r, r.vector_table(vec[0], i), depth + 1) for i in range(vec[1])
            )
        return FieldSpec(name, type_id, bit_width, signed, dictionary is not None, children)

    def _nodes_buffers(
        self, frame: _Frame, rb: int, n_nodes: int, n_buffers: int
    ) -> tuple[list[int], list[int]]:
        """Flat (length, null_count) and (absolute offset, length) lists, checked against the body."""
        r = frame.reader
        if r.field(rb, 3, 4) is not None:
            raise self._corrupt(frame.offset, "compressed record batch bodies are not supported")
        nv, bv = r.vector(rb, 1, 16), r.vector(rb, 2, 16)
        if nv is None or bv is None or nv[1] != n_nodes or bv[1] != n_buffers:
            found = (nv[1] if nv else 0, bv[1] if bv else 0)
            raise self._corrupt(
                frame.offset, f"expected {n_nodes} field nodes and {n_buffers} buffers, found {found}"
            )
        meta = frame.offset + 8  # the flatbuffer's position in the stream
        nodes = self._u8[meta + nv[0] : meta + nv[0] + 16 * n_nodes].view("<i8")
        bufs = self._u8[meta + bv[0] : meta + bv[0] + 16 * n_buffers].view("<i8").reshape(-1, 2)
        if np.any(nodes < 0) or np.any(nodes[1::2] != 0):
            raise self._corrupt(frame.offset, "negative field node length or non-zero null count")
        if np.any(bufs < 0) or np.any(bufs[:, 0] + bufs[:, 1] > frame.body_length):
            raise self._corrupt(frame.offset, f"a buffer lies outside the {frame.body_length}-byte body")
        abs_bufs = bufs.copy()
        abs_bufs[:, 0] += frame.body
        return nodes[0::2].tolist(), abs_bufs.ravel().tolist()

    def _array(
        self, frame: _Frame, bufs: list[int], bi: int, dtype: str, count: int, what: str
    ) -> np.ndarray:
        off, length = bufs[2 * bi], bufs[2 * bi + 1]
        itemsize = np.dtype(dtype).itemsize
        if length < count * itemsize:
            raise self._corrupt(
                frame.offset, f"{what}: buffer of {length} bytes for {count} values of {dtype}"
            )
        return self._u8[off : off + count * itemsize].view(dtype)

    def _offsets(
        self, frame: _Frame, bufs: list[int], bi: int, length: int, limit: int, what: str
    ) -> np.ndarray:
        if length == 0 and bufs[2 * bi + 1] == 0:
            return np.zeros(1, dtype="<i4")
        offs = self._array(frame, bufs, bi, "<i4", length + 1, f"{what} offsets")
        if offs[0] < 0 or offs[-1] > limit or (length and bool(np.any(offs[1:] < offs[:-1]))):
            raise self._corrupt(frame.offset, f"{what}: offsets not non-decreasing within 0..{limit}")
        return offs

    def _read_dictionary(self, frame: _Frame) -> None:
        r, d = frame.reader, frame.header
        dict_id, data, delta = r.scalar(d, 0, "q", 0), r.table(d, 1), bool(r.scalar(d, 2, "?", 0))
        if dict_id != self._dict_id or data is None:
            raise self._corrupt(frame.offset, f"DictionaryBatch for unknown dictionary id {dict_id}")
        n = r.scalar(data, 0, "q", 0)
        nodes, bufs = self._nodes_buffers(frame, data, 1, 3)
        if nodes[0] != n:
            raise self._corrupt(frame.offset, f"dictionary node length {nodes[0]} != batch length {n}")
        data_len = bufs[5]
        offs = self._offsets(frame, bufs, 1, n, data_len, "instrument dictionary").tolist()
        raw = self._mv[bufs[4] : bufs[4] + data_len]
        try:
            values = [bytes(raw[offs[i] : offs[i + 1]]).decode("utf-8") for i in range(n)]
        except UnicodeDecodeError as exc:
            raise self._corrupt(frame.offset, f"instrument dictionary is not UTF-8: {exc}") from exc
        self._dict = self._dict + values if delta else values

    def _read_batch(self, frame: _Frame) -> ColumnBatch:
        r, rb = frame.reader, frame.header
        n = r.scalar(rb, 0, "q", 0)
        nodes, bufs = self._nodes_buffers(frame, rb, _N_NODES, _N_BUFFERS)
        cols: dict[str, np.ndarray] = {}
        lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        payload: tuple[np.ndarray, memoryview] | None = None
        ni = bi = 0
        for field in SCHEMA_FIELDS:
            name = field.name
            if nodes[ni] != n:
                raise self._corrupt(frame.offset, f"column {name!r} has {nodes[ni]} rows, batch has {n}")
            if name in _LIST_COLUMNS:
                child_len = nodes[ni + 1]
                offs = self._offsets(frame, bufs, bi + 1, n, child_len, name)
                values = self._array(frame, bufs, bi + 3, "<i8", child_len, f"{name} values")
                lists[name] = (offs, values)
                ni, bi = ni + 2, bi + 4
                continue
            if name == "payload":
                data_len = bufs[2 * (bi + 2) + 1]
                offs = self._offsets(frame, bufs, bi + 1, n, data_len, name)
                start = bufs[2 * (bi + 2)]
                payload = (offs, self._mv[start : start + data_len])
                ni, bi = ni + 1, bi + 3
                continue
            dtype = "u1" if name == "kind" else "<i4" if name == "instrument" else "<i8"
            cols[name] = self._array(frame, bufs, bi + 1, dtype, n, name)
            ni, bi = ni + 1, bi + 2
        assert payload is not None
        return self._validated(frame, n, cols, lists, payload)

    def _validated(
        self,
        frame: _Frame,
        n: int,
        cols: dict[str, np.ndarray],
        lists: dict[str, tuple[np.ndarray, np.ndarray]],
        payload: tuple[np.ndarray, memoryview],
    ) -> ColumnBatch:
        instrument, kind, seq = cols.pop("instrument"), cols.pop("kind"), cols["seq"]
        if n:
            if int(instrument.min()) < 0 or int(instrument.max()) >= len(self._dict):
                raise self._corrupt(
                    frame.offset, f"instrument index outside the {len(self._dict)}-entry dictionary"
                )
            if not _VALID_KIND.take(kind).all():
                bad = int(kind[~_VALID_KIND[kind]][0])
                raise self._corrupt(frame.offset, f"unknown event kind {bad}")
            if int(seq[0]) <= self.last_seq or (n > 1 and not bool(np.all(seq[1:] > seq[:-1]))):
                raise self._corrupt(
                    frame.offset, f"seq not strictly increasing (previous seq {self.last_seq})"
                )
            self.last_seq = int(seq[-1])
        return ColumnBatch(
            length=n,
            ints=cols,
            kind=kind,
            instrument=instrument,
            instrument_dict=self._dict,
            bids_offsets=lists["bids"][0],
            bids_values=lists["bids"][1],
            asks_offsets=lists["asks"][0],
            asks_values=lists["asks"][1],
            payload_offsets=payload[0],
            payload_data=payload[1],
        )


def decode_stream(data: bytes | memoryview, source: str = "<stream>") -> list[ColumnBatch]:
    """Every batch of a complete stream (EOS optional); a torn tail raises. For tests and small streams."""
    decoder = StreamDecoder(data, source)
    return list(decoder.batches(allow_torn=False))
