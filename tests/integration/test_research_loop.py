"""The research loop on real data: feature spec parity, ``tickloop dataset``, training, the ``model``
strategy under both inference backends, and dataset -> train -> backtest -> report end to end.

The real recording is the spot BTCUSDT hftbacktest file of 2024-08-08 (41,249 events:
9,757 trades, 28,040 bookTickers, 3,451 depth diffs and the REST snapshot), imported with
the project's own importer. The model is trained by ``examples/train_mlp.py`` in a
subprocess (small MLP, few epochs), exactly as a user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalogs.log import LogReader, LogWriter
from engine.events import CommandIssued, Event, RunStarted, SignalEmitted
from engine.orders import OrderSide, SubmitOrder
from replay.backtest import run_backtest
from replay.dataset import read_log, read_metadata
from replay.source import input_digest, open_log
from strategies.features.spec import book_depth, columns_of, compute_features, parse_specs
from strategies.model import BACKEND_ENV, SPEC_KEY
from strategies.registry import build_strategy
from tests.conftest import binance_file
from tests.research_helpers import SEC, T0, assert_bit_identical, serve_vectors, stack, synthetic_session

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")
pytest.importorskip("onnx")

REPO = Path(__file__).resolve().parents[2]
RAW = "spot/hftbacktest_2024-08-08/btcusdt_20240808.gz"
SPEC = "rsi:14,obi:5,tfi:100,vol:20"
LABEL = "triple-barrier:5,5,30s"
ALL_KINDS = (
    "rsi:14,vol:20,boll:20,tfi:100,tfi:5s,vwap:50,vwap:10s,hour,dow,obi:5,depth:20,qobi,spread_bps,microprice_dev"
)
TRAIN_ARGS = ("--max-iter", "30", "--folds", "2", "--hidden", "8", "--seed", "3")


def run_py(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        check=False,
        timeout=300,
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_py("-m", "tickloop.cli", *args, env=env)


def read_events(run_dir: Path) -> list[Event]:
    with LogReader(run_dir) as r:
        return list(r.events())


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = binance_file(RAW)
    from catalogs.importers.driver import import_binance_stream

    out = tmp_path_factory.mktemp("research") / "spot"
    import_binance_stream([raw], out)
    return out


@pytest.fixture(scope="module")
def real_dataset(real_log: Path) -> tuple[Path, dict[str, Any]]:
    out = real_log.parent / "ds.parquet"
    summary = last_json(cli("dataset", str(real_log), "--features", SPEC, "--label", LABEL, "--out", str(out)))
    return out, summary


@pytest.fixture(scope="module")
def trained(real_dataset: tuple[Path, dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    ds, _ = real_dataset
    model = ds.parent / "model.onnx"
    report = last_json(run_py("examples/train_mlp.py", str(ds), "--out", str(model), *TRAIN_ARGS))
    return model, report


# --------------------------------------------------------------------------- features


def test_spec_parity_on_the_real_recording(real_log: Path) -> None:
    """What a strategy sees at each trade (kernel, own book sync) == the vectorised dataset columns."""
    specs = parse_specs(ALL_KINDS)
    served = serve_vectors(real_log, specs)["BTCUSDT.SPOT"]
    table = read_log(real_log, symbol="BTCUSDT", depth=book_depth(specs)).tables["BTCUSDT.SPOT"]
    trained = stack(compute_features(specs, table), columns_of(specs))
    assert trained.shape == (9_757, 16)
    assert len(table.book_pos) > 3_000 and len(table.quote_pos) == 28_040
    assert_bit_identical(served, trained, "BTCUSDT.SPOT")
    assert np.isfinite(trained[200:]).all()  # past warm-up every feature is defined on this data


# --------------------------------------------------------------------------- dataset


def test_dataset_command_on_the_real_recording(real_log: Path, real_dataset: tuple[Path, dict[str, Any]]) -> None:
    path, summary = real_dataset
    table = pq.read_table(path)
    assert table.column_names == ["ts", "symbol", "price", "rsi_14", "obi_5", "tfi_100", "vol_20", "label", "label_ts"]
    types = {f.name: str(f.type) for f in table.schema}
    assert types["ts"] == types["price"] == types["label_ts"] == "int64" and types["label"] == "int8"
    assert types["rsi_14"] == "double" and types["symbol"] == "string"
    meta = read_metadata(path)
    with open_log(real_log) as reader:
        assert meta["source_digest"] == summary["source_digest"] == input_digest(reader)
    assert meta["features"] == SPEC and meta["label"] == LABEL and meta["sample"] == "every-trade"
    assert table.schema.metadata[SPEC_KEY.encode()] == SPEC.encode()
    c = meta["counts"]
    assert c["trades"] == c["sampled"] == 9_757
    assert c["rows"] == summary["rows"] == table.num_rows == c["sampled"] - c["warmup_dropped"] - c["censored_dropped"]
    assert c["warmup_dropped"] >= 99 and c["censored_dropped"] > 0  # tfi:100 needs 100 trades
    label = table.column("label").to_numpy()
    assert set(np.unique(label).tolist()) == {-1, 0, 1}
    assert {int(k): v for k, v in meta["labels"].items()} == {v: int((label == v).sum()) for v in (-1, 0, 1)}
    ts, label_ts = table.column("ts").to_numpy(), table.column("label_ts").to_numpy()
    assert (np.diff(ts) >= 0).all() and (label_ts >= ts).all()
    # Rows are the strategy's own view at those trades (the kernel-fed FeatureSet), bit for bit.
    specs = parse_specs(SPEC)
    served = serve_vectors(real_log, specs)["BTCUSDT.SPOT"]
    tab = read_log(real_log, symbol=None, depth=book_depth(specs)).tables["BTCUSDT.SPOT"]
    kept_rows = np.flatnonzero(~np.isnan(served).any(axis=1))  # trades past warm-up
    prices = table.column("price").to_numpy()
    feats = stack({n: table.column(n).to_numpy() for n in columns_of(specs)}, columns_of(specs))
    # output rows are those trades in order; censored rows can only be at the end (horizon past the data)
    assert len(feats) <= len(kept_rows)
    n = len(feats)
    assert_bit_identical(feats, served[kept_rows[:n]], "dataset rows")
    assert (prices == tab.trade_price[kept_rows[:n]]).all()
    # take-profit labels: some trade at label_ts reached the barrier
    tp = label == 1
    at: dict[int, int] = {}
    for t, p in zip(np.maximum.accumulate(tab.trade_ts).tolist(), tab.trade_price.tolist(), strict=True):
        at[t] = max(at.get(t, 0), p)
    assert all(at[t] >= p * (1 + 5e-4) for t, p in zip(label_ts[tp].tolist(), prices[tp].tolist(), strict=True))


def test_dataset_sampling_symbol_filter_and_errors(
    real_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tickloop.cli import main

    out = tmp_path / "s.parquet"
    args = ["dataset", str(real_log), "--features", "rsi:14,spread_bps", "--label", "triple-barrier:10,10,20s"]
    assert main([*args, "--sample", "5s", "--symbol", "BTCUSDT", "--out", str(out), "--quiet"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["counts"]["sampled"] <= 346 // 5 + 2 and s["rows"] > 40
    ts = pq.read_table(out).column("ts").to_numpy()
    assert len(np.unique(ts // 5_000_000_000)) == len(ts)  # one row per 5 s bucket
    for argv, message in (
        (["--features", "rsi:14,bogus:3", "--label", LABEL], "'bogus:3'"),
        (["--features", SPEC, "--label", "triple-barrier:5,5"], "three values"),
        (["--features", SPEC, "--label", LABEL, "--sample", "often"], "bad --sample 'often'"),
        (["--features", SPEC, "--label", LABEL, "--symbol", "ETHUSDT"], "no trades for symbol ETHUSDT"),
    ):
        assert main(["dataset", str(real_log), *argv, "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and err[0].startswith("tickloop: error:")
    assert main(["dataset", str(tmp_path / "nope"), "--features", SPEC, "--label", LABEL, "--out", str(out)]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_dataset_on_a_small_synthetic_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with LogWriter(log, monotonic_ns=None) as w:
        w.extend(synthetic_session(5))
    out = tmp_path / "d.parquet"
    s = last_json(cli("dataset", str(log), "--features", "rsi:5,obi:3,qobi,tfi:1s", "--label",
                      "triple-barrier:3,3,2s", "--sample", "2trades", "--out", str(out)))  # fmt: skip
    table = pq.read_table(out)
    assert set(table.column("symbol").to_pylist()) == {"BTCUSDT.SPOT", "ETHUSDT.SPOT"}
    assert table.num_rows == s["rows"] > 0
    for name in ("rsi_5", "obi_3", "qobi", "tfi_1s"):
        assert not np.isnan(table.column(name).to_numpy()).any()
    ts = table.column("ts").to_numpy()
    assert (np.diff(ts) >= 0).all()


def test_dataset_from_a_catalog_equals_the_dataset_from_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two instruments, a book with a gap and a re-snapshot, files split by date: same rows, same digest."""
    pytest.importorskip("duckdb")
    from tickloop.cli import main

    log = tmp_path / "log"
    with LogWriter(log, monotonic_ns=None) as w:
        w.extend(synthetic_session(9, start=T0 - 100 * SEC))  # crosses midnight: two date partitions
    cat = tmp_path / "cat"
    assert main(["catalog", "compact", "--catalog", str(cat), str(log)]) == 0
    assert len(list(cat.glob("kind=book_delta/symbol=BTCUSDT.SPOT/date=*"))) == 2
    args = ["--features", "rsi:5,obi:3,depth:5,qobi,spread_bps,tfi:1s", "--label", "triple-barrier:3,3,2s", "--quiet"]
    summaries = []
    for src, name in ((log, "a.parquet"), (cat, "b.parquet")):
        capsys.readouterr()
        assert main(["dataset", str(src), *args, "--out", str(tmp_path / name)]) == 0
        summaries.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    a, b = summaries
    assert a["source_digest"] == b["source_digest"] and a["counts"] == b["counts"] and a["rows"] > 100
    ta, tb = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert ta.equals(tb)
    assert read_metadata(tmp_path / "b.parquet")["source_kind"] == "catalog"


