"""``tickloop import sqlzst``: SQLite dumps made with the real ``sqlite3.iterdump`` (+ zstandard)."""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogs.importers.sqlzst import (
    ExternalSorter,
    iter_statements,
    literal_e8,
    literal_time_ns,
    parse_values,
    recognise,
    split_columns,
)
from engine.errors import ConfigError, InputError
from engine.events import AggTradeReceived, Event, KlineReceived, QuoteReceived, TradeReceived
from engine.fixed import format_e8, parse_e8
from engine.identifiers import Market

pytestmark = pytest.mark.edge

T0_MS = 1_723_161_600_000  # 2024-08-09T00:00:00Z
MS = 1_000_000


def dump_text(tables: dict[str, tuple[str, Sequence[tuple[Any, ...]]]]) -> str:
    """``sqlite3 db .dump`` of an in-memory DB holding these tables (name -> (columns DDL, rows))."""
    db = sqlite3.connect(":memory:")
    for name, (ddl, rows) in tables.items():
        db.execute(f"CREATE TABLE {name}({ddl})")
        if rows:
            marks = ",".join("?" * len(rows[0]))
            db.executemany(f"INSERT INTO {name} VALUES({marks})", rows)
    db.commit()
    text = "\n".join(db.iterdump()) + "\n"
    db.close()  # Python 3.13 warns about an unclosed connection (ResourceWarning -> error here)
    return text


def write_dump(path: Path, text: str, *, zst: bool = True) -> Path:
    if zst:
        zstandard = pytest.importorskip("zstandard")
        path.write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    else:
        path.write_text(text)
    return path


def read_log(path: Path) -> list[Event]:
    from catalogs.log import LogReader

    with LogReader(path) as reader:
        return list(reader.events())


def do_import(dump: Path, out: Path, **kw: Any) -> Any:
    from catalogs.importers.sqlzst import import_sqlzst

    return import_sqlzst(dump, out, **kw)


TRADES_DDL = "id INTEGER PRIMARY KEY, symbol TEXT, ts INTEGER, price REAL, qty TEXT, is_buyer_maker INTEGER"
QUOTES_DDL = "symbol TEXT, time_us INTEGER, bid_price TEXT, bid_qty TEXT, ask_price TEXT, ask_qty TEXT"
KLINES_DDL = "open_time INTEGER, open REAL, high REAL, low REAL, close REAL, volume REAL, close_time INTEGER"


def test_trades_quotes_klines_import_exactly_and_in_time_order(tmp_path: Path) -> None:
    trades = [
        (1, "BTCUSDT", T0_MS + 0, 61837.63, "0.001", 0),
        (2, "BTCUSDT", T0_MS + 500, 61837.7, "0.25", 1),
        (3, "ETHUSDT", T0_MS + 200, 2600.01, "1.5", 0),
    ]
    quotes = [("BTCUSDT", (T0_MS + 100) * 1000, "61837.62", "1", "61837.63", "2.5")]
    klines = [(T0_MS - 60_000, 1.5, 2.0, 1.0, 0.00001, 10.0, T0_MS - 1)]
    text = dump_text(
        {"trades": (TRADES_DDL, trades), "book_ticker": (QUOTES_DDL, quotes), "klines": (KLINES_DDL, klines)}
    )
    report = do_import(
        write_dump(tmp_path / "d.sql.zst", text), tmp_path / "log", symbol="adabtc", recv_latency_ns=7
    )
    assert report.counts == {"trade": 3, "quote": 1, "kline": 1}
    events = read_log(tmp_path / "log")
    assert [e.ts_recv for e in events] == sorted(e.ts_recv for e in events)
    assert [type(e) for e in events] == [
        KlineReceived,
        TradeReceived,
        QuoteReceived,
        TradeReceived,
        TradeReceived,
    ]
    k = events[0]
    assert isinstance(k, KlineReceived)
    assert (k.instrument, k.interval, k.open, k.close, k.volume) == (
        "ADABTC.SPOT",
        "1m",
        150_000_000,
        1000,
        10 * 10**8,
    )
    assert k.ts_event == k.close_time == (T0_MS - 1) * MS and k.ts_recv == k.ts_event + 7
    t1 = events[1]
    assert isinstance(t1, TradeReceived)
    assert (t1.instrument, t1.price, t1.qty, t1.trade_id, t1.buyer_maker) == (
        "BTCUSDT.SPOT",
        parse_e8("61837.63"),
        parse_e8("0.001"),
        1,
        False,
    )
    q = events[2]
    assert isinstance(q, QuoteReceived) and q.ts_event == (T0_MS + 100) * MS
    assert (q.bid_price, q.bid_qty, q.ask_price, q.ask_qty) == (
        6183762000000,
        10**8,
        6183763000000,
        250_000_000,
    )
    assert [e.instrument for e in events[3:]] == ["ETHUSDT.SPOT", "BTCUSDT.SPOT"]
    from catalogs.log import LogReader

    with LogReader(tmp_path / "log") as r:
        meta = r.manifest.meta
    assert meta["sqlzst"]["reordered"] is True
    kinds = {t["table"]: t["kind"] for t in meta["sqlzst"]["tables"]}
    assert kinds == {"trades": "trade", "book_ticker": "quote", "klines": "kline"}
    assert meta["ts_recv_model"] == {"kind": "constant", "latency_ns": 7}


