"""Name -> strategy: what ``tickloop backtest --strategy NAME`` can run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError
from engine.strategy import Strategy, StrategyConfig, describe_params, make_config, split_params
from strategies.imbalance import ImbalanceConfig, ImbalanceStrategy
from strategies.maker import MakerConfig, MakerStrategy
from strategies.model import ModelConfig, ModelStrategy
from strategies.noop import NoopConfig, NoopStrategy
from strategies.rsi import RsiConfig, RsiStrategy


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A runnable strategy: its class, its config type and a one-line summary."""

    name: str
    strategy_type: type[Strategy[Any]]
    config_type: type[StrategyConfig]
    summary: str

    def build(self, config: StrategyConfig) -> Strategy[Any]:
        """Instantiate with an already validated config."""
        return self.strategy_type(config)


STRATEGIES: Mapping[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        StrategySpec("noop", NoopStrategy, NoopConfig, "subscribes to trades and does nothing"),
        StrategySpec("rsi", RsiStrategy, RsiConfig, "Wilder RSI over trades; buy/sell signals"),
        StrategySpec("imbalance", ImbalanceStrategy, ImbalanceConfig, "OBI + TFI momentum, OCO bracket exits"),
        StrategySpec("maker", MakerStrategy, MakerConfig, "two-sided LIMIT_MAKER quoter with inventory limits"),
        StrategySpec("model", ModelStrategy, ModelConfig, "ONNX model P(up) on a feature spec; OCO exits"),
    )
}


def known_strategies() -> list[str]:
    """Names accepted by :func:`get_spec`, sorted."""
    return sorted(STRATEGIES)


def get_spec(name: str) -> StrategySpec:
    """The spec of ``name``; ConfigError listing the known strategies otherwise."""
    spec = STRATEGIES.get(name)
    if spec is None:
        listing = "; ".join(f"{n} ({describe_params(STRATEGIES[n].config_type)})" for n in known_strategies())
        raise ConfigError(f"unknown strategy {name!r}; known strategies: {listing}")
    return spec


def build_config(name: str, params: Sequence[str] | Mapping[str, Any]) -> StrategyConfig:
    """Validated config of strategy ``name`` from ``K=V`` strings or a mapping."""
    spec = get_spec(name)
    values = split_params(params) if isinstance(params, Sequence) and not isinstance(params, str) else params
    if isinstance(values, str):
        raise ConfigError(f"params must be K=V strings or a mapping, got {values!r}")
    return make_config(spec.config_type, values, strategy=name)


def build_strategy(name: str, params: Sequence[str] | Mapping[str, Any] = ()) -> Strategy[Any]:
    """A ready-to-attach strategy instance."""
    return get_spec(name).build(build_config(name, params))
