"""A ``.sql.zst`` dump of the real BTCUSDT trades imports to exactly the trades ``binance-stream`` gives."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.events import TradeReceived, with_seq
from engine.fixed import format_e8
from tests.conftest import binance_file

pytestmark = pytest.mark.edge

MS = 1_000_000


def trades_of(log: Path) -> list[TradeReceived]:
    from catalogs.log import LogReader

    with LogReader(log) as reader:
        return [e for e in reader.events() if isinstance(e, TradeReceived)]


def test_real_btcusdt_trades_round_trip_through_a_sqlite_dump(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    from catalogs.importers import import_binance_stream
    from catalogs.importers.sqlzst import import_sqlzst

    rec = binance_file("spot/hftbacktest_2024-08-08/btcusdt_20240808.gz")
    import_binance_stream([rec], tmp_path / "stream")
    expected = trades_of(tmp_path / "stream")
    assert len(expected) == 9_757  # the README's count
    assert all(t.ts_event % MS == 0 for t in expected)  # trade time T is in ms

    # The workstation's shape (pandas to_sql): REAL prices and sizes, ms trade time, ns receive time.
    db = sqlite3.connect(":memory:")
    db.execute(
        'CREATE TABLE "trades" ("index" INTEGER, "symbol" TEXT, "trade_id" INTEGER, "time_ms" INTEGER,'
        ' "ts_recv" INTEGER, "price" REAL, "qty" REAL, "is_buyer_maker" INTEGER)'
    )
    rows = [
        (
            i,
            "BTCUSDT",
            t.trade_id,
            t.ts_event // MS,
            t.ts_recv,
            float(format_e8(t.price)),
            float(format_e8(t.qty)),
            int(t.buyer_maker),
        )
        for i, t in enumerate(expected)
    ]
    db.executemany("INSERT INTO trades VALUES(?,?,?,?,?,?,?,?)", rows[::-1])  # stored out of time order
    db.commit()
    dump = tmp_path / "trades.sql.zst"
    dump.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(db.iterdump()) + "\n").encode()))
    db.close()

    report = import_sqlzst(dump, tmp_path / "sqlzst", spill_events=4_000)
    assert report.counts == {"trade": len(expected)}
    got = trades_of(tmp_path / "sqlzst")
    want = sorted(expected, key=lambda t: (t.ts_recv, t.ts_event))  # the log's order; stable for ties
    assert [with_seq(t, 0) for t in got] == [with_seq(t, 0) for t in want]
    assert [t.seq for t in got] == list(range(1, len(got) + 1))
