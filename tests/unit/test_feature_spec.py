"""The feature spec language: parsing, and incremental (through the kernel) == vectorised.

The synthetic session has two instruments, trades whose times sometimes go back, quotes
with empty sides and zero sizes, and an L2 book built from a snapshot and diffs, with a
gap (the kernel's BookSync discards the book) and a later re-snapshot, so every rule of
the spec's "as of the last event before the trade" alignment is exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogs.log import LogWriter
from engine.errors import ConfigError, InputError
from replay.dataset import parse_label, parse_sample, read_log
from strategies.features.spec import (
    KNOWN,
    FeatureSet,
    TableBuilder,
    book_depth,
    columns_of,
    compute_features,
    parse_duration,
    parse_specs,
    specs_text,
)
from tests.research_helpers import assert_bit_identical, serve_vectors, stack, synthetic_session

pytestmark = pytest.mark.edge

from tests.research_helpers import E8, SEC, T0

ALL = "rsi:5,vol:4,boll:6,tfi:7,tfi:2s,vwap:5,vwap:1500ms,hour,dow,obi:3,depth:4,qobi,spread_bps,microprice_dev"


# --------------------------------------------------------------------------- parsing


def test_parse_gives_canonical_tokens_columns_and_parameters() -> None:
    specs = parse_specs(" rsi:14, OBI:5 ,tfi:100,tfi:5s,vol:20,hour,spread_bps")
    assert specs_text(specs) == "rsi:14,obi:5,tfi:100,tfi:5s,vol:20,hour,spread_bps"
    assert columns_of(specs) == (
        "rsi_14", "obi_5", "tfi_100", "tfi_5s", "vol_20", "hour_sin", "hour_cos", "spread_bps",
    )  # fmt: skip
    assert specs[2].count == 100 and specs[2].window_ns is None
    assert specs[3].window_ns == 5 * SEC and specs[3].count is None
    assert [s.source for s in specs] == ["trade", "book", "trade", "trade", "trade", "trade", "quote"]
    assert book_depth(specs) == 5
    assert parse_specs(specs_text(specs)) == specs  # canonical text round-trips


def test_every_known_feature_parses() -> None:
    tokens = [k if k in ("hour", "dow", "qobi", "spread_bps", "microprice_dev") else f"{k}:3" for k in KNOWN]
    specs = parse_specs(tokens)
    assert [s.name for s in specs] == list(KNOWN)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("rsi", "'rsi'"),
        ("rsi:x", "'rsi:x'"),
        ("rsi:14,macd:3", "'macd:3'"),
        ("tfi:5x", "'tfi:5x'"),
        ("tfi:0s", "'tfi:0s'"),
        ("spread_bps:3", "'spread_bps:3'"),
        ("vol:1", "'vol:1'"),
        ("obi:5s", "'obi:5s'"),
        ("rsi:0", "'rsi:0'"),
        ("rsi:14,,obi:5", "position 2"),
        ("rsi:14,rsi:14", "rsi_14"),
        ("", "empty"),
    ],
)
def test_bad_specs_are_config_errors_naming_the_token(text: str, names: str) -> None:
    with pytest.raises(ConfigError, match=names.replace("(", r"\(")):
        parse_specs(text)


def test_durations() -> None:
    assert parse_duration("500ms") == 500_000_000
    assert parse_duration("2m") == 120 * SEC
    assert parse_duration("1h") == 3600 * SEC
    assert parse_duration("7us") == 7_000
    for bad in ("5", "s", "-5s", "1.5s", "5d"):
        with pytest.raises(ConfigError, match="bad duration"):
            parse_duration(bad)


def test_label_and_sample_options() -> None:
    lab = parse_label("triple-barrier:20, 15,90s")
    assert (lab.tp_bps, lab.sl_bps, lab.horizon_ns, lab.text) == (20.0, 15.0, 90 * SEC, "triple-barrier:20,15,90s")
    for bad, msg in (("barrier:1,1,1s", "expected triple-barrier"), ("triple-barrier:1,1", "three values"),
                     ("triple-barrier:x,1,1s", "TP_BPS 'x'"), ("triple-barrier:1,0,1s", "SL_BPS"),
                     ("triple-barrier:1,1,1", "horizon")):  # fmt: skip
        with pytest.raises(ConfigError, match=msg):
            parse_label(bad)
    ts = np.array([0, 1, 2, 3, 5, 6, 7, 11, 12, 13]) * SEC
    assert parse_sample("every-trade").rows(ts).tolist() == list(range(10))
    assert parse_sample("3trades").rows(ts).tolist() == [2, 5, 8]
    # the last trade of each 5 s bucket: [0,5) -> row 3, [5,10) -> row 6, [10,15) -> row 9
    assert parse_sample("5s").rows(ts).tolist() == [3, 6, 9]
    with pytest.raises(ConfigError, match="bad --sample"):
        parse_sample("often")


# --------------------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def session_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "log"
    with LogWriter(path, monotonic_ns=None) as w:
        w.extend(synthetic_session(7))
    return path


def test_kernel_fed_feature_set_equals_vectorised_columns_bit_for_bit(session_log: Path) -> None:
    specs = parse_specs(ALL)
    served = serve_vectors(session_log, specs)
    data = read_log(session_log, symbol=None, depth=book_depth(specs))
    assert set(served) == set(data.tables) == {"BTCUSDT.SPOT", "ETHUSDT.SPOT"}
    for iid, table in data.tables.items():
        trained = stack(compute_features(specs, table), columns_of(specs))
        assert_bit_identical(served[iid], trained, iid)
        assert len(table.book_pos) > 10
        finite = ~np.isnan(trained)
        assert finite.all(axis=0).sum() < trained.shape[1]  # some warm-up / undefined values
        assert finite.any(axis=0).all()  # and every column has real values


def test_symbol_filter_reads_one_instrument(session_log: Path) -> None:
    data = read_log(session_log, symbol="ETHUSDT", depth=0)
    assert list(data.tables) == ["ETHUSDT.SPOT"]
    assert len(data.tables["ETHUSDT.SPOT"].book_pos) == 0  # depth 0: no book replay


def test_table_builder_and_compute_checks() -> None:
    specs = parse_specs("obi:5")
    b = TableBuilder(depth=3)
    b.add_trade(2, T0, 100 * E8, E8, False)
    b.add_book(1, ((99 * E8, E8),), ((101 * E8, 2 * E8),))
    with pytest.raises(InputError, match="reads 5 book levels"):
        compute_features(specs, b.build())
    b2 = TableBuilder(depth=5)
    b2.add_trade(2, T0, 100 * E8, E8, False)
    b2.add_trade(2, T0, 100 * E8, E8, False)
    with pytest.raises(InputError, match="trade_pos must be strictly increasing"):
        compute_features(specs, b2.build())


trade_rows = st.lists(
    st.tuples(
        st.integers(0, 3),  # kind: 0,1 trade, 2 quote, 3 book
        st.integers(-50, 400),  # time step ms (negative: trade time going back)
        st.integers(1, 2_000),  # price ticks
        st.integers(0, 500),  # qty / size
        st.booleans(),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(rows=trade_rows)
def test_parity_on_arbitrary_streams(rows: list[tuple[int, int, int, int, bool]]) -> None:
    specs = parse_specs("rsi:3,vol:2,boll:3,tfi:4,tfi:300ms,vwap:3,vwap:500ms,hour,obi:2,depth:3,qobi,spread_bps,microprice_dev")
    fs = FeatureSet(specs)
    b = TableBuilder(book_depth(specs))
    served: list[list[float]] = []
    t = T0
    for pos, (kind, step, ticks, qty, flag) in enumerate(rows):
        t += step * 1_000_000
        price = ticks * E8 // 100
        if kind <= 1:
            fs.on_trade(t, price, qty * 1000, flag)
            b.add_trade(pos, t, price, qty * 1000, flag)
            served.append(fs.vector())
        elif kind == 2:
            bid = 0 if flag and qty % 7 == 0 else price
            fs.on_quote(bid, qty, price + E8 // 100, 500 - qty)
            b.add_quote(pos, bid, qty, price + E8 // 100, 500 - qty)
        else:
            bids = tuple((price - k, (qty + k) % 4) for k in range(1, 1 + qty % 4))
            asks = tuple((price + k, (qty * k) % 5) for k in range(1, 3))
            fs.on_book(bids, asks)
            b.add_book(pos, bids, asks)
    trained = stack(compute_features(specs, b.build()), columns_of(specs))
    assert_bit_identical(np.array(served, dtype=np.float64).reshape(trained.shape), trained, "stream")
