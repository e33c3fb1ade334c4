"""Fuzzing the importers' parsers: whatever the input, they return events or raise BadRecord
(an InputError) -- never a KeyError/TypeError/... -- and valid numbers come out exact."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogs.importers import (
    BadRecord,
    BinanceStreamParser,
    DepthCsvParser,
    RestContext,
    TardisParser,
    VisionParser,
    classify,
    item_events,
)
from engine.events import BookDeltaReceived, TradeReceived

pytestmark = pytest.mark.edge

KEYS = [
    "e",
    "E",
    "T",
    "s",
    "U",
    "u",
    "pu",
    "b",
    "a",
    "B",
    "A",
    "t",
    "p",
    "q",
    "m",
    "X",
    "k",
    "o",
    "lastUpdateId",
    "bids",
    "asks",
    "symbol",
    "i",
    "n",
    "x",
    "v",
    "c",
    "h",
    "l",
    "f",
    "r",
    "P",
    "S",
    "ap",
    "z",
]
EVENT_TYPES = [
    "depthUpdate",
    "bookTicker",
    "trade",
    "aggTrade",
    "kline",
    "markPriceUpdate",
    "forceOrder",
    "x",
]
STREAMS = [
    "btcusdt@depth@100ms",
    "btcusdt@depth5",
    "btcusdt@bookTicker",
    "btcusdt@trade",
    "btcusd_perp@depth",
    "btcusdt@kline_1m",
    "nonsense",
    "@",
    "",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["1", "0.5", "-1", "NaN", "1e5", "", "61837.63000000", "0.000000001", "BTCUSDT"] + EVENT_TYPES
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=20,
)
payloads = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=12)


def _feed_safely(parser: Any, line: str | bytes) -> None:
    with contextlib.suppress(BadRecord):
        parser.feed(line)


@settings(max_examples=200, deadline=None)
@given(
    stream=st.sampled_from(STREAMS),
    data=payloads,
    wrapped=st.booleans(),
    prefix=st.sampled_from(["1700000000000000000 ", "1700000000.25: ", "", "x "]),
)
def test_stream_parser_only_raises_bad_record(
    stream: str, data: dict[str, Any], wrapped: bool, prefix: str
) -> None:
    doc: Any = {"stream": stream, "data": data} if wrapped else data
    _feed_safely(BinanceStreamParser(), prefix + json.dumps(doc))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_stream_parser_survives_arbitrary_bytes(raw: bytes) -> None:
    _feed_safely(BinanceStreamParser(), raw)
    _feed_safely(BinanceStreamParser(), b"1 " + raw)


@settings(max_examples=200, deadline=None)
@given(doc=json_values)
def test_rest_classifier_only_raises_bad_record(doc: Any) -> None:
    try:
        shape, items = classify(doc)
        for item in items:
            item_events(shape, item, RestContext(symbol="BTCUSDT"))
    except BadRecord:
        pass


cells = st.sampled_from(
    [
        "",
        "1",
        "0.5",
        "-1",
        "true",
        "x",
        "1700000000000",
        "b",
        "a",
        "snap",
        "set",
        "buy",
        "binance",
        "binance-futures",
        "BTCUSDT",
        "NaN",
    ]
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(cells, min_size=1, max_size=13).map(",".join), max_size=5))
def test_csv_parsers_only_raise_bad_record(rows: list[str]) -> None:
    headers = {
        "tardis": "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
        "depth": "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu",
    }
    parsers: list[Any] = [VisionParser(symbol="BTCUSDT"), TardisParser(), DepthCsvParser()]
    for parser in parsers:
        lines = (
            rows
            if isinstance(parser, VisionParser)
            else [headers["tardis" if isinstance(parser, TardisParser) else "depth"], *rows]
        )
        for line in lines:
            _feed_safely(parser, line)
        if isinstance(parser, DepthCsvParser):
            with contextlib.suppress(BadRecord):
                parser.finish()


decimals = st.decimals(
    min_value=0, max_value=Decimal("92233720368"), places=8, allow_nan=False, allow_infinity=False
)


@settings(max_examples=200, deadline=None)
@given(
    price=decimals,
    qty=decimals,
    trade_id=st.integers(0, 2**62),
    t_ms=st.integers(0, 2**42),
    maker=st.booleans(),
    strip=st.booleans(),
)
def test_trade_numbers_are_exact(
    price: Decimal, qty: Decimal, trade_id: int, t_ms: int, maker: bool, strip: bool
) -> None:
    def text(d: Decimal) -> str:
        s = f"{d:.8f}"
        return s.rstrip("0").rstrip(".") or "0" if strip else s

    data = {
        "e": "trade",
        "E": t_ms,
        "s": "BTCUSDT",
        "t": trade_id,
        "p": text(price),
        "q": text(qty),
        "T": t_ms,
        "m": maker,
    }
    (trade,) = BinanceStreamParser().feed(f"7 {json.dumps({'stream': 'btcusdt@trade', 'data': data})}")
    assert trade == TradeReceived(
        0, t_ms * 1_000_000, 7, "BTCUSDT.SPOT", int(price * 10**8), int(qty * 10**8), trade_id, maker
    )


@settings(max_examples=100, deadline=None)
@given(ids=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=20))
def test_accepted_diffs_never_go_backwards(ids: list[tuple[int, int]]) -> None:
    parser = BinanceStreamParser()
    accepted: list[BookDeltaReceived] = []
    for first, last in ids:
        data = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": first, "u": last, "b": [], "a": []}
        try:
            events = parser.feed(f"1 {json.dumps({'stream': 'btcusdt@depth', 'data': data})}")
            accepted += [e for e in events if isinstance(e, BookDeltaReceived)]
        except BadRecord as exc:
            assert exc.category in ("non_monotonic", "bad_value")
    for a, b in zip(accepted, accepted[1:], strict=False):
        assert b.first_update_id >= a.first_update_id and b.last_update_id >= a.last_update_id
    assert all(d.first_update_id <= d.last_update_id for d in accepted)
