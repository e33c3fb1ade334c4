"""A session written by the edge profile is read by the workstation profile and audits clean.

The paper session runs in a subprocess where pyarrow, duckdb, numba, scipy and onnxruntime
cannot be imported (stub packages that raise ImportError shadow them), as on the riscv64 board;
this process then reads both of its logs with pyarrow and DuckDB, checks they agree with our
own reader row for row, and audit-replays the session with zero divergence.
(``scripts/edge-check.sh`` does the same with a real riscv64 system under qemu.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCKED = ("pyarrow", "duckdb", "numba", "scipy", "onnxruntime")
RSI_FAST = ["--strategy", "rsi", "--param", "period=5", "--param", "lower=45", "--param", "upper=55"]


def _blocker(root: Path) -> Path:
    for name in BLOCKED:
        pkg = root / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(f"raise ImportError('{name} is not on the edge profile')\n")
    return root


def test_a_log_written_without_pyarrow_reads_with_pyarrow_and_duckdb_and_audits_clean(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    duckdb = pytest.importorskip("duckdb")
    import pyarrow.ipc as ipc

    from catalogs.arrow_pa import read_rows
    from catalogs.log import LogReader
    from engine.events import Kind
    from replay.audit import audit_session
    from replay.serve import ServerConfig, serve_in_thread

    env = {**os.environ, "PYTHONPATH": str(_blocker(tmp_path / "block")), "PYTHONDONTWRITEBYTECODE": "1"}
    probe = subprocess.run([sys.executable, "-c", "import pyarrow"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "not on the edge profile" in probe.stderr
    session = tmp_path / "paper"
    with serve_in_thread(ServerConfig(demo=True, speed=5.0, seed=3, demo_duration_s=600)) as info:
        done = subprocess.run(
            [sys.executable, "-m", "tickloop.cli", "paper", "--symbols", "btcusdt", "--base-url", info.base_url, "--ws-url", info.ws_url,
             "--out", str(session), "--duration", "4", *RSI_FAST],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["exit"] == 0

    fills = 0
    for part in ("input", "out"):
        log = session / part
        reader = LogReader(log)
        reader.verify()
        ours = sum(b.length for b in reader.batches())
        rows = [r for seg in reader.segments for r in read_rows((log / seg).read_bytes())]
        assert len(rows) == ours > 0
        table = pa.concat_tables([ipc.open_stream(pa.memory_map(str(log / s))).read_all() for s in reader.segments])
        con = duckdb.connect()
        con.register("ev", table)
        n, f = con.execute(
            f"select count(*), count(*) filter (where kind = {int(Kind.ORDER_FILLED)}) from ev"
        ).fetchone()
        assert n == ours
        fills += f
        reader.close()
    assert fills >= 1, "the edge paper session filled no order"
    report = audit_session(session).to_json()
    assert report["divergences"] == 0 and report["compared"] > 0, report
