"""Resource footprint of a paper session: steady-state RSS, CPU share, log bytes per hour.

Builds a seeded 15-symbol synthetic market (``replay.synthetic``; the ``--demo`` market has
only two symbols), serves it with ``tickloop serve-venue --log`` at real-time pace, runs
``tickloop paper`` for all N symbols (default 15, the board's target) against it, samples the paper
process from ``/proc`` once a second, drops a warm-up period (imports, exchangeInfo, book
sync), and prints ONE JSON line:

- ``rss_mb``: max and median resident set size in the steady window;
- ``cpu_share``: CPU seconds per wall second of the paper process (1.0 = one core busy);
- ``msgs_per_s``: input events the session logged per second (market data + venue answers);
- ``cpu_share_per_1000_msgs_s``: CPU share divided by thousands of msgs/s, the figure that
  scales to the board (docs/board.md explains the scaling);
- ``log_bytes_per_hour``: growth of the session directory (input + out logs) scaled to an hour.

Why /proc and a separate process: RSS and CPU must be the real process's, including the
interpreter, numpy and aiohttp, not a Python-level estimate. Linux only.

Usage: python bench/footprint.py [--symbols 15] [--seconds 120] [--warmup 30] [--strategy rsi]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]  # bench/replay.py must not shadow the ``replay`` package

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at a process: wall time, CPU seconds (user+system), RSS bytes, session bytes."""

    t: float
    wall_ns: int
    cpu_s: float
    rss: int
    disk: int


