"""Recording throughput: sustained stream messages/s written to the log, and the CPU it costs.

Runs ``tickloop serve-venue --demo --speed 0`` (the synthetic market as fast as the server can
send it) and ``tickloop record`` against it for ``--seconds``; both are real subprocesses.
Reports, as ONE JSON line on stdout:

- ``msgs_per_s``: WebSocket messages the recorder received and wrote, over the span of its
  receive times (first to last event of the log), and ``events_per_s`` likewise;
- ``cpu_share``: recorder CPU time (user + system, ``resource.getrusage(RUSAGE_CHILDREN)``
  after it exits) over its wall time, and ``cpu_share_per_1k_msgs_s``: that share divided by
  thousands of msgs/s -- what one core spends per 1,000 msgs/s of sustained recording (the
  figure to size a board: 15 symbols at N msgs/s each need N*15/1000 times this);
- the count of messages, events, bytes on disk.

Usage: ``python bench/record.py [--seconds 10] [--symbols btcusdt,ethusdt] [--streams ...]``.
The server shares the machine, so on 2 cores the figure is a lower bound of the recorder alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def start_server(
    demo_duration: float, seed: int, speed: float, stdout_path: Path
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start serve-venue; its stdout goes to a file (a pipe nobody drains would block it)."""
    cmd = [sys.executable, "-m", "tickloop.cli", "serve-venue", "--demo", "--speed", str(speed),
           "--demo-duration", str(demo_duration), "--seed", str(seed)]
    with stdout_path.open("wb") as sink:
        proc = subprocess.Popen(cmd, env=_env(), stdout=sink, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = stdout_path.read_text()
        if "\n" in text:
            info: dict[str, Any] = json.loads(text.splitlines()[0])
            wait_ready(info["base_url"], deadline)
            return proc, info
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise SystemExit("serve-venue printed no start line (did it fail to start?)")


def wait_ready(base_url: str, deadline: float) -> None:
    """Until ``/api/v3/ping`` answers: the server may still be building its market after the start line."""
    import httpx

    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/api/v3/ping", timeout=5.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{base_url} did not answer /api/v3/ping")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if a server busy at full speed does not get to its handler."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def log_span(input_dir: Path) -> tuple[int, int]:
    """(events, ts_recv span in ns) of the recording."""
    from catalogs.log import LogReader

    n, first, last = 0, None, 0
    with LogReader(input_dir) as reader:
        for batch in reader.batches():
            ts = batch.ints["ts_recv"]
            if first is None:
                first = int(ts[0])
            last = int(ts[-1])
            n += batch.length
    return n, (last - first) if first is not None else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--symbols", default="btcusdt,ethusdt")
    ap.add_argument("--streams", default="aggTrade,trade,depth20,depth,bookTicker")
    ap.add_argument("--demo-duration", type=float, default=3600.0, help="market time the demo server generates")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--speed", type=float, default=0.0, help="server pace (0 = as fast as it can send)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server, info = start_server(args.demo_duration, args.seed, args.speed, Path(tmp) / "server.out")
        try:
            out = Path(tmp) / "rec"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            rec = subprocess.run(
                [sys.executable, "-m", "tickloop.cli", "record", "--symbols", args.symbols, "--streams", args.streams,
                 "--base-url", info["base_url"], "--ws-url", info["ws_url"], "--out", str(out),
                 "--duration", str(args.seconds)],
                env=_env(), capture_output=True, text=True, check=False,
            )
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if rec.returncode != 0:
                raise SystemExit(f"tickloop record failed ({rec.returncode}): {rec.stderr[-2000:]}")
            summary = json.loads(rec.stdout.strip().splitlines()[-1])
            events, span_ns = log_span(out / "input")
            size = sum(p.stat().st_size for p in (out / "input").glob("*.arrows"))
        finally:
            stop(server)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    messages = int(summary.get("source", {}).get("messages", 0))
    span_s = span_ns / 1e9 if span_ns else wall
    msgs_per_s = messages / span_s if span_s else 0.0
    share = cpu / wall if wall else 0.0
    print(json.dumps({
        "bench": "record",
        "symbols": args.symbols,
        "streams": args.streams,
        "seconds": args.seconds,
        "messages": messages,
        "connects": int(summary.get("source", {}).get("connects", 0)),
        "feeds": summary.get("feeds", {}),
        "events": events,
        "bytes": size,
        "span_s": round(span_s, 3),
        "msgs_per_s": round(msgs_per_s, 1),
        "events_per_s": round(events / span_s, 1) if span_s else 0.0,
        "recorder_wall_s": round(wall, 3),
        "recorder_cpu_s": round(cpu, 3),
        "cpu_share": round(share, 4),
        "cpu_share_per_1k_msgs_s": round(share / (msgs_per_s / 1000), 4) if msgs_per_s else None,
        "cpus": os.cpu_count(),
        "server_speed": args.speed,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
