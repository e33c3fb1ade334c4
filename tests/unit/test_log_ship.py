"""``tickloop log ship``: sealed segments only, verified at DEST, resumable, idempotent, safe deletion."""

from __future__ import annotations

import io
import json
import os
import stat
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogs.log import FlushPolicy, LogReader, LogWriter
from catalogs.manifest import read_manifest
from engine.errors import LogCorruptError, LogError
from engine.events import AnyEvent, TradeReceived
from engine.identifiers import InstrumentId
from tickloop.cli import main
from tickloop.commands.log_ship import PARTIAL, ship

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
SMALL = FlushPolicy(max_events=8, max_interval_ns=None, segment_max_bytes=3_000, fsync=False)


def trade(i: int) -> TradeReceived:
    return TradeReceived(0, 1_000 + i, 2_000 + i, BTC, 6_000_000_000_000 + i, 10_000 + i, i, i % 2 == 0)


def write_log(path: Path, n: int) -> None:
    with LogWriter(path, policy=SMALL, meta={"source": "test"}) as writer:
        writer.extend(trade(i) for i in range(n))


def events(path: Path) -> list[AnyEvent]:
    with LogReader(path) as reader:
        return list(reader.events())


def sealed(path: Path) -> list[str]:
    return [s.name for s in read_manifest(path).segments if s.sealed]