def _cpu_rss(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    return cpu, rss


def _disk(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                continue
    return total


def _tickloop(python: str, *args: str) -> list[str]:
    return [python, "-m", "tickloop.cli", *args]


# (symbol, price, tick e8, lot e8, level lots, book events/s): the top of Binance spot, with
# activity falling off from BTCUSDT as it does on the real venue (BTC/ETH are replay.synthetic's).
MARKET: tuple[tuple[str, int, int, int, int, float], ...] = (
    ("BTCUSDT", 60_000 * 10**8, 1_000_000, 1_000, 200, 60.0),
    ("ETHUSDT", 2_600 * 10**8, 1_000_000, 10_000, 300, 45.0),
    ("SOLUSDT", 150 * 10**8, 1_000_000, 100_000, 300, 35.0),
    ("BNBUSDT", 550 * 10**8, 1_000_000, 100_000, 200, 25.0),
    ("XRPUSDT", 6 * 10**7, 10_000, 10**8, 300, 25.0),
    ("DOGEUSDT", 10**7, 1_000, 10**8, 500, 22.0),
    ("ADAUSDT", 4 * 10**7, 10_000, 10**7, 400, 15.0),
    ("TRXUSDT", 12 * 10**6, 1_000, 10**8, 400, 10.0),
    ("AVAXUSDT", 25 * 10**8, 1_000_000, 10**6, 200, 12.0),
    ("LINKUSDT", 11 * 10**8, 100_000, 10**6, 200, 12.0),
    ("DOTUSDT", 5 * 10**8, 100_000, 10**6, 200, 10.0),
    ("LTCUSDT", 65 * 10**8, 1_000_000, 10**5, 200, 10.0),
    ("BCHUSDT", 350 * 10**8, 1_000_000, 10**5, 200, 8.0),
    ("NEARUSDT", 4 * 10**8, 100_000, 10**7, 200, 8.0),
    ("PEPEUSDT", 800, 1, 10**8, 1_000, 15.0),
)


def make_market_log(python: str, n: int, seconds: float, seed: int, work: Path, rate_scale: float) -> Path:
    """A seeded ``n``-symbol synthetic session (replay.synthetic) imported into an event log.

    Why not ``serve-venue --demo``: its demo market has replay.synthetic's two symbols; the
    board's target is 15, so the bench builds its own market and serves it with ``--log``.
    """
    from replay.synthetic import SymbolSpec, write_session

    if not 1 <= n <= len(MARKET):
        sys.exit(f"footprint: --symbols must be 1..{len(MARKET)}")
    specs = tuple(SymbolSpec(*row[:5], row[5] * rate_scale) for row in MARKET[:n])
    raw = work / "market.gz"
    write_session(raw, seed, seconds, specs)
    log = work / "market-log"
    subprocess.run(_tickloop(python, "import", "binance-stream", str(raw), "--out", str(log)),
                   check=True, stdout=subprocess.DEVNULL)
    return log


def start_server(python: str, market_log: Path, log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """``serve-venue --log MARKET`` (real-time pace) on 127.0.0.1, port 0; returns its JSON line."""
    args = ["serve-venue", "--log", str(market_log), "--speed", "1", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(_tickloop(python, *args), stdout=subprocess.PIPE, stderr=log.open("wb"))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        sys.exit(f"footprint: serve-venue printed nothing; see {log}")
    return proc, json.loads(line)


def demo_symbols(base_url: str) -> list[str]:
    """The symbols the demo market trades, from its exchangeInfo."""
    import httpx

    doc = httpx.get(f"{base_url}/api/v3/exchangeInfo", timeout=10).json()
    return [s["symbol"] for s in doc["symbols"] if s.get("status", "TRADING") == "TRADING"]


def sample_until(pid: int, proc: subprocess.Popen[bytes], session: Path, seconds: float) -> list[Sample]:
    samples: list[Sample] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds and proc.poll() is None:
        try:
            cpu, rss = _cpu_rss(pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        samples.append(Sample(time.monotonic(), time.time_ns(), cpu, rss, _disk(session)))
        time.sleep(1.0)
    return samples


def inputs_between(input_log: Path, lo_ns: int, hi_ns: int) -> int:
    """Input events the session received (``ts_recv``, wall clock) in [lo_ns, hi_ns)."""
    from catalogs.log import LogReader

    n = 0
    with LogReader(input_log) as reader:
        for batch in reader.batches():
            ts = batch.ints["ts_recv"]
            n += int(((ts >= lo_ns) & (ts < hi_ns)).sum())
    return n


def count_fills(out_log: Path) -> int:
    """ORDER_FILLED events in the session's output log (the strategy really traded)."""
    from catalogs.log import LogReader
    from engine.events import Kind

    with LogReader(out_log) as reader:
        return sum(int((b.kind == int(Kind.ORDER_FILLED)).sum()) for b in reader.batches())


def summarise(steady: list[Sample], session: Path) -> dict[str, Any]:
    if len(steady) < 3:
        sys.exit("footprint: fewer than 3 steady-state samples; run longer (--seconds) or warm up less")
    wall = steady[-1].t - steady[0].t
    cpu_share = (steady[-1].cpu_s - steady[0].cpu_s) / wall
    disk_rate = (steady[-1].disk - steady[0].disk) / wall
    msgs = inputs_between(session / "input", steady[0].wall_ns, steady[-1].wall_ns) / wall
    rss = [s.rss for s in steady]
    return {
        "rss_mb": {"max": round(max(rss) / 2**20, 1), "median": round(statistics.median(rss) / 2**20, 1)},
        "cpu_share": round(cpu_share, 4),
        "msgs_per_s": round(msgs, 1) if msgs else None,
        "cpu_share_per_1000_msgs_s": round(cpu_share / (msgs / 1000), 4) if msgs else None,
        "log_bytes_per_hour": int(disk_rate * 3600),
        "steady_window_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=120.0, help="paper session length")
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds dropped before measuring")
    ap.add_argument("--strategy", default="rsi")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate-scale", type=float, default=4.0,
                    help="multiply every symbol's book event rate (4: ~1,000 msgs/s for 15 symbols, the"
                         " typical estimate for the top 15 spot symbols in docs/board.md)")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep the session here (default: a temp dir)")
    args = ap.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="tickloop-footprint-"))
    work.mkdir(parents=True, exist_ok=True)
    market = make_market_log(args.python, args.symbols, args.seconds + 60, args.seed, work, args.rate_scale)
    server, info = start_server(args.python, market, work / "serve-venue.log")
    try:
        symbols = demo_symbols(info["base_url"])[: args.symbols]
        session = work / "session"
        env = {**os.environ, "TICKLOOP_API_KEY": info.get("api_key", ""), "TICKLOOP_API_SECRET": info.get("api_secret", ""),
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # as deploy/systemd's units set them
        cmd = _tickloop(args.python, "paper", "--base-url", info["base_url"], "--ws-url", info["ws_url"],
                        "--symbols", ",".join(symbols), "--strategy", args.strategy, "--out", str(session),
                        "--duration", str(args.seconds))
        t0 = time.monotonic()
        paper = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=(work / "paper.log").open("wb"), env=env)
        samples = sample_until(paper.pid, paper, session, args.seconds + 30)
        paper.communicate(timeout=120)
        run_s = time.monotonic() - t0
        server_cpu, server_rss = _cpu_rss(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    steady = [s for s in samples if s.t - t0 >= args.warmup]
    result = {
        "bench": "footprint",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "symbols": len(symbols),
        "symbols_wanted": args.symbols,
        "strategy": args.strategy,
        "paper_exit": paper.returncode,
        "rate_scale": args.rate_scale,
        "fills": count_fills(session / "out"),
        "run_s": round(run_s, 1),
        **summarise(steady, session),
        "server": {"cpu_s": round(server_cpu, 1), "rss_mb": round(server_rss / 2**20, 1)},
        "session_dir": str(session),
    }
    print(json.dumps(result, sort_keys=True))
    return 0 if paper.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
