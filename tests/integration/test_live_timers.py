"""A real ``tickloop paper`` session: a timer due in a quiet market fires on time, and the audit agrees.

The demo server (``replay.serve``) plays one second of its synthetic market once the session
subscribes, then goes quiet. The test strategy (``timer_probe``, registered here: the launcher
below registers it in the subprocess before handing over to ``tickloop.cli``) sets a timer
``delay_ms`` after the first trade it sees, i.e. after the market has ended, and sends a
market order when it fires. With a ``const`` simulated latency, the order's arrival at the
venue and the venue's answer are due in the quiet market too. Nothing but the session's
recorded ``ClockTicked`` inputs can run them: the test checks the recorded stamps (timer at
its due time, arrival and answer at their latency-given times), the ticks in the input log,
and that ``tickloop replay audit`` of the session reports zero divergences. No wall-clock
duration is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest

from catalogs.log import LogReader
from engine.events import (
    ClockTicked,
    CommandIssued,
    Event,
    Kind,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    TimerFired,
    TradeReceived,
)
from engine.fixed import parse_e8
from engine.identifiers import InstrumentId
from engine.orders import OrderSide, SubmitOrder
from engine.strategy import Strategy, StrategyConfig

REPO = Path(__file__).resolve().parents[2]
NAME = "timer_probe"
DELAY_MS = 1_500
ORDER_MS, RESPONSE_MS = 200, 300
MS = 1_000_000
LAUNCHER = (
    "import sys\n"
    "from tests.integration.test_live_timers import register\n"
    "register()\n"
    "from tickloop.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class TimerProbeConfig(StrategyConfig, frozen=True, kw_only=True):
    """``delay_ms`` after the first trade: one market BUY of ``quantity``."""

    delay_ms: int = DELAY_MS
    quantity: Decimal = Decimal("0.001")


class TimerProbe(Strategy[TimerProbeConfig]):
    """A time-based action: arms timer ``exit`` on the first trade, trades when it fires."""

    name: ClassVar[str] = NAME
    subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.TRADE})

    def __init__(self, config: TimerProbeConfig) -> None:
        super().__init__(config)
        self._instrument: InstrumentId | None = None

    def on_trade(self, trade: TradeReceived) -> None:
        if self._instrument is None:
            self._instrument = trade.instrument
            self.ctx.set_timer("exit", trade.ts_recv + self.config.delay_ms * MS)

    def on_timer(self, name: str, now_ns: int) -> None:
        assert self._instrument is not None
        self.ctx.submit_order(self._instrument, OrderSide.BUY, parse_e8(format(self.config.quantity, "f")))


def register() -> None:
    """Make ``timer_probe`` known to ``strategies.registry`` (in this process)."""
    from strategies.registry import STRATEGIES, StrategySpec

    spec = StrategySpec(NAME, TimerProbe, TimerProbeConfig, "test: a timer after the first trade, then one order")
    cast(dict[str, StrategySpec], STRATEGIES)[NAME] = spec


def tickloop(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def events(log: Path) -> list[Event]:
    with LogReader(log) as r:
        return list(r.events())


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from replay.serve import ServerConfig, serve_in_thread

    out = tmp_path_factory.mktemp("timers") / "paper"
    config = ServerConfig(demo=True, speed=1.0, seed=7, demo_duration_s=1.0, wait_for_client=True)
    with serve_in_thread(config) as info:
        proc = tickloop(
            "paper", "--symbols", "btcusdt", "--base-url", info.base_url, "--ws-url", info.ws_url,
            "--out", str(out), "--duration", "6", "--strategy", NAME, "--param", f"delay_ms={DELAY_MS}",
            "--latency", f"const:{ORDER_MS}ms,{RESPONSE_MS}ms",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["exit"] == 0 and summary["clock_ticks"] >= 1, summary
    return out


def test_a_timer_in_a_quiet_market_fires_at_its_due_time_from_a_recorded_tick(session: Path) -> None:
    inputs, outputs = events(session / "input"), events(session / "out")
    trades = [e for e in inputs if isinstance(e, TradeReceived)]
    assert trades, "the demo market sent no trade"
    due = trades[0].ts_recv + DELAY_MS * MS
    assert trades[-1].ts_recv < due, "the market was not quiet when the timer came due"

    fired = [e for e in outputs if isinstance(e, TimerFired)]
    assert [(e.name, e.ts_event, e.ts_recv) for e in fired] == [(f"{NAME}:exit", due, due)]
    # nothing but a tick came in at or after the due time before the timer ran
    after = [e for e in inputs if e.ts_recv >= due]
    assert after and isinstance(after[0], ClockTicked) and after[0].due == due

    # the order sent from the timer, its simulated arrival and the venue's answer, all on time
    sent = [e for e in outputs if isinstance(e, CommandIssued)]
    assert len(sent) == 1 and sent[0].ts_recv == due and isinstance(sent[0].command, SubmitOrder)
    coid = sent[0].command.client_order_id
    answers = [e for e in outputs if isinstance(e, OrderAccepted | OrderFilled | OrderRejected)]
    assert answers and {e.client_order_id for e in answers} == {coid}
    assert {e.ts_recv for e in answers} == {due + (ORDER_MS + RESPONSE_MS) * MS}
    # one tick per deadline: the timer, the arrival, the answer (a tick that woke late may run
    # two of them at once; each still runs at its own due time, as the stamps above show)
    dues = [e.due for e in inputs if isinstance(e, ClockTicked)]
    assert dues[0] == due and dues[-1] == due + (ORDER_MS + RESPONSE_MS) * MS
    assert set(dues) <= {due, due + ORDER_MS * MS, due + (ORDER_MS + RESPONSE_MS) * MS}


def test_ticks_are_only_written_when_something_is_due_and_never_backwards(session: Path) -> None:
    inputs = events(session / "input")
    previous = 0
    last_tick_ts = 0
    for ev in inputs:
        if isinstance(ev, ClockTicked):
            assert ev.instrument == "" and ev.ts_event == ev.ts_recv
            assert ev.ts_recv >= previous, "a tick went backwards"
            assert last_tick_ts < ev.due <= ev.ts_recv, "a tick without a new deadline due"
            last_tick_ts = ev.ts_recv
        previous = max(previous, ev.ts_recv)
    assert [e.seq for e in inputs] == list(range(1, len(inputs) + 1))


def test_the_audit_replays_the_ticked_session_with_zero_divergence(session: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audit = tickloop("replay", "audit", str(session))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report: dict[str, Any] = json.loads(audit.stdout.strip().splitlines()[-1])
    assert report["divergences"] == 0 and report["compared"] >= 2 and report["complete"], report

    from replay.audit import replay_session
    from strategies.registry import STRATEGIES

    monkeypatch.setitem(cast(dict[str, Any], STRATEGIES), NAME, None)  # restored after the test
    register()
    _, sink = replay_session(session)
    replayed: list[Event] = list(getattr(sink, "events"))  # noqa: B009 - ListSink, typed as OutputSink
    assert replayed == events(session / "out")  # every output, stamps included, not only decisions