# --------------------------------------------------------------------------- model strategy


def _params(model: Path, report: dict[str, Any], **extra: str) -> list[str]:
    q90 = report["final"]["p_quantiles"][1]  # enter on the top ~10% of predictions
    base = {"model_path": str(model), "threshold": f"{q90:.4f}", "features": SPEC, "cooldown_ms": "2000"}
    return [f"{k}={v}" for k, v in {**base, **extra}.items()]


def test_backends_give_identical_decisions_over_a_whole_backtest(
    real_log: Path, trained: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, report = trained
    params = _params(model, report)
    runs: dict[str, tuple[str, list[Event]]] = {}
    for backend in ("numpy", "onnxruntime"):
        monkeypatch.setenv(BACKEND_ENV, backend)
        assert build_strategy("model", params).model.backend == backend  # type: ignore[attr-defined]
        s = run_backtest(real_log, "model", params, out=tmp_path / backend)
        runs[backend] = (s.run_hash, read_events(tmp_path / backend))
    (h_np, ev_np), (h_ort, ev_ort) = runs["numpy"], runs["onnxruntime"]
    commands = [e for e in ev_np if isinstance(e, CommandIssued)]
    assert len(commands) >= 4  # entries and their OCO exits: the backtest really trades
    assert [e for e in ev_ort if isinstance(e, CommandIssued)] == commands
    assert [e for e in ev_ort if isinstance(e, SignalEmitted)] == [e for e in ev_np if isinstance(e, SignalEmitted)]
    assert h_np == h_ort
    # An explicit backend param is part of the run config (RunStarted) but changes nothing else.
    monkeypatch.delenv(BACKEND_ENV)
    run_backtest(real_log, "model", [*params, "backend=numpy"], out=tmp_path / "explicit")
    explicit = read_events(tmp_path / "explicit")
    assert isinstance(explicit[0], RunStarted) and explicit[1:] == ev_ort[1:]


def test_model_refuses_a_model_trained_on_another_spec(trained: tuple[Path, dict[str, Any]]) -> None:
    from engine.errors import ConfigError

    model, report = trained
    with pytest.raises(ConfigError, match=r"trained on features 'rsi:14,obi:5,tfi:100,vol:20'"):
        build_strategy("model", _params(model, report, features="rsi:14,obi:5,tfi:50,vol:20"))
    with pytest.raises(ConfigError, match="model_sha256"):
        build_strategy("model", _params(model, report, model_sha256="0" * 64))


# --------------------------------------------------------------------------- end to end


def test_end_to_end_dataset_train_backtest_report(
    real_log: Path, trained: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    ds = tmp_path / "ds.parquet"
    last_json(cli("dataset", str(real_log), "--features", SPEC, "--label", LABEL, "--out", str(ds), "--quiet"))
    model = tmp_path / "model.onnx"
    report = last_json(run_py("examples/train_mlp.py", str(ds), "--out", str(model), *TRAIN_ARGS))
    assert report["sha256"] == trained[1]["sha256"]  # training is deterministic across processes
    assert len(report["folds"]) == 2 and all(f["purged"] > 0 for f in report["folds"])
    import onnx

    props = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    assert props[SPEC_KEY] == SPEC and props["tickloop.features"] == "rsi_14,obi_5,tfi_100,vol_20"
    params = [*_params(model, report, model_sha256=report["sha256"])]
    flags = [a for p in params for a in ("--param", p)]
    a = last_json(cli("backtest", str(real_log), "--strategy", "model", *flags, "--out", str(tmp_path / "a")))
    b = last_json(cli("backtest", str(real_log), "--strategy", "model", *flags, "--out", str(tmp_path / "b"),
                      env={"PYTHONHASHSEED": "99"}))  # fmt: skip
    assert a["run_hash"] == b["run_hash"] and a["orders"] >= 4 and a["fills"] >= 2
    rep = cli("report", str(tmp_path / "a"), "--json")
    assert rep.returncode == 0, rep.stderr
    metrics = json.loads(rep.stdout)
    assert metrics["run"]["run_hash"] == a["run_hash"]
    assert metrics["run"]["config"]["params"]["model_sha256"] == report["sha256"]
    assert len(metrics["trades"]) >= 1
    html = (tmp_path / "a" / "report.html").read_text()
    assert a["run_hash"] in html


def test_signal_values_are_quantised_probabilities(real_log: Path, trained: tuple[Path, dict[str, Any]],
                                                   tmp_path: Path) -> None:  # fmt: skip
    model, report = trained
    run_backtest(real_log, "model", _params(model, report, signal_all="true"), out=tmp_path / "r")
    events = read_events(tmp_path / "r")
    values = [e.value for e in events if isinstance(e, SignalEmitted)]
    assert len(values) > 100  # every prediction while flat, not only the entries
    assert all(round(v, 6) == v and 0.0 <= v <= 1.0 for v in values)
    threshold = float(report["final"]["p_quantiles"][1].__format__(".4f"))
    buys = [e for e in events if isinstance(e, CommandIssued) and isinstance(e.command, SubmitOrder)
            and e.command.side is OrderSide.BUY]  # fmt: skip
    assert len(buys) == sum(v >= threshold for v in values) >= 2  # one entry per prediction at the threshold
