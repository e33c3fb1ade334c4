"""Unit tests of the event log: manifest, rolls, verify, refusals, corruption and crash handling."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from catalogs.arrow_ipc import EOS, StreamDecoder, TornTailError, decode_stream, encode_batch, encode_schema
from catalogs.log import FlushPolicy, LogReader, LogWriter, check_event, repair
from catalogs.manifest import MANIFEST_NAME, read_manifest
from catalogs.schema import BatchBuilder
from engine.errors import ConfigError, LogCorruptError, LogError
from engine.events import (
    BookDeltaReceived,
    Event,
    QuoteReceived,
    RunFinished,
    SignalEmitted,
    TradeReceived,
    with_seq,
)
from engine.identifiers import InstrumentId

pytestmark = pytest.mark.edge

BTC, ETH = InstrumentId("BTCUSDT.SPOT"), InstrumentId("ETHUSDT.SPOT")
FAST = FlushPolicy(max_events=4, max_interval_ns=None, fsync=False)


def trade(i: int, instrument: InstrumentId = BTC) -> TradeReceived:
    return TradeReceived(
        0, 1_000 + i, 2_000 + i, instrument, 6_000_000_000_000 + i, 10_000 + i, i, i % 2 == 0
    )


def mixed(n: int) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        if i % 3 == 0:
            out.append(trade(i, BTC if i % 2 else ETH))
        elif i % 3 == 1:
            out.append(BookDeltaReceived(0, i, i, ETH, i, i + 1, -1, ((100 + i, 5),), ()))
        else:
            out.append(RunFinished(0, i, i, InstrumentId(""), i))
    return out


def write_log(path: Path, events: Sequence[Event], policy: FlushPolicy = FAST, **kw: object) -> None:
    with LogWriter(path, policy=policy, **kw) as writer:  # type: ignore[arg-type]
        writer.extend(events)


def read_all(path: Path, start_seq: int = 1) -> list[Event]:
    with LogReader(path) as reader:
        return list(reader.events(start_seq=start_seq))


# --------------------------------------------------------------------------- manifest


def test_manifest_content(tmp_path: Path) -> None:
    log = tmp_path / "log"
    meta = {"instruments": ["BTCUSDT.SPOT", "ETHUSDT.SPOT"], "config_hash": "c0ffee", "ts_recv_model": None}
    write_log(log, mixed(10), meta=meta)
    raw = (log / MANIFEST_NAME).read_bytes()
    doc = json.loads(raw)
    assert raw == (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()  # canonical
    assert doc["format"] == "tickloop-log" and doc["schema_version"] == 1
    assert doc["code_version"] == metadata.version("tickloop")
    assert doc["meta"] == meta
    assert (doc["first_seq"], doc["last_seq"]) == (1, 10)
    assert doc["sessions"] == [{"start_seq": 1, "resumed": False}]
    (seg,) = doc["segments"]
    data = (log / "000001.arrows").read_bytes()
    assert seg == {
        "name": "000001.arrows",
        "first_seq": 1,
        "last_seq": 10,
        "events": 10,
        "bytes": len(data),
        "sealed": True,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert data.startswith(encode_schema()) and data.endswith(EOS)
    assert sorted(p.name for p in log.iterdir()) == ["000001.arrows", MANIFEST_NAME]


def test_manifest_is_deterministic_and_records_sessions(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_log(tmp_path / name, mixed(7), meta={"k": 1})
        with LogWriter(tmp_path / name, policy=FAST, resume=True) as writer:
            assert writer.append(trade(99)) == 8
    a, b = ((tmp_path / n / MANIFEST_NAME).read_bytes() for n in "ab")
    assert a == b
    doc = json.loads(a)
    assert doc["sessions"] == [{"start_seq": 1, "resumed": False}, {"start_seq": 8, "resumed": True}]
    assert [s["name"] for s in doc["segments"]] == ["000001.arrows", "000002.arrows"]
    assert [(s["first_seq"], s["last_seq"]) for s in doc["segments"]] == [(1, 7), (8, 8)]


def test_empty_log(tmp_path: Path) -> None:
    write_log(tmp_path / "log", [])
    with LogReader(tmp_path / "log") as reader:
        assert list(reader.events()) == [] and reader.segments == []
        assert (reader.manifest.first_seq, reader.manifest.last_seq) == (1, 0)
        reader.verify()


def test_meta_must_be_plain_json(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="meta"):
        LogWriter(tmp_path / "log", meta={"instruments": ("BTC",)})
    with pytest.raises(LogError, match="meta"):
        LogWriter(tmp_path / "log2", meta={"x": object()})


# --------------------------------------------------------------------------- writing


def test_segment_roll_by_size(tmp_path: Path) -> None:
    log = tmp_path / "log"
    limit = 12_000
    events = [trade(i) for i in range(200)]
    write_log(
        log, events, FlushPolicy(max_events=8, max_interval_ns=None, segment_max_bytes=limit, fsync=False)
    )
    manifest = read_manifest(log)
    assert len(manifest.segments) > 3
    expected_seq = 1
    for seg in manifest.segments:
        data = (log / seg.name).read_bytes()
        assert seg.sealed and seg.bytes == len(data) <= limit
        assert seg.first_seq == expected_seq and seg.events == seg.last_seq - seg.first_seq + 1
        assert data.startswith(encode_schema()) and data.endswith(EOS)
        assert [b.length for b in decode_stream(data)] and all(b.length == 8 for b in decode_stream(data))
        expected_seq = seg.last_seq + 1
    assert expected_seq == 201
    assert read_all(log) == [with_seq(e, i + 1) for i, e in enumerate(events)]


def test_single_batch_larger_than_the_segment_limit_gets_its_own_segment(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_log(
        log, [trade(i) for i in range(30)], FlushPolicy(max_events=10, segment_max_bytes=1, fsync=False)
    )
    assert [s.events for s in read_manifest(log).segments] == [10, 10, 10]


def test_new_segment_repeats_the_full_dictionary(tmp_path: Path) -> None:
    """Each segment is a self-contained stream: its first dictionary message is not a delta."""
    log = tmp_path / "log"
    events = [trade(0, BTC), trade(1, ETH), trade(2, BTC), trade(3, InstrumentId("X.SPOT"))]
    write_log(log, events, FlushPolicy(max_events=2, segment_max_bytes=1, fsync=False))
    segments = sorted(log.glob("*.arrows"))
    assert len(segments) == 2
    (second,) = decode_stream(segments[1].read_bytes())
    assert second.instrument_dict == [BTC, ETH, "X.SPOT"]
    assert read_all(log)[3].instrument == "X.SPOT"


def test_refuses_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(LogError, match=str(tmp_path)):
        LogWriter(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(LogError, match="not a directory"):
        LogWriter(tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    write_log(empty, [trade(1)])  # an existing empty directory is fine
    assert len(read_all(empty)) == 1


def test_second_writer_is_locked_out(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with LogWriter(log, policy=FAST) as writer:
        writer.append(trade(1))
        with pytest.raises(LogError, match="locked"):
            LogWriter(log, policy=FAST, resume=True)
        with pytest.raises(LogError, match="locked"):
            repair(log)
    with LogWriter(log, policy=FAST, resume=True) as again:
        assert again.append(trade(2)) == 2


def test_resume_checks(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="not found"):
        LogWriter(tmp_path / "missing", resume=True)
    log = tmp_path / "log"
    write_log(log, [trade(1)], meta={"config_hash": "a"})
    with pytest.raises(LogError, match="config_hash"):
        LogWriter(log, meta={"config_hash": "b"}, resume=True)
    with LogWriter(log, meta={"config_hash": "a"}, resume=True, policy=FAST) as writer:
        assert writer.last_seq == 1


def test_update_meta_lands_in_the_manifest_and_resume_accepts_a_subset(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with LogWriter(log, policy=FAST, meta={"source": "a.gz"}) as writer:
        writer.extend([trade(i) for i in range(3)])
        writer.update_meta({"counts": {"trade": 3}})
    assert read_manifest(log).meta == {"source": "a.gz", "counts": {"trade": 3}}
    with LogWriter(log, policy=FAST, resume=True, meta={"source": "a.gz"}) as writer:
        assert writer.manifest.meta["counts"] == {"trade": 3}
    with pytest.raises(LogError, match=r"\['source'\]"):
        LogWriter(log, policy=FAST, resume=True, meta={"source": "b.gz"})


def test_flush_policy_validation() -> None:
    with pytest.raises(ConfigError):
        FlushPolicy(max_events=0)
    with pytest.raises(ConfigError):
        FlushPolicy(segment_max_bytes=0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def test_time_policy_flushes_old_events(tmp_path: Path) -> None:
    clock = FakeClock()
    policy = FlushPolicy(max_events=1000, max_interval_ns=100, fsync=False)
    with LogWriter(tmp_path / "log", policy=policy, monotonic_ns=clock) as writer:
        writer.append(trade(1))
        clock.now = 99
        writer.append(trade(2))
        assert writer.flushed_seq == 0
        assert not writer.poll()
        clock.now = 100
        writer.append(trade(3))  # the oldest pending event is now 100 ns old
        assert writer.flushed_seq == 3
        writer.append(trade(4))
        clock.now = 250
        assert writer.poll() and writer.flushed_seq == 4
        assert not writer.poll()  # nothing pending
    assert [b.length for b in LogReader(tmp_path / "log").batches()] == [3, 1]


def test_without_clock_only_counts_matter(tmp_path: Path) -> None:
    with LogWriter(tmp_path / "log", policy=FlushPolicy(max_events=3, fsync=False)) as writer:
        writer.extend(trade(i) for i in range(7))
        assert writer.flushed_seq == 6 and writer.last_seq == 7
        assert not writer.poll()
    assert [b.length for b in LogReader(tmp_path / "log").batches()] == [3, 3, 1]


def test_context_manager_flushes_and_seals_on_exception(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with pytest.raises(RuntimeError, match="boom"), LogWriter(log, policy=FAST) as writer:
        writer.extend([trade(i) for i in range(6)])
        raise RuntimeError("boom")
    manifest = read_manifest(log)
    assert manifest.last_seq == 6 and all(s.sealed for s in manifest.segments)
    assert len(read_all(log)) == 6
    with pytest.raises(LogError, match="closed"):
        writer.append(trade(7))


def test_bad_events_are_refused_before_getting_a_seq(tmp_path: Path) -> None:
    with LogWriter(tmp_path / "log", policy=FAST) as writer:
        bad: list[Event] = [
            TradeReceived(0, 1, 1, BTC, 2**63, 1, 1, False),  # price beyond int64
            QuoteReceived(0, 1, 1, BTC, 1, 1.5, 1, 1, 1),  # type: ignore[arg-type]
            SignalEmitted(0, 1, 1, BTC, "s", "rsi", float("nan")),  # JSON has no NaN
            TradeReceived(0, 1, 1, InstrumentId("\ud800"), 1, 1, 1, False),  # not UTF-8
            BookDeltaReceived(0, 1, 1, BTC, 1, 2, -1, ((1, -(2**64)),), ()),
        ]
        for event in bad:
            with pytest.raises(LogError, match="cannot log"):
                writer.append(event)
        assert writer.append(trade(1)) == 1
    assert read_all(tmp_path / "log") == [with_seq(trade(1), 1)]
    check_event(trade(1))


def test_start_seq_slices_inside_a_batch(tmp_path: Path) -> None:
    log = tmp_path / "log"
    events = mixed(11)
    write_log(log, events, FlushPolicy(max_events=4, segment_max_bytes=4000, fsync=False))
    expected = [with_seq(e, i + 1) for i, e in enumerate(events)]
    for start in range(1, 13):
        assert read_all(log, start) == expected[start - 1 :]


def test_batches_are_zero_copy_views(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_log(log, [trade(i) for i in range(10)])
    with LogReader(log) as reader:
        for batch in reader.batches():
            assert not batch.seq.flags.writeable and not batch.seq.flags.owndata
            assert isinstance(batch.payload_data, memoryview)


# --------------------------------------------------------------------------- reading and damage


def test_reader_on_missing_directory_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(LogError, match=str(missing)):
        LogReader(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LogError, match="manifest.json is missing"):
        LogReader(tmp_path / "empty")


def test_verify_detects_a_flipped_byte(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_log(log, [trade(i) for i in range(20)])
    segment = log / "000001.arrows"
    data = bytearray(segment.read_bytes())
    LogReader(log).verify()
    data[len(data) // 2] ^= 0x01
    segment.write_bytes(bytes(data))
    with LogReader(log) as reader, pytest.raises(LogCorruptError, match=r"000001\.arrows: SHA-256"):
        reader.verify()


def test_sealed_segment_of_the_wrong_size_is_corrupt(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_log(log, [trade(i) for i in range(5)])
    segment = log / "000001.arrows"
    segment.write_bytes(segment.read_bytes()[:-3])
    with pytest.raises(LogCorruptError, match="sealed segment is"):
        LogReader(log)


def _crash(log: Path, events: Sequence[Event], policy: FlushPolicy = FAST) -> None:
    writer = LogWriter(log, policy=policy)
    writer.extend(events)
    writer.flush()
    writer.abort()


def test_damage_in_the_middle_is_corruption_not_a_torn_tail(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _crash(log, [trade(i) for i in range(12)])  # 3 batches of 4, unsealed
    segment = log / "000001.arrows"
    data = bytearray(segment.read_bytes())
    offset = data.index(b"\xff\xff\xff\xff", len(encode_schema()) + 8)  # start of the 2nd data message
    data[offset] = 0x00
    segment.write_bytes(bytes(data))
    with pytest.raises(
        LogCorruptError, match=rf"000001\.arrows: byte {offset}: expected continuation marker"
    ):
        LogReader(log)


def test_damaged_offsets_and_seq_are_corruption(tmp_path: Path) -> None:
    builder = BatchBuilder()
    for seq in (5, 4):  # not increasing
        builder.add(trade(seq), seq)
    stream = encode_schema() + encode_batch(builder.build(), 0) + EOS
    with pytest.raises(LogCorruptError, match="seq not strictly increasing"):
        decode_stream(stream, "s.arrows")
    builder.add(BookDeltaReceived(0, 1, 1, BTC, 1, 2, -1, ((1000, 2000),), ()), 1)
    good = encode_schema() + encode_batch(builder.build(), 0) + EOS
    assert decode_stream(good)[0].bids_values.tolist() == [1000, 2000]
    # The bids offsets [0, 2] are the last such int32 pair (values and later buffers hold none).
    at = good.rindex(struct.pack("<ii", 0, 2))
    bad = good[:at] + struct.pack("<ii", 0, 3) + good[at + 8 :]  # now past the 2 values
    with pytest.raises(LogCorruptError, match="offsets not non-decreasing"):
        decode_stream(bad, "s.arrows")


def test_foreign_schema_is_rejected(tmp_path: Path) -> None:
    schema = encode_schema()
    renamed = schema.replace(b"price\x00", b"prize\x00", 1)
    with pytest.raises(LogCorruptError, match="schema is not tickloop's schema v1: field 5"):
        decode_stream(renamed + EOS, "x.arrows")
    value = b"\x01\x00\x00\x001\x00"  # the flatbuffer string "1": length, byte, terminator
    assert schema.count(value) == 1
    with pytest.raises(LogCorruptError, match="tickloop.schema_version='2'"):
        decode_stream(schema.replace(value, b"\x01\x00\x00\x002\x00") + EOS)


def test_data_after_eos_is_corruption() -> None:
    stream = encode_schema() + EOS + b"\xff\xff\xff\xff\x00\x00\x00\x00"
    with pytest.raises(LogCorruptError, match="after the end-of-stream marker"):
        decode_stream(stream, "x.arrows")


def test_torn_tail_is_named_with_its_offset() -> None:
    builder = BatchBuilder()
    builder.add(trade(1), 1)
    batch = builder.build()
    stream = encode_schema() + encode_batch(batch, 0)  # schema, dictionary, record batch
    start = len(stream) - len(encode_batch(batch, 1))  # where the record batch message begins
    cut = len(stream) - 10
    with pytest.raises(TornTailError, match=rf"x\.arrows: torn tail at offset {start} \({cut - start} bytes"):
        decode_stream(stream[:cut], "x.arrows")
    decoder = StreamDecoder(stream[:cut], "x.arrows")
    assert list(decoder.batches()) == [] and decoder.torn == (start, cut - start)


def test_reader_ignores_and_reports_a_torn_tail_then_repair_cuts_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    events = [trade(i) for i in range(10)]
    _crash(log, events)  # batches of 4, 4, 2
    segment = log / "000001.arrows"
    size = segment.stat().st_size
    with open(segment, "r+b") as fh:
        fh.truncate(size - 5)
    with LogReader(log) as reader:
        assert [e.seq for e in reader.events()] == list(range(1, 9))
        (torn,) = reader.torn_tail
        assert torn.segment == "000001.arrows" and torn.offset + torn.nbytes == size - 5
    assert segment.stat().st_size == size - 5  # the reader never modifies files
    assert repair(log, fsync=False) == [torn]
    assert repair(log, fsync=False) == []  # idempotent
    with LogReader(log) as reader:
        assert reader.torn_tail == [] and reader.manifest.segments[0].sealed
        reader.verify()
    with LogWriter(log, policy=FAST, resume=True) as writer:
        assert writer.append(trade(50)) == 9


def test_unlisted_segment_after_the_manifest_is_read(tmp_path: Path) -> None:
    """Crash between creating a segment file and listing it: the file is the unsealed tail."""
    log = tmp_path / "log"
    write_log(log, [trade(i) for i in range(4)])
    builder = BatchBuilder()
    builder.add(trade(4), 5)
    (log / "000002.arrows").write_bytes(encode_schema() + encode_batch(builder.build(), 0))
    assert [e.seq for e in read_all(log)] == [1, 2, 3, 4, 5]
    (log / "000000.arrows").write_bytes(encode_schema())
    with pytest.raises(LogCorruptError, match="older than"):
        LogReader(log)


def test_listed_segment_missing_is_corruption(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_log(log, [trade(1)])
    (log / "000001.arrows").unlink()
    with pytest.raises(LogCorruptError, match="missing"):
        LogReader(log)


def test_abandoned_iteration_and_close(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_log(
        log, [trade(i) for i in range(40)], FlushPolicy(max_events=4, segment_max_bytes=4000, fsync=False)
    )
    reader = LogReader(log)
    it = iter(reader.batches())
    first = next(it)
    kept = np.array(first.seq)  # a copy survives the reader
    reader.close()
    del it
    assert kept.tolist() == [1, 2, 3, 4]


def test_a_failed_write_stops_the_writer_and_resume_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    log = tmp_path / "log"
    writer = LogWriter(log, policy=FAST)
    writer.extend([trade(i) for i in range(4)])  # one batch written
    real_write = os.write

    def half_then_enospc(fd: int, data: bytes) -> int:
        if len(data) > 100:
            real_write(fd, bytes(data[: len(data) // 2]))  # a partial message reaches the file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(LogError, match="No space left"):
        writer.extend([trade(i) for i in range(4, 8)])
    with pytest.raises(LogError, match="failed earlier"):
        writer.append(trade(9))
    writer.close()  # releases the log; writes nothing after the partial message
    monkeypatch.setattr(os, "write", real_write)
    with LogReader(log) as reader:
        assert [e.seq for e in reader.events()] == [1, 2, 3, 4]
        assert len(reader.torn_tail) == 1
    with LogWriter(log, policy=FAST, resume=True) as again:
        assert len(again.torn_tail) == 1
        assert again.append(trade(5)) == 5
    assert [e.seq for e in read_all(log)] == [1, 2, 3, 4, 5]
