"""Risk in every backtest: the wiring (strategy -> risk -> venue), its config, and its default.

- ``VenueKernel`` (trade deferral, risk marked on every trade) gives byte-identical output to
  the plain kernel with the same risk engine attached, breakers and kill switch included;
- the effective risk config is in RunStarted's config (so under the run hash): the default
  starts from the venue's quote balance with every limit off, a base balance becomes risk's
  starting position, ``--risk FILE`` and ``--risk-param`` are laid over each other;
- bad risk parameters are one-line CLI errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from catalogs.log import FlushPolicy, LogReader, LogWriter
from engine.errors import ConfigError
from engine.events import CircuitBreakerTripped, KillSwitchEngaged, RiskApproved, RiskDenied, RunStarted
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.kernel import Kernel
from engine.ports import ListSink, chunked
from engine.risk import RiskEngine, attach_risk, load_risk_config
from replay.backtest import VenueKernel, run_backtest
from replay.venue_config import (
    SymbolChoice,
    build_venue,
    default_symbol_dict,
    load_risk_params,
    load_settings,
    resolve_risk,
)
from strategies.rsi import RsiConfig, RsiStrategy
from tests.integration.test_backtest_venue import synthetic

pytestmark = pytest.mark.edge

E8 = SCALE
BTC = InstrumentId("BTCUSDT.SPOT")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synth_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("risk") / "log"
    with LogWriter(path, policy=FlushPolicy(max_events=300, fsync=False), monotonic_ns=None) as w:
        w.extend(synthetic(6000))
    return path


TRIPPING = [
    {"daily_loss_limit": "0.5", "flatten_on_daily_loss": True},
    {"starting_equity": "1000", "max_drawdown_bps": 5, "flatten_on_kill": True, "max_orders": 3},
    {"max_order_notional": "700", "max_position_qty": "0.01", "price_band_bps": 10},
]


@pytest.mark.parametrize("limits", TRIPPING)
@pytest.mark.parametrize("trades_only", [False, True])
def test_venue_kernel_with_risk_equals_the_plain_kernel(limits: dict[str, Any], trades_only: bool) -> None:
    """Deferring trades from a quiet venue while risk is marked on each one changes nothing."""
    events = synthetic(6000, klines=False)
    if trades_only:
        events = [e for e in events if type(e).__name__ == "TradeReceived"]
    settings = load_settings(None, {"fill": "l1"})
    syms = {BTC: SymbolChoice("default", default_symbol_dict("BTCUSDT", E8 // 100, 1))}
    params = {"starting_equity": "1000000", **limits}
    outs = []
    for kernel_type in (Kernel, VenueKernel):
        bundle = build_venue(settings, syms)
        engine = RiskEngine(load_risk_config(params))
        gate, venue = attach_risk(engine, bundle.venue)
        sink = ListSink()
        k = kernel_type(sink, venue=venue, risk=gate, latency=bundle.latency)
        k.add_strategy(RsiStrategy(RsiConfig(period=5)))
        k.run(chunked(events, 200))
        if isinstance(k, VenueKernel):
            k.sync_venue()
        outs.append(([msgspec.json.encode(e) for e in sink.events], bundle.venue.balances(), engine.equity()))
    assert outs[0] == outs[1]
    logged = outs[0][0]
    assert any(b'"RiskApproved"' in e for e in logged)
    if "daily_loss_limit" in limits or "max_drawdown_bps" in limits:
        assert any(b'"CircuitBreakerTripped"' in e for e in logged)
        assert any(b'"KillSwitchEngaged"' in e for e in logged)
    assert any(b'"RiskDenied"' in e for e in logged)


def test_default_risk_is_in_the_path_with_limits_off_and_in_the_config(synth_log: Path, tmp_path: Path) -> None:
    s = run_backtest(synth_log, "rsi", ["period=5"], out=tmp_path / "r",
                     venue=load_settings(None, {"fill": "l1", "balances": ["USDT=5000", "BTC=0.5"]}))
    with LogReader(tmp_path / "r") as reader:
        events = list(reader.events())
    started = events[0]
    assert isinstance(started, RunStarted)
    risk = json.loads(started.config_json)["risk"]
    assert risk["engine"] == "engine.risk" and risk["quote_asset"] == "USDT"
    assert risk["starting_equity"] == 5000 * E8  # the venue's quote balance
    assert risk["initial_positions"] == {"BTCUSDT.SPOT": E8 // 2}  # the base balance is a position
    limits = ("max_order_notional", "max_position_qty", "max_symbol_exposure", "max_gross_exposure",
              "price_band_bps", "max_orders", "daily_loss_limit", "max_drawdown_bps")
    assert all(risk[k] is None for k in limits)
    approved = [e for e in events if isinstance(e, RiskApproved)]
    assert s.orders > 0 and len(approved) == s.orders == s.risk_approved and s.risk_denied == 0
    assert not any(isinstance(e, RiskDenied | CircuitBreakerTripped | KillSwitchEngaged) for e in events)


def test_risk_config_changes_the_config_hash_and_a_repeat_keeps_the_run_hash(synth_log: Path, tmp_path: Path) -> None:
    venue = load_settings(None, {"fill": "l1"})
    a = run_backtest(synth_log, "rsi", ["period=5"], out=tmp_path / "a", venue=venue)
    b = run_backtest(synth_log, "rsi", ["period=5"], out=tmp_path / "b", venue=venue)
    c = run_backtest(synth_log, "rsi", ["period=5"], out=tmp_path / "c", venue=venue,
                     risk={"max_order_notional": "100000"})
    assert a.run_hash == b.run_hash and a.config_hash == b.config_hash
    assert c.config_hash != a.config_hash and c.run_hash != a.run_hash  # RunStarted differs
    assert (c.orders, c.fills, c.balances) == (a.orders, a.fills, a.balances)  # a loose limit changes no order


def test_load_risk_params_layers_the_file_and_the_flags(tmp_path: Path) -> None:
    top = tmp_path / "top.toml"
    top.write_text('max_order_notional = "1000"\nmax_drawdown_bps = 500\n')
    table = tmp_path / "table.toml"
    table.write_text('[risk]\nmax_order_notional = "2000"\n')
    assert load_risk_params(top) == {"max_order_notional": "1000", "max_drawdown_bps": 500}
    assert load_risk_params(table, ["max_order_notional=3000", "max_orders=5"]) == {
        "max_order_notional": "3000",
        "max_orders": "5",
    }
    settings = load_settings(None, {"balances": ["USDT=250.5"]})
    syms = {BTC: SymbolChoice("default", default_symbol_dict("BTCUSDT", E8 // 100, 1))}
    setup = resolve_risk(load_risk_params(table, ["max_orders=5"]), settings, syms)
    assert setup.config.starting_equity == 25_050_000_000 and setup.config.max_order_notional == 2000 * E8
    assert setup.config.max_orders == 5 and setup.positions == ()
    mixed = tmp_path / "mixed.toml"
    mixed.write_text('max_orders = 1\n[risk]\nmax_order_notional = "2"\n')
    with pytest.raises(ConfigError, match="one \\[risk\\] table"):
        load_risk_params(mixed)
    with pytest.raises(ConfigError, match="--risk-param 'max_orders' given twice"):
        load_risk_params(None, ["max_orders=1", "max_orders=2"])
    with pytest.raises(ConfigError, match="cannot read"):
        load_risk_params(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--risk-param", "max_order_notionl=5"], "unknown risk parameter"),
        (["--risk-param", "max_drawdown_bps=0"], "max_drawdown_bps"),
        (["--risk-param", "max_order_notional"], "--risk-param 'max_order_notional': expected KEY=VALUE"),
    ],
)
def test_bad_risk_params_are_one_line_cli_errors(synth_log: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tickloop.cli", "backtest", str(synth_log), "--strategy", "rsi",
         "--out", str(tmp_path / "r"), *args],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("tickloop: error: ") and proc.stderr.count("\n") == 1
    assert needle in proc.stderr and not (tmp_path / "r").exists()
