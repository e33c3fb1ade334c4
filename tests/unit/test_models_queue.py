"""Queue position: risk-averse and probabilistic (power / log) estimators, worked by hand."""

from __future__ import annotations

import math

import pytest

from engine.errors import ConfigError
from engine.fixed import parse_e8
from venues.sim.models.queue import (
    ProbabilisticQueue,
    ProbabilisticQueueRule,
    RiskAverseQueue,
    behind_share,
    log_queue_fn,
    power_queue_fn,
)

pytestmark = pytest.mark.edge

E = parse_e8
P = E("100")


def test_risk_averse_only_trades_at_our_price_move_us() -> None:
    q = RiskAverseQueue("BUY", P, E("5"))
    q.on_order_placed(E("10"))
    assert q.ahead == E("10")
    q.on_trade(E("100.01"), E("50"))  # above a resting bid: irrelevant
    q.on_level_change(E("12"))  # someone joined behind us
    assert q.ahead == E("10")
    q.on_level_change(E("9"))  # the level shrank below what was ahead: cap
    assert q.ahead == E("9")
    q.on_trade(P, E("4"))
    assert (q.ahead, q.filled_qty_available()) == (E("5"), 0)
    q.on_trade(P, E("7"))  # eats the 5 ahead, 2 reach us
    assert (q.ahead, q.filled_qty_available()) == (0, E("2"))
    q.consume(E("2"))
    q.on_trade(P, E("100"))  # capped at what is left of our order
    assert q.filled_qty_available() == E("3")
    q.on_trade(P, E("1"))
    assert q.filled_qty_available() == E("3")


def test_trade_through_our_price_clears_the_queue() -> None:
    bid = RiskAverseQueue("BUY", P, E("5"))
    bid.on_order_placed(E("10"))
    bid.on_trade(E("99.99"), E("2"))
    assert (bid.ahead, bid.filled_qty_available()) == (0, E("2"))
    ask = RiskAverseQueue("SELL", P, E("5"))
    ask.on_order_placed(E("10"))
    ask.on_trade(E("99.99"), E("2"))  # below a resting ask: irrelevant
    assert (ask.ahead, ask.filled_qty_available()) == (E("10"), 0)
    ask.on_trade(E("100.01"), E("9"))
    assert (ask.ahead, ask.filled_qty_available()) == (0, E("5"))


def test_consume_checks_availability() -> None:
    q = RiskAverseQueue("BUY", P, E("1"))
    q.on_order_placed(0)
    with pytest.raises(ValueError, match="only 0 available"):
        q.consume(1)
    with pytest.raises(ValueError):
        RiskAverseQueue("HOLD", P, 1)


def test_behind_share_extremes_and_power() -> None:
    sq = power_queue_fn(2.0)
    assert behind_share(sq, E("10"), 0) == 0.0  # just joined: every cancel is in front
    assert behind_share(sq, 0, E("10")) == 1.0  # at the front: every cancel is behind
    assert behind_share(sq, 0, 0) == 1.0
    assert behind_share(sq, E("1"), E("3")) == pytest.approx(9 / 10)
    assert behind_share(power_queue_fn(1.0), E("1"), E("3")) == pytest.approx(3 / 4)
    assert behind_share(log_queue_fn, E("1"), E("3")) == pytest.approx(
        math.log(4) / (math.log(2) + math.log(4))
    )
    with pytest.raises(ConfigError):
        power_queue_fn(0)


def test_probabilistic_cancel_split() -> None:
    q = ProbabilisticQueue("BUY", P, E("1"), power_queue_fn(1.0))
    q.on_order_placed(E("10"))
    q.on_level_change(E("8"))  # back = 0 -> the 2 cancelled were ahead
    assert q.ahead == E("8")
    q.on_level_change(E("18"))  # 10 joined behind us
    assert q.ahead == E("8")
    q.on_level_change(E("13"))  # 5 cancelled; p(behind) = 10/18
    behind = math.floor(E("5") * (E("10") / E("18")))
    assert q.ahead == E("8") - (E("5") - behind)


def test_probabilistic_discounts_trades_already_seen() -> None:
    q = ProbabilisticQueue("SELL", P, E("1"), power_queue_fn(1.0))
    q.on_order_placed(E("10"))
    q.on_level_change(E("20"))  # 10 behind us
    q.on_trade(P, E("4"))  # eats 4 ahead
    assert q.ahead == E("6")
    q.on_level_change(E("16"))  # the trade's 4, already counted: no cancel
    assert q.ahead == E("6")


def test_probabilistic_overflow_of_back_goes_ahead() -> None:
    q = ProbabilisticQueue("BUY", P, E("1"), power_queue_fn(1.0))
    q.on_order_placed(E("2"))
    q.on_level_change(E("3"))  # 1 behind
    q.on_level_change(E("0"))  # all gone: ahead cannot exceed the level
    assert q.ahead == 0


def test_stateless_rule_matches_the_stateful_queue() -> None:
    f = power_queue_fn(3.0)
    rule = ProbabilisticQueueRule(f)
    q = ProbabilisticQueue("BUY", P, E("1"), f)
    q.on_order_placed(E("7"))
    ahead = rule.initial(E("7"))
    for old, new in [(E("7"), E("20")), (E("20"), E("11")), (E("11"), E("2"))]:
        q.on_level_change(new)
        ahead = rule.on_level_change(ahead, old, new)
        assert ahead == q.ahead
    assert rule.on_trade(E("1"), E("3")) == 0
