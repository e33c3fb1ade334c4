"""Differential test: our simulated venue against nautilus_trader 1.221.0 on the same L2 book and orders.

Both venues get the same depth data (a snapshot, then diffs; no bookTicker, and trades only in the
one scenario about them) and the same MARKET / LIMIT (GTC, IOC, FOK) orders and cancels at the same
nanosecond, with no latency, no price impact and a flat fee. We compare, per order, the fills (price, quantity, liquidity side), the
commissions, a coarse final state (open / filled / closed / rejected), then the final balances per
asset (total, free, locked) and the final top of book. Everything is an exact e8 int: nautilus's
Decimals are converted without rounding (``_nautilus_side._e8`` refuses anything finer than 1e-8).

Fair-comparison settings (each choice is explained in docs/nautilus-differences.md):

* our ``consume_liquidity=False``: nautilus 1.221.0 never removes what an order took from its book;
* commission on the quote notional for both sides and both order sides (nautilus charges the quote
  currency on a CASH account), truncated to 1e-8 on both sides (nautilus gets a tiny ``FeeModel``
  with our integer rule, because its own model rounds a binary float);
* nautilus: CASH account, ``L2_MBP`` book, default fill model, no latency model, ``OmsType.HEDGING``
  (with NETTING its cash account caps a sale's quote at the open position), ``trade_execution`` off
  except in the trade scenario, data fed as ``OrderBookDeltas``.

Scenarios that switch one of these back to the default show the difference it makes. Every
difference the comparison finds must be in ``EXPECTED`` (keyed by scenario), whose entries carry the
reason, who owns it (a nautilus limitation or our choice), the section of the doc that explains
it, and a check that the difference is *exactly* the documented one; an unexpected difference, an
allow-list entry that no longer matches anything, or an entry whose check fails, fails the test.

Where nautilus comes from: in-process when ``nautilus_trader`` is importable (the ``compare`` extra
installed into the same venv); or, when ``TICKLOOP_NAUTILUS_PYTHON`` names another interpreter, by
running ``_nautilus_side.py`` there in a subprocess (one process for all synthetic scenarios).
Without either, the tests marked ``nautilus`` skip.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from catalogs.importers import BinanceStreamParser
from engine.book import L2Book
from engine.booksync import BookSync
from engine.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    OrderFilled,
    OrderRejected,
    TradeReceived,
)
from engine.fixed import SCALE, parse_e8
from engine.identifiers import InstrumentId, Market, instrument_id
from engine.orders import CancelOrder, Liquidity, OrderSide, OrderStatus, OrderType, SubmitOrder, TimeInForce
from tests.conftest import binance_file
from venues.sim.venue import FlatFee, SimConfig, SimVenue, SymbolSpec

NAUTILUS_VERSION = "1.221.0"
"""The allow-list below describes this version; another version skips rather than guessing."""
SIDE_SCRIPT = Path(__file__).with_name("_nautilus_side.py")
DOC = Path(__file__).resolve().parents[2] / "docs" / "nautilus-differences.md"
REAL_FILE = "spot/hftbacktest_2024-08-08/btcusdt_20240808.gz"
REAL_MINUTES = 6.0
"""The whole first file of the recording (local 23:54:14 -> 24:00)."""
REAL_SIZE_PRECISION = 6
"""Orders step 0.00001 BTC, but three far-away levels of the recording carry 6 decimals (old orders)."""

SYMBOL, BASE, QUOTE = "BTCUSDT", "BTC", "USDT"
INSTRUMENT: InstrumentId = instrument_id(SYMBOL, Market.SPOT)
PRICE_PRECISION, SIZE_PRECISION = 2, 5
TICK: int = 10 ** (8 - PRICE_PRECISION)
STEP: int = 10 ** (8 - SIZE_PRECISION)
FEE_E8 = 100_000  # 10 bps, maker and taker
MS = 1_000_000
BOOK_DEPTH = 5


def d(text: str) -> int:
    """Decimal text -> e8 int (readable scenario tables)."""
    return parse_e8(text)


# =============================================================================== scenarios


@dataclass(frozen=True)
class Scenario:
    """One timeline fed to both venues; items are plain dicts in ``_nautilus_side``'s JSON shape.

    ``nautilus_fees``: "exact" (our integer rule, injected into nautilus) or "nautilus" (its own
    float model). ``our_fees``: "quote" (quote notional on both sides, like nautilus) or "binance"
    (our default ``FlatFee``: the received asset). ``consume_liquidity``: our SimConfig switch.
    ``oms``: nautilus's order management: HEDGING (each order its own position, so its cash
    account never caps a fill's quote amount at an opposite position) or NETTING.
    ``size_precision``: nautilus needs every book size at the instrument's precision.
    """

    name: str
    timeline: tuple[dict[str, Any], ...]
    balances: dict[str, int] = field(default_factory=lambda: {BASE: d("100"), QUOTE: d("10000000")})
    nautilus_fees: str = "exact"
    our_fees: str = "quote"
    consume_liquidity: bool = False
    oms: str = "HEDGING"
    size_precision: int = SIZE_PRECISION
    trade_execution: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": SYMBOL,
            "base": BASE,
            "quote": QUOTE,
            "price_precision": PRICE_PRECISION,
            "size_precision": self.size_precision,
            "maker_fee_e8": FEE_E8,
            "taker_fee_e8": FEE_E8,
            "fee_model": self.nautilus_fees,
            "oms": self.oms,
            "trade_execution": self.trade_execution,
            "balances": self.balances,
            "book_depth": BOOK_DEPTH,
            "timeline": list(self.timeline),
        }


def snapshot(ts: int, bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {"ts": ts, "book": {"snapshot": True, "bids": _lv(bids), "asks": _lv(asks)}}


def delta(ts: int, bids: Sequence[tuple[str, str]] = (), asks: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    return {"ts": ts, "book": {"snapshot": False, "bids": _lv(bids), "asks": _lv(asks)}}


def _lv(levels: Sequence[tuple[str, str]]) -> list[list[int]]:
    return [[d(p), d(q)] for p, q in levels]


def trade(ts: int, price: str, qty: str, buyer_maker: bool) -> dict[str, Any]:
    return {"ts": ts, "trade": {"price": d(price), "qty": d(qty), "buyer_maker": buyer_maker}}


def market(ts: int, oid: str, side: str, qty: str) -> dict[str, Any]:
    return {"ts": ts, "submit": {"id": oid, "side": side, "type": "MARKET", "qty": d(qty), "price": 0, "tif": "GTC"}}


def limit(ts: int, oid: str, side: str, qty: str, price: str, tif: str = "GTC") -> dict[str, Any]:
    return {"ts": ts, "submit": {"id": oid, "side": side, "type": "LIMIT", "qty": d(qty), "price": d(price), "tif": tif}}


def cancel(ts: int, oid: str) -> dict[str, Any]:
    return {"ts": ts, "cancel": {"id": oid}}


# The synthetic book: three levels a side, sizes chosen so every walk is checkable by hand.
BIDS0 = (("100.00", "0.5"), ("99.50", "1.0"), ("99.00", "2.0"))
ASKS0 = (("101.00", "0.5"), ("101.50", "1.0"), ("102.00", "2.0"))


def _t(n: int) -> int:
    """Scenario time n ms after 2024-08-08 00:00 UTC. Book items sit on whole ms, orders between them."""
    return 1_723_075_200_000 * MS + n * MS


def _synthetic() -> tuple[Scenario, ...]:
    s0 = snapshot(_t(0), BIDS0, ASKS0)
    end = delta(_t(900), bids=(("98.00", "1.0"),))
    return (
        Scenario("market_walk", (
            s0,
            market(_t(10) + 1, "mb", "BUY", "1.2"),    # 0.5 @ 101.00, 0.7 @ 101.50
            market(_t(20) + 1, "ms", "SELL", "2.0"),   # 0.5 @ 100.00, 1.0 @ 99.50, 0.5 @ 99.00
            end,
        )),
        Scenario("limit_ioc", (
            s0,
            limit(_t(10) + 1, "ib", "BUY", "1.0", "101.20", "IOC"),   # 0.5 @ 101.00, rest expires
            limit(_t(20) + 1, "is", "SELL", "3.0", "99.50", "IOC"),   # 0.5 @ 100.00, 1.0 @ 99.50
            limit(_t(30) + 1, "in", "BUY", "1.0", "100.90", "IOC"),   # nothing
            end,
        )),
        Scenario("limit_fok", (
            s0,
            limit(_t(10) + 1, "fb", "BUY", "1.5", "101.50", "FOK"),      # 0.5 @ 101.00, 1.0 @ 101.50
            limit(_t(20) + 1, "fx", "BUY", "1.50001", "101.50", "FOK"),  # one step short: nothing
            limit(_t(30) + 1, "fs", "SELL", "3.5", "99.00", "FOK"),      # every bid level
            end,
        )),
        Scenario("gtc_takes_then_rests", (
            s0,
            limit(_t(10) + 1, "g", "BUY", "1.0", "101.20"),  # 0.5 @ 101.00 taker, 0.5 rests at 101.20
            delta(_t(20), asks=(("101.00", "0"),)),          # the market shows the level we took gone
            delta(_t(30), asks=(("101.10", "0.3"),)),        # an ask through our bid: 0.3 maker @ 101.20
            delta(_t(40), asks=(("101.10", "0"), ("101.20", "1.0"))),  # an ask at our bid: 0.2 maker
            end,
        )),
        Scenario("passive_buy_crossed_by_book", (
            s0,
            limit(_t(10) + 1, "pb", "BUY", "1.0", "100.50"),  # inside the spread: rests
            delta(_t(20), asks=(("101.00", "0"), ("100.40", "0.4"), ("100.50", "0.3"))),  # 0.4 + 0.3 @ 100.50
            delta(_t(30), asks=(("100.40", "0"), ("100.50", "0"), ("100.45", "1.0"))),    # 0.3 @ 100.50
            end,
        )),
        Scenario("passive_sell_crossed_by_book", (
            s0,
            limit(_t(10) + 1, "ps", "SELL", "1.0", "100.80"),  # inside the spread: rests
            delta(_t(20), bids=(("100.00", "0"), ("100.90", "0.6"))),   # 0.6 @ 100.80
            delta(_t(30), bids=(("100.90", "0"), ("100.80", "2.0"))),   # an equal bid: 0.4 @ 100.80
            end,
        )),
        Scenario("cancel_resting", (
            s0,
            limit(_t(10) + 1, "cb", "BUY", "1.0", "99.80"),
            cancel(_t(15) + 1, "cb"),
            limit(_t(16) + 1, "cs", "SELL", "0.5", "100.90"),
            delta(_t(20), bids=(("100.00", "0"), ("100.95", "0.2"))),  # 0.2 @ 100.90
            delta(_t(30), bids=(("100.95", "0"), ("100.00", "0.5"))),
            cancel(_t(40) + 1, "cs"),
            end,
        )),
        Scenario("market_exhausts_book", (
            s0,
            market(_t(10) + 1, "xs", "SELL", "5.0"),  # 3.5 BTC of bids, then nothing
            end,
        )),
        Scenario("resting_orders_cross_at_once", (
            s0,
            limit(_t(10) + 1, "r1", "BUY", "0.6", "100.50"),
            limit(_t(10) + 2, "r2", "BUY", "0.6", "100.40"),
            delta(_t(20), asks=(("101.00", "0"), ("100.30", "0.8"))),  # one level of 0.8 crosses both
            delta(_t(30), asks=(("100.30", "0"), ("101.00", "0.5"))),
            cancel(_t(40) + 1, "r1"),
            cancel(_t(40) + 2, "r2"),
            end,
        )),
        Scenario("consume_liquidity_on", (
            s0,
            market(_t(10) + 1, "c1", "BUY", "0.8"),  # 0.5 @ 101.00, 0.3 @ 101.50
            market(_t(20) + 1, "c2", "BUY", "0.8"),  # no book update in between
            end,
        ), consume_liquidity=True),
        Scenario("nautilus_float_fee", (
            snapshot(_t(0), (("99.87", "1.0"),), (("101.23", "1.0"),)),
            limit(_t(10) + 1, "f1", "BUY", "0.12347", "101.23", "IOC"),   # fee 0.0124988681: rounds up
            limit(_t(20) + 1, "f2", "BUY", "0.1", "101.23", "IOC"),       # fee 0.010123: exact
            limit(_t(30) + 1, "f3", "SELL", "0.33333", "99.87", "IOC"),   # fee 0.0332896671: rounds up
            limit(_t(40) + 1, "f4", "SELL", "0.12344", "99.87", "IOC"),   # fee 0.0123279528: rounds down
            end,
        ), nautilus_fees="nautilus"),
        Scenario("binance_commission_asset", (
            s0,
            market(_t(10) + 1, "bb", "BUY", "1.2"),
            market(_t(20) + 1, "bs", "SELL", "2.0"),
            end,
        ), our_fees="binance"),
        Scenario("partial_fill_then_open", (
            s0,
            limit(_t(10) + 1, "po", "BUY", "1.0", "101.20"),  # 0.5 taker, 0.5 rests and stays open
            delta(_t(20), asks=(("101.00", "0"),)),
            end,
        )),
        Scenario("buy_and_sell_resting_at_once", (
            s0,
            limit(_t(5) + 1, "ot", "BUY", "0.1", "101.00", "IOC"),  # a fill to compare besides the locks
            limit(_t(10) + 1, "ob", "BUY", "1.0", "99.80"),
            limit(_t(10) + 2, "os", "SELL", "0.5", "101.40"),
            cancel(_t(20) + 1, "ob"),
            cancel(_t(20) + 2, "os"),  # nothing is open now
            end,
        )),
        Scenario("trade_through_resting_bid", (
            s0,
            limit(_t(10) + 1, "tb", "BUY", "1.0", "100.50"),  # inside the spread: rests
            trade(_t(20), "100.40", "0.3", True),             # a seller prints through our bid
            trade(_t(30), "100.50", "0.2", True),             # a seller prints at our bid
            cancel(_t(40) + 1, "tb"),
            end,
        ), trade_execution=True),
        Scenario("insufficient_balance_limit", (
            s0,
            limit(_t(10) + 1, "nl", "BUY", "1.0", "99.00"),  # 99 USDT needed, 50 held: refused
            market(_t(20) + 1, "ok", "SELL", "0.5"),
            end,
        ), balances={BASE: d("1.0"), QUOTE: d("50")}),
        Scenario("market_sell_beyond_balance", (
            s0,
            market(_t(10) + 1, "nb", "SELL", "2.0"),    # 1.0 BTC held
            market(_t(20) + 1, "after", "SELL", "0.1"),
            end,
        ), balances={BASE: d("1.0"), QUOTE: d("50")}),
        Scenario("netting_position_flip", (
            s0,
            market(_t(10) + 1, "mb", "BUY", "1.2"),
            market(_t(20) + 1, "ms", "SELL", "2.0"),  # sells 0.8 more than the 1.2 just bought
            end,
        ), oms="NETTING"),
    )


SYNTHETIC = {s.name: s for s in _synthetic()}


# =============================================================================== outcomes


@dataclass(frozen=True)
class Fill:
    price: int
    qty: int
    liquidity: str  # "MAKER" | "TAKER"
    commission: int
    asset: str


@dataclass(frozen=True)
class OrderOutcome:
    state: str  # "open" | "filled" | "closed" | "rejected"
    fills: tuple[Fill, ...]


@dataclass(frozen=True)
class Outcome:
    """What one venue did with one scenario, in comparable terms (e8 ints)."""

    orders: dict[str, OrderOutcome]
    balances: dict[str, tuple[int, int, int]]  # asset -> (total, free, locked)
    book: dict[str, tuple[tuple[int, int], ...]]  # "bids"/"asks" -> top levels
    raw_status: dict[str, str]


_OUR_STATE = {
    OrderStatus.NEW: "open",
    OrderStatus.PARTIALLY_FILLED: "open",
    OrderStatus.FILLED: "filled",
    OrderStatus.CANCELED: "closed",
    OrderStatus.EXPIRED: "closed",
    OrderStatus.EXPIRED_IN_MATCH: "closed",
    OrderStatus.REJECTED: "rejected",
}
# nautilus has no EXPIRED for IOC/FOK leftovers: it CANCELs them. Both mean "closed, rest unfilled".
_THEIR_STATE = {
    "INITIALIZED": "open",
    "SUBMITTED": "open",
    "ACCEPTED": "open",
    "PARTIALLY_FILLED": "open",
    "FILLED": "filled",
    "CANCELED": "closed",
    "EXPIRED": "closed",
    "REJECTED": "rejected",
    "DENIED": "rejected",
}


class QuoteFee:
    """Flat rate on the quote notional for BUY and SELL alike, truncated: nautilus's CASH-account charge."""

    def __init__(self, maker_rate_e8: int, taker_rate_e8: int) -> None:
        self.maker_rate_e8 = maker_rate_e8
        self.taker_rate_e8 = taker_rate_e8

    def commission(
        self,
        liquidity: Liquidity,
        quote_notional_e8: int,
        *,
        side: OrderSide,
        qty_e8: int,
        price_e8: int,
        base_asset: str,
        quote_asset: str,
        ts: int,
        pay_in_bnb: bool = True,
    ) -> tuple[str, int]:
        rate = self.maker_rate_e8 if liquidity is Liquidity.MAKER else self.taker_rate_e8
        return quote_asset, quote_notional_e8 * rate // SCALE


