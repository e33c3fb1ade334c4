"""``noop``: subscribes to trades and does nothing; measures the kernel's dispatch cost."""

from __future__ import annotations

from typing import ClassVar

from engine.events import Kind, TradeReceived
from engine.strategy import Strategy, StrategyConfig


class NoopConfig(StrategyConfig, frozen=True, kw_only=True):
    """No parameters."""


class NoopStrategy(Strategy[NoopConfig]):
    """Receives every trade, ignores it."""

    name: ClassVar[str] = "noop"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.TRADE})

    def on_trade(self, trade: TradeReceived) -> None:
        return None
