"""``tickloop report``: a real backtest run -> HTML + JSON, checked against the venue and in Chromium.

The run is a real ``replay.backtest.run_backtest`` of the ``rsi`` strategy on the simulated
venue over a small synthetic log (quotes + trades for two symbols). The HTML is rendered in
headless Chromium (skipped, saying why, when /usr/bin/chromium is absent; CI installs it):
its script must finish without errors and draw non-empty SVG paths and one marker per fill.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogs.log import LogWriter
from engine.errors import InputError, LogError
from engine.events import Event, OrderFilled, QuoteReceived, TradeReceived
from engine.fixed import SCALE, parse_e8
from engine.identifiers import InstrumentId
from engine.portfolio import spot_pair
from replay.backtest import RunSummary, run_backtest
from replay.metrics import compute_metrics
from replay.report import (
    ReportOptions,
    SeriesReducer,
    account_order,
    bucket_extremes,
    build_report,
    infer_initial,
    metrics_period,
    read_run_events,
    write_report,
)
from tickloop.commands import report as report_cmd

CHROMIUM = Path("/usr/bin/chromium")
T0 = 1_723_161_600_000_000_000
BTC, ETH = InstrumentId("BTCUSDT.SPOT"), InstrumentId("ETHUSDT.SPOT")


def d(text: str) -> int:
    return parse_e8(text, signed=True)


RSI_PARAMS = ["quantity=0.2", "step=0.1", "period=10"]


def synthetic_events(pairs: int, seed: int) -> list[Event]:
    """A random-walk session: per step a bookTicker and a trade on BTC, every 3rd step on ETH too."""
    rng = np.random.default_rng(seed)
    out: list[Event] = []
    t = T0
    px = {BTC: 60_000 * SCALE, ETH: 3_000 * SCALE}
    tick = SCALE // 100
    for i in range(pairs):
        t += int(rng.integers(50, 400)) * 1_000_000
        for inst in (BTC, ETH) if i % 3 == 0 else (BTC,):
            px[inst] = max(px[inst] + int(rng.normal(0, 15)) * tick, 100 * SCALE)
            p = px[inst]
            out.append(QuoteReceived(0, t, t, inst, i, p - tick, 3 * SCALE, p + tick, 3 * SCALE))
            sell = bool(rng.random() < 0.5)
            out.append(
                TradeReceived(
                    0, t + 1000, t + 1000, inst, p - tick if sell else p + tick, SCALE // 10, i, sell
                )
            )
    return out


def write_log(path: Path, events: list[Event]) -> Path:
    with LogWriter(path, monotonic_ns=None) as w:
        w.extend(events)
    return path


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, RunSummary]:
    """(input log, run dir, backtest summary) of one real rsi run on the simulated venue."""
    root = tmp_path_factory.mktemp("report")
    log = write_log(root / "log", synthetic_events(3000, seed=7))
    summary = run_backtest(log, "rsi", RSI_PARAMS, out=root / "run")
    assert summary.fills >= 10, "the fixture run should trade"
    return log, root / "run", summary


@pytest.fixture
def run_copy(session: tuple[Path, Path, RunSummary], tmp_path: Path) -> Path:
    """A private copy of the run directory (reports write into it)."""
    return Path(shutil.copytree(session[1], tmp_path / "run"))


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    report_cmd.add_arguments(parser)
    return report_cmd.run(parser.parse_args(list(argv)))


# --------------------------------------------------------------------------- figures


def test_report_agrees_with_the_venue_exactly(session: tuple[Path, Path, RunSummary]) -> None:
    _, run_dir, summary = session
    rep = build_report(run_dir)
    assert rep.warnings == ()
    pf = rep.portfolio
    assert pf["balances"] == {a: v for a, v in summary.balances.items() if d(v)}
    assert pf["fees_paid"] == summary.fees_paid
    assert pf["fills"] == summary.fills == rep.counts["order_filled"]
    assert rep.initial == {"USDT": d("1000000")}
    assert {t.instrument for t in rep.trades} == {BTC, ETH}
    m = rep.metrics
    assert m is not None and m.n_trades == len(rep.trades) > 0
    final = d(pf["equity"])
    assert m.end_equity == pytest.approx(final, rel=1e-12)
    assert m.start_equity == rep.initial_equity == d("1000000")
    realised, unrealised, open_fees = (d(pf[k]) for k in ("realised_pnl", "unrealised_pnl", "open_fees"))
    assert final == d("1000000") + realised + unrealised - open_fees


def test_initial_balances_are_recovered_from_the_balance_reports(
    session: tuple[Path, Path, RunSummary],
) -> None:
    _, run_dir, _ = session
    events = account_order(read_run_events(run_dir).account)
    pairs = {str(i): spot_pair(i) for i in (BTC, ETH)}
    initial, mismatches = infer_initial(events, pairs, None)
    assert initial == {"USDT": d("1000000")} and mismatches == []
    wrong, mismatches = infer_initial(events, pairs, {"USDT": d("999999")})
    assert wrong == {"USDT": d("999999")} and mismatches and "USDT" in mismatches[0]


def test_json_report_round_trips_and_has_every_trade(run_copy: Path) -> None:
    written = write_report(run_copy)
    assert written.json == run_copy / "report.json"
    data = json.loads(written.json.read_text())
    assert data["format"] == "tickloop-report" and data["run"]["run_hash"] == written.report.run.run_hash
    assert len(data["trades"]) == len(written.report.trades)
    net = sum(d(t["net_pnl"]) for t in data["trades"])
    assert net == d(data["portfolio"]["realised_pnl"])
    m = data["metrics"]
    assert set(m) >= {"sharpe", "sortino", "calmar", "max_drawdown", "win_rate", "profit_factor", "fee_share"}
    assert m["end_equity"] == pytest.approx(float(data["portfolio"]["equity"]))


def test_html_is_self_contained_and_deterministic(run_copy: Path, tmp_path: Path) -> None:
    a = write_report(run_copy, html_out=tmp_path / "a.html", json_out=False).html.read_bytes()
    b = write_report(run_copy, html_out=tmp_path / "b.html", json_out=False).html.read_bytes()
    assert a == b
    text = a.decode()
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text)) - {"http://www.w3.org/2000/svg"}
    assert not urls, f"the report references the network: {urls}"
    assert not re.search(r"<(link|img|iframe)\b|\bsrc\s*=|@import|url\(", text)
    assert "Content-Security-Policy" in text and not (run_copy / "report.json").exists()


# --------------------------------------------------------------------------- Chromium


def render(html: Path, tmp: Path) -> tuple[str, str]:
    """``chromium --dump-dom`` of the page (DOM after scripts ran) and its stderr console log."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium); CI installs it")
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", html.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def status_of(dom: str) -> dict[str, str]:
    tag = re.search(r'<div id="report-status"([^>]*)>', dom)
    assert tag is not None, "status element missing from the rendered DOM"
    return dict(re.findall(r'(data-[a-z]+)="([^"]*)"', tag.group(1)))


def svg_paths(dom: str) -> list[str]:
    return re.findall(r'<path\b[^>]*\bd="([^"]*)"', dom)


def test_chromium_draws_every_chart_without_errors(run_copy: Path, tmp_path: Path) -> None:
    written = write_report(run_copy, json_out=False)
    dom, log = render(written.html, tmp_path)
    status = status_of(dom)
    console_errors = [
        ln for ln in log.splitlines() if "CONSOLE" in ln and ("Uncaught" in ln or "Error" in ln)
    ]
    assert status["data-ok"] == "1", (status, console_errors, re.findall(r'id="report-errors"[^<]*', dom))
    assert not console_errors
    assert re.search(r'<div id="report-errors" hidden="?"?>\s*</div>', dom)
    n_inst = len(written.report.charts["instruments"])
    assert n_inst == 2
    assert int(status["data-charts"]) == 2 + 2 * n_inst
    drawn = [d for d in svg_paths(dom) if len(d) > 20]
    assert len(drawn) >= 2 + 2 * n_inst + 1  # area + lines, at least one marker path
    assert int(status["data-markers"]) == written.report.portfolio["fills"]
    coords = re.findall(r"-?\d+\.\d+", " ".join(drawn))
    assert all(-1e4 < float(c) < 1e4 for c in coords), "a path left the chart (NaN/inf scaling?)"


def test_chromium_flat_run_without_fills(session: tuple[Path, Path, RunSummary], tmp_path: Path) -> None:
    log, _, _ = session
    run_backtest(log, "noop", out=tmp_path / "noop")
    written = write_report(tmp_path / "noop")
    rep = written.report
    assert rep.trades == () and rep.portfolio["fills"] == 0
    assert [c["instrument"] for c in rep.charts["instruments"]] == [BTC]
    assert rep.metrics is not None and rep.metrics.total_return == 0.0 and rep.metrics.max_drawdown == 0.0
    dom, _ = render(written.html, tmp_path)
    status = status_of(dom)
    assert status["data-ok"] == "1" and int(status["data-charts"]) == 4 and status["data-markers"] == "0"


# --------------------------------------------------------------------------- CLI and errors


def test_cli_json_goes_to_stdout(run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    assert cli(str(run_copy), "--out", str(out), "--json") == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["run"]["run_dir"] == str(run_copy) and out.exists()
    assert not (run_copy / "report.json").exists() and not (run_copy / "report.html").exists()
    assert "round trips" in captured.err


def test_cli_initial_overrides_and_input_moves(
    session: tuple[Path, Path, RunSummary], run_copy: Path, tmp_path: Path
) -> None:
    log = session[0]
    moved = Path(shutil.copytree(log, tmp_path / "moved"))
    assert cli(str(run_copy), "--input", str(moved), "--initial", "USDT=2000000") == 0
    data = json.loads((run_copy / "report.json").read_text())
    assert data["initial_balances"] == {"USDT": "2000000"}
    assert any("reported" in w for w in data["warnings"])  # the venue's reports disagree, and say so


def test_input_digest_mismatch_is_an_error_unless_waived(run_copy: Path, tmp_path: Path) -> None:
    other = write_log(tmp_path / "other", synthetic_events(500, seed=99))
    with pytest.raises(InputError, match="digest"):
        build_report(run_copy, ReportOptions(input_log=other))
    rep = build_report(run_copy, ReportOptions(input_log=other, check_input=False))
    assert any("digest" in w for w in rep.warnings)
    with pytest.raises(InputError, match="--input"):
        build_report(run_copy, ReportOptions(input_log=tmp_path / "nowhere"))


def test_a_log_that_is_not_a_run_is_refused(session: tuple[Path, Path, RunSummary], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a backtest run"):
        build_report(session[0])
    with pytest.raises(LogError):
        build_report(tmp_path)


# --------------------------------------------------------------------------- size and reduction


def test_long_runs_give_small_pages(tmp_path: Path) -> None:
    """Every chart series is at most 4 points per pixel column whatever the run's length."""
    log = write_log(tmp_path / "log", synthetic_events(12_000, seed=3))
    run_backtest(log, "rsi", RSI_PARAMS, out=tmp_path / "run")
    buckets = 100
    written = write_report(tmp_path / "run", options=ReportOptions(chart_buckets=buckets), json_out=False)
    charts = written.report.charts
    series = [charts["equity"], charts["drawdown"]] + [
        s for c in charts["instruments"] for s in (c["price"], c["position"])
    ]
    assert all(len(s["t"]) == len(s["v"]) <= 4 * buckets + 2 for s in series)
    assert max(len(s["t"]) for s in series) > 2 * buckets  # it did need reducing
    full = write_report(tmp_path / "run", html_out=tmp_path / "big.html", json_out=False)
    assert written.html.stat().st_size < full.html.stat().st_size < 400_000


@st.composite
def curves(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 3000))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    gaps = rng.choice([0, 1, 7, 1_000, 90_000, 3_600_000], size=n - 1) * 1_000_000
    ts = T0 + np.concatenate(([0], np.cumsum(gaps))).astype(np.int64)
    eq = 1e12 * np.exp(np.cumsum(rng.normal(0, draw(st.sampled_from([1e-4, 1e-2])), size=n)))
    return ts, eq


@settings(max_examples=60, deadline=None)
@given(curves(), st.integers(1_000, 2_000), st.integers(1, 5))
def test_reduced_equity_curve_gives_the_same_metrics(
    curve: tuple[np.ndarray, np.ndarray], max_points: int, pushes: int
) -> None:
    ts, eq = curve
    red = SeriesReducer(max_points, drawdown=True)
    for part in np.array_split(np.arange(len(ts)), pushes):
        red.push(ts[part], eq[part])
    rts, req = red.result()
    assert len(rts) <= max_points
    assert set(rts.tolist()) <= set(ts.tolist())
    period = metrics_period(int(ts[-1] - ts[0]), red.width)
    full = compute_metrics(ts, eq, period_ns=period)
    reduced = compute_metrics(rts, req, period_ns=period)
    for key in ("start_ts", "end_ts", "total_return", "annualised_return", "n_periods", "sharpe", "sortino",
                "max_drawdown", "annualised_volatility"):  # fmt: skip
        assert getattr(reduced, key) == getattr(full, key), key
    if full.max_drawdown_duration_ns is not None and reduced.max_drawdown_duration_ns is not None:
        assert abs(reduced.max_drawdown_duration_ns - full.max_drawdown_duration_ns) <= red.width


def test_bucket_extremes_keeps_a_peak_set_inside_a_bucket() -> None:
    """Min/max alone would lose the 140 (neither min nor max of its bucket) and understate the drawdown."""
    ts = np.array([1, 2, 3, 4, 5], dtype=np.int64) + T0  # one bucket (T0, T0 + 10]
    eq = np.array([100.0, 140.0, 90.0, 150.0, 120.0])
    plain = bucket_extremes(ts, eq, T0, 10, drawdown=False)
    kept = bucket_extremes(ts, eq, T0, 10, drawdown=True, peak_before=120.0)
    assert 1 not in plain.tolist() and 1 in kept.tolist()
    whole = compute_metrics(np.concatenate(([T0], ts)), np.concatenate(([120.0], eq)))
    sub = compute_metrics(np.concatenate(([T0], ts[kept])), np.concatenate(([120.0], eq[kept])))
    lossy = compute_metrics(np.concatenate(([T0], ts[plain])), np.concatenate(([120.0], eq[plain])))
    assert lossy.max_drawdown is not None and whole.max_drawdown is not None
    assert lossy.max_drawdown < whole.max_drawdown
    assert sub.max_drawdown == whole.max_drawdown == pytest.approx(1 - 90 / 140)


def _fills(run_dir: Path) -> list[OrderFilled]:
    return [e for e in read_run_events(run_dir).account if isinstance(e, OrderFilled)]


def test_fill_markers_sit_on_their_fills(session: tuple[Path, Path, RunSummary]) -> None:
    _, run_dir, _ = session
    rep = build_report(run_dir)
    by_inst: dict[str, list[Any]] = {c["instrument"]: c["fills"] for c in rep.charts["instruments"]}
    fills = _fills(run_dir)
    for inst, markers in by_inst.items():
        mine = sorted((f for f in fills if f.instrument == inst), key=lambda f: f.ts_event)
        assert [(m[1], m[2]) for m in markers] == [
            (f.price / SCALE, 1 if f.side == "BUY" else -1) for f in mine
        ]


# --------------------------------------------------------------------------- a hand-built run (BNB fees)

BNB = InstrumentId("BNBUSDT.SPOT")


def hand_run(root: Path, *, bnb_prices: bool) -> Path:
    """A run directory written event by event: two fills paying commission in BNB."""
    from engine.events import BalanceUpdated, RunFinished, RunStarted
    from engine.orders import OrderSide, OrderStatus
    from replay.source import input_digest, open_log

    s = 1_000_000_000
    market: list[Event] = []
    for i in range(20):
        t = T0 + i * s
        market.append(TradeReceived(0, t, t, BTC, (60_000 + i) * SCALE, SCALE // 10, i, False))
        if bnb_prices:
            market.append(TradeReceived(0, t, t, BNB, (600 + i) * SCALE, SCALE, i, True))
    log = write_log(root / "log", market)
    with open_log(log) as reader:
        digest = input_digest(reader)
    config = {"strategy": "hand", "symbol": None, "venue": None}
    meta = {
        "run": {
            "strategy": "hand",
            "config": config,
            "input_log": str(log),
            "input_digest": digest,
            "run_hash": "00",
        }
    }

    def filled(order: int, side: str, price: int, ts: int) -> OrderFilled:
        q = SCALE // 10
        y = price * q // SCALE
        return OrderFilled(
            0, ts, ts, BTC, order, f"h-{order}", OrderSide(side), price, q, y, q, y, OrderStatus.FILLED,
            90_000, "BNB", order, False, -1, order,
        )  # fmt: skip

    t1, t2 = T0 + 5 * s + 10, T0 + 15 * s + 10
    events: list[Event] = [
        RunStarted(0, T0, T0, InstrumentId(""), "{}", digest),
        filled(1, "BUY", 60_005 * SCALE, t1),
        BalanceUpdated(
            0,
            t1,
            t1,
            BTC,
            (("BTC", SCALE // 10, 0), ("USDT", 399_950_000_000 - 1, 1), ("BNB", 99_910_000, 0)),
        ),
        filled(2, "SELL", 60_015 * SCALE, t2),
        BalanceUpdated(
            0, t2, t2, BTC, (("BTC", 0, 0), ("USDT", 1_000_100_000_000, 0), ("BNB", 99_820_000, 0))
        ),
        RunFinished(0, T0 + 19 * s, T0 + 19 * s, InstrumentId(""), len(market)),
    ]
    with LogWriter(root / "run", meta=meta, monotonic_ns=None) as w:
        w.extend(events)
    return root / "run"


def test_hand_built_run_with_bnb_commission(tmp_path: Path) -> None:
    rep = build_report(hand_run(tmp_path, bnb_prices=True))
    assert rep.warnings == ()
    assert rep.initial == {"BNB": SCALE, "USDT": 10_000 * SCALE}
    (t,) = rep.trades
    assert t.gross_pnl == SCALE  # 0.1 x (60015 - 60005)
    # 0.0009 BNB at the BNB mark of each fill (605 and 615: the trades at t <= fill time)
    assert t.fees == 90_000 * 605 + 90_000 * 615
    assert rep.portfolio["balances"] == {"BNB": "0.9982", "USDT": "10001"}
    assert d(rep.portfolio["equity"]) == 10_001 * SCALE + 99_820_000 * 619
    assert rep.initial_equity == 10_000 * SCALE + 600 * SCALE
    m = rep.metrics
    assert (
        m is not None and m.start_equity == rep.initial_equity and m.end_equity == d(rep.portfolio["equity"])
    )


def test_hand_built_run_without_bnb_prices_leaves_bnb_out(tmp_path: Path) -> None:
    rep = build_report(hand_run(tmp_path, bnb_prices=False))
    assert any("no price source in the input for BNB" in w for w in rep.warnings)
    assert rep.portfolio["unvalued_fees"] == {"BNB": "0.0018"}
    assert d(rep.portfolio["equity"]) == 10_001 * SCALE
    assert rep.metrics is not None and rep.metrics.start_equity == 10_000 * SCALE


def test_the_template_ships_with_the_package() -> None:
    """A wheel only carries non-Python files declared as package data; without it the command breaks
    in every non-editable install. (Needs ``[tool.setuptools.package-data] replay = ["*.html"]``.)"""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    declared = pyproject.get("tool", {}).get("setuptools", {}).get("package-data", {}).get("replay", [])
    assert any(Path("report_template.html").match(pattern) for pattern in declared), declared
