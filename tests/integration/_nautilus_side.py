"""The nautilus_trader half of the differential venue test: one scenario in, fills and balances out.

Self-contained on purpose (stdlib + nautilus_trader 1.221.0 only, nothing from tickloop): the test
imports it in-process when nautilus is importable there, and otherwise runs it as a script under
another interpreter (``TICKLOOP_NAUTILUS_PYTHON``) that has nautilus but not our project.

Script use: ``python _nautilus_side.py < scenario.json > result.json`` (a JSON list of scenarios
gives a list of results).

Scenario (plain JSON, every price/quantity/balance an e8 int, every time an int ns)::

    {"symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", "price_precision": 2, "size_precision": 5,
     "maker_fee_e8": 100000, "taker_fee_e8": 100000,
     "fee_model": "exact" | "nautilus", "oms": "HEDGING" | "NETTING", "trade_execution": bool,
     "balances": {"BTC": e8, "USDT": e8},
     "book_depth": 5,
     "timeline": [
        {"ts": ns, "book": {"snapshot": bool, "bids": [[px, qty], ...], "asks": [...]}},
        {"ts": ns, "trade": {"price": e8, "qty": e8, "buyer_maker": bool}},
        {"ts": ns, "submit": {"id": str, "side": "BUY"|"SELL", "type": "MARKET"|"LIMIT",
                              "qty": e8, "price": e8, "tif": "GTC"|"IOC"|"FOK"}},
        {"ts": ns, "cancel": {"id": str}}]}

Trade items become ``TradeTick``s (aggressor SELLER when the buyer was the maker). Book items
become ``OrderBookDeltas`` on an ``L2_MBP`` book (a snapshot is CLEAR + ADDs flagged
F_SNAPSHOT; a diff level with quantity 0 is a DELETE, else an UPDATE, which adds a missing level).
Orders are sent from a strategy at their ``ts`` by clock alerts; with no latency model the
simulated exchange processes a command right after the alert, against the book as of the last
book item before ``ts``. Scenario times must therefore never equal a book item's time.

Result::

    {"version": str,
     "orders": {id: {"status": str, "fills": [[px, qty, "MAKER"|"TAKER", commission, currency]],
                     "rejected": str | None}},
     "balances": {asset: [total, free, locked]},
     "book": {"bids": [[px, qty], ...], "asks": [...]}}

``fee_model`` "exact": a flat maker/taker rate on the quote notional, truncated to the quote
currency's 1e-8 (the same integer rule the tickloop side uses). "nautilus": nautilus's own
``MakerTakerFeeModel`` (a binary float product rounded to 1e-8).
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any

import nautilus_trader
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import FeeModel, MakerTakerFeeModel
from nautilus_trader.config import LoggingConfig, RiskEngineConfig, StrategyConfig
from nautilus_trader.model.currencies import Currency
from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import (
    AccountType,
    AggressorSide,
    BookAction,
    BookType,
    LiquiditySide,
    OmsType,
    OrderSide,
    RecordFlag,
    TimeInForce,
)
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId, Symbol, TradeId, TraderId, Venue
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy

E8 = 100_000_000
VENUE = Venue("BINANCE")
_TIFS = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}


def _e8(value: Any) -> int:
    """A nautilus Price/Quantity/Money (or Decimal) as an exact e8 int; refuses anything finer (or a float)."""
    if isinstance(value, float):
        raise TypeError(f"{value!r} is a binary float: read the exact Price/Quantity/Money instead")
    d = value.as_decimal() if hasattr(value, "as_decimal") else Decimal(value)
    scaled = d * E8
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number of 1e-8")
    return int(scaled)


def _text(v_e8: int, precision: int) -> str:
    """e8 int -> decimal text with exactly ``precision`` places (refuses values finer than that)."""
    unit = 10 ** (8 - precision)
    if v_e8 % unit:
        raise ValueError(f"{v_e8} e8 has more than {precision} decimal places")
    sign = "-" if v_e8 < 0 else ""
    whole, frac = divmod(abs(v_e8) // unit, 10**precision)
    return f"{sign}{whole}.{frac:0{precision}d}" if precision else f"{sign}{whole}"


class Units:
    """e8 ints -> nautilus Price/Quantity at the instrument's precisions (exact, via decimal text)."""

    def __init__(self, price_precision: int, size_precision: int) -> None:
        self.pp = price_precision
        self.sp = size_precision

    def price(self, v: int) -> Price:
        return Price.from_str(_text(v, self.pp))

    def qty(self, v: int) -> Quantity:
        return Quantity.from_str(_text(v, self.sp))


