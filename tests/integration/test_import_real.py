"""Every real Binance file in ../shared/data/binance imports, with the counts its README states.

Skips cleanly when the data is absent. Most checks use an in-memory writer (the parsers and
the driver are under test); one imports through the real LogWriter and reads it back.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from catalogs.importers import (
    BinanceStreamParser,
    ImportReport,
    import_binance_rest,
    import_binance_stream,
    import_depth_csv,
    import_exchange_info,
    import_freqtrade,
    import_tardis,
    import_vision,
    load_exchange_info,
)
from engine.errors import InputError
from engine.events import BookDeltaReceived, BookSnapshotReceived, Event, InstrumentUpdated, with_seq
from tests.conftest import BINANCE_DATA, binance_file

pytestmark = pytest.mark.edge


class MemoryWriter:
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
        self.last = MemoryWriter(Path(), {})

    def __call__(self, path: Path, meta: Mapping[str, Any]) -> MemoryWriter:
        self.last = MemoryWriter(path, meta)
        return self.last


Importer = Callable[[Path, Path, Writers], ImportReport]


def importer_for(rel: str) -> Importer:
    """Which importer a file of the data set goes through (by its folder and name)."""
    name = Path(rel).name
    if "exchangeInfo" in name or "exchange_info" in name:
        return lambda p, out, w: import_exchange_info(p, out, writer_factory=w)
    if "nautilus_rest" in rel:
        return lambda p, out, w: import_binance_rest(p, out, symbol="BTCUSDT", writer_factory=w)
    if "hftbacktest" in rel or "cryptofeed" in rel:
        return lambda p, out, w: import_binance_stream(p, out, writer_factory=w)
    if "tardis" in rel:
        return lambda p, out, w: import_tardis(p, out, writer_factory=w)
    if "depth" in rel and name.endswith(".csv"):
        return lambda p, out, w: import_depth_csv(p, out, writer_factory=w)
    if "freqtrade" in rel:
        return lambda p, out, w: import_freqtrade(p, out, writer_factory=w)
    if "klines" in rel or name.endswith(".csv"):
        return lambda p, out, w: import_vision(p, out, writer_factory=w)
    raise AssertionError(f"no importer known for {rel}: add it to importer_for()")


# (file, counts per kind) -- the README's table ("rows / msgs" column).
EXPECTED: list[tuple[str, dict[str, int]]] = [
    (
        "spot/hftbacktest_2024-08-08/btcusdt_20240808.gz",
        {"book_delta": 3451, "quote": 28040, "trade": 9757, "book_snapshot": 1},
    ),
    ("spot/hftbacktest_2024-08-08/btcusdt_20240809.gz", {"book_delta": 3044, "quote": 45134, "trade": 10147}),
    (
        "usdm/hftbacktest_2024-08-08/btcusdt_20240808.gz",
        {"book_delta": 6551, "quote": 66089, "trade": 21313, "book_snapshot": 1},
    ),
    (
        "coinm/hftbacktest_2024-08-08/btcusd_perp_20240808.gz",
        {"book_delta": 26847, "quote": 19136, "trade": 2286, "book_snapshot": 1},
    ),
    (
        "coinm/hftbacktest_2024-08-08/btcusd_perp_20240809.gz",
        {"book_delta": 17948, "quote": 29219, "trade": 2949},
    ),
    ("spot/cryptofeed_2021-10-12/BINANCE.0.exchangeInfo.txt", {"instrument": 1695}),
    ("spot/cryptofeed_2021-10-12/BINANCE.http.0.0.depth_snapshots.txt", {"book_snapshot": 4}),
    (
        "spot/cryptofeed_2021-10-12/BINANCE.ws.1.0.streams.txt",
        {"book_delta": 177, "quote": 84, "agg_trade": 2, "kline": 2},
    ),
    ("usdm/cryptofeed_2021-07-22/BINANCE_FUTURES.0.exchangeInfo.txt", {"instrument": 122}),
    ("usdm/cryptofeed_2021-07-22/BINANCE_FUTURES.http.0.0.depth_snapshots.txt", {"book_snapshot": 4}),
    (
        "usdm/cryptofeed_2021-07-22/BINANCE_FUTURES.ws.1.0.streams.txt",
        {"book_delta": 764, "quote": 613, "agg_trade": 91, "kline": 67},
    ),
    ("spot/nautilus_rest_2021-10-22/http_spot_market_agg_trades.json", {"agg_trade": 10}),
    ("spot/nautilus_rest_2021-10-22/http_spot_market_trades.json", {"trade": 10}),
    ("spot/nautilus_rest_2021-10-22/http_spot_market_klines.json", {"kline": 10}),
    ("spot/nautilus_rest_2021-10-22/http_spot_market_depth.json", {"book_snapshot": 1}),
    ("spot/nautilus_rest_2021-10-22/http_spot_market_exchange_info.json", {"instrument": 2}),
    ("spot/nautilus_rest_2021-10-22/http_spot_market_book_ticker.json", {"quote": 1}),
    ("spot/nautilus_rest_2021-10-22/http_spot_market_ticker_price.json", {}),
    ("spot/nautilus_rest_2021-10-22/http_spot_market_avg_price.json", {}),
    ("spot/nautilus_klines/ADABTC-1m-2021-11-27.csv", {"kline": 10}),
    ("usdm/nautilus_depth_2022-11-01/btcusdt-depth-snap.csv", {"book_snapshot": 1}),
    ("usdm/nautilus_depth_2022-11-01/btcusdt-depth-update.csv", {"book_delta": 1}),
    ("usdm/nautilus_tardis/trades.csv", {"trade": 9999}),
    ("usdm/nautilus_tardis/quotes.csv", {"quote": 9999}),
    ("usdm/nautilus_tardis/binance-futures_book_snapshot_25_BTCUSDT.csv", {"book_snapshot": 10}),
    ("usdm/nautilus_tardis/binance-futures_book_snapshot_5_BTCUSDT.csv", {"book_snapshot": 10}),
    ("usdm/freqtrade_2021-11/XRP_USDT-8h-funding_rate.json", {"funding_rate": 91}),
    ("usdm/freqtrade_2021-11/XRP_USDT-8h-mark.json", {"kline": 91}),
]
INSTRUMENTS = {
    "spot/hftbacktest_2024-08-08/btcusdt_20240808.gz": ("BTCUSDT.SPOT",),
    "usdm/hftbacktest_2024-08-08/btcusdt_20240808.gz": ("BTCUSDT.USDM",),
    "coinm/hftbacktest_2024-08-08/btcusd_perp_20240808.gz": ("BTCUSD_PERP.COINM",),
    "usdm/cryptofeed_2021-07-22/BINANCE_FUTURES.ws.1.0.streams.txt": (
        "AKROUSDT.USDM",
        "CTKUSDT.USDM",
        "KEEPUSDT.USDM",
        "SUSHIUSDT.USDM",
    ),
    "usdm/nautilus_tardis/trades.csv": ("BTCUSDT.USDM",),
    "usdm/freqtrade_2021-11/XRP_USDT-8h-funding_rate.json": ("XRPUSDT.USDM",),
}


@pytest.mark.parametrize(("rel", "counts"), EXPECTED, ids=[r for r, _ in EXPECTED])
def test_real_file_imports_with_the_readme_counts(rel: str, counts: dict[str, int], tmp_path: Path) -> None:
    path = binance_file(rel)
    writers = Writers()
    report = importer_for(rel)(path, tmp_path / "log", writers)
    assert report.counts == counts
    assert report.skipped == 0 and report.complete
    assert len(writers.last.events) == sum(counts.values())
    if rel in INSTRUMENTS:
        assert report.instruments == INSTRUMENTS[rel]
    assert all(e.seq == 0 and e.ts_event >= 0 and e.ts_recv >= 0 for e in writers.last.events)
    if "hftbacktest" in rel:
        # README: within every file spot U == previous u + 1 and futures pu == previous u
        diffs = [e for e in writers.last.events if isinstance(e, BookDeltaReceived)]
        pairs = list(zip(diffs, diffs[1:], strict=False))
        if rel.startswith("spot/"):
            assert all(b.first_update_id == a.last_update_id + 1 for a, b in pairs)
        else:
            assert all(b.prev_update_id == a.last_update_id for a, b in pairs)


def test_every_file_in_the_data_set_imports(shared_data: Path, tmp_path: Path) -> None:
    """Also covers files not in the table above (a different copy of the data set)."""
    files = sorted(p for p in shared_data.rglob("*") if p.is_file() and p.name != "README.md")
    assert files
    known = {rel for rel, _ in EXPECTED}
    for i, path in enumerate(files):
        rel = str(path.relative_to(shared_data))
        if rel in known:
            continue  # imported with its counts checked above
        report = importer_for(rel)(path, tmp_path / f"log{i}", Writers())
        assert report.skipped == 0, (rel, report.skipped_first)


def test_spot_log_round_trip_through_the_real_writer(tmp_path: Path) -> None:
    from catalogs.log import LogReader

    path = binance_file("spot/hftbacktest_2024-08-08/btcusdt_20240808.gz")
    report = import_binance_stream(path, tmp_path / "log")
    with LogReader(tmp_path / "log") as reader:
        events = list(reader.events())
        meta = reader.manifest.meta
    parser = BinanceStreamParser()
    with gzip.open(path, "rb") as fh:
        expected = [e for line in fh for e in parser.feed(line)]
    assert events == [with_seq(e, i) for i, e in enumerate(expected, start=1)]
    assert meta["import_stats"]["counts"] == dict(report.counts)
    assert meta["source"][0]["lines"] == 41_249 and len(meta["source"][0]["sha256"]) == 64
    snapshot = next(e for e in events if isinstance(e, BookSnapshotReceived))
    assert snapshot.last_update_id == 50_093_239_218 and len(snapshot.bids) == len(snapshot.asks) == 1000


@pytest.mark.slow
def test_continuation_day_follows_without_gaps_or_errors(tmp_path: Path) -> None:
    first = binance_file("spot/hftbacktest_2024-08-08/btcusdt_20240808.gz")
    second = binance_file("spot/hftbacktest_2024-08-08/btcusdt_20240809.gz")
    writers = Writers()
    report = import_binance_stream([first, second], tmp_path / "log", writer_factory=writers)
    assert report.counts == {"book_delta": 6495, "quote": 73174, "trade": 19904, "book_snapshot": 1}
    diffs = [e for e in writers.last.events if isinstance(e, BookDeltaReceived)]
    assert all(b.first_update_id == a.last_update_id + 1 for a, b in zip(diffs, diffs[1:], strict=False))


def test_spot_exchange_info_keeps_every_symbol_verbatim(tmp_path: Path) -> None:
    path = binance_file("spot/cryptofeed_2021-10-12/BINANCE.0.exchangeInfo.txt")
    writers = Writers()
    import_exchange_info(path, tmp_path / "log", writer_factory=writers)
    line = path.read_text().splitlines()[0]
    events = writers.last.events
    assert len(events) == 1695 and all(isinstance(e, InstrumentUpdated) for e in events)
    assert all(e.raw in line for e in events if isinstance(e, InstrumentUpdated))  # byte-for-byte slices
    info = load_exchange_info(path)
    assert len(info) == 1695
    filters = {f["filterType"]: f for f in info["ETHBTC"]["filters"]}
    assert {"PRICE_FILTER", "LOT_SIZE", "PERCENT_PRICE", "MIN_NOTIONAL"} <= set(filters)
    usdm = load_exchange_info(binance_file("usdm/cryptofeed_2021-07-22/BINANCE_FUTURES.0.exchangeInfo.txt"))
    assert len(usdm) == 122


def test_truncated_real_gzip_is_a_clear_error_and_skip_keeps_the_prefix(tmp_path: Path) -> None:
    path = binance_file("spot/hftbacktest_2024-08-08/btcusdt_20240808.gz")
    cut = tmp_path / "btcusdt_20240808.cut.gz"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    writers = Writers()
    with pytest.raises(InputError) as info:
        import_binance_stream(cut, tmp_path / "a", writer_factory=writers)
    message = str(info.value)
    assert message.startswith(f"{cut}:{info.value.line}: truncated or corrupt compressed file")
    kept = writers.last.events
    assert info.value.line == len(kept) + 1 > 1

    report = import_binance_stream(cut, tmp_path / "b", skip_bad=True, writer_factory=writers)
    assert report.skipped_by_reason == {"truncated_input": 1}
    parser = BinanceStreamParser()
    with gzip.open(path, "rb") as fh:
        expected = [e for _, line in zip(range(len(kept)), fh, strict=False) for e in parser.feed(line)]
    assert writers.last.events == kept == expected


def test_truncated_real_gzip_through_the_real_writer_keeps_the_prefix(tmp_path: Path) -> None:
    from catalogs.log import LogReader

    path = binance_file("coinm/hftbacktest_2024-08-08/btcusd_perp_20240809.gz")
    cut = tmp_path / "cut.gz"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="truncated") as info:
        import_binance_stream(cut, tmp_path / "log")
    with LogReader(tmp_path / "log") as reader:
        assert reader.manifest.last_seq == (info.value.line or 0) - 1
        assert reader.manifest.meta["import_stats"]["complete"] is False


def test_data_dir_helper_points_at_the_shared_data() -> None:
    if not BINANCE_DATA.is_dir():
        pytest.skip(f"real data not available: {BINANCE_DATA} is absent")
    assert (BINANCE_DATA / "README.md").is_file()
    json.dumps(str(BINANCE_DATA))
