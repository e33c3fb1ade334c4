"""Property: whatever events go into a log come back out, in order, with seq 1..n assigned.

Covers every event kind (tests/strategies_events.py), any flush size, segment rolls
(tiny ``segment_max_bytes``), ``start_seq`` slicing, the IPC codec on its own, and
byte-for-byte determinism of the whole log directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogs.arrow_ipc import EOS, decode_stream, encode_batch, encode_schema
from catalogs.log import FlushPolicy, LogReader, LogWriter
from catalogs.schema import BatchBuilder, ColumnBatch, iter_events
from engine.events import Event, with_seq
from tests.strategies_events import event_lists, events_strategy

pytestmark = pytest.mark.edge


def _fresh(factory: pytest.TempPathFactory) -> Path:
    """A new log directory per hypothesis example (``tmp_path`` would be shared by all examples)."""
    return factory.mktemp("log") / "log"


def _write(
    path: Path, events: list[Event], policy: FlushPolicy, meta: dict[str, object] | None = None
) -> None:
    with LogWriter(path, policy=policy, meta=meta) as writer:
        for i, event in enumerate(events, start=1):
            assert writer.append(event) == i


def _expected(events: list[Event], first_seq: int = 1) -> list[Event]:
    return [with_seq(e, first_seq + i) for i, e in enumerate(events)]


policies = st.builds(
    FlushPolicy,
    max_events=st.integers(1, 9),
    max_interval_ns=st.none(),
    segment_max_bytes=st.one_of(st.just(256 * 2**20), st.integers(1, 8000)),
    fsync=st.just(False),
)


@settings(max_examples=120)
@given(events=event_lists(max_size=40), policy=policies, start=st.integers(1, 45))
def test_log_round_trip_every_kind(
    tmp_path_factory: pytest.TempPathFactory, events: list[Event], policy: FlushPolicy, start: int
) -> None:
    path = _fresh(tmp_path_factory)
    _write(path, events, policy, meta={"instruments": ["BTCUSDT.SPOT"]})
    expected = _expected(events)
    with LogReader(path) as reader:
        assert reader.torn_tail == []
        assert list(reader.events()) == expected
        assert list(reader.events(start_seq=start)) == expected[start - 1 :]
        seqs = np.concatenate([b.seq for b in reader.batches()] or [np.zeros(0, np.int64)])
        assert seqs.tolist() == list(range(1, len(events) + 1))
        assert all(b.length <= policy.max_events for b in reader.batches())
        reader.verify()
        m = reader.manifest
        assert (m.first_seq, m.last_seq) == (1, len(events))
        assert sum(s.events for s in m.segments) == len(events)
        assert all(s.sealed for s in m.segments)


@settings(max_examples=40)
@given(events=event_lists(min_size=1, max_size=30), policy=policies)
def test_log_bytes_are_deterministic(
    tmp_path_factory: pytest.TempPathFactory, events: list[Event], policy: FlushPolicy
) -> None:
    a, b = _fresh(tmp_path_factory), _fresh(tmp_path_factory)
    _write(a, events, policy, meta={"config_hash": "abc"})
    _write(b, events, policy, meta={"config_hash": "abc"})
    files_a = sorted(p.name for p in a.iterdir())
    assert files_a == sorted(p.name for p in b.iterdir())
    for name in files_a:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@settings(max_examples=80)
@given(chunks=st.lists(st.lists(events_strategy(), min_size=1, max_size=12), max_size=5))
def test_ipc_stream_round_trip(chunks: list[list[Event]]) -> None:
    """encode_schema + encode_batch (with delta dictionaries) + EOS decodes to the same batches."""
    builder = BatchBuilder()
    stream = [encode_schema()]
    built: list[ColumnBatch] = []
    known, seq = 0, 0
    for chunk in chunks:
        for event in chunk:
            seq += 1
            builder.add(event, seq)
        batch = builder.build()
        stream.append(encode_batch(batch, known))
        assert encode_batch(batch, known) == stream[-1]  # a pure function of its input
        known = len(batch.instrument_dict)
        built.append(batch)
    data = b"".join(stream) + EOS
    decoded = decode_stream(data)
    assert len(decoded) == len(built)
    for got, want in zip(decoded, built, strict=True):
        assert list(iter_events(got)) == list(iter_events(want))
        assert got.instrument_dict == want.instrument_dict
        for name, column in want.ints.items():
            assert np.array_equal(got.ints[name], column)
            assert not got.ints[name].flags.writeable  # a view into the stream, not a copy
    assert len(data) % 8 == 0