def make_instrument(sc: dict[str, Any], iid: InstrumentId, u: Units) -> CurrencyPair:
    """A spot pair with the scenario's precisions and fees and no limits (our side has no filters)."""
    return CurrencyPair(
        instrument_id=iid,
        raw_symbol=Symbol(sc["symbol"]),
        base_currency=Currency.from_str(sc["base"]),
        quote_currency=Currency.from_str(sc["quote"]),
        price_precision=u.pp,
        size_precision=u.sp,
        price_increment=u.price(10 ** (8 - u.pp)),
        size_increment=u.qty(10 ** (8 - u.sp)),
        lot_size=None,
        max_quantity=u.qty(9_000 * E8),
        min_quantity=u.qty(10 ** (8 - u.sp)),
        max_notional=None,
        min_notional=None,
        max_price=u.price(10_000_000 * E8),
        min_price=u.price(10 ** (8 - u.pp)),
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=Decimal(int(sc["maker_fee_e8"])) / E8,
        taker_fee=Decimal(int(sc["taker_fee_e8"])) / E8,
        ts_event=0,
        ts_init=0,
    )


class ExactQuoteFee(FeeModel):  # type: ignore[misc]
    """Flat rate on the quote notional, truncated to 1e-8: the integer rule of the tickloop side."""

    def __init__(self, maker_e8: int, taker_e8: int) -> None:
        self.maker_e8 = maker_e8
        self.taker_e8 = taker_e8

    def get_commission(self, order: Any, fill_qty: Any, fill_px: Any, instrument: Any) -> Any:
        rate = self.maker_e8 if order.liquidity_side == LiquiditySide.MAKER else self.taker_e8
        notional = _e8(fill_px) * _e8(fill_qty) // E8
        return Money.from_str(f"{_text(notional * rate // E8, 8)} {instrument.quote_currency.code}")


def _book_deltas(iid: InstrumentId, u: Units, book: dict[str, Any], seq: int, ts: int) -> OrderBookDeltas | None:
    """One book item as one batch: CLEAR + ADDs for a snapshot, UPDATE/DELETE for a diff; F_LAST on the last."""
    snap = bool(book["snapshot"])
    flags = RecordFlag.F_SNAPSHOT if snap else 0
    deltas: list[OrderBookDelta] = [OrderBookDelta.clear(iid, seq, ts, ts)] if snap else []
    for side, levels in ((OrderSide.BUY, book["bids"]), (OrderSide.SELL, book["asks"])):
        for px, q in levels:
            action = BookAction.ADD if snap else (BookAction.DELETE if q == 0 else BookAction.UPDATE)
            deltas.append(OrderBookDelta(iid, action, BookOrder(side, u.price(px), u.qty(q), 0), flags, seq, ts, ts))
    if not deltas:
        return None
    last = deltas[-1]
    deltas[-1] = OrderBookDelta(iid, last.action, last.order, int(last.flags) | RecordFlag.F_LAST, seq, ts, ts)
    return OrderBookDeltas(iid, deltas)


def market_data(sc: dict[str, Any], iid: InstrumentId, u: Units) -> list[Any]:
    """The timeline's book and trade items as nautilus data, in order."""
    data: list[Any] = []
    for seq, item in enumerate(sc["timeline"], start=1):
        ts = int(item["ts"])
        if "trade" in item:
            t = item["trade"]
            aggressor = AggressorSide.SELLER if t["buyer_maker"] else AggressorSide.BUYER
            data.append(TradeTick(iid, u.price(t["price"]), u.qty(t["qty"]), aggressor, TradeId(str(seq)), ts, ts))
        elif "book" in item:
            batch = _book_deltas(iid, u, item["book"], seq, ts)
            if batch is not None:
                data.append(batch)
    return data


class ScriptConfig(StrategyConfig, frozen=True):  # type: ignore[misc,call-arg]
    instrument_id: InstrumentId


class Script(Strategy):  # type: ignore[misc]
    """Sends the scenario's orders and cancels at their times (one clock alert per action)."""

    def __init__(self, config: ScriptConfig, actions: list[dict[str, Any]], units: Units) -> None:
        super().__init__(config)
        self.actions = actions
        self.units = units
        self.rejected: dict[str, str] = {}

    def on_start(self) -> None:
        # The data engine's copy of the book, reported at the end, needs a subscription.
        self.subscribe_order_book_deltas(self.config.instrument_id, book_type=BookType.L2_MBP)
        for n, item in enumerate(self.actions):
            self.clock.set_time_alert_ns(f"action-{n}", int(item["ts"]), self._callback(item))

    def _callback(self, item: dict[str, Any]) -> Any:
        return lambda _event: self._act(item)

    def _act(self, item: dict[str, Any]) -> None:
        if "cancel" in item:
            order = self.cache.order(ClientOrderId(item["cancel"]["id"]))
            if order is not None and order.is_open:
                self.cancel_order(order)
            return
        s, u, iid = item["submit"], self.units, self.config.instrument_id
        side = OrderSide.BUY if s["side"] == "BUY" else OrderSide.SELL
        cid = ClientOrderId(s["id"])
        if s["type"] == "MARKET":
            order = self.order_factory.market(iid, side, u.qty(s["qty"]), client_order_id=cid)
        else:
            order = self.order_factory.limit(
                iid, side, u.qty(s["qty"]), u.price(s["price"]), time_in_force=_TIFS[s["tif"]], client_order_id=cid
            )
        self.submit_order(order)

    def on_order_rejected(self, event: Any) -> None:
        self.rejected[event.client_order_id.value] = str(event.reason)

    def on_order_denied(self, event: Any) -> None:
        self.rejected[event.client_order_id.value] = f"denied: {event.reason}"


