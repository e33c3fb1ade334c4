"""``Account.settle`` (the venue's one-call trade + commission) against ``trade`` then ``charge_fee``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venues.sim.account import Account, InsufficientBalance

pytestmark = pytest.mark.edge

ASSETS = ("BTC", "USDT", "BNB")


def _state(a: Account) -> tuple[object, ...]:
    return (a.free, a.locked, a.fees_paid, a.received, a.given, a.changed, a.take_changes())


@settings(max_examples=200, deadline=None)
@given(
    start=st.dictionaries(st.sampled_from(ASSETS), st.integers(0, 10**6), max_size=3),
    lock=st.integers(0, 10**6),
    give_asset=st.sampled_from(ASSETS),
    get_asset=st.sampled_from(ASSETS),
    give=st.integers(0, 10**6),
    get=st.integers(0, 10**6),
    fee=st.integers(-1_000, 2 * 10**6),
)
def test_settle_is_trade_then_charge_fee(
    start: dict[str, int], lock: int, give_asset: str, get_asset: str, give: int, get: int, fee: int
) -> None:
    accounts = []
    for _ in range(2):
        a = Account(start)
        a.try_lock(give_asset, lock)
        a.take_changes()
        accounts.append(a)
    one, two = accounts
    raised: list[bool] = []
    try:
        one.settle(give_asset, give, get_asset, get, fee)
        raised.append(False)
    except InsufficientBalance:
        raised.append(True)
    try:
        two.trade(give_asset, give, get_asset, get)
        two.charge_fee(get_asset, fee)
        raised.append(False)
    except InsufficientBalance:
        raised.append(True)
    assert raised[0] == raised[1]
    assert _state(one) == _state(two)  # (after a raise too: the same partial state)
    if not raised[0]:
        for asset in ASSETS:
            assert one.conservation_gap(asset) == 0


def test_take_changes_reports_two_assets_sorted_and_only_what_moved() -> None:
    a = Account({"USDT": 100, "BTC": 5})
    a.try_lock("USDT", 40)
    assert a.take_changes() == (("USDT", 60, 40),)
    a.settle("USDT", 40, "BTC", 2, 1)
    assert a.take_changes() == (("BTC", 6, 0), ("USDT", 60, 0))
    a.try_lock("BTC", 3)
    a.unlock("BTC", 3)
    a.changed.add("USDT")
    assert a.take_changes() == ()  # BTC back where it was reported, USDT unchanged
