"""The live dashboard, rendered by headless Chromium while a real paper session trades.

``tickloop paper --dashboard-port 0`` runs against the local venue server's demo market;
Chromium loads the page (polling mode, so the page finishes loading), and the DOM it dumps
must show the charts drew (pixels on both canvases), several updates with moving event time,
fills in the table and no console errors. The kill endpoint with the right token then
engages the session's kill switch, which the session's own state reports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
RSI_FAST = ["--strategy", "rsi", "--param", "period=5", "--param", "lower=45", "--param", "upper=55"]


def _wait_for_url(child: subprocess.Popen[str], timeout_s: float = 30.0) -> str:
    assert child.stderr is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = child.stderr.readline()
        found = re.search(r"dashboard at (http://\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError("the paper session never printed its dashboard URL")


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def _dump(url: str, tmp: Path) -> tuple[str, str]:
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=4000", "--dump-dom", url,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def test_dashboard_draws_a_live_paper_session_and_its_kill_button_works(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium); CI installs it")
    from replay.serve import ServerConfig, serve_in_thread

    env = {**os.environ, "TICKLOOP_DASHBOARD_TOKEN": "t0ken"}
    with serve_in_thread(ServerConfig(demo=True, speed=5.0, seed=11, demo_duration_s=600)) as info:
        child = subprocess.Popen(
            [sys.executable, "-m", "tickloop.cli", "paper", "--symbols", "btcusdt", "--base-url", info.base_url,
             "--ws-url", info.ws_url, "--out", str(tmp_path / "paper"), "--duration", "25",
             "--dashboard-port", "0", *RSI_FAST],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            url = _wait_for_url(child)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not _get(url + "api/state")["fills"]:
                time.sleep(0.3)
            before = _get(url + "api/state")
            assert before["fills"], "the paper session made no fills in 15 s"
            dom, log = _dump(url + "?poll", tmp_path)
            errors = [ln for ln in log.splitlines() if "CONSOLE" in ln and ("Uncaught" in ln or "Error" in ln)]
            assert not errors, errors
            body = re.search(r"<body([^>]*)>", dom)
            assert body is not None
            attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
            assert int(attrs["updates"]) >= 2 and int(attrs["fills"]) >= 1
            assert int(attrs["last-event"]) >= int(before["last_event_ns"])  # type: ignore[call-overload]
            inks = dict(re.findall(r'<canvas id="(\w+)"[^>]*data-ink="(\d+)"', dom))
            assert int(inks["equity"]) > 500 and int(inks["latency"]) > 0, inks
            assert "<td>BUY</td>" in dom or "<td>SELL</td>" in dom

            req = urllib.request.Request(url + "api/kill", data=b'{"token": "t0ken", "reason": "test"}',
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _get(url + "api/state")["risk"]["state"] != "killed":  # type: ignore[index]
                time.sleep(0.2)
            assert _get(url + "api/state")["risk"]["state"] == "killed"  # type: ignore[index]
        finally:
            child.terminate()
            child.communicate(timeout=30)
