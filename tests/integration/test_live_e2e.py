"""End to end on localhost: the venue server replays real BTCUSDT, ``tickloop live`` trades it.

The issue's required test: ``serve-venue`` replays the real spot recording (imported to a log
first) faster than real time; ``tickloop live`` (a real subprocess, credentials from the
environment) trades it with ``rsi`` through the live adapter and risk; the server's own log
and the client's log agree on every order and fill; ``tickloop replay audit`` of the client's
session reports no divergence. Also here: a paper session against the demo server audits
clean, the API secret appears in no file of the session, and a recording survives SIGKILL
(the restarted recorder continues the seq in the same log).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from catalogs.log import LogReader
from engine.events import CommandIssued, Event, OrderAccepted, OrderFilled, TradeReceived
from engine.orders import SubmitOrder
from tests.conftest import binance_file

REPO = Path(__file__).resolve().parents[2]
RSI_FAST = ["--strategy", "rsi", "--param", "period=5", "--param", "lower=45", "--param", "upper=55"]


def tickloop(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tickloop.cli", *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )


def events(log: Path) -> list[Event]:
    with LogReader(log) as r:
        return list(r.events())


def fill_keys(evs: list[Event]) -> set[tuple[str, int, int, int]]:
    return {(e.client_order_id, e.trade_id, e.price, e.qty) for e in evs if isinstance(e, OrderFilled)}


def accepted(evs: list[Event]) -> set[tuple[str, int]]:
    return {(e.client_order_id, e.order_id) for e in evs if isinstance(e, OrderAccepted)}


def no_secret_in(root: Path, secret: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.fixture(scope="module")
def real_spot_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = binance_file("spot/hftbacktest_2024-08-08/btcusdt_20240808.gz")
    from catalogs.importers.driver import import_binance_stream

    out = tmp_path_factory.mktemp("real") / "log"
    import_binance_stream([raw], out)
    return out


def test_live_against_the_server_replaying_real_btcusdt_agrees_and_audits_clean(
    real_spot_log: Path, tmp_path: Path
) -> None:
    from replay.serve import ServerConfig, serve_in_thread

    server_out, client = tmp_path / "server", tmp_path / "client"
    config = ServerConfig(log=real_spot_log, demo=False, speed=40.0, seed=5, out=server_out, wait_for_client=True)
    with serve_in_thread(config) as info:
        env = {"TICKLOOP_API_KEY": info.api_key, "TICKLOOP_API_SECRET": info.api_secret}
        proc = tickloop(
            "live", "--symbols", "btcusdt", "--base-url", info.base_url, "--ws-url", info.ws_url,
            "--out", str(client), "--duration", "6", *RSI_FAST, env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "live" and summary["orders"] > 0

    client_in, client_out, server = events(client / "input"), events(client / "out"), events(server_out)
    assert any(isinstance(e, TradeReceived) for e in client_in)
    sent = {e.command.client_order_id for e in client_out if isinstance(e, CommandIssued) and isinstance(e.command, SubmitOrder)}
    assert sent and len(fill_keys(client_in)) > 0
    # every order and fill the server recorded is the client's, and the other way round
    assert accepted(client_in) == accepted(server)
    assert fill_keys(client_in) == fill_keys(server)
    assert {cid for cid, _ in accepted(server)} == sent

    assert no_secret_in(client, info.api_secret.encode()) == []
    assert no_secret_in(client, info.api_key.encode()) == []
    audit = tickloop("replay", "audit", str(client))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report: dict[str, Any] = json.loads(audit.stdout.strip().splitlines()[-1])
    assert report["divergences"] == 0 and report["compared"] > 0 and report["complete"]


def test_paper_session_against_the_demo_server_audits_clean(tmp_path: Path) -> None:
    from replay.serve import ServerConfig, serve_in_thread

    session = tmp_path / "paper"
    with serve_in_thread(ServerConfig(demo=True, speed=5.0, seed=11, demo_duration_s=600)) as info:
        proc = tickloop(
            "paper", "--symbols", "btcusdt", "--base-url", info.base_url, "--ws-url", info.ws_url,
            "--out", str(session), "--duration", "3", *RSI_FAST,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = events(session / "out")
    assert any(isinstance(e, OrderFilled) for e in outputs)
    info_json = json.loads((session / "session.json").read_text())
    assert info_json["mode"] == "paper" and info_json["venue"]["name"] == "sim"
    audit = tickloop("replay", "audit", str(session))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert json.loads(audit.stdout)["divergences"] == 0


def test_recording_survives_sigkill_and_the_restart_continues_the_seq(tmp_path: Path) -> None:
    from replay.serve import ServerConfig, serve_in_thread

    session = tmp_path / "rec"
    args = ["record", "--symbols", "btcusdt,ethusdt", "--streams", "aggTrade,depth20,bookTicker", "--out", str(session)]
    with serve_in_thread(ServerConfig(demo=True, speed=5.0, seed=2, demo_duration_s=600)) as info:
        urls = ["--base-url", info.base_url, "--ws-url", info.ws_url]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.Popen([sys.executable, "-m", "tickloop.cli", *args, *urls], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60  # safety net, not a timing assertion
            while not any((session / "input").glob("*.arrows")) or _size(session) < 20_000:
                assert child.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
            child.wait()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL
        proc = tickloop(*args, *urls, "--duration", "1.5")
        assert proc.returncode == 0, proc.stderr[-3000:]
    evs = events(session / "input")
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
    starts = json.loads((session / "session.json").read_text())["starts"]
    assert len(starts) == 2 and 1 < starts[1]["first_seq"] <= len(evs)
    assert {e.instrument for e in evs if e.seq >= starts[1]["first_seq"]} >= {"BTCUSDT.SPOT", "ETHUSDT.SPOT"}


def _size(session: Path) -> int:
    return sum(p.stat().st_size for p in (session / "input").glob("*.arrows"))


def test_a_depth_gap_in_a_session_triggers_a_resync_and_the_book_recovers(tmp_path: Path) -> None:
    """The server skips one diff-depth message; the kernel's book sync sees the gap, the session's
    source fetches a fresh REST snapshot, the book is synced again, and the session still audits clean."""
    from engine.events import BookGapDetected, BookSnapshotReceived, FeedStatusChanged
    from replay.serve import ServerConfig, serve_in_thread

    session = tmp_path / "paper"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with serve_in_thread(ServerConfig(demo=True, speed=5.0, seed=11, demo_duration_s=600)) as info:
        child = subprocess.Popen(
            [sys.executable, "-m", "tickloop.cli", "paper", "--symbols", "btcusdt", "--streams", "trade,depth,bookTicker",
             "--base-url", info.base_url, "--ws-url", info.ws_url, "--out", str(session), "--duration", "6",
             "--strategy", "imbalance"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the first REST depth snapshot: the book is about to sync
            if "/api/v3/depth" in child.stderr.readline():
                break
        time.sleep(0.5)
        info.control.set_faults(skip_depth_updates=1)
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err[-3000:]
    inputs = events(session / "input")
    outputs = events(session / "out")
    gaps = [e for e in outputs if isinstance(e, BookGapDetected)]
    assert gaps, "the skipped update was not detected"
    snaps = [e for e in inputs if isinstance(e, BookSnapshotReceived)]
    assert len(snaps) >= 2 and snaps[-1].ts_recv > gaps[0].ts_recv
    statuses = [e.status for e in inputs if isinstance(e, FeedStatusChanged)]
    assert "resync_started" in statuses and "resynced" in statuses
    after = [e for e in inputs if e.ts_recv > snaps[-1].ts_recv and type(e).__name__ == "BookDeltaReceived"]
    assert after, "no diffs after the resync snapshot"
    assert not [e for e in outputs if isinstance(e, BookGapDetected) and e.ts_recv > snaps[-1].ts_recv + 10**9]
    audit = tickloop("replay", "audit", str(session))
    assert audit.returncode == 0 and json.loads(audit.stdout)["divergences"] == 0, audit.stdout + audit.stderr
