"""Walk-forward of ``rsi`` over the real BTCUSDT spot recording (both files: ~11 minutes)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.conftest import binance_file

S = 1_000_000_000


def test_rsi_walkforward_on_real_btcusdt(tmp_path: Path) -> None:
    from catalogs.importers import import_binance_stream
    from replay.walkforward import WalkForwardSpec, parse_grid, run_walkforward

    files = [binance_file(f"spot/hftbacktest_2024-08-08/btcusdt_2024080{d}.gz") for d in (8, 9)]
    import_binance_stream(files, tmp_path / "log")
    spec = WalkForwardSpec(
        "rsi",
        train_ns=180 * S,
        test_ns=120 * S,
        grid=parse_grid(["period=7,14"]),
        params=("lower=45", "upper=55"),
        objective="return",
    )
    doc = run_walkforward(tmp_path / "log", spec).to_json()
    windows = doc["windows"]
    assert len(windows) == 3  # 11 min of data: 3 min train + 2 min test, stepping 2 min
    for w in windows:
        assert w["test_start"] == w["train_end"] and w["test_end"] - w["test_start"] == 120 * S
        scores = [-math.inf if c["objective"] is None else c["objective"] for c in w["candidates"]]
        assert w["is_objective"] == max(scores)
        assert w["oos"] is not None and w["oos"]["start_ts"] == w["test_start"]
    assert sum(w["oos"]["fills"] for w in windows) > 0
    agg = doc["aggregate"]["oos"]
    assert agg["start_ts"] == windows[0]["test_start"] and agg["end_ts"] <= windows[-1]["test_end"]
    json.dumps(doc, allow_nan=False)  # JSON-safe: undefined values are null
