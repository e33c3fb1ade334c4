"""Property: a segment cut at ANY byte of its last batch message (or of its EOS) is never misread.

A crash can stop the file anywhere inside the last ``write()``. For every such cut
the reader must return exactly the events of the complete batches before it and
report the torn bytes; ``repair`` must cut them, seal the segment, and a resumed
writer must continue the seq right after the last complete batch.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogs.arrow_ipc import EOS, encode_schema
from catalogs.log import FlushPolicy, LogReader, LogWriter, TornTail, repair
from catalogs.manifest import MANIFEST_NAME
from engine.errors import LogCorruptError
from engine.events import Event, TradeReceived, with_seq
from engine.identifiers import InstrumentId
from tests.strategies_events import event_lists

pytestmark = pytest.mark.edge

POLICY = FlushPolicy(max_events=10_000, max_interval_ns=None, fsync=False)


def _crashed_log(base: Path, head: Sequence[Event], tail: Sequence[Event]) -> tuple[Path, Path, int, int]:
    """A log whose last segment ends with ``tail``'s batch and no EOS, as a crash leaves it.

    Returns (log dir, segment path, segment size before the tail batch, size after).
    """
    path = base / "log"
    writer = LogWriter(path, policy=POLICY)
    writer.extend(head)
    writer.flush()
    segment = path / "000001.arrows"
    before = segment.stat().st_size if segment.exists() else 0
    writer.extend(tail)
    writer.flush()
    after = segment.stat().st_size
    writer.abort()
    return path, segment, before, after


def _read(path: Path) -> tuple[list[Event], list[TornTail]]:
    with LogReader(path) as reader:
        return list(reader.events()), reader.torn_tail


def _check_cut(path: Path, segment: Path, cut: int, complete: list[Event]) -> bool:
    """Read the log with the segment cut at ``cut``; returns whether a torn tail was reported.

    Cuts go downwards with ``os.truncate``: rewriting a file with ``open("wb")``
    makes ext4 flush it (auto_da_alloc), which would make this test crawl.
    """
    os.truncate(segment, cut)
    events, torn = _read(path)
    assert events == complete, f"cut at {cut}"
    if not torn:
        return False
    (t,) = torn
    assert t.segment == segment.name and t.offset < cut and t.offset + t.nbytes == cut, (t, cut)
    return True


def _resume_after_repair(path: Path, data: bytes, cut: int, complete: list[Event], segment: Path) -> None:
    repaired = path.with_name(path.name + f"-r{cut}")
    shutil.copytree(path, repaired)
    os.truncate(repaired / segment.name, cut)
    torn = repair(repaired, fsync=False)
    assert len(torn) <= 1 and all(t.offset + t.nbytes == cut for t in torn)
    kept = cut - sum(t.nbytes for t in torn)
    if complete:  # cut, then sealed with a fresh EOS
        assert (repaired / segment.name).read_bytes() == data[:kept] + EOS
    else:  # no event survived: the segment is removed
        assert not (repaired / segment.name).exists()
    events, torn_after = _read(repaired)
    assert events == complete and torn_after == []
    with LogReader(repaired) as reader:
        reader.verify()
    extra = TradeReceived(0, 7, 8, InstrumentId("NEW.SPOT"), 1, 2, 3, False)
    with LogWriter(repaired, policy=POLICY, resume=True) as writer:
        assert writer.torn_tail == []
        assert writer.append(extra) == len(complete) + 1
    events, _ = _read(repaired)
    assert events == complete + [with_seq(extra, len(complete) + 1)]
    shutil.rmtree(repaired)


@settings(max_examples=6)
@given(
    head=event_lists(min_size=1, max_size=5),  # cuts inside a Schema message: see the test below
    tail=event_lists(min_size=1, max_size=3),
    resume_cuts=st.lists(st.floats(0, 1), min_size=1, max_size=3),
)
def test_every_cut_inside_the_last_batch(
    tmp_path_factory: pytest.TempPathFactory, head: list[Event], tail: list[Event], resume_cuts: list[float]
) -> None:
    path, segment, before, after = _crashed_log(tmp_path_factory.mktemp("log"), head, tail)
    data = segment.read_bytes()
    assert len(data) == after
    complete = [with_seq(e, i + 1) for i, e in enumerate(head)]
    everything = complete + [with_seq(e, len(head) + i + 1) for i, e in enumerate(tail)]
    assert not _check_cut(path, segment, after, everything)
    clean_cuts = [
        cut for cut in range(after - 1, before - 1, -1) if not _check_cut(path, segment, cut, complete)
    ]
    # Only message boundaries read cleanly: where the tail's write starts, and after a dictionary delta.
    assert before in clean_cuts and len(clean_cuts) <= 2, clean_cuts
    with open(segment, "ab") as fh:  # back to the whole segment (appending: see _check_cut)
        fh.write(data[before:])
    for fraction in resume_cuts:
        _resume_after_repair(path, data, before + int(fraction * (after - 1 - before)), complete, segment)


@settings(max_examples=10)
@given(events=event_lists(min_size=1, max_size=8))
def test_every_cut_inside_the_eos(tmp_path_factory: pytest.TempPathFactory, events: list[Event]) -> None:
    """A writer killed between writing EOS and sealing the manifest: any cut of the EOS loses nothing."""
    path = tmp_path_factory.mktemp("log") / "log"
    with LogWriter(path, policy=POLICY) as writer:
        writer.extend(events)
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    manifest["segments"][-1]["sealed"] = False
    del manifest["segments"][-1]["sha256"]
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    segment = path / manifest["segments"][-1]["name"]
    data = segment.read_bytes()
    expected = [with_seq(e, i + 1) for i, e in enumerate(events)]
    for cut in range(len(data), len(data) - len(EOS) - 1, -1):
        os.truncate(segment, cut)
        got, torn = _read(path)
        assert got == expected
        eos_bytes = cut - (len(data) - len(EOS))
        assert torn == (
            [TornTail(segment.name, len(data) - len(EOS), eos_bytes)] if 0 < eos_bytes < len(EOS) else []
        )
    segment.write_bytes(data[:-3])
    assert repair(path, fsync=False) == [TornTail(segment.name, len(data) - len(EOS), len(EOS) - 3)]
    assert segment.read_bytes() == data  # cut, then EOS appended again: the original bytes
    with LogReader(path) as reader:
        reader.verify()
        assert list(reader.events()) == expected
        assert reader.manifest.segments[-1].sealed


def test_cut_inside_the_schema_of_a_new_segment(tmp_path: Path) -> None:
    """A crash right after a segment roll: the new segment holds part of its Schema message only."""
    events = [TradeReceived(0, i, i, InstrumentId("BTCUSDT.SPOT"), 100 + i, 1, i, False) for i in range(6)]
    path, segment, _, _ = _crashed_log(tmp_path, events[:3], events[3:])
    data = segment.read_bytes()
    second = path / "000002.arrows"  # not in the manifest yet: the crash came before its update
    schema_len = len(encode_schema())
    assert data[:schema_len] == encode_schema()
    second.write_bytes(data[:schema_len])
    for cut in range(schema_len, -1, -1):
        os.truncate(second, cut)
        got, torn = _read(path)
        assert len(got) == 6
        assert torn == ([TornTail(second.name, 0, cut)] if 0 < cut < schema_len else [])
    second.write_bytes(data[: schema_len // 2])
    assert repair(path, fsync=False) == [TornTail(second.name, 0, schema_len // 2)]
    assert not second.exists()  # no event left in it: removed
    with LogWriter(path, policy=POLICY, resume=True) as writer:
        assert writer.append(events[0]) == 7


@settings(max_examples=150)
@given(
    events=event_lists(min_size=1, max_size=12),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=3),
)
def test_damage_raises_log_corrupt_error_or_reads(
    tmp_path_factory: pytest.TempPathFactory, events: list[Event], flips: list[tuple[float, int]]
) -> None:
    """Flipped bytes anywhere in an unsealed segment: the reader never crashes with anything but LogCorruptError.

    (Damage inside column values can decode to other valid values; catching that is
    what the SHA-256 of sealed segments is for.)
    """
    path = tmp_path_factory.mktemp("log") / "log"
    with LogWriter(path, policy=FlushPolicy(max_events=5, fsync=False)) as writer:
        writer.extend(events)
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    for seg in manifest["segments"]:
        seg["sealed"] = False
        del seg["sha256"]
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    segment = path / "000001.arrows"
    data = bytearray(segment.read_bytes())
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    os.truncate(segment, 0)
    with open(segment, "ab") as fh:
        fh.write(bytes(data))
    try:
        with LogReader(path) as reader:
            got = list(reader.events())
    except LogCorruptError:
        return
    assert len(got) <= len(events)
    assert all(a.seq < b.seq for a, b in itertools.pairwise(got))
