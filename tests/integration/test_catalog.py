"""The Parquet catalog and ``tickloop sql``: compaction of real recordings, exact round trips, idempotency.

Needs pyarrow and duckdb (not an edge test). The real-data tests import the hftbacktest
BTCUSDT spot recordings (both files, one log) and the cryptofeed spot streams plus
exchangeInfo (a second log) with ``tickloop import binance-stream``, compact both into one
catalog and query it; they skip when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("duckdb")

from catalogs.catalog import COMMON, TABLES, compact, connect, query
from catalogs.loginfo import kind_name, log_info
from engine.errors import ConfigError, LogError
from engine.events import (
    EVENT_TYPES,
    AggTradeReceived,
    BookDeltaReceived,
    BookGapDetected,
    BookSnapshotReceived,
    Event,
    FundingRateReceived,
    InstrumentUpdated,
    KlineReceived,
    LiquidationReceived,
    MarkPriceReceived,
    QuoteReceived,
    RunFinished,
    RunStarted,
    SignalEmitted,
    TimerFired,
    TradeReceived,
)
from engine.identifiers import InstrumentId
from tests.conftest import BINANCE_DATA

BTC = InstrumentId("BTCUSDT.SPOT")
SPOT_FILES = (
    "spot/hftbacktest_2024-08-08/btcusdt_20240808.gz",
    "spot/hftbacktest_2024-08-08/btcusdt_20240809.gz",
)
CRYPTOFEED_FILES = (
    "spot/cryptofeed_2021-10-12/BINANCE.0.exchangeInfo.txt",
    "spot/cryptofeed_2021-10-12/BINANCE.ws.1.0.streams.txt",
)
# From the data README (counted from the files themselves).
BTC_EXPECTED = {"book_delta": 3_451 + 3_044, "quote": 28_040 + 45_134, "trade": 9_757 + 10_147}


def _log_module() -> Any:
    return pytest.importorskip("catalogs.log", reason="catalogs/log.py (LogWriter/LogReader) is missing")


def _rows(catdir: Path, sql: str) -> list[tuple[Any, ...]]:
    with query(catdir, sql) as result:
        return [row for chunk in result.chunks() for row in chunk]


def _run_command(module: str, argv: Sequence[str]) -> int:
    """Run one CLI command module the way tickloop.cli does (parser + run), without the other commands."""
    mod = __import__(f"tickloop.commands.{module}", fromlist=["run"])
    parser = argparse.ArgumentParser(prog=f"tickloop {module}")
    mod.add_arguments(parser)
    return int(mod.run(parser.parse_args(list(argv))))


# --------------------------------------------------------------------------- schema guard


def test_every_event_kind_has_a_table_with_exactly_its_fields() -> None:
    """A field added to an event must reach the catalog: the tables mirror engine.events."""
    assert set(TABLES) == {cls.kind for cls in EVENT_TYPES}
    base = {"seq", "ts_event", "ts_recv", "instrument"}
    for cls in EVENT_TYPES:
        fields = [f.name for f in msgspec.structs.fields(cls) if f.name not in base]
        assert [c.name for c in TABLES[cls.kind].columns] == fields, cls.__name__
    assert [c.name for c in COMMON] == ["log_id", "seq", "ts_event", "ts_recv"]
    assert len({t.view for t in TABLES.values()}) == len(TABLES)
    reserved = {"symbol", "date", "time", "kind", *(c.name for c in COMMON)}  # what the views add
    assert not [(t.view, c.name) for t in TABLES.values() for c in t.columns if c.name in reserved]
    e8 = {t.view: {c.name for c in t.columns if c.type == "e8"} for t in TABLES.values()}
    assert e8["trades"] == {"price", "qty"}
    assert e8["quotes"] == {"bid_price", "bid_qty", "ask_price", "ask_qty"}
    assert e8["klines"] >= {"open", "high", "low", "close", "volume"}
    assert "trade_id" not in e8["trades"] and "open_time" not in e8["klines"]


# --------------------------------------------------------------------------- synthetic log, every kind


T0 = 1_723_161_599_000_000_000  # 2024-08-08T23:59:59Z: one second before midnight


def _every_kind() -> list[Event]:
    """Two of each event kind, straddling midnight UTC, on two instruments."""
    evs: list[Event] = []
    for i in range(2):
        ts = T0 + i * 2_000_000_000  # the second copy lands on 2024-08-09
        iid = InstrumentId("BTCUSDT.SPOT" if i == 0 else "ETHUSDT.USDM")
        evs += [
            TradeReceived(0, ts, ts + 1, iid, 6_183_763_000_000 + i, 12_345, 7 + i, i == 0),
            AggTradeReceived(0, ts, ts + 1, iid, 6_183_763_000_001, 1, 9, 10, 12, True),
            BookDeltaReceived(
                0, ts, ts + 2, iid, 100, 105, -1 if i == 0 else 99, ((1, 2), (3, 0)), ((5, 6),)
            ),
            BookSnapshotReceived(0, ts, ts + 2, iid, 99, ((1, 2),), ((5, 6), (7, 8)), i == 1),
            QuoteReceived(0, ts, ts, iid, 55, 6_183_763_000_000, 1, 6_183_764_000_000, 2),
            MarkPriceReceived(0, ts, ts, iid, 1, 2, 3, -12_345, T0 + 10**12),
            FundingRateReceived(0, ts, ts, iid, 10_000, 6_000_000_000_000),
            KlineReceived(0, ts, ts, iid, "1m", T0, T0 + 59_999_000_000, 1, 2, 3, 4, 5, 6, 7, 8, 9, i == 0),
            LiquidationReceived(0, ts, ts, iid, "SELL", 1, 2, 3, 4, "FILLED"),
            InstrumentUpdated(0, ts, ts, iid, '{"symbol": "BTCUSDT", "status": "TRADING"}'),
            BookGapDetected(0, ts, ts, iid, 105, 110, "U != u + 1"),
            SignalEmitted(0, ts, ts, iid, "mm", "imbalance", -0.25),
            TimerFired(0, ts, ts, iid, "rebalance"),
            RunStarted(0, ts, ts, iid, '{"x": 1}', "abc"),
            RunFinished(0, ts, ts, iid, 42),
        ]
        covered = {type(e) for e in evs}
        evs += [_sample(cls, ts, iid, i) for cls in EVENT_TYPES if cls not in covered]
    return evs


def _sample_value(info: Any, n: int) -> Any:
    """A value of msgspec type ``info`` (for event kinds this test does not spell out)."""
    from msgspec import inspect as mi

    if isinstance(info, mi.BoolType):
        return n % 2 == 0
    if isinstance(info, mi.IntType):
        return 1_000_000_007 * (n + 1)
    if isinstance(info, mi.FloatType):
        return 0.5 + n
    if isinstance(info, mi.StrType):
        return f"s{n}"
    if isinstance(info, mi.EnumType):
        return list(info.cls)[n % len(info.cls)]
    if isinstance(info, mi.LiteralType):
        return info.values[0]
    if isinstance(info, mi.VarTupleType | mi.ListType):
        return tuple(_sample_value(info.item_type, n + k) for k in range(2))
    if isinstance(info, mi.TupleType):
        return tuple(_sample_value(t, n + k) for k, t in enumerate(info.item_types))
    if isinstance(info, mi.UnionType):
        return (
            None
            if n % 2 and info.includes_none
            else _sample_value(next(t for t in info.types if not isinstance(t, mi.NoneType)), n)
        )
    if isinstance(info, mi.StructType):
        return info.cls(**{f.name: _sample_value(f.type, n + k) for k, f in enumerate(info.fields)})
    raise AssertionError(f"no sample for {info}")


def _sample(cls: type[Event], ts: int, iid: InstrumentId, n: int) -> Event:
    from msgspec import inspect as mi

    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    base: dict[str, Any] = {"seq": 0, "ts_event": ts, "ts_recv": ts + 3, "instrument": iid}
    fields = {f.name: _sample_value(f.type, n + k) for k, f in enumerate(info.fields) if f.name not in base}
    return cls(**base, **fields)


def _write(path: Path, events: Sequence[Event], **kwargs: Any) -> None:
    log = _log_module()
    with log.LogWriter(path, **kwargs) as writer:
        for ev in events:
            writer.append(ev)


def _expected_row(ev: Event, seq: int, columns: Sequence[str]) -> dict[str, Any]:
    """The row a view must show for ``ev``: its JSON form (enums by value, tuples as lists)."""
    row = json.loads(msgspec.json.encode(ev))
    row.pop("type", None)
    row["seq"] = seq
    row["symbol"] = row.pop("instrument")
    for side in ("bids", "asks"):
        if side in row:
            row[side] = [{"price": p, "qty": q} for p, q in row[side]]
    return {c: row[c] for c in columns}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Event]]:
    root = tmp_path_factory.mktemp("synthetic")
    evs = _every_kind()
    _write(root / "log", evs)
    compact([root / "log"], root / "cat")
    return root / "log", root / "cat", evs


def test_every_kind_round_trips_exactly(synthetic: tuple[Path, Path, list[Event]]) -> None:
    _, catdir, evs = synthetic
    con = connect(catdir)
    try:
        for seq, ev in enumerate(evs, start=1):
            table = TABLES[ev.kind]
            cols = ["seq", "ts_event", "ts_recv", "symbol", *(c.name for c in table.columns)]
            select = ", ".join(f'"{c}"' for c in cols)
            rows = con.execute(f'SELECT {select} FROM "{table.view}" WHERE seq = {seq}').fetchall()
            assert len(rows) == 1, (table.view, seq)
            got = dict(zip(cols, rows[0], strict=True))
            for c in table.columns:
                if c.type == "json":  # nested values are stored as their JSON text
                    got[c.name] = None if got[c.name] is None else json.loads(got[c.name])
            assert got == _expected_row(ev, seq, cols), table.view
    finally:
        con.close()


def test_partitions_by_kind_symbol_and_utc_date(synthetic: tuple[Path, Path, list[Event]]) -> None:
    _, catdir, evs = synthetic
    rows = _rows(
        catdir, "SELECT kind, symbol, CAST(date AS VARCHAR), count(*) FROM events GROUP BY ALL ORDER BY ALL"
    )
    expected = Counter(
        (kind_name(e.kind), e.instrument, datetime.fromtimestamp(e.ts_event // 10**9, UTC).date().isoformat())
        for e in evs
    )
    assert {(k, s, d): n for k, s, d, n in rows} == dict(expected)
    files = sorted(p.relative_to(catdir).parts[:3] for p in catdir.rglob("*.parquet"))
    assert ("kind=trade", "symbol=BTCUSDT.SPOT", "date=2024-08-08") in files
    assert ("kind=trade", "symbol=ETHUSDT.USDM", "date=2024-08-09") in files
    # exchangeInfo is a snapshot of every symbol: partitioned by date only, symbol is a column
    assert sorted(p.relative_to(catdir).parts[:2] for p in catdir.glob("kind=instrument/*/*.parquet")) == [
        ("kind=instrument", "date=2024-08-08"),
        ("kind=instrument", "date=2024-08-09"),
    ]


def test_views_add_float_and_time_conveniences(synthetic: tuple[Path, Path, list[Event]]) -> None:
    _, catdir, _ = synthetic
    ((price, price_f, time),) = _rows(catdir, "SELECT price, price_f, time FROM trades WHERE seq = 1")
    assert price == 6_183_763_000_000 and price_f == 61_837.63
    assert time == datetime(2024, 8, 8, 23, 59, 59)
    ((rate_f,),) = _rows(catdir, "SELECT funding_rate_f FROM mark_prices ORDER BY seq LIMIT 1")
    assert rate_f == -0.00012345


def test_empty_views_have_typed_columns(tmp_path: Path) -> None:
    evs = [e for e in _every_kind() if isinstance(e, TradeReceived)]
    _write(tmp_path / "log", evs)
    compact([tmp_path / "log"], tmp_path / "cat")
    assert _rows(tmp_path / "cat", "SELECT count(*) FROM liquidations") == [(0,)]
    assert _rows(tmp_path / "cat", "SELECT count(*), sum(bid_price) FROM quotes") == [(0, None)]
    with query(tmp_path / "cat", "SELECT * FROM book_deltas") as result:
        assert "bids" in result.columns and result.types[result.columns.index("bids")].startswith("STRUCT")
    assert _rows(tmp_path / "cat", "SELECT kind, count(*) FROM events GROUP BY kind") == [("trade", 2)]


def test_compacting_twice_or_from_another_path_adds_nothing(tmp_path: Path) -> None:
    evs = _every_kind()
    _write(tmp_path / "log", evs)
    first = compact([tmp_path / "log"], tmp_path / "cat")
    assert first.logs[0].files > 0
    files = sorted(p.name for p in (tmp_path / "cat").rglob("*.parquet"))
    second = compact([tmp_path / "log"], tmp_path / "cat")
    assert second.logs[0].written == () and second.logs[0].files == 0
    shutil.copytree(tmp_path / "log", tmp_path / "moved")
    third = compact([tmp_path / "moved"], tmp_path / "cat")
    assert third.logs[0].log_id == first.logs[0].log_id and third.logs[0].written == ()
    assert sorted(p.name for p in (tmp_path / "cat").rglob("*.parquet")) == files
    assert _rows(tmp_path / "cat", "SELECT count(*), count(DISTINCT seq) FROM events") == [
        (len(evs), len(evs))
    ]
    index = json.loads((tmp_path / "cat" / "catalog.json").read_text())
    assert index["logs"][first.logs[0].log_id]["events"] == len(evs)


def test_missing_files_are_rewritten(tmp_path: Path) -> None:
    evs = _every_kind()
    _write(tmp_path / "log", evs)
    compact([tmp_path / "log"], tmp_path / "cat")
    victim = next((tmp_path / "cat").rglob("*.parquet"))
    victim.unlink()
    again = compact([tmp_path / "log"], tmp_path / "cat")
    assert again.logs[0].written and victim.exists()
    assert _rows(tmp_path / "cat", "SELECT count(*) FROM events") == [(len(evs),)]


def test_unsealed_segments_are_skipped_with_a_note(tmp_path: Path) -> None:
    log = _log_module()
    writer = log.LogWriter(tmp_path / "log")
    for ev in _every_kind():
        writer.append(ev)
    writer.flush()  # on disk, but the segment stays open (unsealed) until close
    notes: list[str] = []
    try:
        report = compact([tmp_path / "log"], tmp_path / "cat", note=notes.append)
    finally:
        writer.close()
    assert report.logs[0].unsealed and report.logs[0].written == ()
    assert any("not sealed" in n for n in notes)
    assert _rows(tmp_path / "cat", "SELECT count(*) FROM events") == [(0,)]
    # Once sealed, the same catalog picks it up.
    report = compact([tmp_path / "log"], tmp_path / "cat")
    assert report.logs[0].written and report.logs[0].unsealed == ()


def test_one_compaction_at_a_time(tmp_path: Path) -> None:
    import fcntl
    import os

    _write(tmp_path / "log", _every_kind()[:3])
    (tmp_path / "cat").mkdir()
    fd = os.open(tmp_path / "cat" / "catalog.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="another compaction"):
            compact([tmp_path / "log"], tmp_path / "cat")
    finally:
        os.close(fd)
    assert compact([tmp_path / "log"], tmp_path / "cat").logs[0].files > 0


def test_sql_errors_and_missing_catalogs_are_tickloop_errors(
    synthetic: tuple[Path, Path, list[Event]], tmp_path: Path
) -> None:
    _, catdir, _ = synthetic
    with pytest.raises(ConfigError, match="SQL error"):
        query(catdir, "SELEC nonsense")
    with pytest.raises(ConfigError, match="views: trades"):
        query(catdir, "SELECT * FROM no_such_table")
    with pytest.raises(ConfigError, match="no such catalog"):
        query(tmp_path / "absent", "SELECT 1")
    with pytest.raises(LogError, match="no such log directory"):
        compact([tmp_path / "absent-log"], tmp_path / "cat")


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_sql_command_formats(
    synthetic: tuple[Path, Path, list[Event]], fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, catdir, evs = synthetic
    sql = "SELECT seq, symbol, date, bids, time FROM book_snapshots ORDER BY seq"
    assert _run_command("sql", [str(catdir), sql, "--format", fmt]) == 0
    out = capsys.readouterr().out
    snaps = [e for e in evs if isinstance(e, BookSnapshotReceived)]
    if fmt == "json":
        rows = json.loads(out)
        assert [r["bids"] for r in rows] == [[{"price": p, "qty": q} for p, q in e.bids] for e in snaps]
        assert rows[0]["date"] == "2024-08-08"
    elif fmt == "jsonl":
        assert len([json.loads(line) for line in out.splitlines()]) == len(snaps)
    elif fmt == "csv":
        lines = out.splitlines()
        assert lines[0] == "seq,symbol,date,bids,time" and len(lines) == 1 + len(snaps)
    else:
        assert out.splitlines()[0].split() == ["seq", "|", "symbol", "|", "date", "|", "bids", "|", "time"]
        assert out.rstrip().endswith(f"({len(snaps)} rows)")


# --------------------------------------------------------------------------- real recordings


def _import_stream(files: Sequence[Path], out: Path) -> None:
    pytest.importorskip(
        "tickloop.commands.importing", reason="the importer (`tickloop import binance-stream`) is missing"
    )
    assert _run_command("importing", ["binance-stream", *map(str, files), "--out", str(out)]) == 0


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """(spot BTCUSDT log, cryptofeed log, catalog of both)."""
    if not BINANCE_DATA.is_dir():
        pytest.skip(f"real data not available: {BINANCE_DATA} is absent (../shared/data is not checked out)")
    _log_module()
    root = tmp_path_factory.mktemp("real")
    _import_stream([BINANCE_DATA / f for f in SPOT_FILES], root / "spot")
    _import_stream([BINANCE_DATA / f for f in CRYPTOFEED_FILES], root / "cryptofeed")
    compact([root / "spot", root / "cryptofeed"], root / "cat")
    yield root / "spot", root / "cryptofeed", root / "cat"


def test_real_counts_per_kind_match_the_logs(real: tuple[Path, Path, Path]) -> None:
    spot, cryptofeed, catdir = real
    rows = _rows(catdir, "SELECT symbol, kind, count(*) FROM events GROUP BY ALL")
    got = {(s, k): n for s, k, n in rows}
    expected: dict[tuple[str, str], int] = {}
    for path in (spot, cryptofeed):
        for iid, kinds in log_info(path)["instrument_kinds"].items():
            for kind, n in kinds.items():
                expected[(iid, kind)] = expected.get((iid, kind), 0) + n
    assert got == expected
    for kind, n in BTC_EXPECTED.items():
        assert got[(BTC, kind)] == n, kind
    assert got[(BTC, "book_snapshot")] == 1
    # exchangeInfo: one instruments row per symbol of the response.
    assert (
        sum(n for (_, k), n in got.items() if k == "instrument")
        == log_info(cryptofeed)["kinds"]["instrument"]
    )


def test_real_group_by_date(real: tuple[Path, Path, Path]) -> None:
    spot, _, catdir = real
    rows = _rows(
        catdir,
        "SELECT CAST(date AS VARCHAR), count(*), min(ts_event), max(ts_event) FROM trades "
        "WHERE symbol = 'BTCUSDT.SPOT' GROUP BY date ORDER BY date",
    )
    log = _log_module()
    by_day = Counter(
        datetime.fromtimestamp(e.ts_event // 10**9, UTC).date().isoformat()
        for e in log.LogReader(spot).events()
        if isinstance(e, TradeReceived)
    )
    assert [(d, n) for d, n, _, _ in rows] == sorted(by_day.items())
    assert [d for d, *_ in rows] == ["2024-08-08", "2024-08-09"]
    for day, _, lo, hi in rows:
        assert datetime.fromtimestamp(lo // 10**9, UTC).date().isoformat() == day
        assert datetime.fromtimestamp(hi // 10**9, UTC).date().isoformat() == day


def test_real_trades_and_book_deltas_round_trip_exactly(real: tuple[Path, Path, Path]) -> None:
    spot, _, catdir = real
    log = _log_module()
    trades, deltas = [], []
    for e in log.LogReader(spot).events():
        if isinstance(e, TradeReceived):
            trades.append((e.seq, e.ts_event, e.ts_recv, e.price, e.qty, e.trade_id, e.buyer_maker))
        elif isinstance(e, BookDeltaReceived):
            deltas.append((e.seq, e.first_update_id, e.last_update_id, e.bids, e.asks))
    got_trades = _rows(
        catdir,
        "SELECT seq, ts_event, ts_recv, price, qty, trade_id, buyer_maker FROM trades "
        "WHERE symbol = 'BTCUSDT.SPOT' ORDER BY seq",
    )
    assert got_trades == trades
    got_deltas = _rows(
        catdir,
        "SELECT seq, first_update_id, last_update_id, bids, asks FROM book_deltas "
        "WHERE symbol = 'BTCUSDT.SPOT' ORDER BY seq",
    )
    as_levels = [
        (s, u0, u1, tuple((lv["price"], lv["qty"]) for lv in b), tuple((lv["price"], lv["qty"]) for lv in a))
        for s, u0, u1, b, a in got_deltas
    ]
    assert as_levels == deltas


def test_real_compaction_is_idempotent(real: tuple[Path, Path, Path]) -> None:
    spot, cryptofeed, catdir = real
    before = _rows(catdir, "SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")
    files = sorted(p.relative_to(catdir) for p in catdir.rglob("*.parquet"))
    report = compact([spot, cryptofeed], catdir)
    assert all(r.written == () and r.files == 0 for r in report.logs)
    assert _rows(catdir, "SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind") == before
    assert sorted(p.relative_to(catdir) for p in catdir.rglob("*.parquet")) == files


def test_real_sql_cli_prints_parseable_json(
    real: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, catdir = real
    sql = "SELECT symbol, count(*) AS n, min(price) AS lo, max(price_f) AS hi FROM trades GROUP BY symbol ORDER BY n DESC"
    assert _run_command("sql", [str(catdir), sql, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["symbol"] == BTC and rows[0]["n"] == BTC_EXPECTED["trade"]
    assert isinstance(rows[0]["lo"], int) and isinstance(rows[0]["hi"], float)