def test_unknown_tables_are_listed_and_skipped_and_strings_may_hold_semicolons(tmp_path: Path) -> None:
    text = dump_text(
        {
            "notes": ("a TEXT, b TEXT", [("x;y", "it's\nmulti;line);")]),
            "fills": (
                "symbol TEXT, timestamp_ms INTEGER, price TEXT, amount TEXT, side TEXT, trade_id INTEGER",
                [
                    ("BTCUSDT", T0_MS, "100.5", "2", "sell", 9),
                    ("BTCUSDT", T0_MS + 1, "100.6", "1", "BUY", 10),
                ],
            ),
        }
    )
    report = do_import(write_dump(tmp_path / "d.sql", text, zst=False), tmp_path / "log")
    assert report.ignored["unknown_table:notes"] == 1
    events = read_log(tmp_path / "log")
    assert [(e.trade_id, e.buyer_maker, e.qty) for e in events if isinstance(e, TradeReceived)] == [
        (9, True, 2 * 10**8),
        (10, False, 10**8),
    ]


def test_agg_trades_without_symbol_need_symbol(tmp_path: Path) -> None:
    ddl = (
        "agg_id INTEGER, first_trade_id INTEGER, last_trade_id INTEGER, t INTEGER, p TEXT, q TEXT, m INTEGER"
    )
    text = dump_text({"agg": (ddl, [(5, 10, 12, T0_MS * 1000, "1.25", "3", 1)])})
    dump = write_dump(tmp_path / "d.sql", text, zst=False)
    with pytest.raises(ConfigError, match=r"d\.sql:\d+: .*no symbol column.*--symbol"):
        do_import(dump, tmp_path / "log1")
    do_import(dump, tmp_path / "log2", symbol="BTCUSD_PERP", market=Market.COINM)
    (ev,) = read_log(tmp_path / "log2")
    assert isinstance(ev, AggTradeReceived)
    assert (ev.instrument, ev.agg_id, ev.first_trade_id, ev.last_trade_id, ev.ts_event) == (
        "BTCUSD_PERP.COINM",
        5,
        10,
        12,
        T0_MS * MS,
    )


def test_bad_value_names_dump_line_and_statement_and_skip_bad_counts(tmp_path: Path) -> None:
    trades = [(1, "BTCUSDT", T0_MS, 1.5, "0.1", 0), (2, "BTCUSDT", T0_MS + 1, 0.1 + 0.2, "0.1", 0)]
    dump = write_dump(tmp_path / "d.sql", dump_text({"trades": (TRADES_DDL, trades)}), zst=False)
    bad_line = next(i for i, ln in enumerate(dump.read_text().splitlines(), 1) if "VALUES(2," in ln)
    with pytest.raises(
        InputError,
        match=rf"d\.sql:{bad_line}: statement \d+ \(INSERT INTO \"trades\"\): table 'trades' row 2: price",
    ):
        do_import(dump, tmp_path / "log1")
    assert len(read_log(tmp_path / "log1")) == 0  # nothing written before the sort finished
    report = do_import(dump, tmp_path / "log2", skip_bad=True)
    assert report.counts == {"trade": 1} and report.skipped_by_reason == {"bad_value": 1}
    assert report.skipped_first[0].line == bad_line


def test_truncated_zstd_and_truncated_statement_are_reported(tmp_path: Path) -> None:
    rows = [(i, "BTCUSDT", T0_MS + i, 100.0 + i, "1", 0) for i in range(1, 2000)]
    text = dump_text({"trades": (TRADES_DDL, rows)})
    zstandard = pytest.importorskip("zstandard")
    cobj = zstandard.ZstdCompressor().compressobj()
    lines = text.splitlines(keepends=True)
    blob = b"".join(
        cobj.compress("".join(lines[i : i + 100]).encode()) + cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        for i in range(0, len(lines), 100)
    )
    blob += cobj.flush()
    cut = tmp_path / "cut.sql.zst"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError, match=r"cut\.sql\.zst:\d+: truncated"):
        do_import(cut, tmp_path / "log1")
    report = do_import(cut, tmp_path / "log2", skip_bad=True)
    assert 0 < report.counts["trade"] < 1999 and report.skipped_by_reason == {"truncated_input": 1}
    half = tmp_path / "half.sql"
    half.write_text(text[: text.index("VALUES(7,") + 12])
    with pytest.raises(InputError, match=r"half\.sql:\d+: the dump ends inside statement"):
        do_import(half, tmp_path / "log3")


