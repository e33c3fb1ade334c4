"""Determinism of replay: same input + config + seed => same run hash, whatever the path taken.

- the columnar fast path (absorbing chunks nobody subscribed to) and the forced per-event
  path give the same output and the same kernel state;
- how the input is cut into chunks does not matter;
- the log source adapter (``replay.source``) presents a batch exactly as the log's own codec
  decodes it (events, kinds, summaries, row filtering);
- end to end through a real log on disk: same hash twice, per-event == vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalogs.log import FlushPolicy, LogReader, LogWriter
from catalogs.schema import BatchBuilder, iter_events
from engine.events import (
    BookDeltaReceived,
    CancelRejected,
    Event,
    InstrumentUpdated,
    Kind,
    MarkPriceReceived,
    OrderRejected,
    QuoteReceived,
    SignalEmitted,
    TradeReceived,
)
from engine.identifiers import InstrumentId
from engine.kernel import Kernel
from engine.ports import EventListChunk, ListSink, chunked
from engine.runhash import run_hash
from engine.strategy import Strategy, StrategyConfig
from replay.backtest import run_backtest, seeded_rngs
from replay.source import BatchChunk, filter_symbol, symbol_matcher, take_rows
from strategies.rsi import RsiConfig, RsiStrategy

pytestmark = pytest.mark.edge

IIDS = (InstrumentId("BTCUSDT.SPOT"), InstrumentId("ETHUSDT.SPOT"), InstrumentId("BTCUSDT.USDM"))


# --------------------------------------------------------------------------- generators


@st.composite
def market_streams(
    draw: st.DrawFn, max_size: int = 120, kinds: Sequence[str] = ("trade", "quote")
) -> list[Event]:
    """Trades/quotes (and optionally other kinds) over 2-3 instruments; ts steps may be 0 or negative."""
    n = draw(st.integers(1, max_size))
    ts = 1_000_000
    price = {iid: 5_000_000_000 for iid in IIDS}
    out: list[Event] = []
    for i in range(n):
        ts += draw(st.sampled_from([0, 1, 1000, 5000, 20_000, -500]))
        iid = draw(st.sampled_from(IIDS[:2] if "book" not in kinds else IIDS))
        kind = draw(st.sampled_from(kinds))
        price[iid] += draw(st.integers(-3, 3)) * 1_000_000
        p = price[iid]
        if kind == "trade":
            out.append(
                TradeReceived(i + 1, ts - 7, ts, iid, p, draw(st.integers(1, 10**8)), i, draw(st.booleans()))
            )
        elif kind == "quote":
            out.append(QuoteReceived(i + 1, ts, ts, iid, i, p - 10**6, 5, p + 10**6, 7))
        elif kind == "book":
            bids = tuple((p - k * 10**6, draw(st.integers(0, 9))) for k in range(draw(st.integers(0, 3))))
            asks = tuple((p + k * 10**6, draw(st.integers(0, 9))) for k in range(draw(st.integers(0, 3))))
            out.append(BookDeltaReceived(i + 1, ts, ts, iid, 10 + i, 10 + i, -1, bids, asks))
        elif kind == "mark":
            out.append(MarkPriceReceived(i + 1, ts, ts, iid, p, p, p, 10, ts + 1000))
        else:
            out.append(InstrumentUpdated(i + 1, ts, ts, iid, '{"symbol":"X"}'))
    return out


class _Cfg(StrategyConfig, frozen=True, kw_only=True):
    pass


class Chaos(Strategy[_Cfg]):
    """Uses the seeded rng to set timers, emit signals and submit/cancel orders on quotes."""

    name: ClassVar[str] = "chaos"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.QUOTE})

    def __init__(self) -> None:
        super().__init__(_Cfg())

    def on_start(self) -> None:
        self.ctx.set_timer("first", self.ctx.clock.now_ns() + 3000)

    def on_quote(self, quote: QuoteReceived) -> None:
        r = int(self.ctx.rng.integers(0, 6))
        now = self.ctx.clock.now_ns()
        if r == 0:
            self.ctx.set_timer(f"t{quote.seq % 3}", now + int(self.ctx.rng.integers(0, 9000)))
        elif r == 1:
            coid = self.ctx.submit_order(quote.instrument, "BUY", 10**6)
            if self.ctx.rng.random() < 0.5:
                self.ctx.cancel_order(quote.instrument, coid)
        elif r == 2:
            self.ctx.emit_signal("px", float(self.ctx.last_price(quote.instrument) or 0), quote.instrument)

    def on_timer(self, name: str, now_ns: int) -> None:
        self.ctx.emit_signal(f"timer:{name}", float(now_ns))
        if name == "first":
            self.ctx.set_timer("first", now_ns + 7000)

    def on_order_event(self, event: Any) -> None:
        assert isinstance(event, OrderRejected | CancelRejected)
        self.ctx.emit_signal("rejected", float(event.ts_recv))


def replay(
    events: Sequence[Event],
    chunk: int,
    *,
    vectorised: bool,
    seed: int = 7,
    with_rsi: bool = True,
    with_chaos: bool = True,
) -> tuple[str, dict[str, Any], list[Event]]:
    sink = ListSink()
    kernel = Kernel(sink, vectorised=vectorised, rng_for=seeded_rngs(seed))
    if with_rsi:
        kernel.add_strategy(RsiStrategy(RsiConfig(period=3, lower=45.0, upper=55.0)))
    if with_chaos:
        kernel.add_strategy(Chaos())
    kernel.run(chunked(events, chunk))
    return kernel.run_hash, kernel.state_snapshot(), sink.events


# --------------------------------------------------------------------------- kernel level


@settings(deadline=None)
@given(market_streams(), st.integers(1, 50), st.integers(1, 50), st.booleans(), st.booleans())
def test_fast_path_per_event_path_and_chunking_agree(
    events: list[Event], chunk_a: int, chunk_b: int, with_rsi: bool, with_chaos: bool
) -> None:
    ref = replay(events, chunk_a, vectorised=False, with_rsi=with_rsi, with_chaos=with_chaos)
    fast = replay(events, chunk_a, vectorised=True, with_rsi=with_rsi, with_chaos=with_chaos)
    other = replay(events, chunk_b, vectorised=True, with_rsi=with_rsi, with_chaos=with_chaos)
    assert fast[2] == ref[2] and fast[1] == ref[1] and fast[0] == ref[0]
    assert other[0] == ref[0] and other[1] == ref[1]
    assert ref[0] == run_hash(ref[2])


@settings(deadline=None)
@given(market_streams(), st.integers(0, 2**32))
def test_same_seed_same_hash(events: list[Event], seed: int) -> None:
    assert (
        replay(events, 16, vectorised=True, seed=seed)[0] == replay(events, 5, vectorised=True, seed=seed)[0]
    )


def test_the_seed_matters_when_a_strategy_draws_from_it() -> None:
    events: list[Event] = [
        QuoteReceived(i, i * 1000, i * 1000, IIDS[0], i, 10, 1, 12, 1) for i in range(1, 200)
    ]
    hashes = {replay(events, 10, vectorised=True, seed=s, with_rsi=False)[0] for s in range(5)}
    assert len(hashes) == 5


# --------------------------------------------------------------------------- the log source adapter


def build_batch(events: Sequence[Event]) -> Any:
    builder = BatchBuilder()
    for i, ev in enumerate(events, start=1):
        builder.add(ev, i)
    return builder.build()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(market_streams(max_size=60, kinds=("trade", "quote", "book", "mark", "instrument")), st.data())
def test_batch_chunk_is_the_logs_own_decoding(events: list[Event], data: st.DataObject) -> None:
    batch = build_batch(events)
    decoded = list(iter_events(batch))
    chunk = BatchChunk(batch)
    ref = EventListChunk(decoded)
    assert list(chunk.events()) == decoded
    assert (len(chunk), chunk.first_ts, chunk.last_ts, chunk.max_ts) == (
        len(ref),
        ref.first_ts,
        ref.last_ts,
        ref.max_ts,
    )
    assert chunk.kinds == ref.kinds
    for kinds in (
        {Kind.TRADE},
        {Kind.QUOTE},
        {Kind.TRADE, Kind.AGG_TRADE},
        {Kind.BOOK_DELTA, Kind.MARK_PRICE},
    ):
        assert chunk.last_by_instrument(frozenset(kinds)) == ref.last_by_instrument(frozenset(kinds))
    rows = sorted(data.draw(st.sets(st.integers(0, len(events) - 1))))
    taken = take_rows(batch, np.asarray(rows, dtype=np.int64))
    assert list(iter_events(taken)) == [decoded[i] for i in rows]


@settings(deadline=None)
@given(
    market_streams(max_size=60, kinds=("trade", "quote", "book")),
    st.sampled_from(["BTCUSDT", "btcusdt.spot", "ETHUSDT", "XRPUSDT"]),
)
def test_symbol_filter_keeps_exactly_that_symbols_rows(events: list[Event], symbol: str) -> None:
    batch = build_batch(events)
    decoded = list(iter_events(batch))
    wanted = symbol_matcher(symbol)
    s = symbol.upper()
    expect = [e for e in decoded if (e.instrument == s if "." in s else e.instrument.rpartition(".")[0] == s)]
    kept = filter_symbol(batch, wanted)
    assert (list(iter_events(kept)) if kept is not None else []) == expect


# --------------------------------------------------------------------------- end to end, through a log on disk


def write_log(path: Path, events: Sequence[Event], batch_events: int = 37) -> Path:
    with LogWriter(path, policy=FlushPolicy(max_events=batch_events, fsync=False), monotonic_ns=None) as w:
        w.extend(events)
    return path


def _trades_and_quotes(n: int, seed: int) -> list[Event]:
    rng = np.random.default_rng(seed)
    steps = rng.integers(-2, 3, size=n)
    out: list[Event] = []
    ts = 1_700_000_000_000_000_000
    px = {IIDS[0]: 6_000_000_000_000, IIDS[1]: 300_000_000_000}
    for i in range(n):
        iid = IIDS[int(rng.integers(0, 2))]
        ts += int(rng.integers(0, 3_000_000))
        px[iid] += int(steps[i]) * 1_000_000
        if rng.random() < 0.7:
            out.append(TradeReceived(0, ts, ts, iid, px[iid], 1000, i, bool(rng.random() < 0.5)))
        else:
            out.append(QuoteReceived(0, ts, ts, iid, i, px[iid] - 10**6, 1, px[iid] + 10**6, 1))
    return out


def test_backtest_on_a_log_is_reproducible_and_path_independent(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", _trades_and_quotes(3000, 1))
    a = run_backtest(log, "rsi", ["period=5"], seed=3, out=tmp_path / "a")
    b = run_backtest(log, "rsi", ["period=5"], seed=3, out=tmp_path / "b")
    c = run_backtest(log, "rsi", ["period=5"], seed=3, out=tmp_path / "c", vectorised=False)
    assert a.signals > 0 and a.events == 3000
    assert a.run_hash == b.run_hash == c.run_hash
    with LogReader(tmp_path / "a") as r:
        out = list(r.events())
        assert run_hash(out) == a.run_hash == r.manifest.meta["run"]["run_hash"]
    for name in ("b", "c"):  # the output log's bytes are a function of the run alone, whatever the path
        assert (tmp_path / "a" / "000001.arrows").read_bytes() == (
            tmp_path / name / "000001.arrows"
        ).read_bytes()
    d = run_backtest(log, "rsi", ["period=6"], seed=3, out=tmp_path / "d")
    assert d.run_hash != a.run_hash and d.config_hash != a.config_hash


def test_trade_only_log_fast_path_in_data_mode_equals_per_event(tmp_path: Path) -> None:
    events = [e for e in _trades_and_quotes(2000, 2) if isinstance(e, TradeReceived)]
    log = write_log(tmp_path / "log", events, batch_events=100)
    fast = run_backtest(log, None, out=tmp_path / "fast")
    slow = run_backtest(log, None, out=tmp_path / "slow", vectorised=False)
    assert fast.chunks_vectorised == fast.chunks > 1 and slow.chunks_vectorised == 0
    assert fast.run_hash == slow.run_hash


def test_symbol_filtered_run_sees_only_that_symbol(tmp_path: Path) -> None:
    events = _trades_and_quotes(2000, 3)
    log = write_log(tmp_path / "all", events)
    only_eth = write_log(tmp_path / "eth", [e for e in events if e.instrument == IIDS[1]])
    filtered = run_backtest(log, "rsi", ["period=4"], symbol="ETHUSDT", out=tmp_path / "f")
    direct = run_backtest(only_eth, "rsi", ["period=4"], out=tmp_path / "d")
    assert filtered.events == direct.events == sum(e.instrument == IIDS[1] for e in events)

    def signals(run: Path) -> list[tuple[int, str, float]]:
        with LogReader(run) as r:
            return [(e.ts_recv, e.name, e.value) for e in r.events() if isinstance(e, SignalEmitted)]

    assert signals(tmp_path / "f") == signals(tmp_path / "d") and signals(tmp_path / "f")
