"""REST bodies and exchangeInfo: hand-written samples in Binance's documented layouts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from catalogs.importers import (
    BadRecord,
    RestContext,
    classify,
    exchange_info_events,
    import_binance_rest,
    import_exchange_info,
    item_events,
    load_exchange_info,
    market_of_exchange_info,
    rest_events,
)
from engine.errors import InputError
from engine.events import (
    AggTradeReceived,
    BookSnapshotReceived,
    Event,
    FundingRateReceived,
    InstrumentUpdated,
    KlineReceived,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import Market

pytestmark = pytest.mark.edge

E8 = 100_000_000
MS = 1_000_000


class FakeWriter:
    def __init__(self, path: Path, meta: Mapping[str, Any]) -> None:
        self.meta = dict(meta)
        self.events: list[Event] = []

    def append(self, event: Event) -> int:
        self.events.append(event)
        return len(self.events)

    def close(self) -> None:
        pass

    def update_meta(self, meta: Mapping[str, Any]) -> None:
        self.meta.update(meta)


class Writers:
    def __init__(self) -> None:
        self.last: FakeWriter | None = None

    def __call__(self, path: Path, meta: Mapping[str, Any]) -> FakeWriter:
        self.last = FakeWriter(path, meta)
        return self.last


AGG = [
    {"a": 10, "p": "100.50", "q": "0.25", "f": 20, "l": 21, "T": 1_600_000_000_000, "m": True, "M": True},
    {"a": 11, "p": "100.40", "q": "1", "f": 22, "l": 22, "T": 1_600_000_000_500, "m": False, "M": True},
]
TRADES = [
    {
        "id": 5,
        "price": "100.5",
        "qty": "0.1",
        "quoteQty": "10.05",
        "time": 1_600_000_000_001,
        "isBuyerMaker": False,
        "isBestMatch": True,
    }
]
KLINES = [
    [1_600_000_020_000 - 20_000, "1", "2", "0.5", "1.5", "10", 1_600_000_059_999, "15", 3, "4", "6", "0"]
]
DEPTH = {"lastUpdateId": 77, "bids": [["100.1", "2"]], "asks": [["100.2", "3"], ["100.3", "4"]]}
TICKER = {"symbol": "BTCUSDT", "bidPrice": "100.1", "bidQty": "2", "askPrice": "100.2", "askQty": "3"}


def write(tmp: Path, name: str, doc: Any) -> Path:
    path = tmp / name
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_rest_shapes_map_exactly_with_the_latency_model() -> None:
    ctx = RestContext(symbol="BTCUSDT", latency_ns=7)
    events, ignored = rest_events(AGG, ctx)
    assert events[0] == AggTradeReceived(
        0,
        1_600_000_000_000 * MS,
        1_600_000_000_000 * MS + 7,
        "BTCUSDT.SPOT",
        10_050_000_000,
        25_000_000,
        10,
        20,
        21,
        True,
    )
    assert ignored == []
    (trade,) = rest_events(TRADES, ctx)[0]
    assert trade == TradeReceived(
        0,
        1_600_000_000_001 * MS,
        1_600_000_000_001 * MS + 7,
        "BTCUSDT.SPOT",
        10_050_000_000,
        10_000_000,
        5,
        False,
    )
    (kline,) = rest_events(KLINES, ctx)[0]
    assert isinstance(kline, KlineReceived)
    assert (kline.interval, kline.closed, kline.ts_event) == ("1m", True, 1_600_000_059_999 * MS)
    assert (kline.open, kline.high, kline.low, kline.close, kline.trades) == (
        E8,
        2 * E8,
        E8 // 2,
        3 * E8 // 2,
        3,
    )
    assert (kline.quote_volume, kline.taker_buy_volume, kline.taker_buy_quote_volume) == (
        15 * E8,
        4 * E8,
        6 * E8,
    )


def test_untimed_bodies_use_at_ns_and_named_symbols_win() -> None:
    ctx = RestContext(symbol="ETHUSDT", at_ns=123, latency_ns=2)
    (snap,) = rest_events(DEPTH, ctx)[0]
    assert snap == BookSnapshotReceived(
        0,
        123,
        125,
        "ETHUSDT.SPOT",
        77,
        ((10_010_000_000, 2 * E8),),
        ((10_020_000_000, 3 * E8), (10_030_000_000, 4 * E8)),
        False,
    )
    (quote,) = rest_events(TICKER, ctx)[0]
    assert quote == QuoteReceived(
        0, 123, 125, "BTCUSDT.SPOT", 0, 10_010_000_000, 2 * E8, 10_020_000_000, 3 * E8
    )


def test_recorded_receive_time_and_open_klines() -> None:
    ctx = RestContext(symbol="BTCUSDT", recv_ns=1_600_000_030_000 * MS)
    (kline,) = rest_events(KLINES, ctx)[0]
    assert isinstance(kline, KlineReceived)
    assert not kline.closed and kline.ts_event == kline.ts_recv == 1_600_000_030_000 * MS


def test_funding_rates_are_signed() -> None:
    rows = [
        {"symbol": "BTCUSDT", "fundingTime": 1_600_000_000_000, "fundingRate": "-0.00012345", "markPrice": ""}
    ]
    (fr,) = rest_events(rows, RestContext(market=Market.USDM))[0]
    assert fr == FundingRateReceived(
        0, 1_600_000_000_000 * MS, 1_600_000_000_000 * MS, "BTCUSDT.USDM", -12_345, 0
    )


def test_price_and_avg_price_are_ignored_not_guessed() -> None:
    assert rest_events({"symbol": "BTCUSDT", "price": "1.0"}, RestContext()) == ([], ["ticker_price"])
    assert rest_events({"mins": 5, "price": "1.0"}, RestContext()) == ([], ["avg_price"])
    assert rest_events([], RestContext()) == ([], [])


@pytest.mark.parametrize("doc", [{"foo": 1}, [[]], [{"x": 1}], "text", 5])
def test_unknown_bodies_are_rejected(doc: Any) -> None:
    with pytest.raises(BadRecord):
        shape, items = classify(doc)
        for item in items:
            item_events(shape, item, RestContext(symbol="X"))


def test_bodies_without_symbol_need_one() -> None:
    with pytest.raises(BadRecord, match="--symbol") as info:
        rest_events(AGG, RestContext())
    assert info.value.category == "ambiguous_symbol"


def test_import_rest_files_with_meta_and_ignored(tmp_path: Path) -> None:
    files = [
        write(tmp_path, "agg.json", AGG),
        write(tmp_path, "price.json", {"symbol": "BTCUSDT", "price": "1"}),
        write(tmp_path, "depth.json", DEPTH),
    ]
    writers = Writers()
    report = import_binance_rest(
        files, tmp_path / "log", symbol="btcusdt", recv_latency_ns=5_000, writer_factory=writers
    )
    assert report.counts == {"agg_trade": 2, "book_snapshot": 1}
    assert report.ignored == {"ticker_price": 1}
    assert writers.last is not None
    meta = writers.last.meta
    assert meta["ts_recv_model"] == {"kind": "constant", "latency_ns": 5_000}
    assert [s["kind"] for s in meta["source"]] == [
        "binance-rest:agg_trades",
        "binance-rest:ticker_price",
        "binance-rest:depth",
    ]
    assert all(e.ts_recv == e.ts_event + 5_000 for e in writers.last.events)


def test_bad_rest_item_is_located_and_skippable(tmp_path: Path) -> None:
    bad = [AGG[0], dict(AGG[1], p="-1"), AGG[1]]
    path = write(tmp_path, "agg.json", bad)
    with pytest.raises(InputError) as info:
        import_binance_rest(path, tmp_path / "a", symbol="BTCUSDT", writer_factory=Writers())
    assert str(info.value).startswith(f"{path}: item [1]: ") and "negative" in str(info.value)
    report = import_binance_rest(
        path, tmp_path / "b", symbol="BTCUSDT", skip_bad=True, writer_factory=Writers()
    )
    assert report.counts == {"agg_trade": 2} and report.skipped_by_reason == {"bad_value": 1}


def test_malformed_json_document_is_located(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"a": 1,\n  oops\n]')
    with pytest.raises(InputError, match=r"bad\.json:3: malformed JSON"):
        import_binance_rest(path, tmp_path / "log", symbol="BTCUSDT", writer_factory=Writers())


# --------------------------------------------------------------------------- exchangeInfo

SPOT_INFO = {
    "timezone": "UTC",
    "serverTime": 1_634_000_000_000,
    "rateLimits": [],
    "exchangeFilters": [],
    "symbols": [
        {
            "symbol": "ETHBTC",
            "status": "TRADING",
            "baseAsset": "ETH",
            "quoteAsset": "BTC",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.00000100",
                    "maxPrice": "922327.00000000",
                    "tickSize": "0.00000100",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00010000",
                    "maxQty": "100000.00000000",
                    "stepSize": "0.00010000",
                },
            ],
            "permissions": ["SPOT", "MARGIN"],
        },
        {"symbol": "BNBBTC", "status": "TRADING", "zKeyFirst": 1, "filters": []},
    ],
}


def test_exchange_info_events_keep_each_symbol_verbatim() -> None:
    events = exchange_info_events(SPOT_INFO)
    assert [e.instrument for e in events] == ["ETHBTC.SPOT", "BNBBTC.SPOT"]
    for event, sym in zip(events, SPOT_INFO["symbols"], strict=True):
        assert event.raw == json.dumps(sym, separators=(",", ":"))
        assert event.ts_event == event.ts_recv == 1_634_000_000_000 * MS
    assert list(json.loads(events[1].raw)) == ["symbol", "status", "zKeyFirst", "filters"]  # key order kept


def test_exchange_info_market_from_shape() -> None:
    assert market_of_exchange_info(SPOT_INFO) == Market.SPOT
    assert market_of_exchange_info({"futuresType": "U_MARGINED", "symbols": []}) == Market.USDM
    assert (
        market_of_exchange_info({"symbols": [{"symbol": "BTCUSD_PERP", "contractSize": 100}]}) == Market.COINM
    )
    assert (
        market_of_exchange_info({"symbols": [{"symbol": "BTCUSDT", "contractType": "PERPETUAL"}]})
        == Market.USDM
    )


def test_exchange_info_files_rest_body_and_cryptofeed(tmp_path: Path) -> None:
    body = write(tmp_path, "info.json", SPOT_INFO)
    recorded = tmp_path / "BINANCE_FUTURES.0"
    recorded.write_text(
        "https://fapi.binance.com/fapi/v1/exchangeInfo -> 1626992740.175661: "
        + json.dumps({"serverTime": 1_626_858_243_909, "symbols": [{"symbol": "BTCUSDT"}]})
        + '\nconfiguration: {"trades": ["BTC-USDT-PERP"]}\n'
    )
    writers = Writers()
    report = import_exchange_info([body, recorded], tmp_path / "log", writer_factory=writers)
    assert report.instruments == ("BNBBTC.SPOT", "BTCUSDT.USDM", "ETHBTC.SPOT")
    assert writers.last is not None
    usdm = writers.last.events[-1]
    assert isinstance(usdm, InstrumentUpdated)
    assert (usdm.ts_event, usdm.ts_recv) == (1_626_858_243_909 * MS, 1_626_992_740_175_661_000)
    assert writers.last.meta["ts_recv_model"] == {"kind": "recorded"}
    assert set(load_exchange_info(body)) == {"ETHBTC", "BNBBTC"}
    assert load_exchange_info(recorded) == {"BTCUSDT": {"symbol": "BTCUSDT"}}
    assert load_exchange_info(body)["ETHBTC"]["filters"][1]["stepSize"] == "0.00010000"


def test_exchange_info_bad_symbol_is_skippable(tmp_path: Path) -> None:
    doc = dict(SPOT_INFO, symbols=[SPOT_INFO["symbols"][0], {"status": "TRADING"}, SPOT_INFO["symbols"][1]])
    path = write(tmp_path, "info.json", doc)
    with pytest.raises(InputError, match=r"info\.json: symbols\[1\]: symbol object has no 'symbol'"):
        import_exchange_info(path, tmp_path / "a", writer_factory=Writers())
    report = import_exchange_info(path, tmp_path / "b", skip_bad=True, writer_factory=Writers())
    assert report.counts == {"instrument": 2} and report.skipped == 1


def test_not_an_exchange_info(tmp_path: Path) -> None:
    path = write(tmp_path, "x.json", {"symbols": "nope"})
    with pytest.raises(InputError, match="not an exchangeInfo body"):
        load_exchange_info(path)
