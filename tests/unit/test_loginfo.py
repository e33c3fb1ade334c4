"""``tickloop log info``: counts, spans, seq holes and update-id gaps, on the edge profile (no pyarrow)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogs.loginfo import iso_utc, kind_name, log_info, summarize_batches
from catalogs.schema import BatchBuilder, ColumnBatch
from engine.errors import LogError
from engine.events import (
    BookDeltaReceived,
    Event,
    KlineReceived,
    QuoteReceived,
    SignalEmitted,
    TradeReceived,
)
from engine.identifiers import InstrumentId

pytestmark = pytest.mark.edge

T0 = 1_723_161_253_937_000_123  # 2024-08-08T23:54:13.937000123Z
BTC = InstrumentId("BTCUSDT.SPOT")
ETH = InstrumentId("ETHUSDT.SPOT")
PERP = InstrumentId("BTCUSDT.USDM")


def _spot_delta(ts: int, first: int, last: int, iid: InstrumentId = BTC) -> BookDeltaReceived:
    return BookDeltaReceived(0, ts, ts + 7, iid, first, last, -1, ((6_000_000_000_000, 100),), ())


def _perp_delta(ts: int, first: int, last: int, pu: int) -> BookDeltaReceived:
    return BookDeltaReceived(0, ts, ts + 7, PERP, first, last, pu, (), ((6_000_100_000_000, 5),))


def _session() -> list[Event]:
    """A little mixed session: trades, quotes, spot and futures diffs, a kline and a signal.

    Update-id chains: BTC spot breaks once (U jumps from 31 to 40), ETH spot is clean,
    the perp breaks once (pu 500 != previous u 499).
    """
    evs: list[Event] = []
    ts = T0
    spot_chain = [(1, 10), (11, 20), (21, 31), (40, 45), (46, 50)]
    eth_chain = [(100, 110), (111, 111), (112, 130)]
    perp_chain = [(400, 420, 399), (421, 450, 420), (451, 499, 450), (510, 520, 500), (521, 530, 520)]
    for i in range(5):
        ts += 1_000_000
        evs.append(TradeReceived(0, ts, ts + 5, BTC, 6_000_000_000_000 + i, 1000 + i, 77 + i, i % 2 == 0))
        evs.append(QuoteReceived(0, ts, ts, ETH, 9 + i, 260_000_000_000, 3, 260_010_000_000, 4))
        evs.append(_spot_delta(ts, *spot_chain[i]))
        evs.append(_perp_delta(ts, *perp_chain[i]))
        if i < 3:
            evs.append(_spot_delta(ts, *eth_chain[i], iid=ETH))
    evs.append(KlineReceived(0, ts, ts, BTC, "1m", 0, 59_999_999_999, 1, 2, 1, 2, 3, 4, 5, 6, 7, True))
    evs.append(SignalEmitted(0, ts, ts, BTC, "strat", "rsi", 42.5))
    return evs


def _batches(events: Sequence[Event], seqs: Sequence[int], cuts: Sequence[int]) -> list[ColumnBatch]:
    """Events as batches split at ``cuts`` (row indices), sharing one instrument dictionary."""
    builder = BatchBuilder()
    out = []
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(events))), len(events)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        for ev, seq in zip(events[a:b], seqs[a:b], strict=True):
            builder.add(ev, seq)
        out.append(builder.build())
    return out


def test_counts_per_kind_instrument_and_pair() -> None:
    evs = _session()
    summary = summarize_batches(_batches(evs, range(1, len(evs) + 1), [7, 8, 19]))
    assert summary["events"] == len(evs)
    assert summary["kinds"] == dict(Counter(kind_name(e.kind) for e in evs))
    assert summary["instruments"] == dict(Counter(e.instrument for e in evs))
    pairs = Counter((e.instrument, kind_name(e.kind)) for e in evs)
    flat = {(iid, k): n for iid, kinds in summary["instrument_kinds"].items() for k, n in kinds.items()}
    assert flat == dict(pairs)
    assert summary["batches"] == 4


def test_time_spans_first_last_min_max() -> None:
    evs = _session()
    # Put a late event first so first != min: log order is not time order.
    evs.insert(0, TradeReceived(0, T0 + 10**9, T0 + 10**9, BTC, 1, 1, 1, False))
    summary = summarize_batches(_batches(evs, range(1, len(evs) + 1), [3]))
    for column in ("ts_event", "ts_recv"):
        values = [getattr(e, column) for e in evs]
        span = summary[column]
        assert (span["first"], span["last"]) == (values[0], values[-1])
        assert (span["min"], span["max"]) == (min(values), max(values))
        assert span["first_utc"] == iso_utc(values[0])
        assert span["backwards_steps"] == sum(1 for a, b in zip(values, values[1:], strict=False) if b < a)


def test_iso_utc_keeps_nanoseconds() -> None:
    assert iso_utc(T0) == "2024-08-08T23:54:13.937000123Z"
    assert iso_utc(0) == "1970-01-01T00:00:00.000000000Z"
    assert iso_utc(-1) == "1969-12-31T23:59:59.999999999Z"


def test_contiguous_seq_has_no_holes() -> None:
    evs = _session()
    seq = summarize_batches(_batches(evs, range(5, 5 + len(evs)), [4, 11]))["seq"]
    assert (seq["first"], seq["last"]) == (5, 4 + len(evs))
    assert seq["contiguous"] is True
    assert (seq["holes"], seq["missing"], seq["out_of_order"]) == (0, 0, 0)


def test_seq_holes_are_listed_even_across_batches() -> None:
    evs = _session()
    seqs = list(range(1, len(evs) + 1))
    seqs[6:] = [s + 3 for s in seqs[6:]]  # 6 -> 10: 3 missing, at a batch boundary
    seqs[12:] = [s + 1 for s in seqs[12:]]  # one more missing inside a batch
    seq = summarize_batches(_batches(evs, seqs, [6]))["seq"]
    assert seq["contiguous"] is False
    assert seq["holes"] == 2
    assert seq["missing"] == 4
    assert seq["hole_examples"][0] == {"after": seqs[5], "next": seqs[6], "missing": 3}
    assert seq["hole_examples"][1] == {"after": seqs[11], "next": seqs[12], "missing": 1}


def test_seq_going_back_is_out_of_order() -> None:
    evs = _session()[:6]
    seq = summarize_batches(_batches(evs, [1, 2, 3, 3, 4, 5], [4]))["seq"]
    assert seq["out_of_order"] == 1
    assert seq["out_of_order_examples"] == [{"after": 3, "next": 3}]
    assert seq["contiguous"] is False


def test_update_id_gaps_spot_and_futures() -> None:
    evs = _session()
    seqs = list(range(1, len(evs) + 1))
    ids = summarize_batches(_batches(evs, seqs, [9, 10]))["book_update_ids"]
    assert set(ids) == {BTC, ETH, PERP}
    assert ids[ETH]["gaps"] == 0 and ids[ETH]["deltas"] == 3
    assert ids[BTC]["rule"] == "U == prev u + 1"
    assert ids[PERP]["rule"] == "pu == prev u"
    broken_spot = next(
        s
        for e, s in zip(evs, seqs, strict=True)
        if isinstance(e, BookDeltaReceived) and e.first_update_id == 40
    )
    assert ids[BTC]["gaps"] == 1
    assert ids[BTC]["gap_examples"] == [
        {"seq": broken_spot, "prev_last_update_id": 31, "first_update_id": 40, "prev_update_id": -1}
    ]
    broken_perp = next(
        s
        for e, s in zip(evs, seqs, strict=True)
        if isinstance(e, BookDeltaReceived) and e.prev_update_id == 500
    )
    assert ids[PERP]["gaps"] == 1
    assert ids[PERP]["gap_examples"][0]["seq"] == broken_perp
    assert ids[PERP]["gap_examples"][0]["prev_last_update_id"] == 499


def test_examples_are_capped_but_counts_are_not() -> None:
    evs: list[Event] = [_spot_delta(T0 + i, 10 * i, 10 * i + 1) for i in range(50)]  # every diff skips ids
    summary = summarize_batches(_batches(evs, range(1, 51), [17, 33]), max_examples=3)
    assert summary["book_update_ids"][BTC]["gaps"] == 49
    assert len(summary["book_update_ids"][BTC]["gap_examples"]) == 3


def test_empty_stream() -> None:
    summary = summarize_batches([])
    assert summary["events"] == 0
    assert summary["ts_event"] is None
    assert summary["seq"]["first"] is None and summary["seq"]["contiguous"] is True


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=8),
    gap_at=st.integers(min_value=1, max_value=40),
)
def test_batch_boundaries_do_not_change_the_summary(cuts: list[int], gap_at: int) -> None:
    """Carries across batches (last seq, last u per instrument, spans) make splitting invisible."""
    evs = _session()
    seqs = [s if i < gap_at else s + 2 for i, s in enumerate(range(1, len(evs) + 1))]
    whole = summarize_batches(_batches(evs, seqs, []))
    split = summarize_batches(_batches(evs, seqs, cuts))
    whole.pop("batches")
    split.pop("batches")
    assert split == whole


# --------------------------------------------------------------------------- on a real log directory


def _write_log(path: Path, events: Sequence[Event]) -> None:
    log = pytest.importorskip("catalogs.log", reason="catalogs/log.py (LogWriter) not written yet")
    with log.LogWriter(path, meta={"source_files": ["a.gz", "b.gz"], "ts_recv_model": "recorded"}) as writer:
        for ev in events:
            writer.append(ev)


def test_log_info_on_a_written_log(tmp_path: Path) -> None:
    evs = _session()
    _write_log(tmp_path / "log", evs)
    info = log_info(tmp_path / "log")
    assert info["events"] == len(evs)
    assert info["kinds"] == dict(Counter(kind_name(e.kind) for e in evs))
    assert info["seq"]["contiguous"] is True
    assert (info["seq"]["first"], info["seq"]["last"]) == (1, len(evs))
    assert info["book_update_ids"][BTC]["gaps"] == 1
    assert info["segments"]["count"] >= 1
    assert info["segments"]["sealed"] == info["segments"]["count"]  # closed cleanly
    assert info["source_files"] == ["a.gz", "b.gz"]
    assert info["ts_recv_model"] == "recorded"
    assert info["meta"] == {"source_files": ["a.gz", "b.gz"], "ts_recv_model": "recorded"}
    json.dumps(info)  # plain JSON data throughout


def test_log_info_cli_prints_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tickloop.commands import log_info as command

    evs = _session()
    _write_log(tmp_path / "log", evs)
    parser = __import__("argparse").ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args([str(tmp_path / "log"), "--compact"])) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["events"] == len(evs)


def test_missing_or_invalid_directory_is_a_log_error(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no such log directory"):
        log_info(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(LogError, match="not a log directory"):
        log_info(tmp_path / "file")


def test_log_info_runs_without_pyarrow_or_duckdb(tmp_path: Path) -> None:
    """The edge profile has neither: block their import in a fresh interpreter and run the command."""
    import subprocess
    import sys

    _write_log(tmp_path / "log", _session())
    script = (
        "import sys\n"
        "sys.modules['pyarrow'] = None\n"
        "sys.modules['duckdb'] = None\n"
        "import argparse, tickloop.commands.catalog, tickloop.commands.sql\n"
        "from tickloop.commands import log_info\n"
        "p = argparse.ArgumentParser(); log_info.add_arguments(p)\n"
        "sys.exit(log_info.run(p.parse_args([sys.argv[1], '--compact'])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "log")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events"] == len(_session())


def test_catalog_commands_say_what_is_missing_without_pyarrow(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "sys.modules['pyarrow'] = None\n"
        "sys.modules['duckdb'] = None\n"
        "from engine.errors import ConfigError\n"
        "from catalogs.catalog import query\n"
        "try:\n"
        "    query(sys.argv[1], 'SELECT 1')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "the edge profile does not install" in done.stdout
