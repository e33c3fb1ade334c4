"""``tickloop import ...``: argument parsing, the JSON line, the real log writer and reader."""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from catalogs.importers import BinanceStreamParser
from engine.errors import InputError
from engine.events import with_seq
from tickloop.commands import importing

pytestmark = pytest.mark.edge

LINES = [
    '1700000000000000001 {"stream":"ethusdt@depth@100ms","data":{"e":"depthUpdate","E":1700000001000,"s":"ETHUSDT",'
    '"U":10,"u":12,"b":[["2000.1","1"]],"a":[["2000.2","2"]]}}',
    '1700000000000000002 {"lastUpdateId":11,"bids":[["2000.1","1"]],"asks":[["2000.2","2"]]}',
    '1700000000000000003 {"stream":"ethusdt@bookTicker","data":{"u":13,"s":"ETHUSDT","b":"2000.1","B":"1",'
    '"a":"2000.2","A":"2"}}',
    '1700000000000000004 {"stream":"ethusdt@trade","data":{"e":"trade","E":1700000001200,"s":"ETHUSDT","t":7,'
    '"p":"2000.2","q":"0.5","T":1700000001199,"m":false,"M":true}}',
]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tickloop import")
    importing.add_arguments(parser)
    return importing.run(parser.parse_args(argv))


def test_binance_stream_cli_writes_a_log_the_reader_returns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from catalogs.log import LogReader

    src = tmp_path / "rec.gz"
    src.write_bytes(gzip.compress(("\n".join(LINES) + "\n").encode()))
    out = tmp_path / "log"
    assert run_cli(["binance-stream", str(src), "--out", str(out)]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["command"] == "import binance-stream" and line["out"] == str(out)
    assert line["counts"] == {"book_delta": 1, "book_snapshot": 1, "quote": 1, "trade": 1}
    assert line["events"] == 4 and line["skipped"] == 0

    parser = BinanceStreamParser()
    expected = [with_seq(e, i) for i, e in enumerate((e for ln in LINES for e in parser.feed(ln)), start=1)]
    with LogReader(out) as reader:
        assert list(reader.events()) == expected
        meta = reader.manifest.meta
    assert meta["ts_recv_model"] == {"kind": "recorded"}
    assert meta["instruments"] == ["ETHUSDT.SPOT"]
    assert meta["import_stats"]["counts"] == line["counts"] and meta["import_stats"]["complete"] is True
    assert meta["source"][0]["lines"] == 4


def test_bad_input_keeps_the_events_before_it_in_the_log(tmp_path: Path) -> None:
    from catalogs.log import LogReader

    src = tmp_path / "rec.txt"
    src.write_text("\n".join([*LINES[:3], "1700000000000000009 {oops", LINES[3]]) + "\n")
    out = tmp_path / "log"
    with pytest.raises(InputError, match=rf"{src.name}:4: malformed JSON"):
        run_cli(["binance-stream", str(src), "--out", str(out)])
    with LogReader(out) as reader:
        assert len(list(reader.events())) == 3
        stats = reader.manifest.meta["import_stats"]
    assert stats["complete"] is False and "malformed JSON" in stats["error"]


def test_skip_bad_flag_and_other_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "rec.txt"
    src.write_text("\n".join([LINES[0], "nonsense", LINES[2]]) + "\n")
    assert run_cli(["binance-stream", str(src), "--out", str(tmp_path / "a"), "--skip-bad"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["skipped"] == 1 and line["skipped_by_reason"] == {"malformed_line": 1}

    klines = tmp_path / "ADABTC-1m-2021-11-27.csv"
    klines.write_text("1637971200000,0.1,0.2,0.05,0.15,10,1637971259999,1.5,3,4,0.6,0\n")
    assert run_cli(["vision", str(klines), "--out", str(tmp_path / "b"), "--recv-latency-ns", "250"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"kline": 1}

    agg = tmp_path / "agg.json"
    agg.write_text('[{"a":1,"p":"1.5","q":"2","f":1,"l":1,"T":1637971200000,"m":true,"M":true}]')
    assert run_cli(["binance-rest", str(agg), "--symbol", "btcusdt", "--out", str(tmp_path / "c")]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"agg_trade": 1}


def test_rest_requires_a_symbol() -> None:
    with pytest.raises(SystemExit):
        run_cli(["binance-rest", "x.json", "--out", "o"])


def test_the_command_module_imports_cheaply() -> None:
    code = "import sys, tickloop.commands.importing; print(sorted(m for m in sys.modules if m.startswith('catalogs')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
