"""Swappable models of the simulated venue: fees, latency, impact, queue position, fill rules.

Each is a small sans-I/O class behind a Protocol, so a backtest picks one per concern from its
config and tests can exercise each alone. Money is exact e8 ints; where a model needs floats
(impact, probabilistic queue, log-normal draws) the result is rounded to the e8/tick grid at the
boundary, as documented in each module and in ``docs/sim-models.md``.
"""

from __future__ import annotations

from venues.sim.models.fees import (
    SPOT_VIP_TIERS,
    BnbPayment,
    Commission,
    FeeModel,
    FlatFees,
    TieredFees,
    VipTier,
    rate_e8,
    received_e8,
    round_commission,
)
from venues.sim.models.fill import ConsumedLiquidity, L1FillRule, WalkResult, walk_book, walk_book_quote
from venues.sim.models.impact import FixedStats, ImpactModel, NoImpact, RollingStats, SquareRootImpact
from venues.sim.models.latency import ConstantLatency, LatencyModel, LogNormalLatency, RecordedLatency
from venues.sim.models.queue import (
    ProbabilisticQueue,
    ProbabilisticQueueRule,
    QueuePosition,
    RiskAverseQueue,
    log_queue_fn,
    power_queue_fn,
)

__all__ = [
    "SPOT_VIP_TIERS",
    "BnbPayment",
    "Commission",
    "ConstantLatency",
    "ConsumedLiquidity",
    "FeeModel",
    "FixedStats",
    "FlatFees",
    "ImpactModel",
    "L1FillRule",
    "LatencyModel",
    "LogNormalLatency",
    "NoImpact",
    "ProbabilisticQueue",
    "ProbabilisticQueueRule",
    "QueuePosition",
    "RecordedLatency",
    "RiskAverseQueue",
    "RollingStats",
    "SquareRootImpact",
    "TieredFees",
    "VipTier",
    "WalkResult",
    "log_queue_fn",
    "power_queue_fn",
    "rate_e8",
    "received_e8",
    "round_commission",
    "walk_book",
    "walk_book_quote",
]
