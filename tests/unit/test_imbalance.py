"""``imbalance``: entry on OBI + TFI, the OCO bracket (prices, quantity), exits, rejections.

The strategy is driven by hand through a recording stand-in for the kernel, so each test
states exactly which events it saw and checks exactly which commands it sent; one test
runs it through the real kernel, risk engine and simulated venue.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.book import L2Book
from engine.clock import ReplayClock
from engine.errors import ConfigError
from engine.events import (
    BookSnapshotReceived,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    QuoteReceived,
    RiskDenied,
    TradeReceived,
)
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import (
    AnyCommand,
    CancelOrderList,
    ContingencyType,
    ExpiryReason,
    ListOrderStatus,
    ListShape,
    ListStatusType,
    OrderSide,
    OrderStatus,
    OrderType,
    SubmitOrder,
    SubmitOrderList,
)
from engine.strategy import Context
from strategies.imbalance import ImbalanceConfig, ImbalanceStrategy, Phase
from strategies.registry import build_strategy

pytestmark = pytest.mark.edge

E8 = SCALE
BTC = InstrumentId("BTCUSDT.SPOT")
PERP = InstrumentId("BTCUSDT.USDM")
SEC = 1_000_000_000


class FakeKernel:
    """Records what the strategy does (KernelServices)."""

    def __init__(self) -> None:
        self.commands: list[AnyCommand] = []
        self.signals: list[tuple[str, float]] = []
        self.quotes: dict[InstrumentId, QuoteReceived] = {}

    def emit_signal(self, strategy_id: str, name: str, value: float, instrument: InstrumentId) -> None:
        self.signals.append((name, value))

    def set_timer(self, strategy_id: str, name: str, at_ns: int) -> None:
        raise AssertionError("no timers expected")

    def cancel_timer(self, strategy_id: str, name: str) -> bool:
        return False

    def queue_command(self, strategy_id: str, command: AnyCommand) -> None:
        self.commands.append(command)

    def last_price(self, instrument: InstrumentId) -> int | None:
        return None

    def last_quote(self, instrument: InstrumentId) -> QuoteReceived | None:
        return self.quotes.get(instrument)

    def book(self, instrument: InstrumentId) -> Any:
        return None


def make(**params: Any) -> tuple[ImbalanceStrategy, FakeKernel, ReplayClock]:
    base = {"levels": 2, "obi_threshold": 0.2, "tfi_threshold": 0.2, "window_ns": 2 * SEC, "tp_bps": 50,
            "sl_bps": 30, "sl_limit_bps": 10, "quantity": "0.01", "cooldown_ns": 5 * SEC}
    strat = build_strategy("imbalance", {**base, **params})
    assert isinstance(strat, ImbalanceStrategy)
    kernel, clock = FakeKernel(), ReplayClock()
    strat.attach(Context("imb", kernel, clock))
    return strat, kernel, clock


def book_event(strat: ImbalanceStrategy, clock: ReplayClock, bid_qty: int, ask_qty: int,
               iid: InstrumentId = BTC) -> None:
    bids = ((60_000 * E8, bid_qty), (59_999 * E8, bid_qty))
    asks = ((60_001 * E8, ask_qty), (60_002 * E8, ask_qty))
    ev = BookSnapshotReceived(0, clock.now, clock.now, iid, 1, bids, asks)
    strat.on_book(ev, L2Book.from_levels(bids, asks))


def trade(strat: ImbalanceStrategy, clock: ReplayClock, ts: int, qty: int, buyer_maker: bool,
          iid: InstrumentId = BTC, price: int = 60_000 * E8) -> None:
    clock.advance_to(ts)
    strat.on_trade(TradeReceived(0, ts, ts, iid, price, qty, ts, buyer_maker))


def fill(cid: str, side: OrderSide, price: int, qty: int, status: OrderStatus, *, fee: int = 0,
         fee_asset: str = "USDT", maker: bool = False, iid: InstrumentId = BTC) -> OrderFilled:
    return OrderFilled(0, 0, 0, iid, 1, cid, side, price, qty, price * qty // E8, qty, 0, status, fee,
                       fee_asset, 1, maker, -1, 1)


def bullish(strat: ImbalanceStrategy, clock: ReplayClock, t0: int = 0, iid: InstrumentId = BTC) -> None:
    """A bid-heavy book, then taker buys for longer than the TFI window: both signals high."""
    book_event(strat, clock, 3 * E8, E8, iid)
    for i in range(4):
        trade(strat, clock, t0 + i * SEC, E8 // 10, False, iid)


def test_enters_long_only_when_both_imbalances_pass_then_waits_for_the_cooldown() -> None:
    strat, k, clock = make()
    book_event(strat, clock, E8, 3 * E8)  # ask-heavy book: OBI = -0.5
    for i in range(4):
        trade(strat, clock, i * SEC, E8 // 10, False)  # TFI = +1 after the 2 s window
    assert k.commands == []
    book_event(strat, clock, 3 * E8, E8)  # OBI = +0.5
    trade(strat, clock, 4 * SEC, E8 // 10, False)
    assert len(k.commands) == 1
    entry = k.commands[0]
    assert isinstance(entry, SubmitOrder)
    assert (entry.side, entry.order_type, entry.quantity) == (OrderSide.BUY, OrderType.MARKET, E8 // 100)
    assert k.signals[0][0] == "enter_long" and k.signals[0][1] == pytest.approx(0.5)
    assert strat.books[BTC].phase is Phase.ENTERING


def test_bracket_is_an_oco_with_tick_rounded_prices_for_the_filled_quantity() -> None:
    strat, k, clock = make(tick="0.01", step="0.00001")
    bullish(strat, clock)
    entry = k.commands[0]
    assert isinstance(entry, SubmitOrder) and entry.client_order_id
    cid = entry.client_order_id
    # two partial fills at different prices, the BUY's fee taken in BTC (Binance spot)
    strat.on_order_event(fill(cid, OrderSide.BUY, 60_000 * E8, 600_000, OrderStatus.PARTIALLY_FILLED, fee=600,
                              fee_asset="BTC"))
    assert len(k.commands) == 1  # no bracket before the entry is final
    strat.on_order_event(fill(cid, OrderSide.BUY, 60_010_01_000_000, 400_000, OrderStatus.FILLED, fee=400,
                              fee_asset="BTC"))
    assert len(k.commands) == 2
    oco = k.commands[1]
    assert isinstance(oco, SubmitOrderList) and oco.shape is ListShape.OCO
    above, below = oco.legs
    held = 1_000_000 - 1_000  # filled minus the base-asset fee ...
    qty = held // 1_000 * 1_000  # ... on the step grid
    assert above.quantity == below.quantity == qty
    assert above.side is below.side is OrderSide.SELL
    avg = (60_000 * E8 * 600_000 + 60_010_01_000_000 * 400_000) // 1_000_000  # 60004.004
    tick = E8 // 100
    tp = -(-(avg * 10_050 // 10_000) // tick) * tick
    stop = avg * 9_970 // 10_000 // tick * tick
    assert (above.order_type, above.price) == (OrderType.LIMIT_MAKER, tp)
    assert (below.order_type, below.stop_price, below.price) == (
        OrderType.STOP_LOSS_LIMIT, stop, stop * 9_990 // 10_000 // tick * tick
    )
    assert tp % tick == 0 and below.stop_price % tick == 0 and below.price % tick == 0
    assert below.price < below.stop_price < avg < above.price
    assert strat.books[BTC].phase is Phase.BRACKETED


def _bracketed(**params: Any) -> tuple[ImbalanceStrategy, FakeKernel, ReplayClock, SubmitOrderList]:
    strat, k, clock = make(**params)
    bullish(strat, clock)
    entry = k.commands[0]
    assert isinstance(entry, SubmitOrder) and entry.client_order_id
    strat.on_order_event(fill(entry.client_order_id, OrderSide.BUY, 60_000 * E8, E8 // 100, OrderStatus.FILLED))
    oco = k.commands[1]
    assert isinstance(oco, SubmitOrderList)
    return strat, k, clock, oco


def test_a_take_profit_fill_ends_flat_and_the_other_leg_expiring_sends_nothing() -> None:
    strat, k, clock, oco = _bracketed()
    tp, sl = oco.legs
    assert tp.client_order_id and sl.client_order_id and oco.list_client_order_id
    strat.on_order_event(fill(tp.client_order_id, OrderSide.SELL, tp.price, tp.quantity, OrderStatus.FILLED,
                              maker=True))
    strat.on_order_event(OrderExpired(0, 0, 0, BTC, 2, sl.client_order_id, OrderStatus.EXPIRED,
                                      ExpiryReason.OCO_TRIGGER, 0, 0, 1, 2))
    strat.on_order_event(OrderListStatusChanged(0, 0, 0, BTC, 1, oco.list_client_order_id, ContingencyType.OCO,
                                                ListStatusType.ALL_DONE, ListOrderStatus.ALL_DONE, (1, 2),
                                                (tp.client_order_id, sl.client_order_id)))
    b = strat.books[BTC]
    assert b.phase is Phase.FLAT and b.position == 0 and b.live == {}
    assert len(k.commands) == 2  # nothing more to send
    bullish(strat, clock, t0=100 * SEC)  # and it can trade again
    assert len(k.commands) == 3 and isinstance(k.commands[2], SubmitOrder)


def test_a_partial_leg_fill_then_the_bracket_ending_sells_the_rest_at_market() -> None:
    strat, k, _, oco = _bracketed()
    tp, sl = oco.legs
    assert tp.client_order_id and sl.client_order_id
    strat.on_order_event(fill(sl.client_order_id, OrderSide.SELL, 59_900 * E8, 400_000,
                              OrderStatus.PARTIALLY_FILLED))
    strat.on_order_event(OrderExpired(0, 0, 0, BTC, 2, tp.client_order_id, OrderStatus.EXPIRED,
                                      ExpiryReason.OCO_TRIGGER, 0, 0, 1, 2))
    assert len(k.commands) == 2  # the stop leg still works
    strat.on_order_event(OrderCanceled(0, 0, 0, BTC, 3, sl.client_order_id, "", 400_000, 0, 1, 3))
    exit_ = k.commands[2]
    assert isinstance(exit_, SubmitOrder)
    assert (exit_.side, exit_.order_type, exit_.quantity) == (OrderSide.SELL, OrderType.MARKET, 600_000)
    assert exit_.client_order_id
    strat.on_order_event(fill(exit_.client_order_id, OrderSide.SELL, 59_890 * E8, 600_000, OrderStatus.FILLED))
    assert strat.books[BTC].phase is Phase.FLAT and strat.books[BTC].position == 0


def test_bearish_while_long_on_spot_cancels_the_bracket_then_exits() -> None:
    strat, k, clock, oco = _bracketed()
    book_event(strat, clock, E8, 3 * E8)
    for i in range(4):
        trade(strat, clock, (10 + i) * SEC, E8 // 10, True)  # taker sells
    cancel = k.commands[2]
    assert isinstance(cancel, CancelOrderList) and cancel.list_client_order_id == oco.list_client_order_id
    assert k.signals[-1][0] == "exit"
    assert len(k.commands) == 3
    for leg in oco.legs:
        assert leg.client_order_id
        strat.on_order_event(OrderCanceled(0, 0, 0, BTC, 1, leg.client_order_id, "", 0, 0, 1, 1))
    exit_ = k.commands[3]
    assert isinstance(exit_, SubmitOrder) and (exit_.side, exit_.quantity) == (OrderSide.SELL, E8 // 100)


def test_bearish_while_flat_on_spot_never_sells_short() -> None:
    strat, k, clock = make()
    book_event(strat, clock, E8, 3 * E8)
    for i in range(6):
        trade(strat, clock, i * SEC, E8 // 10, True)
    assert k.commands == [] and strat.books[BTC].phase is Phase.FLAT


def test_bearish_while_flat_on_futures_enters_short_with_the_mirrored_bracket() -> None:
    strat, k, clock = make()
    book_event(strat, clock, E8, 3 * E8, PERP)
    for i in range(4):
        trade(strat, clock, i * SEC, E8 // 10, True, PERP)
    entry = k.commands[0]
    assert isinstance(entry, SubmitOrder) and entry.side is OrderSide.SELL and entry.client_order_id
    strat.on_order_event(fill(entry.client_order_id, OrderSide.SELL, 60_000 * E8, E8 // 100, OrderStatus.FILLED,
                              iid=PERP))
    oco = k.commands[1]
    assert isinstance(oco, SubmitOrderList)
    above, below = oco.legs
    assert above.side is below.side is OrderSide.BUY
    assert above.order_type is OrderType.STOP_LOSS_LIMIT and below.order_type is OrderType.LIMIT_MAKER
    assert below.price < 60_000 * E8 < above.stop_price <= above.price


def test_a_refused_entry_leaves_it_flat_and_a_refused_bracket_exits_at_market() -> None:
    strat, k, clock = make()
    bullish(strat, clock)
    entry = k.commands[0]
    assert isinstance(entry, SubmitOrder) and entry.client_order_id
    strat.on_order_event(RiskDenied(0, 0, 0, BTC, entry.client_order_id, -2010, "Risk: max_order_notional: x",
                                    strategy="imb", rule="max_order_notional"))
    assert strat.books[BTC].phase is Phase.FLAT and strat.rejections == 1
    strat2, k2, _, oco = _bracketed()
    assert oco.list_client_order_id and oco.legs[0].client_order_id
    strat2.on_order_event(OrderRejected(0, 0, 0, BTC, oco.legs[0].client_order_id, -1166,
                                        "A limit order in a sell OCO must be above.",
                                        list_client_order_id=oco.list_client_order_id))
    exit_ = k2.commands[2]
    assert isinstance(exit_, SubmitOrder) and exit_.order_type is OrderType.MARKET
    assert exit_.side is OrderSide.SELL and exit_.quantity == E8 // 100


def test_bad_params_are_config_errors_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="obi_threshold"):
        build_strategy("imbalance", ["obi_threshold=1.5"])
    with pytest.raises(ConfigError, match="tick"):
        build_strategy("imbalance", ["tick=0"])
    assert ImbalanceConfig().quantity == Decimal("0.001")
