"""The ``model`` strategy: config checks, model/spec agreement, and its order cycle on the sim venue.

The cycle test uses a constant model (zero weights, bias 3: P(up) = sigmoid(3) ~ 0.95, so
it wants to enter whenever it may) and a hand-made price path, so every step of the cycle
is forced: entry, OCO take-profit fill, cooldown, second entry, stop-loss trigger and fill.
Expected prices are computed from the documented rule (bps of the average entry price,
take profit rounded up and stop rounded down to the tick), not copied from a run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catalogs.log import LogReader, LogWriter
from engine.errors import ConfigError
from engine.events import CommandIssued, Event, OrderFilled, SignalEmitted, TradeReceived
from engine.identifiers import InstrumentId
from engine.orders import OrderSide, OrderType, SubmitOrder, SubmitOrderList
from replay.backtest import run_backtest
from strategies.model import SPEC_KEY, quantise
from strategies.registry import build_config, build_strategy
from tests.research_helpers import E8, T0

REPO = Path(__file__).resolve().parents[2]
SEED_MODEL = REPO / "tests" / "data" / "mlp_4_16_8_1.onnx"
BTC = InstrumentId("BTCUSDT.SPOT")
MS = 1_000_000
QTY = 1_000_001_000
"""10.00001 BTC per trade: more than an order needs, and its decimals make the default step 0.00001."""


@pytest.mark.edge
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({}, "model_path is required"),
        ({"model_path": "m.onnx", "threshold": "1.5"}, "threshold must be within 0..1"),
        ({"model_path": "m.onnx", "features": "rsi:14,nope"}, "'nope'"),
        ({"model_path": "m.onnx", "backend": "gpu"}, "backend must be"),
        ({"model_path": "m.onnx", "tp_bps": "0"}, "tp_bps"),
        ({"model_path": "m.onnx", "notional": "-1"}, "notional"),
        ({"model_path": "m.onnx", "model_sha256": "abc"}, "model_sha256"),
        ({"model_path": "m.onnx", "sizing": "martingale"}, "sizing must be"),
        ({"model_path": "m.onnx", "kelly_scale": "0"}, "kelly_scale"),
    ],
)
def test_bad_params_are_config_errors(params: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_config("model", params)


@pytest.mark.edge
def test_a_model_with_other_columns_is_refused() -> None:
    """The seed test model names its columns rsi_14,obi,tfi,vol_20: not what rsi:14,obi:5,... gives."""
    with pytest.raises(ConfigError, match="expects columns rsi_14,obi,tfi,vol_20"):
        build_strategy("model", {"model_path": str(SEED_MODEL), "backend": "numpy"})
    with pytest.raises(ConfigError, match="cannot read model file"):
        build_strategy("model", {"model_path": str(REPO / "absent.onnx"), "backend": "numpy"})


@pytest.mark.edge
def test_quantise_rounds_to_a_millionth() -> None:
    assert quantise(0.1234565) in (0.123456, 0.123457)
    assert quantise(0.6 - 1e-9) == 0.6 and quantise(0.6 + 4e-7) == 0.6
    assert quantise(0.5999994) == 0.599999


def _constant_model(path: Path, spec: str, columns: list[str]) -> Path:
    pytest.importorskip("onnx")
    import onnx

    from strategies.inference.export import Dense, dense_model

    k = len(columns)
    data = dense_model([Dense(np.zeros((k, 1)), np.array([3.0]), "sigmoid")], feature_names=columns,
                       dtype=np.float64)  # fmt: skip
    proto = onnx.load_from_string(data)
    props = {p.key: p.value for p in proto.metadata_props} | {SPEC_KEY: spec}
    onnx.helper.set_model_props(proto, props)
    path.write_bytes(proto.SerializeToString())
    return path


def _trades(prices_ms: list[tuple[int, str]]) -> list[Event]:
    out: list[Event] = []
    for i, (ms, px) in enumerate(prices_ms):
        t = T0 + ms * MS
        price = int(px.replace(".", "")) * E8 // 100  # two decimals: the default tick is 0.01
        out.append(TradeReceived(0, t, t, BTC, price, QTY, i, False))
    return out


def test_order_cycle_entry_oco_take_profit_cooldown_and_stop(tmp_path: Path) -> None:
    model = _constant_model(tmp_path / "const.onnx", "rsi:3", ["rsi_3"])
    path = [(0, "100.01"), (10, "100.00"), (20, "100.01"), (30, "100.00")]  # rsi:3 ready at the 4th trade
    path += [(40, "100.10"), (50, "100.30")]  # through the take profit (100.20)
    path += [(600, "100.30"), (1600, "100.30")]  # inside the 1 s cooldown, then the second entry
    path += [(1700, "100.20"), (1800, "100.00"), (1900, "99.99"), (2000, "99.99")]  # through the stop (100.09)
    log = tmp_path / "log"
    with LogWriter(log, monotonic_ns=None) as w:
        w.extend(_trades(path))
    params = {"model_path": str(model), "features": "rsi:3", "threshold": "0.9", "notional": "100",
              "cooldown_ms": "1000", "tp_bps": "20", "sl_bps": "20", "stop_slip_bps": "10"}  # fmt: skip
    run_backtest(log, "model", params, out=tmp_path / "run")
    with LogReader(tmp_path / "run") as r:
        events = list(r.events())
    commands = [e.command for e in events if isinstance(e, CommandIssued)]
    kinds = [(type(c).__name__, getattr(c, "side", None)) for c in commands]
    assert kinds == [("SubmitOrder", OrderSide.BUY), ("SubmitOrderList", None)] * 2
    e8 = E8 // 100  # one cent = the tick
    entries = [e for e in events if isinstance(e, OrderFilled) and e.side is OrderSide.BUY]
    assert [e.ts_recv - T0 for e in entries] == [30 * MS, 1600 * MS]  # no entry inside the cooldown
    for entry, oco in zip(entries, [c for c in commands if isinstance(c, SubmitOrderList)], strict=True):
        above, below = oco.legs
        p = entry.cum_quote * E8 // entry.cum_qty
        assert above.order_type is OrderType.LIMIT_MAKER and above.price == -(-p * 10_020 // (10_000 * e8)) * e8
        assert below.order_type is OrderType.STOP_LOSS_LIMIT and below.stop_price == p * 9_980 // (10_000 * e8) * e8
        assert below.price == below.stop_price * 9_990 // (10_000 * e8) * e8
        assert above.quantity == below.quantity == (entry.qty - entry.commission) // 1000 * 1000
    sells = [e for e in events if isinstance(e, OrderFilled) and e.side is OrderSide.SELL]
    lists = [c for c in commands if isinstance(c, SubmitOrderList)]
    assert [s.client_order_id for s in sells] == [lists[0].legs[0].client_order_id,  # take profit
                                                  lists[1].legs[1].client_order_id]  # stop  # fmt: skip
    assert isinstance(commands[0], SubmitOrder) and commands[0].quantity == 100 * E8 * E8 // (100 * E8) // 1000 * 1000
    signals = [e for e in events if isinstance(e, SignalEmitted)]
    assert [s.value for s in signals] == [quantise(1 / (1 + np.exp(-3.0)))] * 2


def test_kelly_sizing_stakes_scale_times_kelly_of_the_strategys_capital(tmp_path: Path) -> None:
    from fractions import Fraction

    model = _constant_model(tmp_path / "const.onnx", "rsi:3", ["rsi_3"])
    strat = build_strategy("model", [f"model_path={model}", "features=rsi:3", "sizing=kelly", "capital=1000",
                                     "kelly_scale=0.5", "tp_bps=30", "sl_bps=20"])  # fmt: skip
    price = 100 * E8
    # Kelly with p = 0.8, b = 30/20: 0.8 - 0.2 / 1.5 = 2/3; half of it = 1/3 of 1000 USDT = 333.33 USDT
    qty = strat.entry_qty_e8(price, 0.8)  # type: ignore[attr-defined]
    stake = Fraction(1, 3) * 1000 * E8
    assert qty * price // E8 <= stake < (qty + strat.step_e8) * price // E8  # type: ignore[attr-defined]
    assert strat.entry_qty_e8(price, 0.3) == 0  # type: ignore[attr-defined]  # no edge, no stake
    fixed = build_strategy("model", [f"model_path={model}", "features=rsi:3", "notional=100"])
    assert fixed.entry_qty_e8(price, 0.99) == E8  # type: ignore[attr-defined]  # 100 USDT at 100