def run_ours(sc: Scenario) -> Outcome:
    """Feed the scenario to SimVenue; collect fills by client order id, final states and balances."""
    spec = SymbolSpec(instrument=INSTRUMENT, symbol=SYMBOL, base_asset=BASE, quote_asset=QUOTE)
    fees = QuoteFee(FEE_E8, FEE_E8) if sc.our_fees == "quote" else FlatFee(FEE_E8, FEE_E8)
    venue = SimVenue(
        [spec], dict(sc.balances), config=SimConfig(consume_liquidity=sc.consume_liquidity), fee_model=fees
    )
    events: list[Event] = []
    ids: list[str] = []
    for item in sc.timeline:
        ts = int(item["ts"])
        if "book" in item:
            events += venue.on_market(_book_event(item["book"], ts), ts)
        elif "trade" in item:
            t = item["trade"]
            tick = TradeReceived(0, ts, ts, INSTRUMENT, int(t["price"]), int(t["qty"]), ts, bool(t["buyer_maker"]))
            events += venue.on_market(tick, ts)
        elif "submit" in item:
            ids.append(item["submit"]["id"])
            events += venue.handle(_submit(item["submit"]), ts)
        else:
            events += venue.handle(CancelOrder(INSTRUMENT, orig_client_order_id=item["cancel"]["id"]), ts)
    fills: dict[str, list[Fill]] = {oid: [] for oid in ids}
    rejected = set()
    for ev in events:
        if isinstance(ev, OrderFilled):
            liq = "MAKER" if ev.maker else "TAKER"
            fills[ev.client_order_id].append(Fill(ev.price, ev.qty, liq, ev.commission, ev.commission_asset))
        elif isinstance(ev, OrderRejected):
            rejected.add(ev.client_order_id)
    orders: dict[str, OrderOutcome] = {}
    raw: dict[str, str] = {}
    for oid in ids:
        snap = venue.order_by_client_id(INSTRUMENT, oid)
        status = OrderStatus.REJECTED if snap is None or oid in rejected else snap.status
        raw[oid] = status.value
        orders[oid] = OrderOutcome(_OUR_STATE[status], tuple(fills[oid]))
    balances = {a: (f + lk, f, lk) for a, (f, lk) in venue.balances().items() if a in (BASE, QUOTE)}
    bids, asks = venue.market_book(INSTRUMENT).book.top(BOOK_DEPTH)
    book = {"bids": tuple(bids), "asks": tuple(asks)}
    return Outcome(orders, balances, book, raw)


