"""Exact e8 fixed point: parsing what Binance prints, refusing what it never prints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.fixed import decimals_of, format_e8, format_e8_fixed, parse_e8
from engine.identifiers import Market, instrument_id, split_instrument_id

pytestmark = pytest.mark.edge


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("61837.63000000", 6_183_763_000_000),
        ("0.00000001", 1),
        ("0", 0),
        ("5", 500_000_000),
        (".5", 50_000_000),
        ("1.", 100_000_000),
        ("0.123456780000", 12_345_678),
    ],
)
def test_parse_exact(text: str, value: int) -> None:
    assert parse_e8(text) == value


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-1", "1e5", "", ".", "1.2.3", "0.000000001", " 1", "1,5"])
def test_parse_rejects_with_the_text_in_the_message(text: str) -> None:
    with pytest.raises(ValueError, match="value|decimal|places"):
        parse_e8(text)


def test_signed_values_only_when_asked() -> None:
    assert parse_e8("-0.0001", signed=True) == -10_000
    assert parse_e8("+2", signed=True) == 200_000_000


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_format_parse_round_trip(value: int) -> None:
    assert parse_e8(format_e8(value), signed=True) == value
    assert parse_e8(format_e8_fixed(value), signed=True) == value


def test_format_fixed_like_binance() -> None:
    assert format_e8_fixed(6_183_763_000_000) == "61837.63000000"
    assert format_e8_fixed(6_183_763_000_000, 2) == "61837.63"
    assert format_e8(150_000_000) == "1.5"
    assert format_e8(-1) == "-0.00000001"


def test_decimals_of_steps() -> None:
    assert decimals_of(1_000_000) == 2  # 0.01
    assert decimals_of(100_000_000) == 0  # 1
    assert decimals_of(1) == 8
    with pytest.raises(ValueError):
        decimals_of(0)


def test_instrument_ids() -> None:
    assert instrument_id("btcusdt") == "BTCUSDT.SPOT"
    assert instrument_id("BTCUSD_PERP", "COINM") == "BTCUSD_PERP.COINM"
    assert split_instrument_id("BTCUSDT.USDM") == ("BTCUSDT", Market.USDM)
    with pytest.raises(ValueError):
        split_instrument_id("BTCUSDT")
    with pytest.raises(ValueError):
        instrument_id("BTC.USDT")
