"""Properties of the venue models over generated inputs (hypothesis, bounded)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venues.sim.models.fees import DAY_NS, SPOT_VIP_TIERS, FlatFees, TieredFees, VipTier, round_commission
from venues.sim.models.fill import walk_book, walk_book_quote
from venues.sim.models.impact import FixedStats, RollingStats, SquareRootImpact
from venues.sim.models.latency import LogNormalLatency
from venues.sim.models.queue import ProbabilisticQueue, RiskAverseQueue, log_queue_fn, power_queue_fn

pytestmark = pytest.mark.edge

SETTINGS = settings(deadline=None)  # example count from the profile in tests/conftest.py (ci: 50)
E8 = 100_000_000
volumes = st.integers(min_value=0, max_value=10_000_000_000 * E8)
bnbs = st.integers(min_value=0, max_value=20_000 * E8)


# --------------------------------------------------------------------------- fees


@st.composite
def tier_tables(draw: st.DrawFn, allow_rebates: bool) -> tuple[VipTier, ...]:
    n = draw(st.integers(min_value=1, max_value=6))
    vols = sorted(draw(st.lists(st.integers(0, 10**18), min_size=n - 1, max_size=n - 1)))
    bnb = sorted(draw(st.lists(st.integers(0, 10**14), min_size=n - 1, max_size=n - 1)))
    lo = -100_000 if allow_rebates else 0
    rates = st.integers(min_value=lo, max_value=1_000_000)
    return tuple(
        VipTier(i, ([0] + vols)[i], ([0] + bnb)[i], draw(rates), draw(st.integers(0, 1_000_000)))
        for i in range(n)
    )


@SETTINGS
@given(v1=volumes, v2=volumes, b=bnbs, qualify=st.sampled_from(["or", "and"]))
def test_fee_tier_monotone_in_30_day_volume(v1: int, v2: int, b: int, qualify: str) -> None:
    fees = TieredFees(qualify=qualify)  # type: ignore[arg-type]
    lo, hi = sorted((v1, v2))
    t_lo, t_hi = fees.tier_for(lo, b), fees.tier_for(hi, b)
    assert t_lo.level <= t_hi.level
    # the default table: a higher tier never charges more
    assert t_hi.maker_rate_e8 <= t_lo.maker_rate_e8 and t_hi.taker_rate_e8 <= t_lo.taker_rate_e8


@SETTINGS
@given(b1=bnbs, b2=bnbs, v=volumes)
def test_fee_tier_monotone_in_bnb_holding(b1: int, b2: int, v: int) -> None:
    fees = TieredFees()
    lo, hi = sorted((b1, b2))
    assert fees.tier_for(v, lo).level <= fees.tier_for(v, hi).level


@SETTINGS
@given(
    daily=st.lists(st.integers(0, 3_000_000 * E8), min_size=1, max_size=40),
    extra=st.integers(0, 3_000_000 * E8),
)
def test_more_volume_never_lowers_the_evaluated_tier(daily: list[int], extra: int) -> None:
    """Event-driven evaluation: adding volume on any day never gives a lower tier at the end."""
    a, b = TieredFees(), TieredFees()
    for day, vol in enumerate(daily):
        a.record_fill(day * DAY_NS, vol)
        b.record_fill(day * DAY_NS, vol + (extra if day == len(daily) - 1 else 0))
    end = len(daily) * DAY_NS
    a.rates_e8(end)
    b.rates_e8(end)
    assert a.tier_level <= b.tier_level


@SETTINGS
@given(
    table=tier_tables(allow_rebates=False),
    received=st.integers(0, 10**16),
    maker=st.booleans(),
    precision=st.integers(0, 8),
    volume=st.integers(0, 10**18),
)
def test_fee_never_negative_without_rebates(
    table: tuple[VipTier, ...], received: int, maker: bool, precision: int, volume: int
) -> None:
    fees = TieredFees(table)
    fees.record_fill(0, volume)
    c = fees.commission(DAY_NS, received_asset="X", received_e8=received, is_maker=maker, precision=precision)
    assert c.amount_e8 >= 0


@SETTINGS
@given(
    table=tier_tables(allow_rebates=True),
    received=st.integers(0, 10**16),
    maker=st.booleans(),
    precision=st.integers(0, 8),
)
def test_commission_rounds_up_by_less_than_one_unit(
    table: tuple[VipTier, ...], received: int, maker: bool, precision: int
) -> None:
    fees = TieredFees(table)
    c = fees.commission(0, received_asset="X", received_e8=received, is_maker=maker, precision=precision)
    exact_num = received * c.rate_e8  # fee = exact_num / 1e8
    unit = 10 ** (8 - precision)
    assert c.amount_e8 * E8 >= exact_num
    assert (c.amount_e8 - unit) * E8 < exact_num
    assert c.amount_e8 % unit == 0
    if c.rate_e8 >= 0:
        assert c.amount_e8 >= 0
    has_rebate = any(t.maker_rate_e8 < 0 for t in table)
    assert c.amount_e8 >= 0 or has_rebate


@SETTINGS
@given(num=st.integers(-(10**20), 10**20), den=st.integers(1, 10**10), precision=st.integers(0, 8))
def test_round_commission_is_the_ceiling_on_the_precision_grid(num: int, den: int, precision: int) -> None:
    unit = 10 ** (8 - precision)
    r = round_commission(num, den, precision)
    assert r % unit == 0
    assert r * den >= num > (r - unit) * den


@SETTINGS
@given(maker=st.integers(-50, 100), taker=st.integers(0, 100), received=st.integers(0, 10**15))
def test_flat_fees_sign_follows_the_rate(maker: int, taker: int, received: int) -> None:
    fees = FlatFees(maker, taker)
    m = fees.commission(0, received_asset="X", received_e8=received, is_maker=True)
    t = fees.commission(0, received_asset="X", received_e8=received, is_maker=False)
    assert t.amount_e8 >= 0
    assert (m.amount_e8 >= 0) == (maker >= 0 or m.amount_e8 == 0)


# --------------------------------------------------------------------------- impact


@SETTINGS
@given(
    y=st.floats(0.01, 5.0),
    sigma=st.floats(1e-4, 0.2),
    volume=st.integers(1, 10**12),
    q1=st.integers(1, 10**12),
    q2=st.integers(1, 10**12),
)
def test_impact_increasing_and_concave_in_size(y: float, sigma: float, volume: int, q1: int, q2: int) -> None:
    imp = SquareRootImpact(y, FixedStats(sigma, volume))
    lo, hi = sorted((q1, q2))
    f_lo, f_hi = imp.impact_fraction(0, lo), imp.impact_fraction(0, hi)
    f_mid = imp.impact_fraction(0, (lo + hi) // 2)
    assert f_lo <= f_hi
    if lo < hi:
        assert f_lo < f_hi
    # midpoint concavity (tolerance for float rounding only)
    assert f_mid >= (f_lo + f_hi) / 2 * (1 - 1e-12) - 1e-15
    # the per-order price shift on the tick grid is non-decreasing in size too
    tick = 1_000_000
    shifts = []
    for q in (lo, hi):
        fresh = SquareRootImpact(y, FixedStats(sigma, volume))
        shifts.append(fresh.apply(0, "BUY", [(50_000 * E8, q)], tick)[0][0] - 50_000 * E8)
    assert 0 <= shifts[0] <= shifts[1]
    assert all(s % tick == 0 for s in shifts)


@SETTINGS
@given(
    levels=st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 10**9)), min_size=1, max_size=6),
    side=st.sampled_from(["BUY", "SELL"]),
    half_life=st.integers(1, 10**12),
    dt=st.integers(0, 10**13),
)
def test_zero_y_is_exactly_the_book_walk(
    levels: list[tuple[int, int]], side: str, half_life: int, dt: int
) -> None:
    imp = SquareRootImpact(0.0, FixedStats(0.05, 10**9), half_life_ns=half_life)
    assert imp.apply(0, side, levels, 1) == levels
    assert imp.apply(dt, side, levels, 100) == levels


@SETTINGS
@given(
    trades=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(1, 10**6), st.integers(0, 10**6)),
        min_size=1,
        max_size=40,
    ),
    window=st.integers(1, 10**5),
)
def test_rolling_volume_equals_brute_force(trades: list[tuple[int, int, int]], window: int) -> None:
    stats = RollingStats(window_ns=window * 10, sample_ns=10)
    ts = 0
    seen = []
    for dt, price, qty in trades:
        ts += dt
        stats.on_trade(ts, price, qty)
        seen.append((ts, qty))
    sigma, volume = stats.estimate(ts)
    first_bucket = (ts - window * 10) // 10 + 1
    assert volume == sum(q for t, q in seen if t // 10 >= first_bucket)
    assert sigma >= 0.0 and math.isfinite(sigma)


# --------------------------------------------------------------------------- queue


queue_events = st.lists(
    st.one_of(
        st.tuples(st.just("trade"), st.integers(-3, 3), st.integers(0, 50)),
        st.tuples(st.just("level"), st.just(0), st.integers(0, 200)),
    ),
    max_size=40,
)


@SETTINGS
@given(
    events=queue_events,
    initial=st.integers(0, 200),
    qty=st.integers(1, 60),
    side=st.sampled_from(["BUY", "SELL"]),
    model=st.sampled_from(["risk", "power1", "power3", "log"]),
)
def test_queue_ahead_never_negative_never_grows(
    events: list[tuple[str, int, int]], initial: int, qty: int, side: str, model: str
) -> None:
    price = 1000
    fns = {"power1": power_queue_fn(1.0), "power3": power_queue_fn(3.0), "log": log_queue_fn}
    q = (
        RiskAverseQueue(side, price, qty)
        if model == "risk"
        else ProbabilisticQueue(side, price, qty, fns[model])
    )
    q.on_order_placed(initial)
    prev = q.ahead
    granted = 0
    for kind, offset, n in events:
        before = q.filled_qty_available()
        if kind == "trade":
            q.on_trade(price + offset, n)
        else:
            q.on_level_change(n)
            assert q.ahead <= n  # nobody ahead of us beyond what is displayed
        assert 0 <= q.ahead <= prev
        granted += q.filled_qty_available() - before
        assert 0 <= granted <= qty  # never more than our order
        if kind == "trade" and n > 0 and (offset < 0 if side == "BUY" else offset > 0):
            assert q.ahead == 0  # a trade through our price cleared the level
        if q.filled_qty_available() and kind == "trade":
            q.consume(q.filled_qty_available())
        prev = q.ahead


@SETTINGS
@given(events=queue_events, initial=st.integers(0, 200), qty=st.integers(1, 60))
def test_probabilistic_is_never_behind_risk_averse(
    events: list[tuple[str, int, int]], initial: int, qty: int
) -> None:
    """Cancels can only help: the probabilistic estimate is at or ahead of the risk-averse one."""
    risk = RiskAverseQueue("BUY", 1000, qty)
    prob = ProbabilisticQueue("BUY", 1000, qty, power_queue_fn(2.0))
    for q in (risk, prob):
        q.on_order_placed(initial)
    for kind, offset, n in events:
        for q in (risk, prob):
            if kind == "trade":
                q.on_trade(1000 + offset, n)
            else:
                q.on_level_change(n)
        assert prob.ahead <= risk.ahead
        assert prob.filled_qty_available() >= risk.filled_qty_available()


# --------------------------------------------------------------------------- latency and fills


@SETTINGS
@given(seed=st.integers(0, 2**32), mu=st.floats(-2, 5), sigma=st.floats(0, 2), n=st.integers(1, 30))
def test_lognormal_is_a_function_of_seed_and_call_order(seed: int, mu: float, sigma: float, n: int) -> None:
    a = LogNormalLatency(mu, sigma, seed=seed)
    b = LogNormalLatency(mu, sigma, seed=seed)
    seq_a = [(a.order_latency_ns(i), a.response_latency_ns(i)) for i in range(n)]
    seq_b = [(b.order_latency_ns(10**9 + i), b.response_latency_ns(i)) for i in range(n)]
    assert seq_a == seq_b
    assert all(x >= 0 for pair in seq_a for x in pair)


book_levels = st.lists(st.tuples(st.integers(1, 10**7), st.integers(1, 10**9)), min_size=0, max_size=8).map(
    lambda ls: sorted({p: q for p, q in ls}.items())
)


@SETTINGS
@given(
    asks=book_levels,
    budget=st.integers(0, 10**12),
    step=st.integers(0, 10**6),
    side=st.sampled_from(["BUY", "SELL"]),
)
def test_quote_walk_never_exceeds_budget_and_keeps_step(
    asks: list[tuple[int, int]], budget: int, step: int, side: str
) -> None:
    levels = asks if side == "BUY" else list(reversed(asks))
    r = walk_book_quote(levels, side, budget, step)
    spent = sum(p * q for p, q in r.fills)
    assert spent <= budget * E8
    assert r.quote_e8 == spent // E8 and r.remaining_e8 == budget - spent // E8
    assert all(q > 0 and q % (step or 1) == 0 for _, q in r.fills)
    assert all(q <= dict(levels)[p] for p, q in r.fills)


@SETTINGS
@given(asks=book_levels, qty=st.integers(0, 10**10), limit=st.one_of(st.none(), st.integers(1, 10**7)))
def test_walk_book_conserves_quantity(asks: list[tuple[int, int]], qty: int, limit: int | None) -> None:
    r = walk_book(asks, "BUY", qty, limit)
    assert r.filled_e8 + r.remaining_e8 == qty
    assert r.filled_e8 == sum(q for _, q in r.fills)
    assert all(limit is None or p <= limit for p, _ in r.fills)
    prices = [p for p, _ in r.fills]
    assert prices == sorted(prices)
    assert not SPOT_VIP_TIERS[0].min_volume_e8  # (the default table's free tier, used above)
