"""``tickloop backtest`` as a user runs it: subprocesses, env variations, real data."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalogs.log import FlushPolicy, LogReader, LogWriter
from engine.events import Event, QuoteReceived, TradeReceived
from engine.identifiers import InstrumentId
from engine.runhash import run_hash
from tests.conftest import binance_file

pytestmark = pytest.mark.edge

REPO = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = {"run_hash", "events", "events_per_s", "orders", "fills", "signals", "out"}


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tickloop.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=full_env,
        check=False,
        timeout=300,
    )


def summary_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.keys() >= SUMMARY_KEYS
    return out


def _events(n: int) -> list[Event]:
    rng = np.random.default_rng(11)
    btc, eth = InstrumentId("BTCUSDT.SPOT"), InstrumentId("ETHUSDT.SPOT")
    px = {btc: 6_000_000_000_000, eth: 300_000_000_000}
    out: list[Event] = []
    ts = 1_720_000_000_000_000_000
    for i in range(n):
        iid = btc if rng.random() < 0.6 else eth
        ts += int(rng.integers(0, 5_000_000))
        px[iid] += int(rng.integers(-3, 4)) * 1_000_000
        if rng.random() < 0.8:
            out.append(TradeReceived(0, ts, ts, iid, px[iid], 10_000, i, bool(rng.random() < 0.5)))
        else:
            out.append(QuoteReceived(0, ts, ts, iid, i, px[iid] - 10**6, 5, px[iid] + 10**6, 5))
    return out


@pytest.fixture(scope="module")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bt") / "log"
    with LogWriter(path, policy=FlushPolicy(max_events=500, fsync=False), monotonic_ns=None) as w:
        w.extend(_events(6000))
    return path


def test_same_hash_across_processes_hash_seeds_and_numba_off(small_log: Path, tmp_path: Path) -> None:
    variants = [
        {"PYTHONHASHSEED": "0"},
        {"PYTHONHASHSEED": "1"},
        {"PYTHONHASHSEED": "4242"},
        {"PYTHONHASHSEED": "random", "NUMBA_DISABLE_JIT": "1"},
    ]
    summaries = []
    for i, env in enumerate(variants):
        proc = cli(
            "backtest",
            str(small_log),
            "--strategy",
            "rsi",
            "--param",
            "period=7",
            "--seed",
            "9",
            "--out",
            str(tmp_path / f"run{i}"),
            env=env,
        )
        summaries.append(summary_of(proc))
    per_event = summary_of(
        cli(
            "backtest",
            str(small_log),
            "--strategy",
            "rsi",
            "--param",
            "period=7",
            "--seed",
            "9",
            "--out",
            str(tmp_path / "pe"),
            "--per-event",
        )
    )
    hashes = {s["run_hash"] for s in summaries} | {per_event["run_hash"]}
    assert len(hashes) == 1
    s = summaries[0]
    assert s["events"] == 6000 and s["signals"] > 0 and s["orders"] > 0 and s["fills"] > 0
    assert s["out"] == str(tmp_path / "run0")
    with LogReader(tmp_path / "run0") as reader:
        meta = reader.manifest.meta["run"]
        assert run_hash(reader.events()) == s["run_hash"] == meta["run_hash"]
        assert meta["input_digest"] == s["input_digest"] and meta["seed"] == 9
        assert meta["config"]["params"]["period"] == 7
        assert meta["input_log"] == str(small_log.resolve())


def test_human_info_goes_to_stderr_and_json_is_the_last_stdout_line(small_log: Path, tmp_path: Path) -> None:
    proc = cli("backtest", str(small_log), "--strategy", "noop", "--out", str(tmp_path / "r"))
    s = summary_of(proc)
    assert s["run_hash"] in proc.stderr and "events" in proc.stderr
    assert s["signals"] == 0 and s["events"] == 6000


def test_default_run_dir_is_named_by_config_hash_and_never_reused(small_log: Path, tmp_path: Path) -> None:
    first = summary_of(cli("backtest", str(small_log), "--strategy", "rsi", cwd=tmp_path))
    second = summary_of(cli("backtest", str(small_log), "--strategy", "rsi", cwd=tmp_path))
    with LogReader(tmp_path / first["out"]) as reader:
        config_json = reader.manifest.meta["run"]["config_json"]
    h8 = hashlib.sha256(config_json.encode()).hexdigest()[:8]
    assert first["out"] == f"runs/rsi-{h8}"
    assert second["out"] == f"runs/rsi-{h8}-2"
    assert first["run_hash"] == second["run_hash"]


def test_symbol_filter(small_log: Path, tmp_path: Path) -> None:
    s = summary_of(
        cli(
            "backtest",
            str(small_log),
            "--strategy",
            "rsi",
            "--symbol",
            "ETHUSDT",
            "--out",
            str(tmp_path / "eth"),
        )
    )
    with LogReader(small_log) as reader:
        eth = sum(1 for e in reader.events() if e.instrument == "ETHUSDT.SPOT")
    assert 0 < s["events"] == eth < 6000


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--strategy", "macd"], ["unknown strategy 'macd'", "noop", "rsi"]),
        (["--strategy", "rsi", "--param", "periods=3"], ["unknown parameter 'periods'", "period: int = 14"]),
        (["--strategy", "rsi", "--param", "period=x"], ["'period'"]),
    ],
)
def test_config_errors_exit_2_with_one_clear_line(
    small_log: Path, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    proc = cli("backtest", str(small_log), *args, "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("tickloop: error: ") and proc.stderr.count("\n") == 1
    for needle in needles:
        assert needle in proc.stderr
    assert not (tmp_path / "r").exists()


def test_existing_out_dir_and_missing_log_are_errors(small_log: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    proc = cli("backtest", str(small_log), "--strategy", "rsi", "--out", str(tmp_path / "taken"))
    assert proc.returncode == 2 and "already exists" in proc.stderr
    proc = cli("backtest", str(tmp_path / "nope"), "--strategy", "rsi", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "nope" in proc.stderr


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_spot_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = binance_file("spot/hftbacktest_2024-08-08/btcusdt_20240808.gz")
    from catalogs.importers.driver import import_binance_stream

    out = tmp_path_factory.mktemp("real") / "log"
    import_binance_stream([raw], out)
    return out


def test_real_btcusdt_spot_recording_gives_the_same_hash_twice(real_spot_log: Path, tmp_path: Path) -> None:
    a = summary_of(cli("backtest", str(real_spot_log), "--strategy", "rsi", "--out", str(tmp_path / "a")))
    b = summary_of(
        cli(
            "backtest",
            str(real_spot_log),
            "--strategy",
            "rsi",
            "--out",
            str(tmp_path / "b"),
            "--per-event",
            env={"PYTHONHASHSEED": "77"},
        )
    )
    assert a["run_hash"] == b["run_hash"]
    assert a["events"] == 41_249 and a["signals"] > 0
