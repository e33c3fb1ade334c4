"""CSV and JSON file sources: data.binance.vision, Tardis, nautilus depth CSV, freqtrade.
Samples are hand-written in the layouts of shared/data/binance/README.md."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from catalogs.importers import (
    BadRecord,
    DepthCsvParser,
    TardisParser,
    VisionParser,
    freqtrade_name_info,
    import_depth_csv,
    import_freqtrade,
    import_tardis,
    import_vision,
    vision_name_info,
)
from catalogs.importers.freqtrade import number_e8
from engine.errors import ConfigError, InputError
from engine.events import (
    AggTradeReceived,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    FundingRateReceived,
    KlineReceived,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import Market

pytestmark = pytest.mark.edge

E8 = 100_000_000
MS = 1_000_000
US = 1_000


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
        self.last = FakeWriter(Path(), {})

    def __call__(self, path: Path, meta: Mapping[str, Any]) -> FakeWriter:
        self.last = FakeWriter(path, meta)
        return self.last


def feed(parser: VisionParser | TardisParser | DepthCsvParser, lines: list[str]) -> list[Event]:
    out: list[Event] = []
    for line in lines:
        out.extend(parser.feed(line))
    if isinstance(parser, DepthCsvParser):
        out.extend(parser.finish())
    return out


# --------------------------------------------------------------------------- data.binance.vision

KLINE_MS = "1700000000000,0.00002853,0.00002854,0.00002851,0.00002854,36304.2,1700000059999,1.03547608,79,19523,0.55694227,0"
KLINE_US = "1735689600000000,0.5,0.6,0.4,0.55,10,1735689659999999,5.5,3,4,2.2,0"


def test_vision_klines_ms_and_us_timestamps() -> None:
    p = VisionParser(symbol="ADABTC", latency_ns=10)
    (k,) = p.feed(KLINE_MS)
    assert k == KlineReceived(
        0,
        1_700_000_059_999 * MS,
        1_700_000_059_999 * MS + 10,
        "ADABTC.SPOT",
        "1m",
        1_700_000_000_000 * MS,
        1_700_000_059_999 * MS,
        2853,
        2854,
        2851,
        2854,
        3_630_420_000_000,
        103_547_608,
        79,
        1_952_300_000_000,
        55_694_227,
        True,
    )
    (u,) = VisionParser(symbol="ADABTC").feed(KLINE_US)
    assert isinstance(u, KlineReceived)
    assert (u.open_time, u.close_time, u.interval) == (
        1_735_689_600_000_000 * US,
        1_735_689_659_999_999 * US,
        "1m",
    )


def test_vision_header_row_is_skipped_and_agg_trades_detected() -> None:
    p = VisionParser(symbol="BTCUSDT")
    lines = [
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker",
        "26129,0.01633102,4.70443515,27781,27781,1498793709153,true",
        "26130,0.01633103,1,27782,27783,1735689600123456,False,True",
    ]
    a, b = feed(p, lines)
    assert a == AggTradeReceived(
        0,
        1_498_793_709_153 * MS,
        1_498_793_709_153 * MS,
        "BTCUSDT.SPOT",
        1_633_102,
        470_443_515,
        26129,
        27781,
        27781,
        True,
    )
    assert isinstance(b, AggTradeReceived) and b.ts_event == 1_735_689_600_123_456 * US and not b.buyer_maker
    assert p.ignored == {"header": 1}


def test_vision_trades_kind() -> None:
    p = VisionParser(symbol="BTCUSDT", kind="trades", market=Market.USDM)
    (t,) = p.feed("1000,100.5,0.25,25.125,1700000000000,True,True")
    assert t == TradeReceived(
        0,
        1_700_000_000_000 * MS,
        1_700_000_000_000 * MS,
        "BTCUSDT.USDM",
        10_050_000_000,
        25_000_000,
        1000,
        True,
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1700000000000,1,2,3", "cannot tell the file kind"),
        ("1,0.1,0.2,1,1,1700000000000,maybe", "expected true/false"),
        ("1,NaN,0.2,1,1,1700000000000,true", "not a plain decimal"),
        ("1,0.1,-0.2,1,1,1700000000000,true", "negative"),
        ("x1,0.1,0.2,1,1,1700000000000,true", "expected a non-negative integer"),
    ],
)
def test_vision_bad_rows(line: str, message: str) -> None:
    kind = None if "kind" in message else "aggtrades"
    p = VisionParser(symbol="BTCUSDT", kind=kind)
    p.feed("1,0.1,0.2,1,1,1700000000000,true" if kind else "")  # past the header position
    with pytest.raises(BadRecord, match=message):
        p.feed(line)


def test_vision_names() -> None:
    assert vision_name_info("/x/ADABTC-1m-2021-11-27.csv") == ("ADABTC", "klines", "1m")
    assert vision_name_info("BTCUSDT-aggTrades-2025-01.zip") == ("BTCUSDT", "aggtrades", None)
    assert vision_name_info("BTCUSDT-trades-2025-01-01.csv.gz") == ("BTCUSDT", "trades", None)
    assert vision_name_info("whatever.csv") == (None, None, None)


def test_import_vision_from_name_and_zip(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(
            "ADABTC-1m-2021-11-27.csv",
            KLINE_MS
            + "\n"
            + KLINE_MS.replace("1700000000000", "1700000060000").replace("1700000059999", "1700000119999")
            + "\n",
        )
    path = tmp_path / "ADABTC-1m-2021-11-27.zip"
    path.write_bytes(buf.getvalue())
    writers = Writers()
    report = import_vision(path, tmp_path / "log", writer_factory=writers)
    assert report.counts == {"kline": 2} and report.instruments == ("ADABTC.SPOT",)
    assert writers.last.meta["ts_recv_model"] == {"kind": "constant", "latency_ns": 0}
    with pytest.raises(ConfigError, match="--symbol"):
        import_vision(tmp_path / "nameless.csv", tmp_path / "log2", writer_factory=writers)


def test_import_vision_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "ADABTC-1m-2021-11-27.csv"
    path.write_text(KLINE_MS + "\n" + KLINE_MS.replace("0.00002853", "abc") + "\n")
    with pytest.raises(InputError) as info:
        import_vision(path, tmp_path / "log", writer_factory=Writers())
    assert str(info.value).startswith(f"{path}:2: klines row: open") and "abc" in str(info.value)


# --------------------------------------------------------------------------- Tardis

TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
QUOTES_HEADER = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"


def book_header(depth: int) -> str:
    cols = [f"{s}[{i}].{f}" for i in range(depth) for s in ("asks", "bids") for f in ("price", "amount")]
    return ",".join(["exchange", "symbol", "timestamp", "local_timestamp", *cols])


def test_tardis_trades_quotes_and_books() -> None:
    (t,) = feed(
        TardisParser(),
        [TRADES_HEADER, "binance-futures,BTCUSDT,1582329602111000,1582329602418379,42,sell,9682,0.132"],
    )
    assert t == TradeReceived(
        0,
        1_582_329_602_111_000 * US,
        1_582_329_602_418_379 * US,
        "BTCUSDT.USDM",
        968_200_000_000,
        13_200_000,
        42,
        True,
    )
    (q,) = feed(TardisParser(), [QUOTES_HEADER, "binance,ETHBTC,1000,2000,0.84,0.05,0.049,"])
    assert q == QuoteReceived(0, 1000 * US, 2000 * US, "ETHBTC.SPOT", 0, 4_900_000, 0, 5_000_000, 84_000_000)
    p = TardisParser()
    (b,) = feed(p, [book_header(2), "binance-delivery,BTCUSD_PERP,1000,2000,10.5,1,10.4,2,10.6,3,,"])
    assert b == BookSnapshotReceived(
        0,
        1000 * US,
        2000 * US,
        "BTCUSD_PERP.COINM",
        0,
        ((1_040_000_000, 2 * E8),),
        ((1_050_000_000, E8), (1_060_000_000, 3 * E8)),
        True,
    )
    assert p.kind == "book_snapshot_2"


def test_tardis_bad_input() -> None:
    with pytest.raises(BadRecord, match="unsupported Tardis CSV columns") as info:
        TardisParser().feed("exchange,symbol,timestamp,local_timestamp,funding_rate")
    assert info.value.category == "bad_header"
    p = TardisParser()
    p.feed(TRADES_HEADER)
    with pytest.raises(BadRecord, match="not a Binance market"):
        p.feed("ftx,BTC-PERP,1,2,3,buy,1,1")
    with pytest.raises(BadRecord, match="buy or sell"):
        p.feed("binance,BTCUSDT,1,2,3,unknown,1,1")
    with pytest.raises(BadRecord, match="expected 8 comma-separated"):
        p.feed("binance,BTCUSDT,1,2,3,buy,1")


def test_import_tardis_bad_header_ends_the_file_when_skipping(tmp_path: Path) -> None:
    bad = tmp_path / "derivative_ticker.csv"
    bad.write_text(
        "exchange,symbol,timestamp,local_timestamp,funding_rate\nbinance-futures,BTCUSDT,1,2,0.1\n" * 3
    )
    good = tmp_path / "trades.csv"
    good.write_text(TRADES_HEADER + "\nbinance,BTCUSDT,1,2,3,buy,1,1\n")
    report = import_tardis([bad, good], tmp_path / "log", skip_bad=True, writer_factory=Writers())
    assert report.skipped_by_reason == {"bad_header": 1} and report.counts == {"trade": 1}
    assert [s.kind for s in report.sources] == ["tardis:unknown", "tardis:trades"]


# --------------------------------------------------------------------------- nautilus depth CSV

DEPTH_HEADER = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"


def test_depth_csv_snapshot_then_deltas() -> None:
    lines = [
        DEPTH_HEADER,
        "BTCUSDT,1667346579146,100,100,b,snap,20377.00,1.770,-1",
        "BTCUSDT,1667346579146,100,100,a,snap,20377.10,0.5,-1",
        "BTCUSDT,1667347199939,101,105,a,set,20472.80,0.000,100",
        "BTCUSDT,1667347199939,101,105,b,set,20470.00,2,100",
        "BTCUSDT,1667347200000,106,110,b,set,20470.00,0,105",
    ]
    s, d1, d2 = feed(DepthCsvParser(latency_ns=3), lines)
    assert s == BookSnapshotReceived(
        0,
        1_667_346_579_146 * MS,
        1_667_346_579_146 * MS + 3,
        "BTCUSDT.USDM",
        100,
        ((2_037_700_000_000, 177_000_000),),
        ((2_037_710_000_000, 50_000_000),),
        False,
    )
    assert d1 == BookDeltaReceived(
        0,
        1_667_347_199_939 * MS,
        1_667_347_199_939 * MS + 3,
        "BTCUSDT.USDM",
        101,
        105,
        100,
        ((2_047_000_000_000, 2 * E8),),
        ((2_047_280_000_000, 0),),
    )
    assert isinstance(d2, BookDeltaReceived) and (d2.first_update_id, d2.prev_update_id) == (106, 105)


def test_depth_csv_rejects_backwards_messages_at_their_first_row(tmp_path: Path) -> None:
    path = tmp_path / "depth.csv"
    path.write_text(
        "\n".join(
            [
                DEPTH_HEADER,
                "BTCUSDT,2,101,105,a,set,1,1,100",
                "BTCUSDT,3,90,95,a,set,1,1,89",
                "BTCUSDT,3,90,95,b,set,1,1,89",
                "BTCUSDT,4,106,110,a,set,1,1,105",
            ]
        )
        + "\n"
    )
    with pytest.raises(InputError, match=r"depth\.csv:3: depth update ids go backwards"):
        import_depth_csv(path, tmp_path / "a", writer_factory=Writers())
    writers = Writers()
    report = import_depth_csv(path, tmp_path / "b", skip_bad=True, writer_factory=writers)
    assert report.counts == {"book_delta": 2} and report.skipped_by_reason == {"non_monotonic": 1}
    assert [e.last_update_id for e in writers.last.events if isinstance(e, BookDeltaReceived)] == [105, 110]
    assert report.ignored == {"header": 1, "row_of_rejected_message": 1}


def test_depth_csv_bad_header_and_spot_without_pu() -> None:
    with pytest.raises(BadRecord, match="unsupported depth CSV columns"):
        DepthCsvParser().feed("a,b,c")
    lines = [DEPTH_HEADER.rpartition(",")[0], "ETHBTC,1,5,5,b,snap,0.05,1"]
    (s,) = feed(DepthCsvParser(), lines)
    assert s.instrument == "ETHBTC.SPOT"


# --------------------------------------------------------------------------- freqtrade


def test_freqtrade_names_and_numbers() -> None:
    assert freqtrade_name_info("XRP_USDT-8h-funding_rate.json") == ("XRPUSDT", "funding", "8h")
    assert freqtrade_name_info("/d/XRP_USDT_USDT-8h-mark.json") == ("XRPUSDT", "candles", "8h")
    assert number_e8("523374743.8000000119", "v") == 52_337_474_380_000_000  # float noise -> shortest decimal
    assert number_e8("1e-05", "v") == 1000
    assert number_e8("-0.00013046", "v", signed=True) == -13_046
    assert number_e8(3, "v") == 3 * E8
    for bad in ("nan", "inf", "-1", "x", None):
        with pytest.raises(BadRecord):
            number_e8(bad, "v")


def test_import_freqtrade_funding_and_candles(tmp_path: Path) -> None:
    funding = tmp_path / "XRP_USDT-8h-funding_rate.json"
    funding.write_text("[[1637193600017,0.0001,0.0,0.0,0.0,0.0],[1637222400007,-0.00013046,0.0,0.0,0.0,0.0]]")
    mark = tmp_path / "XRP_USDT-8h-mark.json"
    mark.write_text("[[1637193600000,1.0959,1.162,1.0907,1.1074,523374743.8000000119]]")
    writers = Writers()
    report = import_freqtrade([funding, mark], tmp_path / "log", writer_factory=writers)
    assert report.counts == {"funding_rate": 2, "kline": 1}
    f0, f1, k = writers.last.events
    assert f0 == FundingRateReceived(
        0, 1_637_193_600_017 * MS, 1_637_193_600_017 * MS, "XRPUSDT.USDM", 10_000, 0
    )
    assert isinstance(f1, FundingRateReceived) and f1.funding_rate == -13_046
    close = (1_637_193_600_000 + 8 * 3_600_000 - 1) * MS
    assert k == KlineReceived(
        0,
        close,
        close,
        "XRPUSDT.USDM",
        "8h",
        1_637_193_600_000 * MS,
        close,
        109_590_000,
        116_200_000,
        109_070_000,
        110_740_000,
        52_337_474_380_000_000,
        0,
        0,
        0,
        0,
        True,
    )


def test_import_freqtrade_bad_row_is_located(tmp_path: Path) -> None:
    path = tmp_path / "XRP_USDT-8h-funding_rate.json"
    path.write_text(
        json.dumps([[1, "0.1", 0, 0, 0, 0], [2, 0.1, 0], [3, 0.1, 0, 0, 0, 0]]).replace('"0.1"', "0.1")
    )
    with pytest.raises(InputError, match=r"funding_rate\.json: row \[1\]: row: expected"):
        import_freqtrade(path, tmp_path / "a", writer_factory=Writers())
    report = import_freqtrade(path, tmp_path / "b", skip_bad=True, writer_factory=Writers())
    assert report.counts == {"funding_rate": 2} and report.skipped == 1