def make_engine(sc: dict[str, Any], instrument: CurrencyPair) -> BacktestEngine:
    """CASH account, L2_MBP book, default fill model, no latency model."""
    engine = BacktestEngine(
        config=BacktestEngineConfig(
            trader_id=TraderId("DIFF-001"),
            logging=LoggingConfig(bypass_logging=True),
            risk_engine=RiskEngineConfig(max_order_submit_rate="100000/00:00:01"),
            run_analysis=False,
        )
    )
    exact = sc.get("fee_model", "exact") == "exact"
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING if sc.get("oms", "HEDGING") == "NETTING" else OmsType.HEDGING,
        account_type=AccountType.CASH,
        base_currency=None,
        starting_balances=[Money.from_str(f"{_text(v, 8)} {a}") for a, v in sc["balances"].items()],
        fee_model=ExactQuoteFee(int(sc["maker_fee_e8"]), int(sc["taker_fee_e8"])) if exact else MakerTakerFeeModel(),
        book_type=BookType.L2_MBP,
        trade_execution=bool(sc.get("trade_execution", False)),
    )
    engine.add_instrument(instrument)
    return engine


def _fill_row(e: Any) -> list[Any]:
    liquidity = "MAKER" if e.liquidity_side == LiquiditySide.MAKER else "TAKER"
    return [_e8(e.last_px), _e8(e.last_qty), liquidity, _e8(e.commission), e.commission.currency.code]


def _levels(levels: Any, depth: int) -> list[list[int]]:
    return [[_e8(lv.price), sum(_e8(o.size) for o in lv.orders())] for lv in levels[:depth]]


def results(engine: BacktestEngine, script: Script, instrument: CurrencyPair, depth: int) -> dict[str, Any]:
    """Fills and final status per order, balances (total, free, locked) per asset, top of book."""
    orders: dict[str, Any] = {}
    for order in engine.cache.orders():
        cid = order.client_order_id.value
        fills = [_fill_row(e) for e in order.events if type(e).__name__ == "OrderFilled"]
        orders[cid] = {"status": order.status_string(), "fills": fills, "rejected": script.rejected.get(cid)}
    account = engine.portfolio.account(VENUE)
    balances: dict[str, list[int]] = {}
    for cur in (instrument.base_currency, instrument.quote_currency):
        amounts = (account.balance_total(cur), account.balance_free(cur), account.balance_locked(cur))
        balances[cur.code] = [_e8(x) if x is not None else 0 for x in amounts]
    book = engine.cache.order_book(instrument.id)  # the data engine's copy, built from the same deltas
    return {
        "version": nautilus_trader.__version__,
        "orders": orders,
        "balances": balances,
        "book": {"bids": _levels(book.bids(), depth), "asks": _levels(book.asks(), depth)},
    }


def run(scenario: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario through nautilus_trader's BacktestEngine; see the module docstring."""
    units = Units(int(scenario["price_precision"]), int(scenario["size_precision"]))
    iid = InstrumentId(Symbol(scenario["symbol"]), VENUE)
    instrument = make_instrument(scenario, iid, units)
    engine = make_engine(scenario, instrument)
    engine.add_data(market_data(scenario, iid, units), validate=True, sort=True)
    actions = [item for item in scenario["timeline"] if "submit" in item or "cancel" in item]
    script = Script(ScriptConfig(instrument_id=iid), actions, units)
    engine.add_strategy(script)
    engine.run()
    out = results(engine, script, instrument, int(scenario.get("book_depth", 5)))
    engine.dispose()
    return out


def run_many(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several scenarios in one process (the subprocess path pays nautilus's import once)."""
    return [run(s) for s in scenarios]


def main() -> int:
    doc = json.load(sys.stdin)
    json.dump(run_many(doc) if isinstance(doc, list) else run(doc), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
