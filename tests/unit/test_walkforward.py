"""Walk-forward: window planning, grid parsing, time slicing and a whole walk on a synthetic log."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ConfigError
from replay.walkforward import (
    RunEval,
    WalkForwardSpec,
    chain_curves,
    cut_curve,
    grid_points,
    market_span,
    parse_grid,
    plan_windows,
    run_walkforward,
    score,
    slice_log,
)

S = 1_000_000_000


@pytest.fixture(scope="module")
def synthetic_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from catalogs.importers.driver import import_binance_stream
    from replay.synthetic import write_session

    root = tmp_path_factory.mktemp("wf")
    write_session(root / "raw.gz", seed=3, duration_s=150.0)
    import_binance_stream([root / "raw.gz"], root / "log")
    return root / "log"


def test_parse_grid_and_points() -> None:
    grid = parse_grid(["period=7,14", "lower=25,30,35"])
    assert grid == (("period", ("7", "14")), ("lower", ("25", "30", "35")))
    pts = grid_points(grid)
    assert len(pts) == 6 and pts[0] == ("period=7", "lower=25") and pts[-1] == ("period=14", "lower=35")
    assert grid_points(()) == [()]
    for bad in (["period"], ["period="], ["period=1,,2"], ["a=1", "a=2"], ["a=1,1"]):
        with pytest.raises(ConfigError):
            parse_grid(bad)


def test_windows_roll_by_step_and_must_fit() -> None:
    spec = WalkForwardSpec("rsi", train_ns=60 * S, test_ns=20 * S, step_ns=30 * S)
    ws = plan_windows(1000, 1000 + 150 * S - 1, spec)
    assert [(w.train_start - 1000, w.test_start - 1000, w.test_end - 1000) for w in ws] == [
        (0, 60 * S, 80 * S), (30 * S, 90 * S, 110 * S), (60 * S, 120 * S, 140 * S),
    ]  # fmt: skip
    assert all(w.train_end == w.test_start for w in ws)
    with pytest.raises(ConfigError, match="no room"):
        plan_windows(0, 50 * S, spec)
    with pytest.raises(ConfigError, match="may not overlap"):
        WalkForwardSpec("rsi", train_ns=60 * S, test_ns=20 * S, step_ns=10 * S)
    with pytest.raises(ConfigError, match="objective"):
        WalkForwardSpec("rsi", train_ns=S, test_ns=S, objective="luck")
    with pytest.raises(ConfigError, match="both fixed"):
        WalkForwardSpec("rsi", train_ns=S, test_ns=S, grid=parse_grid(["period=3,4"]), params=("period=5",))


def test_slice_keeps_the_window_and_only_book_state_before_it(synthetic_log: Path, tmp_path: Path) -> None:
    from catalogs.log import LogReader
    from engine.events import MARKET_KINDS, BookDeltaReceived, BookSnapshotReceived

    lo, hi = market_span(synthetic_log)
    a, b = lo + 40 * S, lo + 70 * S
    n = slice_log(synthetic_log, tmp_path / "s", a, b)
    with LogReader(synthetic_log) as r:
        src = list(r.events())
    with LogReader(tmp_path / "s") as r:
        got = list(r.events())
    inside = [e for e in src if a <= e.ts_recv < b]
    before = [e for e in src if e.ts_recv < a and isinstance(e, BookDeltaReceived | BookSnapshotReceived)]
    assert n == len(inside) > 0
    strip = [e for e in got if e.kind in MARKET_KINDS]
    assert len(strip) == len(inside) + len(before)
    assert [e.ts_recv for e in strip if e.ts_recv >= a] == [e.ts_recv for e in inside]
    assert all(isinstance(e, BookDeltaReceived | BookSnapshotReceived) for e in strip if e.ts_recv < a)


def test_cut_and_chain_curves() -> None:
    ts, eq = cut_curve(np.array([0, 10, 20, 30]), np.array([1.0, 2.0, 3.0, 4.0]), 15)
    assert ts.tolist() == [15, 20, 30] and eq.tolist() == [2.0, 3.0, 4.0]
    a = RunEval(None, np.array([0, 5]), np.array([100.0, 110.0]), (), "", 0)
    b = RunEval(None, np.array([10, 15]), np.array([50.0, 45.0]), (), "", 0)
    cts, ceq, _ = chain_curves([a, b])
    assert cts.tolist() == [0, 5, 10, 15]
    assert ceq.tolist() == pytest.approx([100.0, 110.0, 110.0, 99.0])  # +10% then -10%, compounded
    assert score(None, "sharpe") == -math.inf


def test_walk_picks_the_in_sample_best_and_is_deterministic(synthetic_log: Path, tmp_path: Path) -> None:
    spec = WalkForwardSpec(
        "rsi",
        train_ns=60 * S,
        test_ns=30 * S,
        grid=parse_grid(["period=5,14", "lower=30,45"]),
        params=("upper=55",),
        objective="return",
        symbol="BTCUSDT",
    )
    result = run_walkforward(synthetic_log, spec, work_dir=tmp_path / "work")
    doc = result.to_json()
    assert len(doc["windows"]) == 2
    for w in doc["windows"]:
        scores = [c["objective"] if c["objective"] is not None else -math.inf for c in w["candidates"]]
        best = scores.index(max(scores))
        assert w["best_params"] == {"upper": "55", **w["candidates"][best]["params"]}
        assert w["is_objective"] == w["candidates"][best]["objective"]
        assert w["oos"]["start_ts"] == w["test_start"] and w["oos"]["end_ts"] < w["test_end"]
        assert w["train_start"] <= w["is"]["start_ts"] < w["train_end"]
        assert w["test_events"] > 0 and w["train_events"] > w["test_events"]
    assert any(w["oos"]["fills"] > 0 for w in doc["windows"])
    agg = doc["aggregate"]["oos"]
    assert agg["start_ts"] == doc["windows"][0]["test_start"]
    chained = np.prod([1 + w["oos"]["total_return"] for w in doc["windows"]]) - 1
    assert agg["total_return"] == pytest.approx(chained, rel=1e-9, abs=1e-12)
    again = run_walkforward(synthetic_log, spec)
    assert json.dumps(again.to_json(), sort_keys=True) == json.dumps(doc, sort_keys=True)


def test_cli_prints_json_and_rejects_bad_grid(
    synthetic_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tickloop.cli import main

    argv = ["walkforward", str(synthetic_log), "--strategy", "rsi", "--train", "90s", "--test", "40s"]
    assert main([*argv, "--grid", "period=5,9", "--symbol", "BTCUSDT"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out.strip().splitlines()[-1])
    assert doc["strategy"] == "rsi" and len(doc["windows"]) == 1 and doc["objective"] == "sharpe"
    assert "aggregate OOS" in out.err
    assert main([*argv, "--grid", "period=0,5"]) == 2
    assert "period" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    from tickloop.commands import walkforward

    walkforward.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([str(synthetic_log), "--strategy", "rsi", "--train", "1m"])
