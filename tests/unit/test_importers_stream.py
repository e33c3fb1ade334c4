"""Raw Binance stream recordings: the sans-I/O parser on small hand-written samples (layouts of
shared/data/binance/README.md), and the driver's bad-input handling on tiny temp files."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from catalogs.importers import BadRecord, BinanceStreamParser, StreamHints, import_binance_stream, sniff
from catalogs.importers.common import seconds_text_to_ns
from engine.errors import InputError
from engine.events import (
    AggTradeReceived,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    InstrumentUpdated,
    KlineReceived,
    LiquidationReceived,
    MarkPriceReceived,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import Market

pytestmark = pytest.mark.edge

E8 = 100_000_000
MS = 1_000_000


class FakeWriter:
    """Stands in for catalogs.log.LogWriter: keeps events and the meta it was given."""

    def __init__(self, path: Path, meta: Mapping[str, Any]) -> None:
        self.path, self.meta, self.closed = path, dict(meta), False
        self.events: list[Event] = []

    def append(self, event: Event) -> int:
        assert not self.closed
        self.events.append(event)
        return len(self.events)

    def close(self) -> None:
        self.closed = True

    def update_meta(self, meta: Mapping[str, Any]) -> None:
        self.meta.update(meta)


class Writers:
    def __init__(self) -> None:
        self.made: list[FakeWriter] = []

    def __call__(self, path: Path, meta: Mapping[str, Any]) -> FakeWriter:
        self.made.append(FakeWriter(path, meta))
        return self.made[-1]

    @property
    def last(self) -> FakeWriter:
        return self.made[-1]


def wrap(stream: str, data: Mapping[str, Any], local_ns: int = 1_700_000_000_000_000_000) -> str:
    return f"{local_ns} " + json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def spot_diff(
    first: int, last: int, *, sym: str = "ETHUSDT", e_ms: int = 1_700_000_001_000
) -> dict[str, Any]:
    return {
        "e": "depthUpdate",
        "E": e_ms,
        "s": sym,
        "U": first,
        "u": last,
        "b": [["2000.10000000", "1.50000000"], ["1999.00000000", "0.00000000"]],
        "a": [["2000.20", "2.25"]],
    }


def fut_diff(first: int, last: int, prev: int, *, sym: str = "ETHUSDT") -> dict[str, Any]:
    return {
        "e": "depthUpdate",
        "E": 1_700_000_001_500,
        "T": 1_700_000_001_490,
        "s": sym,
        "U": first,
        "u": last,
        "pu": prev,
        "b": [["2000.1", "3.000"]],
        "a": [],
    }


SPOT_TICKER = {"u": 400, "s": "ETHUSDT", "b": "2000.10", "B": "1.5", "a": "2000.20", "A": "0.125"}
FUT_TICKER = {
    "e": "bookTicker",
    "u": 400,
    "s": "ETHUSDT",
    "b": "2000.1",
    "B": "1.5",
    "a": "2000.2",
    "A": "7",
    "T": 1_700_000_001_100,
    "E": 1_700_000_001_101,
}
SPOT_TRADE = {
    "e": "trade",
    "E": 1_700_000_001_200,
    "s": "ETHUSDT",
    "t": 77,
    "p": "2000.15",
    "q": "0.01",
    "T": 1_700_000_001_199,
    "m": True,
    "M": True,
}
FUT_TRADE = {
    "e": "trade",
    "E": 1_700_000_001_200,
    "T": 1_700_000_001_199,
    "s": "ETHUSDT",
    "t": 78,
    "p": "2000.1",
    "q": "0.5",
    "X": "MARKET",
    "m": False,
}


def feed_all(parser: BinanceStreamParser, lines: list[str]) -> list[Event]:
    out: list[Event] = []
    for line in lines:
        out.extend(parser.feed(line))
    return out


# --------------------------------------------------------------------------- good input


def test_spot_diff_quote_and_trade_map_exactly() -> None:
    p = BinanceStreamParser()
    local = 1_700_000_000_123_456_789
    diff, quote, trade = feed_all(
        p,
        [
            wrap("ethusdt@depth@100ms", spot_diff(10, 12), local),
            wrap("ethusdt@bookTicker", SPOT_TICKER, local + 1),
            wrap("ethusdt@trade", SPOT_TRADE, local + 2),
        ],
    )
    assert diff == BookDeltaReceived(
        0,
        1_700_000_001_000 * MS,
        local,
        "ETHUSDT.SPOT",
        10,
        12,
        -1,
        ((200_010_000_000, 150_000_000), (199_900_000_000, 0)),
        ((200_020_000_000, 225_000_000),),
    )
    # spot bookTicker has no venue time: ts_event is the local receive time
    assert quote == QuoteReceived(
        0,
        local + 1,
        local + 1,
        "ETHUSDT.SPOT",
        400,
        200_010_000_000,
        150_000_000,
        200_020_000_000,
        12_500_000,
    )
    assert trade == TradeReceived(
        0, 1_700_000_001_199 * MS, local + 2, "ETHUSDT.SPOT", 200_015_000_000, 1_000_000, 77, True
    )


def test_futures_messages_are_detected_and_keep_pu_and_event_times() -> None:
    p = BinanceStreamParser()
    diff, quote, trade = feed_all(
        p,
        [
            wrap("ethusdt@depth@0ms", fut_diff(10, 12, 9)),
            wrap("ethusdt@bookTicker", FUT_TICKER),
            wrap("ethusdt@trade", FUT_TRADE),
        ],
    )
    assert isinstance(diff, BookDeltaReceived) and diff.instrument == "ETHUSDT.USDM"
    assert (diff.first_update_id, diff.last_update_id, diff.prev_update_id) == (10, 12, 9)
    assert isinstance(quote, QuoteReceived) and quote.ts_event == FUT_TICKER["E"] * MS
    assert isinstance(trade, TradeReceived) and trade.instrument == "ETHUSDT.USDM" and not trade.buyer_maker


def test_coin_m_symbols_and_the_named_coin_m_snapshot() -> None:
    p = BinanceStreamParser()
    diff = dict(fut_diff(5, 8, 4, sym="BTCUSD_PERP"), ps="BTCUSD")
    snap = {
        "lastUpdateId": 7,
        "E": 1_700_000_002_000,
        "T": 1_700_000_001_990,
        "symbol": "BTCUSD_PERP",
        "pair": "BTCUSD",
        "bids": [["61804.7", "35"]],
        "asks": [["61804.8", "1645"]],
    }
    events = feed_all(p, [wrap("btcusd_perp@depth@0ms", diff), f"1700000000000000009 {json.dumps(snap)}"])
    assert [e.instrument for e in events] == ["BTCUSD_PERP.COINM", "BTCUSD_PERP.COINM"]
    snapshot = events[1]
    assert isinstance(snapshot, BookSnapshotReceived)
    assert snapshot.ts_event == 1_700_000_002_000 * MS and not snapshot.partial
    assert snapshot.bids == ((6_180_470_000_000, 35 * E8),)


def test_usd_m_quarterly_with_underscore_stays_usd_m() -> None:
    p = BinanceStreamParser()
    (diff,) = p.feed(wrap("btcusdt_240927@depth", fut_diff(1, 2, 0, sym="BTCUSDT_240927")))
    assert diff.instrument == "BTCUSDT_240927.USDM"


def test_bare_spot_snapshot_belongs_to_the_files_depth_symbol() -> None:
    p = BinanceStreamParser()
    snap = '1700000000000000050 {"lastUpdateId":11,"bids":[["2000.1","1"]],"asks":[["2000.2","2"],["2001","0.5"]]}'
    events = feed_all(p, [wrap("ethusdt@depth@100ms", spot_diff(10, 12)), snap])
    s = events[1]
    assert isinstance(s, BookSnapshotReceived)
    assert (s.instrument, s.last_update_id, s.partial) == ("ETHUSDT.SPOT", 11, False)
    assert s.ts_event == s.ts_recv == 1_700_000_000_000_000_050
    assert s.asks == ((200_020_000_000, 2 * E8), (200_100_000_000, 50_000_000))


def test_bare_snapshot_with_several_depth_symbols_needs_a_symbol() -> None:
    lines = [
        wrap("ethusdt@depth@100ms", spot_diff(10, 12)),
        wrap("btcusdt@depth@100ms", spot_diff(1, 2, sym="BTCUSDT")),
    ]
    snap = '1 {"lastUpdateId":11,"bids":[],"asks":[]}'
    p = BinanceStreamParser()
    feed_all(p, lines)
    with pytest.raises(BadRecord, match="BTCUSDT, ETHUSDT") as info:
        p.feed(snap)
    assert info.value.category == "ambiguous_symbol"
    q = BinanceStreamParser(symbol="btcusdt")
    feed_all(q, lines)
    assert q.feed(snap)[0].instrument == "BTCUSDT.SPOT"


def test_partial_depth_streams_are_partial_snapshots() -> None:
    p = BinanceStreamParser()
    spot = {"lastUpdateId": 99, "bids": [["1.5", "2"]], "asks": [["1.6", "3"]]}
    (s,) = p.feed(wrap("ethbtc@depth5@100ms", spot, 42))
    assert s == BookSnapshotReceived(
        0, 42, 42, "ETHBTC.SPOT", 99, ((150_000_000, 2 * E8),), ((160_000_000, 3 * E8),), True
    )
    f = BinanceStreamParser()
    (fs,) = f.feed(wrap("ethusdt@depth20@100ms", fut_diff(5, 9, 4), 43))
    assert isinstance(fs, BookSnapshotReceived) and fs.partial and fs.last_update_id == 9
    assert fs.instrument == "ETHUSDT.USDM"


def test_agg_trade_kline_mark_price_and_liquidation() -> None:
    p = BinanceStreamParser()
    agg = {
        "e": "aggTrade",
        "E": 5,
        "s": "NKNUSDT",
        "a": 9,
        "p": "0.3528",
        "q": "58",
        "f": 3,
        "l": 4,
        "T": 4,
        "m": False,
        "M": True,
    }
    kline = {
        "e": "kline",
        "E": 6,
        "s": "NKNUSDT",
        "k": {
            "t": 60_000,
            "T": 119_999,
            "s": "NKNUSDT",
            "i": "1m",
            "f": 1,
            "L": 2,
            "o": "0.35",
            "c": "0.36",
            "h": "0.37",
            "l": "0.34",
            "v": "100",
            "n": 2,
            "x": False,
            "q": "35.5",
            "V": "40",
            "Q": "14.2",
            "B": "0",
        },
    }
    a, k = feed_all(p, [wrap("nknusdt@aggTrade", agg, 10), wrap("nknusdt@kline_1m", kline, 11)])
    assert a == AggTradeReceived(0, 4 * MS, 10, "NKNUSDT.SPOT", 35_280_000, 58 * E8, 9, 3, 4, False)
    assert k == KlineReceived(
        0,
        6 * MS,
        11,
        "NKNUSDT.SPOT",
        "1m",
        60_000 * MS,
        119_999 * MS,
        35_000_000,
        37_000_000,
        34_000_000,
        36_000_000,
        100 * E8,
        3_550_000_000,
        2,
        40 * E8,
        1_420_000_000,
        False,
    )
    f = BinanceStreamParser()
    mark = {
        "e": "markPriceUpdate",
        "E": 7,
        "s": "BTCUSDT",
        "p": "11794.15",
        "i": "11784.62",
        "P": "11784.25",
        "r": "-0.00038167",
        "T": 28_800_000,
    }
    force = {
        "e": "forceOrder",
        "E": 8,
        "o": {
            "s": "BTCUSDT",
            "S": "SELL",
            "o": "LIMIT",
            "f": "IOC",
            "q": "0.014",
            "p": "9910",
            "ap": "9910",
            "X": "FILLED",
            "l": "0.014",
            "z": "0.014",
            "T": 8,
        },
    }
    m, liq = feed_all(f, [wrap("btcusdt@markPrice@1s", mark, 12), wrap("btcusdt@forceOrder", force, 13)])
    assert m == MarkPriceReceived(
        0,
        7 * MS,
        12,
        "BTCUSDT.USDM",
        1_179_415_000_000,
        1_178_462_000_000,
        1_178_425_000_000,
        -38_167,
        28_800_000 * MS,
    )
    assert liq == LiquidationReceived(
        0,
        8 * MS,
        13,
        "BTCUSDT.USDM",
        "SELL",
        991_000_000_000,
        1_400_000,
        991_000_000_000,
        1_400_000,
        "FILLED",
    )


def test_cryptofeed_lines_and_header() -> None:
    p = BinanceStreamParser()
    header = (
        "wss://fstream.binance.com/stream?streams=ethusdt@kline_1m/ethusdt@depth@100ms <-> 1626992740.179554"
    )
    kline = {
        "e": "kline",
        "E": 6,
        "s": "ETHUSDT",
        "k": {
            "t": 0,
            "T": 59_999,
            "i": "1m",
            "o": "1",
            "c": "1",
            "h": "1",
            "l": "1",
            "v": "1",
            "n": 1,
            "x": True,
            "q": "1",
            "V": "1",
            "Q": "1",
        },
    }
    line = "1626992741.0633569: " + json.dumps({"stream": "ethusdt@kline_1m", "data": kline})
    assert p.feed(header) == []
    (k,) = p.feed(line)
    # the header said fstream: futures, even though a kline alone says nothing
    assert k.instrument == "ETHUSDT.USDM"
    assert k.ts_recv == 1_626_992_741_063_356_900
    assert p.ignored["ws_header"] == 1


def test_seconds_text_is_converted_without_floats() -> None:
    assert seconds_text_to_ns("1633998512.0633569") == 1_633_998_512_063_356_900
    assert seconds_text_to_ns("1633998523.957215") == 1_633_998_523_957_215_000
    assert seconds_text_to_ns("1633998523") == 1_633_998_523_000_000_000
    assert seconds_text_to_ns("1.1234567891") == 1_123_456_789  # below 1 ns is dropped
    with pytest.raises(BadRecord):
        seconds_text_to_ns("1.2e9")


def test_cryptofeed_rest_lines_depth_and_exchange_info() -> None:
    p = BinanceStreamParser()
    depth = (
        "https://fapi.binance.com/fapi/v1/depth?symbol=SUSHIUSDT&limit=1000 -> 1626992741.301402: "
        '{"lastUpdateId":60,"E":1626992741264,"T":1626992741261,"bids":[["7.6110","6"]],"asks":[]}'
    )
    (s,) = p.feed(depth)
    assert isinstance(s, BookSnapshotReceived)
    assert (s.instrument, s.ts_event, s.ts_recv) == (
        "SUSHIUSDT.USDM",
        1_626_992_741_264 * MS,
        1_626_992_741_301_402_000,
    )
    info = (
        'https://api.binance.com/api/v3/exchangeInfo -> 1633998511.5: {"serverTime":1633998511098,'
        '"symbols":[{"symbol":"ETHBTC","filters":[{"filterType":"PRICE_FILTER","tickSize":"0.000001"}]}]}'
    )
    (i,) = p.feed(info)
    assert isinstance(i, InstrumentUpdated) and i.instrument == "ETHBTC.SPOT"
    assert json.loads(i.raw)["filters"][0]["tickSize"] == "0.000001"
    assert p.feed('configuration: {"trades": ["ETH-BTC"]}') == [] and p.ignored["configuration"] == 1


def test_forced_market_overrides_detection() -> None:
    p = BinanceStreamParser(market=Market.COINM)
    (d,) = p.feed(wrap("ethusdt@depth", spot_diff(1, 2)))
    assert d.instrument == "ETHUSDT.COINM"


def test_sniff_reads_market_and_depth_symbols_off_the_head() -> None:
    kline = {
        "e": "kline",
        "E": 6,
        "s": "ETHUSDT",
        "k": {
            "t": 0,
            "T": 59_999,
            "i": "1m",
            "o": "1",
            "c": "1",
            "h": "1",
            "l": "1",
            "v": "1",
            "n": 1,
            "x": True,
            "q": "1",
            "V": "1",
            "Q": "1",
        },
    }
    lines = [wrap("ethusdt@kline_1m", kline), "garbage", wrap("ethusdt@depth@0ms", fut_diff(1, 2, 0))]
    hints = sniff(lines)
    assert hints == StreamHints(futures=True, depth_symbols=frozenset({"ETHUSDT"}))
    p = BinanceStreamParser()
    p.start_file(hints)
    assert p.feed(lines[0])[0].instrument == "ETHUSDT.USDM"


# --------------------------------------------------------------------------- bad input (parser)

BAD_LINES = [
    ('1700 {"stream":', "malformed_json"),
    (wrap("ethusdt@depth", {"e": "depthUpdatez", "E": 1, "s": "ETHUSDT"}), "unknown_type"),
    (wrap("ethusdt@ticker", {"s": "ETHUSDT", "x": 1}), "unknown_type"),
    (wrap("ethusdt@trade", dict(SPOT_TRADE, p="NaN")), "bad_value"),
    (wrap("ethusdt@trade", dict(SPOT_TRADE, q="-0.5")), "bad_value"),
    (wrap("ethusdt@trade", dict(SPOT_TRADE, p="1e5")), "bad_value"),
    (wrap("ethusdt@trade", dict(SPOT_TRADE, p=2000.15)), "bad_value"),
    (wrap("ethusdt@trade", dict(SPOT_TRADE, t=True)), "bad_value"),
    (wrap("ethusdt@bookTicker", {k: v for k, v in SPOT_TICKER.items() if k != "A"}), "missing_field"),
    (wrap("ethusdt@depth", dict(spot_diff(1, 2), b=[["1.0"]])), "bad_value"),
    (wrap("ethusdt@depth", dict(spot_diff(5, 2))), "bad_value"),
    ("17000x00 {}", "bad_value"),
    ('{"stream":"ethusdt@trade","data":{}}', "malformed_line"),
    ("hello world", "malformed_line"),
]


@pytest.mark.parametrize(("line", "category"), BAD_LINES)
def test_bad_lines_raise_a_categorised_bad_record(line: str, category: str) -> None:
    with pytest.raises(BadRecord) as info:
        BinanceStreamParser().feed(line)
    assert info.value.category == category
    assert isinstance(info.value, InputError)


def test_depth_ids_going_backwards_are_rejected_and_state_survives() -> None:
    p = BinanceStreamParser()
    p.feed(wrap("ethusdt@depth", spot_diff(10, 20)))
    with pytest.raises(BadRecord, match="go backwards") as info:
        p.feed(wrap("ethusdt@depth", spot_diff(5, 9)))
    assert info.value.category == "non_monotonic"
    # the rejected line changed nothing: the next proper diff is accepted, a gap is not an error
    assert p.feed(wrap("ethusdt@depth", spot_diff(21, 25)))[0].last_update_id == 25
    assert p.feed(wrap("ethusdt@depth", spot_diff(40, 45)))[0].first_update_id == 40
    # per instrument: another symbol has its own sequence
    assert p.feed(wrap("btcusdt@depth", spot_diff(1, 2, sym="BTCUSDT")))


def test_book_ticker_update_id_going_backwards_is_rejected() -> None:
    p = BinanceStreamParser()
    p.feed(wrap("ethusdt@bookTicker", SPOT_TICKER))
    p.feed(wrap("ethusdt@bookTicker", SPOT_TICKER))  # equal is not backwards
    with pytest.raises(BadRecord, match="u=399 after u=400"):
        p.feed(wrap("ethusdt@bookTicker", dict(SPOT_TICKER, u=399)))


def test_contrary_market_evidence_is_a_bad_line_in_auto_mode() -> None:
    p = BinanceStreamParser()
    p.feed(wrap("ethusdt@depth", spot_diff(1, 2)))
    with pytest.raises(BadRecord, match="looks like a futures message") as info:
        p.feed(wrap("ethusdt@bookTicker", FUT_TICKER))
    assert info.value.category == "market_mismatch"


# --------------------------------------------------------------------------- the driver


def write_lines(path: Path, lines: list[str], *, gz: bool = True) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def good_lines(n: int) -> list[str]:
    lines = []
    for i in range(n):
        if i % 3 == 0:
            lines.append(wrap("ethusdt@depth@100ms", spot_diff(10 * i + 1, 10 * i + 10), 1000 + i))
        elif i % 3 == 1:
            lines.append(wrap("ethusdt@bookTicker", dict(SPOT_TICKER, u=10 * i + 5), 1000 + i))
        else:
            lines.append(wrap("ethusdt@trade", dict(SPOT_TRADE, t=i), 1000 + i))
    return lines


def test_driver_imports_and_records_meta(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "rec.gz", good_lines(9))
    writers = Writers()
    report = import_binance_stream([src], tmp_path / "log", writer_factory=writers)
    w = writers.last
    assert w.closed and len(w.events) == 9
    assert report.counts == {"book_delta": 3, "quote": 3, "trade": 3}
    assert report.instruments == ("ETHUSDT.SPOT",)
    (source,) = w.meta["source"]
    assert source == {
        "file": str(src),
        "kind": "binance-stream",
        "lines": 9,
        "sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
    }
    assert w.meta["ts_recv_model"] == {"kind": "recorded"}
    assert w.meta["import_stats"]["counts"] == {"book_delta": 3, "quote": 3, "trade": 3}
    assert w.meta["import_stats"]["complete"] is True


def test_driver_error_names_file_and_line_and_keeps_what_came_before(tmp_path: Path) -> None:
    lines = good_lines(6)
    lines.insert(4, wrap("ethusdt@trade", dict(SPOT_TRADE, p="abc")))
    src = write_lines(tmp_path / "rec.txt", lines, gz=False)
    writers = Writers()
    with pytest.raises(InputError) as info:
        import_binance_stream(src, tmp_path / "log", writer_factory=writers)
    msg = str(info.value)
    assert msg.startswith(f"{src}:5: ") and "'p'" in msg and "abc" in msg
    assert (info.value.source, info.value.line) == (str(src), 5)
    w = writers.last
    assert w.closed and len(w.events) == 4  # everything before the bad line
    assert w.meta["import_stats"]["complete"] is False and "abc" in w.meta["import_stats"]["error"]


def test_driver_skip_bad_counts_by_reason_and_keeps_first_ten(tmp_path: Path) -> None:
    lines = good_lines(3)
    lines += ["1 not json"] * 12 + [
        wrap("ethusdt@depth@100ms", spot_diff(1, 2))
    ]  # 12 malformed + 1 backwards
    lines += good_lines(3)[2:]
    src = write_lines(tmp_path / "rec.gz", lines)
    writers = Writers()
    report = import_binance_stream([src], tmp_path / "log", skip_bad=True, writer_factory=writers)
    assert report.skipped == 13
    assert report.skipped_by_reason == {"malformed_json": 12, "non_monotonic": 1}
    assert [s.line for s in report.skipped_first] == list(range(4, 14))
    assert report.counts == {"book_delta": 1, "quote": 1, "trade": 2}
    stats = writers.last.meta["import_stats"]["skipped"]
    assert stats["total"] == 13 and len(stats["first"]) == 10 and stats["first"][0]["file"] == str(src)


def test_truncated_gzip_is_a_clear_error_and_skip_keeps_the_prefix(tmp_path: Path) -> None:
    lines = good_lines(3000)
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) // 2])
    writers = Writers()
    with pytest.raises(InputError, match=r"truncated or corrupt compressed file") as info:
        import_binance_stream([cut], tmp_path / "a", writer_factory=writers)
    assert info.value.source == str(cut) and info.value.line is not None
    kept = writers.last.events
    assert 0 < len(kept) == info.value.line - 1
    report = import_binance_stream([cut], tmp_path / "b", skip_bad=True, writer_factory=writers)
    assert report.skipped_by_reason == {"truncated_input": 1}
    full = BinanceStreamParser()
    expected = feed_all(full, lines[: len(kept)])
    assert writers.last.events == kept == expected


def test_continuation_files_are_checked_against_each_other(tmp_path: Path) -> None:
    first = write_lines(tmp_path / "a.gz", [wrap("ethusdt@depth", spot_diff(1, 10))])
    second = write_lines(tmp_path / "b.gz", [wrap("ethusdt@depth", spot_diff(11, 20))])
    report = import_binance_stream([first, second], tmp_path / "ok", writer_factory=Writers())
    assert report.counts == {"book_delta": 2} and len(report.sources) == 2
    with pytest.raises(InputError, match=r"a\.gz:1: .*go backwards"):
        import_binance_stream([second, first], tmp_path / "bad", writer_factory=Writers())


def test_exchange_info_goes_first(tmp_path: Path) -> None:
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"serverTime": 5, "symbols": [{"symbol": "ETHUSDT"}, {"symbol": "BTCUSDT"}]}))
    src = write_lines(tmp_path / "rec.gz", good_lines(2))
    writers = Writers()
    report = import_binance_stream([src], tmp_path / "log", exchange_info=info, writer_factory=writers)
    kinds = [type(e).__name__ for e in writers.last.events]
    assert kinds == ["InstrumentUpdated", "InstrumentUpdated", "BookDeltaReceived", "QuoteReceived"]
    assert report.counts["instrument"] == 2
    assert [s["kind"] for s in writers.last.meta["source"]] == ["exchange-info", "binance-stream"]


def test_crlf_and_blank_lines(tmp_path: Path) -> None:
    src = tmp_path / "rec.txt"
    src.write_bytes(("\r\n".join(good_lines(2)) + "\r\n\r\n").encode())
    report = import_binance_stream([src], tmp_path / "log", writer_factory=Writers())
    assert report.events == 2 and report.ignored == {"blank": 1}


def test_missing_file_is_an_input_error_and_creates_no_log(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.gz: cannot read"):
        import_binance_stream([tmp_path / "nope.gz"], tmp_path / "log", writer_factory=Writers())
    assert not (tmp_path / "log").exists()


def test_rest_body_exchange_info_is_declared_in_the_recv_model(tmp_path: Path) -> None:
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"serverTime": 5, "symbols": [{"symbol": "ETHUSDT"}]}))
    src = write_lines(tmp_path / "rec.gz", good_lines(1))
    writers = Writers()
    import_binance_stream([src], tmp_path / "log", exchange_info=info, writer_factory=writers)
    assert writers.last.meta["ts_recv_model"] == {
        "kind": "recorded",
        "exchange_info": {"kind": "server_time", "latency_ns": 0},
    }
    first = writers.last.events[0]
    assert isinstance(first, InstrumentUpdated) and first.ts_event == first.ts_recv == 5 * MS