def test_external_sort_spills_and_merges_to_the_same_order(tmp_path: Path) -> None:
    rows = [(i, "BTCUSDT", T0_MS + (i * 7919) % 1000, 100.0 + i % 13, "1", i % 2) for i in range(1, 600)]
    dump = write_dump(tmp_path / "d.sql", dump_text({"trades": (TRADES_DDL, rows)}), zst=False)
    do_import(dump, tmp_path / "a", spill_events=50)
    do_import(dump, tmp_path / "b")
    a, b = read_log(tmp_path / "a"), read_log(tmp_path / "b")
    assert a == b and len(a) == 599
    keys = [(e.ts_recv, e.trade_id) for e in a if isinstance(e, TradeReceived)]
    assert keys == sorted(keys)
    from catalogs.log import LogReader

    with LogReader(tmp_path / "a") as r:
        assert r.manifest.meta["sqlzst"]["sort_runs"] == 12


def test_sorter_counts_out_of_order_and_cleans_up(tmp_path: Path) -> None:
    s = ExternalSorter(run_events=2, tmp_dir=tmp_path)
    evs = [TradeReceived(0, t, t, "X.SPOT", 1, 1, i, False) for i, t in enumerate([5, 3, 9, 1, 7])]  # type: ignore[arg-type]
    s.add(((e.ts_recv, e.ts_event, 1, e.trade_id), e) for e in evs)
    assert s.out_of_order == 2 and s.runs == 2
    assert [e.ts_recv for e in s.merged()] == [1, 3, 5, 7, 9]
    assert list(tmp_path.iterdir()) == []


def test_recognise_by_column_names() -> None:
    assert recognise("x", ["symbol", "ts_ns", "price", "quantity", "is_buyer_maker"]).kind == "trade"
    assert recognise("x", ["Symbol", "Time", "Bid", "Bid_Size", "Ask", "Ask_Size"]).kind == "quote"
    assert recognise("x", ["open_time", "open", "high", "low", "close", "volume", "interval"]).kind == "kline"
    assert recognise("x", ["a", "b"]).kind is None
    assert recognise("x", ["price", "qty"]).kind is None  # no time: not a trade table


def test_sql_literal_parsing() -> None:
    text = "VALUES(1,'it''s',-2.5e-3,NULL,X'00ff'),(2,'a;b)',3,4,5);"
    assert parse_values(text, 6) == [
        ["1", "'it''s'", "-2.5e-3", None, "X'00ff'"],
        ["2", "'a;b)'", "3", "4", "5"],
    ]
    with pytest.raises(InputError, match="expected"):
        parse_values("VALUES(1,2;", 6)
    assert split_columns('"a" INT, [b c] TEXT, `d`, e NUMERIC(10,2), PRIMARY KEY(a))') == [
        "a",
        "b c",
        "d",
        "e",
    ]
    stmts = list(
        iter_statements([b"CREATE TABLE t(a);\n", b"\n", b"INSERT INTO t VALUES('x\n", b"y;');\n"], "s")
    )
    assert [(s.number, s.line) for s in stmts] == [(1, 1), (2, 3)]


def test_times_and_exact_numbers() -> None:
    assert literal_time_ns("1723161600000", "t", "auto") == T0_MS * MS
    assert literal_time_ns("1723161600000000", "t", "auto") == T0_MS * MS
    assert literal_time_ns("5", "t", "s") == 5_000_000_000
    assert literal_time_ns("'2024-08-09 00:00:00.000000123'", "t", "auto") == T0_MS * MS + 123
    assert literal_time_ns("1723161600000.0", "t", "auto") == T0_MS * MS
    with pytest.raises(InputError, match="integer"):
        literal_time_ns("1723161600000.5", "t", "auto")
    assert literal_e8("'61837.63000000'", "p") == 6183763000000
    assert literal_e8("1.0e-05", "p") == 1000
    assert literal_e8("61837.629999999997", "p") == 6183763000000  # a REAL dumped with float noise
    for bad in ("'1e-5'", "3.00000000000000044408e-01", "'NaN'", "-1", "'0.000000001'", "1e999"):
        with pytest.raises(InputError):
            literal_e8(bad, "p")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**15))
def test_every_e8_value_stored_as_real_or_text_comes_back_exactly(value: int) -> None:
    db = sqlite3.connect(":memory:")
    text = format_e8(value)
    real_lit, text_lit = db.execute("SELECT quote(CAST(? AS REAL)), quote(?)", (text, text)).fetchone()
    db.close()
    assert literal_e8(text_lit, "p") == value
    assert literal_e8(real_lit, "p") == value


def test_cli_prints_one_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tickloop.commands import importing

    dump = write_dump(
        tmp_path / "d.sql.zst", dump_text({"trades": (TRADES_DDL, [(1, "BTCUSDT", T0_MS, 1.5, "2", 0)])})
    )
    parser = argparse.ArgumentParser()
    importing.add_arguments(parser)
    args = parser.parse_args(["sqlzst", str(dump), "--out", str(tmp_path / "log"), "--recv-latency-ns", "5"])
    assert importing.run(args) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["command"] == "import sqlzst" and line["counts"] == {"trade": 1} and line["events"] == 1
