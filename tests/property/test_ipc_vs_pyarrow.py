"""Property: our pyarrow-free IPC codec and pyarrow agree, both ways, on every event kind.

- pyarrow reads the streams we write (``pyarrow.ipc.open_stream``, full validation)
  and sees exactly the values we put in: dictionary column as strings, lists, binary.
- we read the streams pyarrow writes (``catalogs.arrow_pa``, delta dictionaries on)
  and get the same batches and events.
- a whole log written by LogWriter reads back identically through pyarrow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")

from catalogs import arrow_pa
from catalogs.arrow_ipc import EOS, decode_stream, encode_batch, encode_schema
from catalogs.log import FlushPolicy, LogWriter
from catalogs.schema import INT64_COLUMNS, BatchBuilder, ColumnBatch, iter_events
from engine.events import Event
from tests.strategies_events import event_lists, events_strategy

chunked_events = st.lists(st.lists(events_strategy(), min_size=1, max_size=10), min_size=1, max_size=4)


def _batches(chunks: list[list[Event]]) -> list[ColumnBatch]:
    builder = BatchBuilder()
    out, seq = [], 0
    for chunk in chunks:
        for event in chunk:
            seq += 1
            builder.add(event, seq)
        out.append(builder.build())
    return out


def _our_stream(batches: list[ColumnBatch]) -> bytes:
    parts, known = [encode_schema()], 0
    for batch in batches:
        parts.append(encode_batch(batch, known))
        known = len(batch.instrument_dict)
    return b"".join(parts) + EOS


def _rows(batch: ColumnBatch) -> list[dict[str, Any]]:
    """The values a reader must see, computed from the batch with plain Python."""
    rows = []
    for i in range(batch.length):
        row: dict[str, Any] = {name: int(batch.ints[name][i]) for name in INT64_COLUMNS}
        row["kind"] = int(batch.kind[i])
        row["instrument"] = batch.instrument_dict[int(batch.instrument[i])]
        row["bids"] = batch.bids_values[batch.bids_offsets[i] : batch.bids_offsets[i + 1]].tolist()
        row["asks"] = batch.asks_values[batch.asks_offsets[i] : batch.asks_offsets[i + 1]].tolist()
        row["payload"] = bytes(batch.payload_data[batch.payload_offsets[i] : batch.payload_offsets[i + 1]])
        rows.append(row)
    return rows


@settings(max_examples=60)
@given(chunks=chunked_events)
def test_pyarrow_reads_our_stream(chunks: list[list[Event]]) -> None:
    batches = _batches(chunks)
    data = _our_stream(batches)
    expected = [row for b in batches for row in _rows(b)]
    assert arrow_pa.read_rows(data) == expected
    reader = pa.ipc.open_stream(data)
    assert reader.schema.equals(arrow_pa.pa_schema(), check_metadata=True)
    for got, want in zip(reader, batches, strict=True):
        assert got.num_rows == want.length
        assert got.column("instrument").dictionary.to_pylist() == want.instrument_dict


@settings(max_examples=60)
@given(chunks=chunked_events)
def test_we_read_pyarrow_streams(chunks: list[list[Event]]) -> None:
    batches = _batches(chunks)
    decoded = decode_stream(arrow_pa.write_stream(batches), "<pyarrow>")
    assert len(decoded) == len(batches)
    for got, want in zip(decoded, batches, strict=True):
        assert _rows(got) == _rows(want)
        assert list(iter_events(got)) == list(iter_events(want))


@settings(max_examples=30)
@given(chunks=chunked_events)
def test_both_writers_agree_on_values(chunks: list[list[Event]]) -> None:
    """Bytes differ (flatbuffer layout is free), decoded values do not, whichever side decodes."""
    batches = _batches(chunks)
    ours, theirs = _our_stream(batches), arrow_pa.write_stream(batches)
    assert arrow_pa.read_rows(ours) == arrow_pa.read_rows(theirs)
    for a, b in zip(decode_stream(ours), decode_stream(theirs), strict=True):
        assert _rows(a) == _rows(b)


@settings(max_examples=25)
@given(events=event_lists(min_size=1, max_size=40), max_events=st.integers(1, 8))
def test_log_segments_are_plain_arrow(
    tmp_path_factory: pytest.TempPathFactory, events: list[Event], max_events: int
) -> None:
    path = tmp_path_factory.mktemp("log") / "log"
    policy = FlushPolicy(max_events=max_events, max_interval_ns=None, segment_max_bytes=6000, fsync=False)
    with LogWriter(path, policy=policy) as writer:
        writer.extend(events)
    rows: list[dict[str, Any]] = []
    for segment in sorted(path.glob("*.arrows")):
        rows += arrow_pa.read_rows(segment.read_bytes())
    assert [r["seq"] for r in rows] == list(range(1, len(events) + 1))
    assert [r["kind"] for r in rows] == [int(e.kind) for e in events]
    assert [r["instrument"] for r in rows] == [e.instrument for e in events]
    assert np.all(np.diff([r["seq"] for r in rows]) == 1)