def _book_event(book: dict[str, Any], ts: int) -> Event:
    bids = tuple((int(p), int(q)) for p, q in book["bids"])
    asks = tuple((int(p), int(q)) for p, q in book["asks"])
    if book["snapshot"]:
        return BookSnapshotReceived(0, ts, ts, INSTRUMENT, 0, bids, asks)
    return BookDeltaReceived(0, ts, ts, INSTRUMENT, 0, 0, -1, bids, asks)


def _submit(s: dict[str, Any]) -> SubmitOrder:
    side = OrderSide(s["side"])
    if s["type"] == "MARKET":
        return SubmitOrder(INSTRUMENT, side, OrderType.MARKET, quantity=int(s["qty"]), client_order_id=s["id"])
    return SubmitOrder(
        INSTRUMENT, side, OrderType.LIMIT, quantity=int(s["qty"]), price=int(s["price"]),
        time_in_force=TimeInForce(s["tif"]), client_order_id=s["id"],
    )


def outcome_of_nautilus(result: dict[str, Any]) -> Outcome:
    orders = {
        oid: OrderOutcome(
            _THEIR_STATE[o["status"]] if o["rejected"] is None else "rejected",
            tuple(Fill(int(p), int(q), liq, int(c), cur) for p, q, liq, c, cur in o["fills"]),
        )
        for oid, o in result["orders"].items()
    }
    balances = {a: (int(t), int(f), int(lk)) for a, (t, f, lk) in result["balances"].items()}
    book = {side: tuple((int(p), int(q)) for p, q in result["book"][side]) for side in ("bids", "asks")}
    return Outcome(orders, balances, book, {oid: o["status"] for oid, o in result["orders"].items()})