def test_ships_every_sealed_segment_and_dest_is_a_valid_log(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_log(src, 200)
    assert len(sealed(src)) >= 3
    result = ship(src, str(dst))
    assert list(result.shipped) == sealed(src)
    assert result.bytes_copied == sum(s.bytes for s in read_manifest(src).segments)
    LogReader(dst).verify()
    assert events(dst) == events(src)
    assert read_manifest(dst).meta == {"source": "test"}
    assert not list(dst.glob(f"*{PARTIAL}"))


def test_second_run_copies_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_log(src, 120)
    ship(src, str(dst))
    before = {p.name: p.stat().st_mtime_ns for p in dst.iterdir() if p.name != "manifest.json"}
    again = ship(src, str(dst))
    assert again.shipped == () and again.bytes_copied == 0
    assert list(again.present) == sealed(src)
    assert {p.name: p.stat().st_mtime_ns for p in dst.iterdir() if p.name != "manifest.json"} == before


def test_open_segment_of_a_live_writer_is_never_shipped(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    writer = LogWriter(src, policy=SMALL)
    try:
        writer.extend(trade(i) for i in range(150))
        writer.flush()
        open_name = read_manifest(src).segments[-1].name
        result = ship(src, str(dst))
        assert open_name in result.unsealed
        assert open_name not in result.shipped
        assert not (dst / open_name).exists()
        assert [s.name for s in read_manifest(dst).segments] == sealed(src)
        shipped_events = events(dst)
        assert shipped_events == events(src)[: len(shipped_events)]
        assert 0 < len(shipped_events) < 150
    finally:
        writer.close()
    later = ship(src, str(dst))  # the closed writer sealed it: the next run takes it
    assert open_name in later.shipped
    assert events(dst) == events(src)


def test_resumes_a_partial_copy(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_log(src, 120)
    first = read_manifest(src).segments[0]
    dst.mkdir()
    half = first.bytes // 2
    (dst / (first.name + PARTIAL)).write_bytes((src / first.name).read_bytes()[:half])
    result = ship(src, str(dst))
    total = sum(s.bytes for s in read_manifest(src).segments)
    assert result.bytes_copied == total - half
    LogReader(dst).verify()


def test_garbage_partial_is_recopied_from_zero(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_log(src, 60)
    first = read_manifest(src).segments[0]
    dst.mkdir()
    (dst / (first.name + PARTIAL)).write_bytes(b"\xff" * 100)
    ship(src, str(dst))
    assert (dst / first.name).read_bytes() == (src / first.name).read_bytes()


def test_source_damage_is_refused_and_not_listed(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_log(src, 120)
    second = read_manifest(src).segments[1]
    data = bytearray((src / second.name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (src / second.name).write_bytes(bytes(data))
    with pytest.raises(LogCorruptError, match=second.name):
        ship(src, str(dst))
    listed = [s.name for s in read_manifest(dst).segments]
    assert listed == [read_manifest(src).segments[0].name]  # what was verified before stays shipped
    assert not (dst / second.name).exists() and not (dst / (second.name + PARTIAL)).exists()


def test_refuses_a_destination_holding_another_log(tmp_path: Path) -> None:
    write_log(tmp_path / "a", 60)
    with LogWriter(tmp_path / "b", policy=SMALL) as writer:
        writer.extend(trade(i + 1_000) for i in range(60))
    ship(tmp_path / "a", str(tmp_path / "dst"))
    with pytest.raises(LogError, match="different log"):
        ship(tmp_path / "b", str(tmp_path / "dst"))


def test_delete_after_verify_leaves_a_readable_resumable_source(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_log(src, 120)
    all_events = events(src)
    names = sealed(src)
    result = ship(src, str(dst), delete_after_verify=True)
    assert result.shipped == tuple(names)
    assert result.deleted == tuple(names[:-1])  # the newest stays so segment numbering goes on
    assert sorted(p.name for p in src.iterdir() if p.suffix == ".arrows") == [names[-1]]
    kept = events(src)
    assert kept == all_events[-len(kept) :]
    assert events(dst) == all_events
    with LogWriter(src, policy=SMALL, resume=True) as writer:  # the log goes on where it was
        assert writer.append(trade(999)) == len(all_events) + 1
    assert events(src)[-1].seq == len(all_events) + 1
    ship(src, str(dst), delete_after_verify=True)
    assert [e.seq for e in events(dst)] == list(range(1, len(all_events) + 2))
    LogReader(dst).verify()


def test_delete_after_verify_is_deferred_while_a_writer_holds_the_log(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    writer = LogWriter(src, policy=SMALL)
    try:
        writer.extend(trade(i) for i in range(150))
        writer.flush()
        result = ship(src, str(dst), delete_after_verify=True)
        assert result.deleted == () and "writer" in result.delete_deferred
        assert all((src / name).exists() for name in result.shipped)
    finally:
        writer.close()


def test_remote_form_over_a_stand_in_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``host:path`` runs its shell commands through $TICKLOOP_SSH; a local stand-in executes them here."""
    fake = tmp_path / "fake-ssh"
    fake.write_text('#!/bin/sh\n# usage: fake-ssh HOST COMMAND\nshift\nexec sh -c "$1"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("TICKLOOP_SSH", str(fake))
    src = tmp_path / "src"
    write_log(src, 120)
    remote = tmp_path / "remote"
    first = ship(src, f"workstation:{remote}")
    assert first.dest == f"workstation:{remote}" and list(first.shipped) == sealed(src)
    assert events(remote) == events(src)
    again = ship(src, f"workstation:{remote}")
    assert again.shipped == () and again.bytes_copied == 0


@pytest.fixture(scope="module")
def shipped_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source log and one complete DEST beside it, built once for the property test."""
    base = tmp_path_factory.mktemp("ship-prop")
    write_log(base / "src", 200)
    ship(base / "src", str(base / "dst"))
    return base


@settings(max_examples=25, deadline=None)
@given(cut=st.floats(min_value=0.0, max_value=1.0), segment=st.integers(min_value=0, max_value=3))
def test_any_interrupted_copy_completes_to_identical_bytes(shipped_once: Path, cut: float, segment: int) -> None:
    src, dst = shipped_once / "src", shipped_once / "dst"
    segs = read_manifest(src).segments
    seg = segs[segment % len(segs)]
    # a crash mid-copy: the final file is gone, a prefix sits in .partial, the manifest lags
    data = (dst / seg.name).read_bytes()
    os.unlink(dst / seg.name)
    (dst / (seg.name + PARTIAL)).write_bytes(data[: int(len(data) * cut)])
    result = ship(src, str(dst))
    assert result.shipped == (seg.name,)
    assert result.bytes_copied == seg.bytes - int(len(data) * cut)
    for s in segs:
        assert (dst / s.name).read_bytes() == (src / s.name).read_bytes()


def test_cli_prints_one_json_line(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_log(src, 60)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["log", "ship", str(src), str(dst)]) == 0
    doc = json.loads(out.getvalue())
    assert doc["shipped"] == sealed(src) and doc["deleted"] == []


def test_cli_missing_log_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "ship", str(tmp_path / "nope"), str(tmp_path / "dst")]) == 2
    assert "nope" in capsys.readouterr().err
