"""``tickloop status``: liveness from session.json's pid, stream ages from the input log, breaker from out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from catalogs.log import FlushPolicy, LogWriter
from engine.errors import ConfigError
from engine.events import (
    CircuitBreakerTripped,
    Event,
    FeedStatusChanged,
    KillSwitchEngaged,
    RiskReset,
    TradeReceived,
)
from engine.identifiers import InstrumentId
from tickloop.cli import main
from tickloop.commands.status import collect, pid_running, render

pytestmark = pytest.mark.edge

BTC, ETH, NONE = InstrumentId("BTCUSDT.SPOT"), InstrumentId("ETHUSDT.SPOT"), InstrumentId("")
S = 1_000_000_000
T0 = 1_723_161_600 * S
POLICY = FlushPolicy(max_events=16, max_interval_ns=None, segment_max_bytes=4_000, fsync=False)


def trade(ts: int, inst: InstrumentId = BTC) -> TradeReceived:
    return TradeReceived(0, ts, ts, inst, 6_000_000_000_000, 1_000, ts, False)


def write(path: Path, events: Sequence[Event]) -> None:
    with LogWriter(path, policy=POLICY) as writer:
        writer.extend(events)


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process whose command line mentions tickloop, as a running session's does."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "tickloop-paper"],
                            stdin=subprocess.PIPE)
    try:
        yield proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass", "tickloop"])
    proc.wait(timeout=10)
    return proc.pid


def session(root: Path, name: str, info: dict[str, object], inputs: Sequence[Event],
            outputs: Sequence[Event] | None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "session.json").write_text(json.dumps(info))
    write(path / "input", inputs)
    if outputs is not None:
        write(path / "out", outputs)
    return path


def test_running_paper_session_ages_feeds_and_tripped_breaker(tmp_path: Path, live_pid: int) -> None:
    inputs: list[Event] = [trade(T0 + i * S // 10, BTC if i % 3 else ETH) for i in range(300)]
    inputs.append(FeedStatusChanged(0, T0 + 31 * S, T0 + 31 * S, NONE, "btcusdt@depth", "disconnected", "eof"))
    inputs.append(trade(T0 + 32 * S, BTC))
    outputs = [
        KillSwitchEngaged(0, T0 + 5 * S, T0 + 5 * S, NONE, "operator", False),
        RiskReset(0, T0 + 6 * S, T0 + 6 * S, NONE, "operator", 10**12),
        CircuitBreakerTripped(0, T0 + 20 * S, T0 + 20 * S, NONE, "max_drawdown", 90, 100, 10, 500),
    ]
    path = session(tmp_path, "paper-1", {"mode": "paper", "pid": live_pid, "started_at": "x"}, inputs, outputs)
    now = T0 + 40 * S
    doc = collect(tmp_path, now)
    (s,) = doc["sessions"]
    assert s["running"] and s["mode"] == "paper" and s["pid"] == live_pid
    assert s["input_events"] == len(inputs)
    ages = {st["stream"]: st for st in s["streams"]}
    assert ages["BTCUSDT.SPOT trade"]["last_ts_recv_ns"] == T0 + 32 * S
    assert ages["BTCUSDT.SPOT trade"]["age_s"] == 8.0
    eth_last = max(e.ts_recv for e in inputs if e.instrument == ETH)
    assert ages["ETHUSDT.SPOT trade"]["age_s"] == round((now - eth_last) / S, 3)
    assert s["feeds"] == {"btcusdt@depth": "disconnected"}
    assert s["breaker"]["state"] == "tripped" and s["breaker"]["rule"] == "max_drawdown"
    on_disk = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert s["disk_bytes"] == on_disk
    assert doc["disk"]["sessions_bytes"] == on_disk and doc["disk"]["free_bytes"] > 0
    table = render(doc)
    assert "paper-1" in table and "tripped(max_drawdown)" in table and "running" in table


def test_stream_ages_come_from_the_newest_segment_only(tmp_path: Path) -> None:
    inputs = [trade(T0 + i * S, ETH) for i in range(200)] + [trade(T0 + 500 * S, BTC) for _ in range(3)]
    session(tmp_path, "rec", {"mode": "record", "pid": dead_pid()}, inputs, None)
    (s,) = collect(tmp_path, T0 + 600 * S)["sessions"]
    streams = {st["stream"]: st["events_in_segment"] for st in s["streams"]}
    assert streams["BTCUSDT.SPOT trade"] == 3
    assert streams.get("ETHUSDT.SPOT trade", 0) < 200  # older segments are not read
    assert s["breaker"]["state"] == "n/a"


def test_dead_pid_and_stopped_sessions_are_not_running(tmp_path: Path, live_pid: int) -> None:
    session(tmp_path, "a", {"mode": "paper", "pid": dead_pid()}, [trade(T0)], [])
    session(tmp_path, "b", {"mode": "paper", "pid": live_pid, "stopped_at": "2024", "stop_reason": "duration"},
            [trade(T0)], [])
    doc = collect(tmp_path, T0 + S)
    assert [s["running"] for s in doc["sessions"]] == [False, False]
    assert doc["sessions"][1]["stop_reason"] == "duration"
    assert all(s["breaker"]["state"] == "ok" for s in doc["sessions"])


def test_pid_of_a_non_tickloop_process_is_not_a_session(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert not pid_running(proc.pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("last", "state"),
    [
        (CircuitBreakerTripped(0, T0, T0, NONE, "daily_loss", 90, 100, 10, 5, T0 + 10 * S), "tripped"),
        (CircuitBreakerTripped(0, T0, T0, NONE, "daily_loss", 90, 100, 10, 5, T0 + S // 2), "ok"),
        (KillSwitchEngaged(0, T0, T0, NONE, "file", True), "killed"),
        (RiskReset(0, T0, T0, NONE, "new day", 100), "ok"),
    ],
)
def test_breaker_follows_the_last_risk_event(tmp_path: Path, last: Event, state: str) -> None:
    outputs = [trade(T0 - 10 * S), CircuitBreakerTripped(0, T0 - S, T0 - S, NONE, "max_drawdown", 1, 2, 1, 1), last]
    session(tmp_path, "p", {"mode": "paper", "pid": 0}, [trade(T0)], outputs)
    (s,) = collect(tmp_path, T0 + S)["sessions"]
    assert s["breaker"]["state"] == state


def test_nested_sessions_and_a_broken_session_json(tmp_path: Path) -> None:
    session(tmp_path / "paper", "2024-08-09", {"mode": "paper", "pid": 0}, [trade(T0)], [])
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "session.json").write_text("{not json")
    doc = collect(tmp_path, T0)
    names = [s["name"] for s in doc["sessions"]]
    assert names == ["broken", "paper/2024-08-09"]
    assert "unreadable" in doc["sessions"][0]["problems"][0]


def test_cli_json_and_table(tmp_path: Path) -> None:
    session(tmp_path, "p", {"mode": "paper", "pid": 0}, [trade(T0)], [])
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["status", "--root", str(tmp_path), "--json"]) == 0
    assert json.loads(out.getvalue())["sessions"][0]["name"] == "p"
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["status", "--root", str(tmp_path)]) == 0
    assert out.getvalue().splitlines()[0].startswith("SESSION")


def test_missing_root_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope"):
        collect(tmp_path / "nope", 0)