# =============================================================================== nautilus runner


Runner = Callable[[Sequence[Scenario]], list[Outcome]]


def _in_process(module: ModuleType) -> Runner:
    def run(scenarios: Sequence[Scenario]) -> list[Outcome]:
        return [outcome_of_nautilus(r) for r in module.run_many([s.to_json() for s in scenarios])]

    return run


def _subprocess(python: str) -> Runner:
    def run(scenarios: Sequence[Scenario]) -> list[Outcome]:
        proc = subprocess.run(
            [python, str(SIDE_SCRIPT)],
            input=json.dumps([s.to_json() for s in scenarios]),
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if proc.returncode != 0:
            raise AssertionError(f"{python} {SIDE_SCRIPT.name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return [outcome_of_nautilus(r) for r in json.loads(proc.stdout)]

    return run


def _subprocess_version(python: str) -> str:
    proc = subprocess.run(
        [python, "-c", "import nautilus_trader; print(nautilus_trader.__version__)"],
        capture_output=True, text=True, check=False, timeout=120,
    )
    if proc.returncode != 0:
        pytest.fail(f"TICKLOOP_NAUTILUS_PYTHON={python} cannot import nautilus_trader:\n{proc.stderr[-2000:]}")
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def nautilus() -> Runner:
    """A function running scenarios through nautilus: in-process, or in TICKLOOP_NAUTILUS_PYTHON."""
    python = os.environ.get("TICKLOOP_NAUTILUS_PYTHON")
    if python:
        version = _subprocess_version(python)
        runner = _subprocess(python)
    else:
        nt = pytest.importorskip("nautilus_trader", reason="the 'compare' extra (nautilus_trader) is not installed")
        version = nt.__version__
        runner = _in_process(importlib.import_module("tests.integration._nautilus_side"))
    if version != NAUTILUS_VERSION:
        pytest.skip(f"the allow-list describes nautilus_trader {NAUTILUS_VERSION}; found {version}")
    return runner


@pytest.fixture(scope="module")
def synthetic_results(nautilus: Runner) -> dict[str, tuple[Outcome, Outcome]]:
    """Every synthetic scenario through both venues (nautilus in one batch)."""
    scenarios = list(SYNTHETIC.values())
    theirs = nautilus(scenarios)
    return {s.name: (run_ours(s), t) for s, t in zip(scenarios, theirs, strict=True)}


# =============================================================================== comparison


@dataclass(frozen=True)
class Difference:
    kind: str  # "fills" | "commission" | "state" | "balance" | "book" | "orders"
    key: str  # order id, asset, or book side
    ours: Any
    theirs: Any

    def __str__(self) -> str:
        return f"{self.kind}[{self.key}]: ours={self.ours!r} nautilus={self.theirs!r}"


def compare(ours: Outcome, theirs: Outcome) -> list[Difference]:
    out: list[Difference] = []
    if set(ours.orders) != set(theirs.orders):
        out.append(Difference("orders", "*", sorted(ours.orders), sorted(theirs.orders)))
    for oid in sorted(set(ours.orders) & set(theirs.orders)):
        a, b = ours.orders[oid], theirs.orders[oid]
        trades_a = [(f.price, f.qty, f.liquidity) for f in a.fills]
        trades_b = [(f.price, f.qty, f.liquidity) for f in b.fills]
        if trades_a != trades_b:
            out.append(Difference("fills", oid, trades_a, trades_b))
        fees_a = [(f.commission, f.asset) for f in a.fills]
        fees_b = [(f.commission, f.asset) for f in b.fills]
        if trades_a == trades_b and fees_a != fees_b:
            out.append(Difference("commission", oid, fees_a, fees_b))
        if a.state != b.state:
            out.append(Difference("state", oid, ours.raw_status[oid], theirs.raw_status[oid]))
    for asset in sorted(set(ours.balances) | set(theirs.balances)):
        if ours.balances.get(asset) != theirs.balances.get(asset):
            out.append(Difference("balance", asset, ours.balances.get(asset), theirs.balances.get(asset)))
    for side in ("bids", "asks"):
        if ours.book[side] != theirs.book[side]:
            out.append(Difference("book", side, ours.book[side], theirs.book[side]))
    return out


# =============================================================================== the allow-list


Explain = Callable[[Scenario, Outcome, Outcome], "str | None"]


@dataclass(frozen=True)
class Expected:
    """One documented difference: where it shows, whose it is, why, and a check that it is exactly that."""

    kind: str
    key: str
    owner: str  # "nautilus" (a limitation of nautilus_trader 1.221.0) or "tickloop" (our deliberate choice)
    anchor: str  # the `{#anchor}` of its section in docs/nautilus-differences.md
    explain: Explain  # None when the observed difference is exactly the documented one, else why not


def _walk(levels: Sequence[tuple[int, int]], qty: int) -> list[tuple[int, int]]:
    """Reference taker walk over (price, qty) levels, best first: what any L2 book walk must give."""
    out: list[tuple[int, int]] = []
    for px, q in levels:
        if qty <= 0:
            break
        take = min(q, qty)
        out.append((px, take))
        qty -= take
    return out


def _sides(sc: Scenario) -> dict[str, str]:
    return {i["submit"]["id"]: i["submit"]["side"] for i in sc.timeline if "submit" in i}


def _flows(sc: Scenario, o: Outcome, oids: Sequence[str]) -> dict[str, int]:
    """Net balance change per asset that the fills of ``oids`` make (trade amounts and commissions)."""
    sides = _sides(sc)
    out = {BASE: 0, QUOTE: 0}
    for oid in oids:
        sign = 1 if sides[oid] == "BUY" else -1
        for f in o.orders[oid].fills:
            out[BASE] += sign * f.qty
            out[QUOTE] -= sign * (f.price * f.qty // SCALE)
            out[f.asset] -= f.commission
    return out


def _balances_follow_fills(*oids: str) -> Explain:
    """Both accounts are fully free at the end and their totals differ by exactly what those fills moved."""

    def check(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
        a, b = _flows(sc, ours, oids), _flows(sc, theirs, oids)
        for asset in (BASE, QUOTE):
            (t1, f1, l1), (t2, f2, l2) = ours.balances[asset], theirs.balances[asset]
            if (f1, l1, f2, l2) != (t1, 0, t2, 0):
                return f"{asset}: something stays locked: ours {ours.balances[asset]}, nautilus {theirs.balances[asset]}"
            if t1 - t2 != a[asset] - b[asset]:
                return f"{asset}: totals differ by {t1 - t2}, the fills of {oids} by {a[asset] - b[asset]}"
        return None

    return check


def _explain_market_left_open(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
    # ours: EXPIRED (INSUFFICIENT_LIQUIDITY) after taking every bid; nautilus: same fills, order left open.
    if ours.raw_status["xs"] != "EXPIRED" or theirs.raw_status["xs"] != "PARTIALLY_FILLED":
        return f"statuses {ours.raw_status['xs']} / {theirs.raw_status['xs']}"
    if ours.orders["xs"].fills != theirs.orders["xs"].fills:
        return "the fills differ too"
    return None


def _explain_targets(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
    # One displayed ask of 0.8 crosses both bids. Ours shares it best price first (r1 0.6, r2 the
    # 0.2 left); nautilus fills r1, then treats its ask as r1's limit for the rest of that update,
    # so r2 (priced below r1) gets nothing although 0.2 is still displayed through its price.
    r1, r2 = ours.orders["r1"].fills, ours.orders["r2"].fills
    if theirs.orders["r1"].fills != r1 or theirs.orders["r2"].fills:
        return "nautilus should fill r1 like us and r2 not at all"
    if sum(f.qty for f in r1) + sum(f.qty for f in r2) != d("0.8") or not r2:
        return "ours should share the displayed 0.8 between r1 and r2"
    return None


def _explain_consumed(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
    # Ours removed c1's take from the displayed asks; nautilus walks the unchanged book again.
    asks = [(d(p), d(q)) for p, q in ASKS0]
    c1 = _walk(asks, d("0.8"))
    left = [(p, q - sum(t for tp, t in c1 if tp == p)) for p, q in asks]
    want_ours = _walk([lv for lv in left if lv[1] > 0], d("0.8"))
    got_ours = [(f.price, f.qty) for f in ours.orders["c2"].fills]
    got_theirs = [(f.price, f.qty) for f in theirs.orders["c2"].fills]
    if got_ours != want_ours or got_theirs != c1:
        return f"c2: ours {got_ours} (want {want_ours}), nautilus {got_theirs} (want {c1})"
    return None


def _explain_consumed_book(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
    # Our displayed asks are nautilus's minus everything our orders took (until the market updates them).
    taken: dict[int, int] = {}
    for o in ours.orders.values():
        for f in o.fills:
            taken[f.price] = taken.get(f.price, 0) + f.qty
    want = tuple((p, q - taken.get(p, 0)) for p, q in theirs.book["asks"] if q - taken.get(p, 0) > 0)
    return None if ours.book["asks"] == want else f"ours {ours.book['asks']}, want {want}"


def _explain_float_fee(oid: str) -> Explain:
    def check(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
        for a, b in zip(ours.orders[oid].fills, theirs.orders[oid].fills, strict=True):
            exact = a.price * a.qty // SCALE * FEE_E8  # the commission in units of 1e-16
            if a.commission != exact // SCALE or b.commission != (exact + SCALE // 2) // SCALE:
                return f"{oid}: ours {a.commission} (want truncated), nautilus {b.commission} (want rounded)"
        return None

    return check


def _explain_commission_asset(oid: str) -> Explain:
    def check(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
        for a, b in zip(ours.orders[oid].fills, theirs.orders[oid].fills, strict=True):
            if (a.asset, a.commission) != (BASE, a.qty * FEE_E8 // SCALE):
                return f"{oid}: ours should charge {BASE} qty*rate, got {a.asset} {a.commission}"
            if (b.asset, b.commission) != (QUOTE, a.price * a.qty // SCALE * FEE_E8 // SCALE):
                return f"{oid}: nautilus should charge {QUOTE} notional*rate, got {b.asset} {b.commission}"
        return None

    return check


def _explain_lock_after_partial(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
    # Ours keeps ceil(price * remaining) locked; nautilus keeps price * original quantity locked.
    remaining = d("1.0") - sum(f.qty for f in ours.orders["po"].fills)
    price = d("101.20")
    (t1, _, l1), (t2, _, l2) = ours.balances[QUOTE], theirs.balances[QUOTE]
    if t1 != t2:
        return "USDT totals should agree"
    if l1 != -(-price * remaining // SCALE) or l2 != price * d("1.0") // SCALE:
        return f"locked: ours {l1}, nautilus {l2}"
    return None


def _explain_stale_lock(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
    # Nothing is open at the end on either side, yet nautilus still shows quote locked.
    if any(o.state == "open" for x in (ours, theirs) for o in x.orders.values()):
        return "an order is still open"
    (t1, f1, l1), (t2, f2, l2) = ours.balances[QUOTE], theirs.balances[QUOTE]
    if t1 != t2 or (f1, l1) != (t1, 0) or l2 <= 0 or f2 + l2 != t2:
        return f"ours {ours.balances[QUOTE]}, nautilus {theirs.balances[QUOTE]}"
    return None


def _explain_netting_cap(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
    # NETTING: nautilus credits a SELL fill's quote only up to the open long position's size (the
    # starting BTC is no position), so the part of the sale that flips the position pays nothing.
    position = sum(f.qty for f in ours.orders["mb"].fills)
    lost = 0
    for f in ours.orders["ms"].fills:
        credited = min(f.qty, position) if position > 0 else f.qty
        lost += f.price * (f.qty - credited) // SCALE
        position -= f.qty
    if ours.balances[BASE] != theirs.balances[BASE]:
        return "BTC should agree"
    if ours.balances[QUOTE][0] - theirs.balances[QUOTE][0] != lost or lost <= 0:
        return f"USDT gap {ours.balances[QUOTE][0] - theirs.balances[QUOTE][0]}, uncredited quote {lost}"
    return None


def _explain_trade_prints(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
    # Ours (L1 trade rule): a sell print through our bid fills up to the print's size; one at our
    # price fills what is not queued ahead of us (nothing was displayed at 100.50). nautilus on an
    # L2_MBP book with trade_execution: nothing, since its fills are sized from the (uncrossed) book.
    want = [(d("100.50"), d("0.3"), "MAKER"), (d("100.50"), d("0.2"), "MAKER")]
    got = [(f.price, f.qty, f.liquidity) for f in ours.orders["tb"].fills]
    if got != want or theirs.orders["tb"].fills:
        return f"ours {got} (want {want}), nautilus {theirs.orders['tb'].fills}"
    return None


def _explain_engine_stopped(sc: Scenario, ours: Outcome, theirs: Outcome) -> str | None:
    # Ours refuses nb up front (-2010, insufficient balance) and later fills "after". nautilus cannot
    # value a MARKET order without quotes, so its risk engine lets nb through; nb fills level by level
    # until a fill would take BTC below zero: that fill is recorded on the order but not in the
    # account, its AccountError stops the whole backtest, and neither "after" nor the last book
    # update are ever processed.
    if ours.raw_status["nb"] != "REJECTED" or ours.orders["nb"].fills or not ours.orders["after"].fills:
        return "ours should reject nb and fill 'after'"
    if set(theirs.orders) != {"nb"} or theirs.raw_status["nb"] != "PARTIALLY_FILLED":
        return f"nautilus should have stopped after nb: {theirs.raw_status}"
    held, recorded = sc.balances[BASE], []
    for px, q in _walk([(d(p), d(q)) for p, q in BIDS0], d("2.0")):
        recorded.append((px, q))
        if sum(x for _, x in recorded) > held:
            break
    if [(f.price, f.qty) for f in theirs.orders["nb"].fills] != recorded:
        return f"nautilus nb fills should be the walk up to the first overdrawing fill: {recorded}"
    booked = theirs.orders["nb"].fills[:-1]
    flows_theirs = _flows(sc, replace(theirs, orders={"nb": OrderOutcome("open", booked)}), ["nb"])
    flows_ours = _flows(sc, ours, ["after"])
    for asset in (BASE, QUOTE):
        if ours.balances[asset][0] != sc.balances[asset] + flows_ours[asset]:
            return f"ours {asset} is not initial + 'after'"
        if theirs.balances[asset][0] != sc.balances[asset] + flows_theirs[asset]:
            return f"nautilus {asset} is not initial + nb's fills before the overdrawing one"
    if theirs.book["bids"] != tuple((d(p), d(q)) for p, q in BIDS0) or len(ours.book["bids"]) != len(BIDS0) + 1:
        return "nautilus should not have seen the last book update"
    return None


EXPECTED: dict[str, tuple[Expected, ...]] = {
    "market_exhausts_book": (
        Expected("state", "xs", "nautilus", "market-order-left-open", _explain_market_left_open),
    ),
    "resting_orders_cross_at_once": (
        Expected("fills", "r2", "nautilus", "one-resting-fill-per-update", _explain_targets),
        Expected("balance", BASE, "nautilus", "one-resting-fill-per-update", _balances_follow_fills("r2")),
        Expected("balance", QUOTE, "nautilus", "one-resting-fill-per-update", _balances_follow_fills("r2")),
    ),
    "consume_liquidity_on": (
        Expected("fills", "c2", "tickloop", "consumed-liquidity", _explain_consumed),
        Expected("balance", QUOTE, "tickloop", "consumed-liquidity", _balances_follow_fills("c2")),
        Expected("book", "asks", "tickloop", "consumed-liquidity", _explain_consumed_book),
    ),
    "nautilus_float_fee": (
        Expected("commission", "f1", "nautilus", "float-commission", _explain_float_fee("f1")),
        Expected("commission", "f3", "nautilus", "float-commission", _explain_float_fee("f3")),
        Expected("balance", QUOTE, "nautilus", "float-commission", _balances_follow_fills("f1", "f3")),
    ),
    "binance_commission_asset": (
        Expected("commission", "bb", "tickloop", "commission-asset", _explain_commission_asset("bb")),
        Expected("balance", BASE, "tickloop", "commission-asset", _balances_follow_fills("bb")),
        Expected("balance", QUOTE, "tickloop", "commission-asset", _balances_follow_fills("bb")),
    ),
    "partial_fill_then_open": (
        Expected("balance", QUOTE, "nautilus", "lock-whole-quantity", _explain_lock_after_partial),
    ),
    "buy_and_sell_resting_at_once": (
        Expected("balance", QUOTE, "nautilus", "stale-quote-lock", _explain_stale_lock),
    ),
    "trade_through_resting_bid": (
        Expected("fills", "tb", "nautilus", "no-fills-from-trades", _explain_trade_prints),
        Expected("balance", BASE, "nautilus", "no-fills-from-trades", _balances_follow_fills("tb")),
        Expected("balance", QUOTE, "nautilus", "no-fills-from-trades", _balances_follow_fills("tb")),
    ),
    "market_sell_beyond_balance": tuple(
        Expected(kind, key, "nautilus", "market-order-beyond-balance", _explain_engine_stopped)
        for kind, key in (
            ("orders", "*"), ("fills", "nb"), ("state", "nb"), ("balance", BASE), ("balance", QUOTE), ("book", "bids")
        )
    ),
    "netting_position_flip": (
        Expected("balance", QUOTE, "nautilus", "netting-caps-quote", _explain_netting_cap),
    ),
}


def check_differences(sc: Scenario, ours: Outcome, theirs: Outcome) -> list[str]:
    """Problems: differences nobody documented, documented ones that did not happen, failed explanations."""
    problems: list[str] = []
    allowed = {(e.kind, e.key): e for e in EXPECTED.get(sc.name, ())}
    seen: set[tuple[str, str]] = set()
    for diff in compare(ours, theirs):
        entry = allowed.get((diff.kind, diff.key))
        if entry is None:
            problems.append(f"{sc.name}: unexpected difference {diff}")
            continue
        seen.add((diff.kind, diff.key))
        why_not = entry.explain(sc, ours, theirs)
        if why_not is not None:
            problems.append(f"{sc.name}: {diff} is not the documented '{entry.anchor}' difference: {why_not}")
    for key, entry in allowed.items():
        if key not in seen:
            problems.append(f"{sc.name}: documented difference {key} ({entry.anchor}) did not occur: stale entry")
    return problems


# =============================================================================== tests: synthetic


@pytest.mark.nautilus
@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_scenario_agrees_or_differs_as_documented(
    name: str, synthetic_results: dict[str, tuple[Outcome, Outcome]]
) -> None:
    ours, theirs = synthetic_results[name]
    assert any(o.fills for o in ours.orders.values()), f"{name}: no fills at all: the scenario tests nothing"
    problems = check_differences(SYNTHETIC[name], ours, theirs)
    assert not problems, "\n".join(problems)


@pytest.mark.nautilus
def test_hand_checked_walks(synthetic_results: dict[str, tuple[Outcome, Outcome]]) -> None:
    """The agreeing scenarios agree on the right numbers: the fills a person computes from the book."""
    bids = [(d(p), d(q)) for p, q in BIDS0]
    asks = [(d(p), d(q)) for p, q in ASKS0]
    want = {
        ("market_walk", "mb"): [(p, q, "TAKER") for p, q in _walk(asks, d("1.2"))],
        ("market_walk", "ms"): [(p, q, "TAKER") for p, q in _walk(bids, d("2.0"))],
        ("limit_ioc", "ib"): [(d("101.00"), d("0.5"), "TAKER")],
        ("limit_ioc", "is"): [(p, q, "TAKER") for p, q in _walk(bids[:2], d("3.0"))],
        ("limit_ioc", "in"): [],
        ("limit_fok", "fb"): [(p, q, "TAKER") for p, q in _walk(asks[:2], d("1.5"))],
        ("limit_fok", "fx"): [],
        ("limit_fok", "fs"): [(p, q, "TAKER") for p, q in bids],
        ("gtc_takes_then_rests", "g"): [
            (d("101.00"), d("0.5"), "TAKER"), (d("101.20"), d("0.3"), "MAKER"), (d("101.20"), d("0.2"), "MAKER")
        ],
        ("passive_buy_crossed_by_book", "pb"): [
            (d("100.50"), d("0.4"), "MAKER"), (d("100.50"), d("0.3"), "MAKER"), (d("100.50"), d("0.3"), "MAKER")
        ],
        ("passive_sell_crossed_by_book", "ps"): [(d("100.80"), d("0.6"), "MAKER"), (d("100.80"), d("0.4"), "MAKER")],
        ("cancel_resting", "cs"): [(d("100.90"), d("0.2"), "MAKER")],
    }
    for (name, oid), fills in want.items():
        for who, outcome in zip(("tickloop", "nautilus"), synthetic_results[name], strict=True):
            got = [(f.price, f.qty, f.liquidity) for f in outcome.orders[oid].fills]
            assert got == fills, f"{name}/{oid} on {who}: {got} != {fills}"


@pytest.mark.nautilus
def test_the_harness_sees_a_planted_difference(synthetic_results: dict[str, tuple[Outcome, Outcome]]) -> None:
    """A one-unit change in one fill, one commission or one balance is reported, not absorbed."""
    ours, theirs = synthetic_results["market_walk"]
    first = ours.orders["mb"].fills[0]
    bumped_fill = replace(first, qty=first.qty + 1)
    bumped_fee = replace(first, commission=first.commission + 1)
    for fill, kind in ((bumped_fill, "fills"), (bumped_fee, "commission")):
        orders = dict(ours.orders)
        orders["mb"] = OrderOutcome(ours.orders["mb"].state, (fill, *ours.orders["mb"].fills[1:]))
        diffs = compare(replace(ours, orders=orders), theirs)
        assert [(x.kind, x.key) for x in diffs] == [(kind, "mb")]
    t, f, lk = ours.balances[QUOTE]
    diffs = compare(replace(ours, balances={**ours.balances, QUOTE: (t + 1, f + 1, lk)}), theirs)
    assert [(x.kind, x.key) for x in diffs] == [("balance", QUOTE)]
    problems = check_differences(SYNTHETIC["market_walk"], replace(ours, balances={}), theirs)
    assert problems and all("unexpected" in p for p in problems)


@pytest.mark.nautilus
def test_the_allow_list_is_strict(synthetic_results: dict[str, tuple[Outcome, Outcome]]) -> None:
    """A documented difference that vanishes, or shows with another size, is a failure too."""
    sc = SYNTHETIC["consume_liquidity_on"]
    ours, theirs = synthetic_results[sc.name]
    stale = check_differences(sc, ours, ours)
    assert len(stale) == len(EXPECTED[sc.name]) and all("stale entry" in p for p in stale)
    c2 = theirs.orders["c2"]
    smaller = replace(c2.fills[0], qty=c2.fills[0].qty - STEP)
    other = replace(theirs, orders={**theirs.orders, "c2": OrderOutcome(c2.state, (smaller, *c2.fills[1:]))})
    wrong = check_differences(sc, ours, other)
    assert any("is not the documented 'consumed-liquidity' difference" in p for p in wrong), wrong


# =============================================================================== tests: real data


@dataclass(frozen=True)
class RealBook:
    """Depth events of the recording, synced: the snapshot, then every diff after its lastUpdateId."""

    items: tuple[tuple[int, BookSnapshotReceived | BookDeltaReceived], ...]  # (ts, event), ts strictly rising


def load_real_book(path: Path, minutes: float) -> RealBook:
    """Snapshot + chained diffs of the first ``minutes`` after the snapshot, validated by BookSync."""
    parser = BinanceStreamParser(market=Market.SPOT, symbol=SYMBOL)
    depth: list[BookSnapshotReceived | BookDeltaReceived] = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            if b"depthUpdate" not in line and b"lastUpdateId" not in line:
                continue
            for ev in parser.feed(line):
                if isinstance(ev, BookSnapshotReceived | BookDeltaReceived):
                    depth.append(ev)
    snaps = [e for e in depth if isinstance(e, BookSnapshotReceived) and not e.partial]
    assert snaps, f"{path}: no REST depth snapshot"
    snap = snaps[0]
    sync = BookSync.for_instrument(INSTRUMENT)
    for ev in depth:
        assert not sync.on_event(ev), f"{path}: the depth stream has a gap"
    assert sync.stats.gaps == 0 and sync.stats.crossed == 0
    end = snap.ts_recv + int(minutes * 60_000 * MS)
    kept = [e for e in depth if isinstance(e, BookDeltaReceived) and e.last_update_id > snap.last_update_id]
    kept = [e for e in kept if e.ts_recv <= end]
    items: list[tuple[int, BookSnapshotReceived | BookDeltaReceived]] = [(snap.ts_recv, snap)]
    for ev in kept:  # diffs recorded before the snapshot line apply right after it, in order
        items.append((max(ev.ts_recv, items[-1][0] + 1), ev))
    size_unit = 10 ** (8 - REAL_SIZE_PRECISION)
    for _, ev in items:
        for px, q in (*ev.bids, *ev.asks):
            assert px % TICK == 0 and q % size_unit == 0, f"{path}: level {px}/{q} is finer than 0.01/1e-6"
    return RealBook(tuple(items))


PASSIVE_LIFE_NS = 20_000 * MS
"""A passive order of the real scenario is canceled this long after it was placed (if still open)."""


def real_scenario(book: RealBook, every_ms: int = 5_000) -> Scenario:
    """Orders derived from the book as it stands: walks of several levels, IOC/FOK, passive orders.

    Every ``every_ms`` of book time the next action of a fixed cycle is placed 1 ns after a book
    update (the next one comes ~100 ms later), with sizes and prices read off the current book
    so that each kind does what its name says whatever the market did.
    """
    local = L2Book()
    timeline: list[dict[str, Any]] = []
    cycle = _real_cycle()
    next_at = book.items[0][0] + 2_000 * MS
    stop_at = book.items[-1][0] - 2 * PASSIVE_LIFE_NS  # every passive order is canceled inside the data
    n = 0
    open_passive: list[tuple[int, str]] = []  # (cancel time, id)
    for i, (ts, ev) in enumerate(book.items):
        if isinstance(ev, BookSnapshotReceived):
            local.replace(ev.bids, ev.asks)
        else:
            local.apply(ev.bids, ev.asks)
        timeline.append({"ts": ts, "book": {
            "snapshot": isinstance(ev, BookSnapshotReceived),
            "bids": [list(lv) for lv in ev.bids], "asks": [list(lv) for lv in ev.asks],
        }})
        nxt = book.items[i + 1][0] if i + 1 < len(book.items) else None
        if nxt is None or nxt - ts < 1_000:
            continue
        at = ts + 1
        for due, oid in [p for p in open_passive if p[0] <= ts]:
            open_passive.remove((due, oid))
            timeline.append(cancel(at, oid))
            at += 1
        if next_at <= ts < stop_at:
            n += 1
            item, passive = next(cycle)(local, at, f"r{n}")
            timeline.append(item)
            if passive:
                open_passive.append((ts + PASSIVE_LIFE_NS, f"r{n}"))
            next_at = ts + every_ms * MS
    assert not open_passive, "a passive order outlived the data"
    return Scenario("real_btcusdt", tuple(timeline), size_precision=REAL_SIZE_PRECISION)


Action = Callable[[L2Book, int, str], tuple[dict[str, Any], bool]]


def _qty_text(q: int) -> str:
    q -= q % STEP
    return f"{q // SCALE}.{q % SCALE:08d}"


def _px_text(p: int) -> str:
    return f"{p // SCALE}.{p % SCALE:08d}"


def _through(levels: Sequence[tuple[int, int]], k: int) -> int:
    """Quantity that takes the first k levels whole and half of level k+1 (a walk of k+1 levels)."""
    whole = sum(q for _, q in levels[:k])
    half = levels[k][1] // 2 if len(levels) > k else 0
    return max(whole + half - (whole + half) % STEP, STEP)


def _real_cycle() -> Iterator[Action]:
    def market_buy(b: L2Book, at: int, oid: str) -> tuple[dict[str, Any], bool]:
        return market(at, oid, "BUY", _qty_text(_through(b.asks.top(8), 3))), False

    def market_sell(b: L2Book, at: int, oid: str) -> tuple[dict[str, Any], bool]:
        return market(at, oid, "SELL", _qty_text(_through(b.bids.top(8), 3))), False

    def ioc_buy(b: L2Book, at: int, oid: str) -> tuple[dict[str, Any], bool]:
        top = b.asks.top(3)
        return limit(at, oid, "BUY", _qty_text(sum(q for _, q in top) + d("1")), _px_text(top[-1][0]), "IOC"), False

    def ioc_sell(b: L2Book, at: int, oid: str) -> tuple[dict[str, Any], bool]:
        top = b.bids.top(3)
        return limit(at, oid, "SELL", _qty_text(sum(q for _, q in top) + d("1")), _px_text(top[-1][0]), "IOC"), False

    def fok_buy(b: L2Book, at: int, oid: str) -> tuple[dict[str, Any], bool]:
        top = b.asks.top(2)
        return limit(at, oid, "BUY", _qty_text(sum(q for _, q in top)), _px_text(top[-1][0]), "FOK"), False

    def fok_sell_short(b: L2Book, at: int, oid: str) -> tuple[dict[str, Any], bool]:
        top = b.bids.top(2)
        return limit(at, oid, "SELL", _qty_text(sum(q for _, q in top) + STEP), _px_text(top[-1][0]), "FOK"), False

    def gtc_sell_taker(b: L2Book, at: int, oid: str) -> tuple[dict[str, Any], bool]:
        top = b.bids.top(2)
        return limit(at, oid, "SELL", _qty_text(sum(q for _, q in top)), _px_text(top[-1][0])), False

    def passive_buy(b: L2Book, at: int, oid: str) -> tuple[dict[str, Any], bool]:
        best = b.best_bid()
        assert best is not None
        return limit(at, oid, "BUY", "0.5", _px_text(best[0])), True

    def passive_sell(b: L2Book, at: int, oid: str) -> tuple[dict[str, Any], bool]:
        best = b.best_ask()
        assert best is not None
        return limit(at, oid, "SELL", "0.5", _px_text(best[0])), True

    kinds: list[Action] = [
        market_buy, passive_buy, market_sell, ioc_buy, passive_sell, ioc_sell, fok_buy, fok_sell_short,
        gtc_sell_taker,
    ]
    while True:
        yield from kinds


@pytest.mark.nautilus
def test_real_btcusdt_book_agrees(nautilus: Runner) -> None:
    """The real spot BTCUSDT recording (REST snapshot + 100 ms diffs, ~6 min): no difference at all.

    Run twice on our side, without and with ``consume_liquidity`` (our default): with orders 5 s
    apart the market has rewritten every level we took before our next order, so both agree.
    """
    book = load_real_book(binance_file(REAL_FILE), REAL_MINUTES)
    sc = real_scenario(book)
    n_orders = sum(1 for item in sc.timeline if "submit" in item)
    assert n_orders >= 40, f"only {n_orders} orders: the recording is shorter than expected"
    assert not shape_problems(sc)
    (theirs,) = nautilus([sc])
    for consume in (False, True):
        variant = replace(sc, consume_liquidity=consume)
        ours = run_ours(variant)
        fills = [f for o in ours.orders.values() for f in o.fills]
        assert sum(1 for o in ours.orders.values() if o.fills) >= n_orders // 2, "most orders should fill"
        assert sum(f.liquidity == "MAKER" for f in fills) >= 3, "too few passive fills to compare"
        assert max(len(o.fills) for o in ours.orders.values()) >= 4, "no order walked several levels"
        problems = check_differences(variant, ours, theirs)
        assert not problems, f"consume_liquidity={consume}:\n" + "\n".join(problems[:40])


# =============================================================================== tests: the allow-list itself


@pytest.mark.edge
def test_every_expected_difference_is_documented() -> None:
    """Each allow-list entry names an owner and a section of docs/nautilus-differences.md that exists."""
    text = DOC.read_text(encoding="utf-8")
    for name, entries in EXPECTED.items():
        assert name in SYNTHETIC, f"allow-list scenario {name!r} does not exist"
        for e in entries:
            assert e.owner in ("nautilus", "tickloop"), f"{name}: owner {e.owner!r}"
            assert "{#" + e.anchor + "}" in text, f"{name}: section {{#{e.anchor}}} missing from {DOC.name}"
            assert name in text, f"{name}: scenario not named in {DOC.name}"


def shape_problems(sc: Scenario) -> list[str]:
    """Times must rise and a book item must never share its nanosecond with anything else.

    nautilus orders same-time data and clock alerts its own way; distinct times make the
    "order sees the book as of the last update before it" rule the same on both sides.
    """
    times = [int(i["ts"]) for i in sc.timeline]
    book_ts = [int(i["ts"]) for i in sc.timeline if "book" in i]
    other_ts = [int(i["ts"]) for i in sc.timeline if "book" not in i]
    problems = []
    if times != sorted(times):
        problems.append(f"{sc.name}: timeline not in time order")
    if len(set(book_ts)) != len(book_ts) or len(set(other_ts)) != len(other_ts):
        problems.append(f"{sc.name}: two items of one kind share a time")
    if set(book_ts) & set(other_ts):
        problems.append(f"{sc.name}: an order, cancel or trade shares a book update's time")
    return problems


@pytest.mark.edge
def test_scenario_times_are_unambiguous() -> None:
    problems = [p for sc in SYNTHETIC.values() for p in shape_problems(sc)]
    assert not problems, "\n".join(problems)
    broken = Scenario("broken", (snapshot(_t(0), BIDS0, ASKS0), market(_t(0), "x", "BUY", "1")))
    assert shape_problems(broken) == ["broken: an order, cancel or trade shares a book update's time"]


if __name__ == "__main__":  # pragma: no cover - a manual look at one scenario
    sys.exit(pytest.main([__file__, "-q"]))
