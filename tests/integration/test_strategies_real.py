"""``imbalance`` and ``maker`` on the real BTCUSDT spot recording, through ``tickloop backtest``.

Each runs twice in separate processes (one on the per-event path, another hash seed) and
must give the same run hash; each must really trade: the imbalance strategy's OCO
brackets are placed and their legs fill, the quoter gets maker fills through the venue's
queue model and pays the maker fee. A tight risk config must produce RiskDenied events
and never let an order beyond its limits through.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from catalogs.log import LogReader
from engine.events import (
    CommandIssued,
    Event,
    OrderFilled,
    OrderListStatusChanged,
    OrderTriggered,
    RiskApproved,
    RiskDenied,
    RunStarted,
)
from engine.fixed import SCALE
from engine.orders import ListOrderStatus, ListShape, SubmitOrder, SubmitOrderList
from engine.runhash import run_hash
from tests.conftest import binance_file

pytestmark = pytest.mark.edge

REPO = Path(__file__).resolve().parents[2]
RECORDING = "spot/hftbacktest_2024-08-08/btcusdt_20240808.gz"


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = binance_file(RECORDING)
    from catalogs.importers.driver import import_binance_stream

    out = tmp_path_factory.mktemp("real") / "log"
    import_binance_stream([raw], out)
    return out


def backtest(log: Path, out: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "tickloop.cli", "backtest", str(log), "--out", str(out), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary


def events_of(run_dir: Path) -> list[Event]:
    with LogReader(run_dir) as reader:
        return list(reader.events())


IMBALANCE = ["--strategy", "imbalance", "--param", "tp_bps=3", "--param", "sl_bps=3", "--param",
             "cooldown_ns=30000000000"]


def test_imbalance_trades_oco_brackets_on_the_real_recording_deterministically(real_log: Path, tmp_path: Path) -> None:
    a = backtest(real_log, tmp_path / "a", *IMBALANCE)
    b = backtest(real_log, tmp_path / "b", *IMBALANCE, "--per-event", env={"PYTHONHASHSEED": "99"})
    assert a["run_hash"] == b["run_hash"]
    events = events_of(tmp_path / "a")
    assert run_hash(events) == a["run_hash"]
    cmds = [e.command for e in events if isinstance(e, CommandIssued)]
    entries = [c for c in cmds if isinstance(c, SubmitOrder) and c.side == "BUY"]
    ocos = [c for c in cmds if isinstance(c, SubmitOrderList)]
    assert entries and ocos and all(c.shape is ListShape.OCO for c in ocos)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    leg_ids = {leg.client_order_id for c in ocos for leg in c.legs}
    leg_fills = [f for f in fills if f.client_order_id in leg_ids]
    assert leg_fills, "no bracket leg ever filled"
    assert any(f.maker for f in leg_fills)  # take-profit LIMIT_MAKER legs fill as maker
    done = [e for e in events if isinstance(e, OrderListStatusChanged) and e.list_order_status is ListOrderStatus.ALL_DONE]
    assert len(done) >= len(leg_fills) // 2
    for oco in ocos:  # each bracket: same qty both legs, take-profit above the stop
        above, below = oco.legs
        assert above.quantity == below.quantity > 0 and above.price > below.stop_price >= below.price > 0
    assert any(isinstance(e, OrderTriggered) for e in events) or any(f.maker for f in leg_fills)
    approved = [e for e in events if isinstance(e, RiskApproved)]
    assert len(approved) == len(cmds)  # every command went through risk (no limits: all approved)


def test_maker_gets_maker_fills_on_the_real_recording_deterministically(real_log: Path, tmp_path: Path) -> None:
    args = ["--strategy", "maker", "--param", "half_spread_bps=0.5", "--param", "max_inventory=0.003"]
    a = backtest(real_log, tmp_path / "a", *args)
    b = backtest(real_log, tmp_path / "b", *args, env={"PYTHONHASHSEED": "5"})
    assert a["run_hash"] == b["run_hash"] and a["fills"] > 0
    events = events_of(tmp_path / "a")
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert fills and all(f.maker for f in fills)
    sides = {f.side for f in fills}
    assert sides == {"BUY", "SELL"}  # it bought and sold back
    # maker fee (VIP 0: 10 bps) charged on the received asset
    for f in fills:
        received = f.qty if f.side == "BUY" else f.quote_qty
        assert f.commission == -(-received * 100_000 // SCALE)
    held = 0
    for f in fills:  # the inventory bound holds on the real data (0.003 BTC)
        held += f.qty if f.side == "BUY" else -f.qty
        held -= f.commission if f.commission_asset == "BTC" else 0
        assert 0 <= held <= 300_000
    submits = [e.command for e in events if isinstance(e, CommandIssued) and isinstance(e.command, SubmitOrder)]
    assert submits and all(c.order_type == "LIMIT_MAKER" for c in submits)


def test_a_tight_risk_config_denies_and_no_order_beyond_the_limits_passes(real_log: Path, tmp_path: Path) -> None:
    risk = tmp_path / "risk.toml"
    risk.write_text('[risk]\nmax_order_notional = "100"\nmax_position_qty = "0.002"\n')
    s = backtest(
        real_log, tmp_path / "r", "--strategy", "maker", "--param", "quantity=0.001", "--param",
        "max_inventory=0.005", "--param", "half_spread_bps=0.5", "--risk", str(risk),
        "--risk-param", "price_band_bps=50",
    )
    events = events_of(tmp_path / "r")
    started = events[0]
    assert isinstance(started, RunStarted)
    cfg = json.loads(started.config_json)["risk"]
    assert cfg["max_order_notional"] == 100 * SCALE and cfg["max_position_qty"] == 200_000
    assert cfg["price_band_bps"] == 50 and cfg["starting_equity"] == 1_000_000 * SCALE
    denied = [e for e in events if isinstance(e, RiskDenied)]
    assert denied and s["risk_denied"] == len(denied) > 0
    assert {d.rule for d in denied} >= {"max_position_qty"}
    assert all(d.value > d.limit for d in denied if d.rule == "max_position_qty")
    approved = {e.client_order_id: e for e in events if isinstance(e, RiskApproved) and e.client_order_id}
    assert approved and all(e.notional <= 100 * SCALE for e in approved.values())
    sent = {e.command.client_order_id: e.command for e in events
            if isinstance(e, CommandIssued) and isinstance(e.command, SubmitOrder)}
    denied_ids = {d.client_order_id for d in denied}
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert fills and not {f.client_order_id for f in fills} & denied_ids
    held = 0
    for f in fills:
        assert f.client_order_id in approved and f.client_order_id in sent
        held += f.qty if f.side == "BUY" else -f.qty
        held -= f.commission if f.commission_asset == "BTC" else 0
        assert held <= 200_000  # the worst-case position limit was never exceeded


def test_rsi_beyond_the_notional_limit_is_denied_every_time(real_log: Path, tmp_path: Path) -> None:
    s = backtest(real_log, tmp_path / "r", "--strategy", "rsi", "--risk-param", "max_order_notional=100")
    assert s["orders"] > 0 and s["fills"] == 0 and s["risk_denied"] == s["orders"] == s["rejections"]
    denied = [e for e in events_of(tmp_path / "r") if isinstance(e, RiskDenied)]
    assert all(d.rule == "max_order_notional" and d.value > d.limit == 100 * SCALE for d in denied)
