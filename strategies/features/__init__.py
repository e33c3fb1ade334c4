"""Trading features, twice each: O(1) incremental objects and vectorised column functions.

``incremental`` is what strategies use (one small object per feature, ``update(...)`` returns
a float or None while warming up); ``vectorized`` is what dataset builders use (numpy columns
in, float64 columns out, NaN while warming up). Both give bit-identical numbers on the same
inputs (train/serve parity); see docs/features.md for every definition and rule.

Importing this package imports neither numba nor the kernels' compiler: the vectorised
functions compile on first use when numba is installed and run as plain Python otherwise.
"""

from strategies.features.incremental import (
    FUNDING_INTERVAL_NS,
    Bollinger,
    DepthRatio,
    FundingRate,
    LiquidationIntensity,
    Microprice,
    OpenInterestChange,
    OrderBookImbalance,
    RealizedVolatility,
    RollingBeta,
    RollingCorrelation,
    Rsi,
    Spread,
    TimeEncoding,
    TimeFeatures,
    TimeToFunding,
    TradeFlowImbalance,
    VwapDeviation,
)

__all__ = [
    "FUNDING_INTERVAL_NS",
    "Bollinger",
    "DepthRatio",
    "FundingRate",
    "LiquidationIntensity",
    "Microprice",
    "OpenInterestChange",
    "OrderBookImbalance",
    "RealizedVolatility",
    "RollingBeta",
    "RollingCorrelation",
    "Rsi",
    "Spread",
    "TimeEncoding",
    "TimeFeatures",
    "TimeToFunding",
    "TradeFlowImbalance",
    "VwapDeviation",
]
