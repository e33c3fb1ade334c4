"""Strategy configs from ``--param K=V``: conversion, validation, and errors that say what to do."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from engine.errors import ConfigError
from engine.strategy import config_dict, describe_params, split_params
from strategies.registry import build_config, build_strategy, get_spec, known_strategies
from strategies.rsi import RsiConfig, RsiStrategy

pytestmark = pytest.mark.edge


def test_params_are_converted_to_the_field_types() -> None:
    cfg = build_config("rsi", ["period=21", "lower=25", "upper=80.5", "quantity=0.5"])
    assert cfg == RsiConfig(period=21, lower=25.0, upper=80.5, quantity=Decimal("0.5"))
    assert config_dict(cfg) == {"period": 21, "lower": 25.0, "upper": 80.5, "quantity": "0.5", "step": "0.00001"}
    assert build_config("rsi", {"period": 3}) == RsiConfig(period=3)


def test_defaults_and_frozen() -> None:
    cfg = build_config("rsi", [])
    assert cfg == RsiConfig()
    with pytest.raises(AttributeError):
        cfg.period = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("pairs", "needles"),
    [
        (["perod=3"], ["'perod'", "period: int = 14", "lower: float", "upper", "quantity"]),
        (["period=abc"], ["'abc'", "'period'", "int"]),
        (["period=1.5"], ["'period'"]),
        (["period=0"], ["period must be >= 1"]),
        (["lower=80"], ["lower (80.0) must be < upper (70.0)"]),
        (["upper=101"], ["upper must be within 0..100"]),
        (["lower=nan"], ["lower must be within 0..100"]),
        (["quantity=-1"], ["quantity must be a positive decimal"]),
        (["quantity=0.000000001"], ["more than 8 decimal places"]),
        (["quantity=lots"], ["'quantity'"]),
        (["period"], ["expected KEY=VALUE"]),
        (["=3"], ["expected KEY=VALUE"]),
        (["period=3", "period=4"], ["given twice"]),
    ],
)
def test_bad_params_name_the_problem(pairs: list[str], needles: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        build_config("rsi", pairs)
    for needle in needles:
        assert needle in str(err.value)


def test_cross_field_checks_see_all_values() -> None:
    # lower=80 alone is invalid (default upper 70) but fine together with upper=90
    assert build_config("rsi", ["lower=80", "upper=90"]) == RsiConfig(lower=80.0, upper=90.0)


def test_noop_takes_no_params() -> None:
    assert describe_params(get_spec("noop").config_type) == "(none)"
    with pytest.raises(ConfigError, match="unknown parameter 'x' for strategy 'noop'"):
        build_config("noop", ["x=1"])


def test_unknown_strategy_lists_the_known_ones() -> None:
    names = known_strategies()
    assert names == sorted(names) and {"noop", "rsi", "model"} <= set(names)
    with pytest.raises(ConfigError) as err:
        get_spec("macd")
    msg = str(err.value)
    assert "'macd'" in msg and "rsi (period: int = 14" in msg
    assert all(name in msg for name in names)


def test_build_strategy() -> None:
    strat = build_strategy("rsi", ["period=5"])
    assert isinstance(strat, RsiStrategy) and strat.config == RsiConfig(period=5)
    assert strat.quantity_e8 == 10**6


def test_split_params_keeps_values_verbatim() -> None:
    assert split_params(["a=1", " b = x=y"]) == {"a": "1", "b": " x=y"}


def test_configs_forbid_unknown_fields_even_when_decoded_directly() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"period": 3, "extra": 1}, RsiConfig)
