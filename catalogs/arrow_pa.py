"""The same Arrow IPC streams written and read with pyarrow: the cross-check of ``arrow_ipc``.

Why it exists: our hand-built encoder is only trustworthy if the reference
implementation agrees with it both ways, so tests write batches here and read them
with ``arrow_ipc`` (and the reverse). It also documents the schema in pyarrow terms
for code that opens segments with pyarrow directly. pyarrow is imported lazily:
this module must be importable (not usable) on the riscv64 board.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from catalogs.arrow_ipc import SCHEMA_METADATA
from catalogs.schema import COLUMN_ORDER, INT64_COLUMNS, ColumnBatch
from engine.errors import LogError


def _pa() -> Any:
    import pyarrow as pa

    return pa


def pa_schema() -> Any:
    """Our schema as a ``pyarrow.Schema`` (fields non-nullable, int32 dictionary indices)."""
    pa = _pa()
    item = pa.list_(pa.field("item", pa.int64(), nullable=False))
    types = {
        "kind": pa.uint8(),
        "instrument": pa.dictionary(pa.int32(), pa.string()),
        "bids": item,
        "asks": item,
        "payload": pa.binary(),
    }
    fields = [
        pa.field(n, pa.int64() if n in INT64_COLUMNS else types[n], nullable=False) for n in COLUMN_ORDER
    ]
    return pa.schema(fields, metadata=SCHEMA_METADATA)


def to_record_batch(batch: ColumnBatch) -> Any:
    """A ``pyarrow.RecordBatch`` with exactly the batch's values."""
    pa = _pa()
    schema = pa_schema()
    n = batch.length

    def as_list(offsets: np.ndarray, values: np.ndarray) -> Any:
        typ = schema.field("bids").type
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.int64()), type=typ)

    columns: dict[str, Any] = {name: pa.array(batch.ints[name], pa.int64()) for name in INT64_COLUMNS}
    columns["kind"] = pa.array(batch.kind, pa.uint8())
    columns["instrument"] = pa.DictionaryArray.from_arrays(
        pa.array(batch.instrument, pa.int32()), pa.array(batch.instrument_dict, pa.string())
    )
    columns["bids"] = as_list(batch.bids_offsets, batch.bids_values)
    columns["asks"] = as_list(batch.asks_offsets, batch.asks_values)
    offsets = pa.py_buffer(np.ascontiguousarray(batch.payload_offsets, dtype="<i4").tobytes())
    columns["payload"] = pa.Array.from_buffers(
        pa.binary(), n, [None, offsets, pa.py_buffer(bytes(batch.payload_data))]
    )
    return pa.RecordBatch.from_arrays([columns[c] for c in COLUMN_ORDER], schema=schema)


def write_stream(batches: Iterable[ColumnBatch]) -> bytes:
    """A complete stream written by pyarrow's RecordBatchStreamWriter (delta dictionaries on)."""
    pa = _pa()
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(emit_dictionary_deltas=True)
    with pa.ipc.new_stream(sink, pa_schema(), options=options) as writer:
        for batch in batches:
            writer.write_batch(to_record_batch(batch))
    return bytes(sink.getvalue().to_pybytes())


def read_rows(data: bytes) -> list[dict[str, Any]]:
    """Every row of a stream as pyarrow decodes it (dictionary values as strings); validates fully."""
    pa = _pa()
    reader = pa.ipc.open_stream(data)
    if not reader.schema.equals(pa_schema(), check_metadata=True):
        raise LogError(f"stream schema differs from tickloop's:\n{reader.schema}")
    table = reader.read_all()
    table.validate(full=True)
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows
