"""Live sessions without a network: a scripted source and venue drive paper and live sessions.

What is checked: every input reaches the input log and the kernel, every output the out log
(seq checked) and the observers; `tickloop replay audit` finds no divergence in our own
paper and live sessions and finds a tampered decision at its seq; the kill switch (file,
API) becomes an OperatorRequested input that risk acts on; a record session resumes and
continues the seq; a failing observer does not stop the session; secrets are refused from
loose files and never reach the session directory.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from catalogs.log import FlushPolicy, LogReader, LogWriter
from engine.errors import ConfigError
from engine.events import (
    CommandIssued,
    Event,
    FeedStatusChanged,
    KillSwitchEngaged,
    OperatorRequested,
    OrderAccepted,
    OrderFilled,
    RiskApproved,
    RunFinished,
    TradeReceived,
)
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import (
    AnyCommand,
    OrderStatus,
    SelfTradePreventionMode,
    SubmitOrder,
    TimeInForce,
)
from engine.ports import OutputSink
from replay.audit import audit_session, build_parts
from replay.venue_config import default_symbol_dict
from tickloop.live.config import SessionConfig
from tickloop.live.modes import paper_plan
from tickloop.live.secrets import Credentials, load_credentials, read_secrets_file
from tickloop.live.session import LiveSession, SessionPlan

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
T0 = 1_700_000_000_000_000_000


def wave(n: int, start_ts: int = T0) -> list[TradeReceived]:
    """Trades on a slow sine: RSI swings through 30 and 70 several times (rsi period 5 trades)."""
    out = []
    for i in range(n):
        px = round((60_000 + 400 * math.sin(i / 6.0)) * 100) * SCALE // 100
        out.append(TradeReceived(0, start_ts + i * 1_000_000, 0, BTC, px, SCALE // 100, i + 1, i % 2 == 0))
    return out


class ListSource:
    """An EventSource that emits its events, yielding to the loop between them, then idles."""

    def __init__(self, events: Sequence[Event], *, stop_after: bool = True) -> None:
        self.events = list(events)
        self.stop_after = stop_after
        self._closed = asyncio.Event()

    async def run(self, emit: Callable[[Event], None]) -> None:
        for ev in self.events:
            emit(ev)
            await asyncio.sleep(0)
        if self.stop_after:
            return
        await self._closed.wait()

    async def aclose(self) -> None:
        self._closed.set()


class Collector:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Event]] = []
        self.closed = False

    def on_event(self, event: Event, source: Any) -> None:
        self.seen.append((source, event))

    async def aclose(self) -> None:
        self.closed = True


class Broken:
    def on_event(self, event: Event, source: Any) -> None:
        raise RuntimeError("observer bug")

    async def aclose(self) -> None:
        raise RuntimeError("observer bug on close")


def exchange_info_file(tmp_path: Path) -> Path:
    path = tmp_path / "exchange_info.json"
    path.write_text(json.dumps({"symbols": [default_symbol_dict("BTCUSDT", SCALE // 100, SCALE // 100_000)]}))
    return path


def paper_config(tmp_path: Path, **kw: Any) -> SessionConfig:
    return SessionConfig(
        mode="paper",
        out=tmp_path / "session",
        symbols=("BTCUSDT",),
        streams=("trade",),
        strategy="rsi",
        params=("period=5", "quantity=0.01"),
        venue_flags={"exchange_info": str(exchange_info_file(tmp_path)), "balances": ["USDT=100000"]},
        **kw,
    )


def run_session(session: LiveSession) -> int:
    return asyncio.run(session.run())


def read(log: Path) -> list[Event]:
    with LogReader(log) as r:
        return list(r.events())


def paper_session(tmp_path: Path, events: Sequence[Event], observers: Sequence[Any] = (), **kw: Any) -> LiveSession:
    cfg = paper_config(tmp_path, **kw)
    plan = asyncio.run(paper_plan(cfg))
    return LiveSession(
        cfg.out,
        plan,
        ListSource(events),
        observers=observers,
        signals=False,
        kill_file=cfg.kill_file,
        max_events=cfg.max_events,
        duration_s=60.0,  # a safety net against a hung test, never reached when it passes
    )


# --------------------------------------------------------------------------- paper


def test_paper_session_logs_inputs_and_outputs_and_audits_clean(tmp_path: Path) -> None:
    obs = Collector()
    session = paper_session(tmp_path, wave(300), [obs, Broken()])
    assert run_session(session) == 0
    root = tmp_path / "session"
    inputs, outputs = read(root / "input"), read(root / "out")
    assert [e.seq for e in inputs] == list(range(1, len(inputs) + 1))
    assert sum(isinstance(e, TradeReceived) for e in inputs) == 300
    assert [e.seq for e in outputs] == list(range(1, len(outputs) + 1))
    assert isinstance(outputs[-1], RunFinished) and outputs[-1].events_in == len(inputs)
    fills = [e for e in outputs if isinstance(e, OrderFilled)]
    assert len(fills) >= 2 and any(isinstance(e, RiskApproved) for e in outputs)
    # observers saw exactly what the logs hold, in order; the broken one changed nothing
    assert [e for s, e in obs.seen if s == "input"] == inputs
    assert [e for s, e in obs.seen if s == "output"] == outputs
    assert obs.closed
    info = json.loads((root / "session.json").read_text())
    assert info["mode"] == "paper" and info["strategy"] == "rsi" and info["pid"] == os.getpid()
    assert info["params"]["period"] == 5 and info["stop_reason"] == "source ended"
    report = audit_session(root)
    assert report.divergences == 0 and report.complete
    assert report.compared == report.recorded_decisions == sum(
        isinstance(e, CommandIssued | RiskApproved) for e in outputs
    )


def _rewrite(log: Path, change: Callable[[Event], Event]) -> None:
    events = read(log)
    for p in log.iterdir():
        p.unlink()
    log.rmdir()
    with LogWriter(log, monotonic_ns=None) as w:
        for ev in events:
            w.append(change(ev))


def test_audit_reports_a_tampered_command_at_its_seq(tmp_path: Path) -> None:
    import msgspec

    assert run_session(paper_session(tmp_path, wave(300))) == 0
    root = tmp_path / "session"
    commands = [e for e in read(root / "out") if isinstance(e, CommandIssued)]
    target = commands[1]

    def change(ev: Event) -> Event:
        if ev.seq != target.seq:
            return ev
        assert isinstance(ev, CommandIssued) and isinstance(ev.command, SubmitOrder)
        return msgspec.structs.replace(ev, command=msgspec.structs.replace(ev.command, quantity=ev.command.quantity + 1))

    _rewrite(root / "out", change)
    report = audit_session(root)
    assert report.divergences >= 1 and report.first is not None
    assert report.first.seq == target.seq
    assert report.first.recorded is not None and report.first.replayed is not None
    assert report.first.recorded["command"]["quantity"] == report.first.replayed["command"]["quantity"] + 1


def test_max_events_stops_the_session(tmp_path: Path) -> None:
    session = paper_session(tmp_path, wave(50), max_events=20)
    session.source = ListSource(wave(50), stop_after=False)
    assert run_session(session) == 0
    assert session.stop_reason == "max events (20)"
    assert session.inputs == 20


# --------------------------------------------------------------------------- live (scripted venue)


class ScriptedLiveVenue:
    """A live venue's shape: ``handle`` returns [] and answers later through ``submit``."""

    def __init__(self, submit: Callable[[Event], None]) -> None:
        self.submit = submit
        self.handled: list[AnyCommand] = []
        self.order_id = 0

    @property
    def market_kinds(self) -> frozenset[int]:
        return frozenset()

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        return []

    def handle(self, command: AnyCommand, ts: int) -> list[Event]:
        self.handled.append(command)
        if isinstance(command, SubmitOrder):
            asyncio.get_running_loop().call_soon(self._answer, command)
        return []

    def _answer(self, cmd: SubmitOrder) -> None:
        self.order_id += 1
        cid = cmd.client_order_id or ""
        px = 60_000 * SCALE
        qty = cmd.quantity or 0
        self.submit(
            OrderAccepted(
                0, 0, 0, cmd.instrument, self.order_id, cid, cmd.side, cmd.order_type, TimeInForce.GTC, qty, 0, 0,
                0, 0, -1, OrderStatus.NEW, 0, SelfTradePreventionMode.NONE, self.order_id * 2,
            )
        )
        self.submit(
            OrderFilled(
                0, 0, 0, cmd.instrument, self.order_id, cid, cmd.side, px, qty, px * qty // SCALE, qty,
                px * qty // SCALE, OrderStatus.FILLED, 0, "USDT", self.order_id, False, -1, self.order_id * 2 + 1,
            )
        )


def live_config() -> dict[str, Any]:
    from engine.strategy import config_dict
    from strategies.registry import build_config

    return {
        "mode": "live",
        "strategy": "rsi",
        "params": config_dict(build_config("rsi", ["period=5"])),
        "seed": 0,
        "symbols": ["BTCUSDT"],
        "streams": ["trade"],
        "venue": {"name": "binance", "base_url": "http://127.0.0.1:1"},
        "risk": {"engine": "engine.risk", "quote_asset": "USDT", "starting_equity": 10**5 * SCALE, "initial_positions": {}},
    }


def live_session(
    tmp_path: Path, events: Sequence[Event], *, signals: bool = False, **kw: Any
) -> tuple[LiveSession, list[ScriptedLiveVenue]]:
    venues: list[ScriptedLiveVenue] = []
    config = live_config()

    def build(sink: OutputSink, submit: Callable[[Event], None]) -> Any:
        venue = ScriptedLiveVenue(submit)
        venues.append(venue)
        return build_parts(config, venue).kernel(sink)

    plan = SessionPlan("live", config, (), {"symbols": ["BTCUSDT"]}, build)
    return LiveSession(tmp_path / "session", plan, ListSource(events), signals=signals, **kw), venues


def test_live_session_venue_answers_are_inputs_and_the_audit_is_clean(tmp_path: Path) -> None:
    session, venues = live_session(tmp_path, wave(300))
    assert run_session(session) == 0
    root = tmp_path / "session"
    inputs, outputs = read(root / "input"), read(root / "out")
    fills_in = [e for e in inputs if isinstance(e, OrderFilled)]
    assert len(fills_in) >= 2 and len(fills_in) == len(venues[0].handled)
    assert [e.client_order_id for e in outputs if isinstance(e, OrderFilled)] == [e.client_order_id for e in fills_in]
    report = audit_session(root)
    assert report.divergences == 0 and report.mode == "live" and report.compared > 0


def test_kill_file_and_api_kill_are_inputs_that_risk_acts_on(tmp_path: Path) -> None:
    kill = tmp_path / "KILL"
    kill.write_text("operator says stop\n")
    session, venues = live_session(tmp_path, wave(300), kill_file=kill)
    session.request_kill("dashboard button")
    assert run_session(session) == 0
    root = tmp_path / "session"
    inputs, outputs = read(root / "input"), read(root / "out")
    ops = [e for e in inputs if isinstance(e, OperatorRequested)]
    assert [(e.action, e.origin, e.reason) for e in ops] == [
        ("kill", "http", "dashboard button"),  # asked before the start: goes in first
        ("kill", "file", "operator says stop"),  # the file was there at start: a pull too
    ]
    assert any(isinstance(e, KillSwitchEngaged) for e in outputs)
    assert not venues[0].handled  # killed before the first order: every order was denied
    assert audit_session(root).divergences == 0


def test_a_live_session_directory_must_be_new(tmp_path: Path) -> None:
    (tmp_path / "session").mkdir()
    (tmp_path / "session" / "junk").write_text("x")
    session, _ = live_session(tmp_path, wave(5))
    with pytest.raises(ConfigError, match="new"):
        run_session(session)


# --------------------------------------------------------------------------- record


def test_record_session_resumes_and_continues_the_seq(tmp_path: Path) -> None:
    plan = SessionPlan("record", info={"symbols": ["BTCUSDT"]})
    status = FeedStatusChanged(0, 0, 0, InstrumentId(""), "combined", "connected")
    for batch in (wave(40), wave(25, T0 + 10**9)):
        s = LiveSession(tmp_path / "rec", plan, ListSource([status, *batch]), signals=False, policy=FlushPolicy(max_events=7))
        assert run_session(s) == 0
    events = read(tmp_path / "rec" / "input")
    assert [e.seq for e in events] == list(range(1, 68))
    assert all(e.ts_recv > 0 for e in events)
    info = json.loads((tmp_path / "rec" / "session.json").read_text())
    assert [s["first_seq"] for s in info["starts"]] == [1, 42]


# --------------------------------------------------------------------------- secrets


def test_secrets_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text('api_key = "K-abcdefgh12345"\napi_secret = "S-topsecret-98765"\n')
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secrets_file(path)
    path.chmod(0o600)
    creds = read_secrets_file(path)
    assert (creds.api_key, creds.api_secret) == ("K-abcdefgh12345", "S-topsecret-98765")
    assert "topsecret" not in repr(creds) and "topsecret" not in str(creds) and "abcdefgh" not in repr(creds)


def test_secrets_from_environment_and_half_pairs(tmp_path: Path) -> None:
    assert load_credentials(None, {}) is None
    creds = load_credentials(None, {"TICKLOOP_API_KEY": "k", "TICKLOOP_API_SECRET": "s"})
    assert creds == Credentials("k", "s", "environment")
    with pytest.raises(ConfigError, match="TICKLOOP_API_SECRET"):
        load_credentials(None, {"TICKLOOP_API_KEY": "k"})
    bad = tmp_path / "bad.toml"
    bad.write_text('api_key = "only-the-key"\n')
    bad.chmod(0o600)
    with pytest.raises(ConfigError, match="api_secret"):
        load_credentials(bad)


class SignalingSource(ListSource):
    """Emits events, sends this process SIGUSR1 midway and SIGTERM at the end."""

    async def run(self, emit: Callable[[Event], None]) -> None:
        import signal

        half = len(self.events) // 2
        for i, ev in enumerate(self.events):
            if i == half:
                os.kill(os.getpid(), signal.SIGUSR1)
                await asyncio.sleep(0.05)  # the handler runs on the loop
            emit(ev)
            await asyncio.sleep(0)
        os.kill(os.getpid(), signal.SIGTERM)
        await self._closed.wait()


def test_sigusr1_pulls_the_kill_switch_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    session, _ = live_session(tmp_path, [], signals=True)
    session.source = SignalingSource(wave(100))
    assert run_session(session) == 0
    assert session.stop_reason == "SIGTERM"
    root = tmp_path / "session"
    ops = [e for e in read(root / "input") if isinstance(e, OperatorRequested)]
    assert [(e.action, e.origin, e.reason) for e in ops] == [("kill", "signal", "SIGUSR1")]
    outputs = read(root / "out")
    assert any(isinstance(e, KillSwitchEngaged) for e in outputs) and isinstance(outputs[-1], RunFinished)
    assert audit_session(root).divergences == 0


# --------------------------------------------------------------------------- config


def _args(**kw: Any) -> Any:
    import argparse

    from tickloop.live.config import add_session_arguments

    parser = argparse.ArgumentParser()
    add_session_arguments(parser, "paper")
    argv: list[str] = []
    for key, value in kw.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


def test_config_file_with_flags_over_it(tmp_path: Path) -> None:
    from tickloop.live.config import session_config

    path = tmp_path / "session.toml"
    path.write_text(
        'symbols = ["btcusdt", "ethusdt"]\nstrategy = "rsi"\nout = "s1"\nduration = 5\n'
        '[params]\nperiod = 9\n[venue]\nfees = "vip1"\nbalances = { USDT = "500" }\n'
    )
    cfg = session_config(_args(config=path, out=tmp_path / "s2", streams="trade"), "paper")
    assert cfg.symbols == ("BTCUSDT", "ETHUSDT") and cfg.streams == ("trade",)
    assert cfg.out == tmp_path / "s2" and cfg.duration_s == 5.0 and cfg.params == ("period=9",)
    assert cfg.venue_flags == {"fees": "vip1", "balances": ["USDT=500"]}
    path.write_text('symbols = "btcusdt"\napi_secret = "x"\n')
    with pytest.raises(ConfigError, match="--secrets"):
        session_config(_args(config=path, out=tmp_path / "s3"), "paper")
    with pytest.raises(ConfigError, match="--strategy"):
        session_config(_args(symbols="btcusdt", out=tmp_path / "s4"), "paper")


def test_live_refuses_a_loose_secrets_file_before_connecting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tickloop.cli import main

    secrets = tmp_path / "secrets.toml"
    secrets.write_text('api_key = "k"\napi_secret = "s3cr3t-value"\n')
    secrets.chmod(0o640)
    argv = ["live", "--symbols", "btcusdt", "--strategy", "rsi", "--out", str(tmp_path / "s"), "--secrets", str(secrets)]
    argv += ["--base-url", "http://127.0.0.1:9", "--ws-url", "ws://127.0.0.1:9"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "chmod 600" in err and "s3cr3t" not in err
    assert not (tmp_path / "s").exists()
