"""``tickloop demo``: synthetic session -> real importer -> verified book -> rsi run, end to end."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from catalogs.log import LogReader
from engine.events import BookDeltaReceived, BookSnapshotReceived, Kind
from replay.synthetic import generate_lines

pytestmark = pytest.mark.edge

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "tickloop.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        check=False,
        timeout=300,
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("demo") / "d"
    return root, last_json(cli("demo", "--out", str(root), "--seed", "5", "--duration", "30"))


def test_demo_runs_end_to_end(demo: tuple[Path, dict[str, Any]]) -> None:
    root, s = demo
    assert {"run_hash", "events", "events_per_s", "orders", "fills", "signals", "out"} <= s.keys()
    assert s["out"] == str(root / "run") and (root / "run" / "manifest.json").exists()
    raws = list((root / "raw").glob("*.gz"))
    assert len(raws) == 1 and s["raw"] == str(raws[0])
    with LogReader(root / "log") as reader:
        events = list(reader.events())
    assert s["events"] == s["imported_events"] == len(events) > 1000
    kinds = {int(e.kind) for e in events}
    assert {Kind.TRADE, Kind.QUOTE, Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT} <= kinds
    assert sorted({e.instrument for e in events}) == ["BTCUSDT.SPOT", "ETHUSDT.SPOT"]
    assert s["book_check"]["mismatched"] == 0 and s["book_check"]["checked"] > 100
    with LogReader(root / "run") as reader:
        assert reader.manifest.meta["run"]["run_hash"] == s["run_hash"]


def test_verify_book_reports_zero_mismatches_on_the_demo_log(demo: tuple[Path, dict[str, Any]]) -> None:
    root, _ = demo
    report = last_json(cli("log", "verify-book", str(root / "log")))
    assert report["ok"] is True and report["mismatched"] == 0
    for inst in report["instruments"]:
        assert inst["checked"] > 50 and inst["mismatched"] == 0


def test_the_recording_looks_like_binance(demo: tuple[Path, dict[str, Any]]) -> None:
    root, _ = demo
    lines = gzip.decompress(next((root / "raw").glob("*.gz")).read_bytes()).decode().splitlines()
    stamps = [int(line.split(" ", 1)[0]) for line in lines]
    assert stamps == sorted(stamps)
    docs = [json.loads(line.split(" ", 1)[1]) for line in lines]
    snapshots = [i for i, d in enumerate(docs) if "lastUpdateId" in d]
    first_diff = next(i for i, d in enumerate(docs) if d.get("data", {}).get("e") == "depthUpdate")
    assert len(snapshots) == 2 and min(snapshots) > first_diff  # the REST snapshot comes after diffs
    for sym in ("BTCUSDT", "ETHUSDT"):
        diffs = [
            d["data"] for d in docs if d.get("data", {}).get("e") == "depthUpdate" and d["data"]["s"] == sym
        ]
        assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(diffs))  # spot: no gaps
        assert all(d["E"] % 100 == 0 for d in diffs)  # depth@100ms
        trades = [d["data"] for d in docs if d.get("data", {}).get("e") == "trade" and d["data"]["s"] == sym]
        assert trades and all(
            p.count(".") == 1 and len(p.split(".")[1]) == 8 for p in (t["p"] for t in trades)
        )


def test_the_synthetic_snapshot_bridges_the_diffs(demo: tuple[Path, dict[str, Any]]) -> None:
    root, _ = demo
    with LogReader(root / "log") as reader:
        events = list(reader.events())
    for snap in (e for e in events if isinstance(e, BookSnapshotReceived)):
        deltas = [e for e in events if isinstance(e, BookDeltaReceived) and e.instrument == snap.instrument]
        bridging = [d for d in deltas if d.first_update_id <= snap.last_update_id + 1 <= d.last_update_id]
        assert len(bridging) == 1


def test_same_seed_same_bytes_and_hash_other_seed_differs(
    demo: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, s = demo
    again = last_json(cli("demo", "--out", str(tmp_path / "again"), "--seed", "5", "--duration", "30"))
    assert again["run_hash"] == s["run_hash"]
    assert (tmp_path / "again" / "raw").iterdir().__next__().read_bytes() == Path(s["raw"]).read_bytes()
    assert list(generate_lines(6, 5.0)) != list(generate_lines(5, 5.0))


def test_default_dir_gets_a_suffix_instead_of_reusing_one(tmp_path: Path) -> None:
    first = last_json(cli("demo", "--duration", "3", cwd=tmp_path))
    second = last_json(cli("demo", "--duration", "3", cwd=tmp_path))
    assert first["demo_dir"] == "tickloop-demo" and second["demo_dir"] == "tickloop-demo-2"
    assert first["run_hash"] == second["run_hash"]


def test_a_non_empty_out_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    proc = cli("demo", "--out", str(tmp_path / "x"), "--duration", "2")
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
