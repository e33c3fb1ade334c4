"""Risk: the engine between every strategy and the venue, its config, sizing helpers and kernel adapters.

See :mod:`engine.risk.engine` for the rules and ``docs/risk.md`` for the decisions behind them.
"""

from __future__ import annotations

from engine.risk.config import BPS, NS_PER_DAY, RiskConfig, load_risk_config
from engine.risk.engine import (
    KILL_ID_PREFIX,
    RISK_REJECT_CODE,
    RISK_STRATEGY,
    RiskEngine,
    Rule,
    SymbolState,
)
from engine.risk.gate import KernelRiskGate, RiskedVenue, attach_risk
from engine.risk.sizing import (
    DEFAULT_KELLY_SCALE,
    fixed_fraction_qty,
    kelly_fraction,
    kelly_qty,
    vol_target_fraction,
    vol_target_qty,
)

__all__ = [
    "BPS",
    "DEFAULT_KELLY_SCALE",
    "KILL_ID_PREFIX",
    "NS_PER_DAY",
    "RISK_REJECT_CODE",
    "RISK_STRATEGY",
    "KernelRiskGate",
    "RiskConfig",
    "RiskEngine",
    "RiskedVenue",
    "Rule",
    "SymbolState",
    "attach_risk",
    "fixed_fraction_qty",
    "kelly_fraction",
    "kelly_qty",
    "load_risk_config",
    "vol_target_fraction",
    "vol_target_qty",
]
