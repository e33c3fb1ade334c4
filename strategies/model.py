"""``model``: trade an ONNX classifier's P(up) on the features it was trained with.

Per instrument, a :class:`strategies.features.spec.FeatureSet` (param ``features``) is
updated from trades, and from quotes / book changes when the spec needs them. While flat
and out of cooldown, every trade with a complete feature vector is scored by the model
(``strategies.inference``, param ``backend``); P(up) >= ``threshold`` enters long with a
MARKET BUY worth ``notional`` quote (rounded down to ``step``). Once the entry is filled
the position is protected by one OCO SELL list: LIMIT_MAKER take profit ``tp_bps`` above
the average entry price (rounded up to ``tick``) and STOP_LOSS_LIMIT stop ``sl_bps`` below
(rounded down; its limit ``stop_slip_bps`` further down). If the list is refused (price
already through a barrier) or ends with something still held, a MARKET SELL closes it.
After the position is closed (or an entry fails) no entry for ``cooldown_ms``.

Signals: ``p_up`` (the quantised probability) at each entry decision; with
``signal_all=true`` at every prediction.

**Why p is quantised.** onnxruntime and the numpy backend agree to ~1e-7 on float32
models and ~1e-16 on float64 ones, not bit for bit (docs/research.md). A decision
``p >= threshold`` taken on raw floats flips whenever p lies between the two backends'
answers around the threshold; the strategy compares ``round(p, 6)`` instead, so it can
only differ when a rounding boundary (an odd multiple of 5e-7) falls between the two
answers: probability ~|difference| / 1e-6 per prediction, i.e. never in practice for a
float64 model (the training example exports float64 for this reason), rarely for a
float32 one (about 1 prediction in 10-100 has a last-digit difference in the emitted value,
far fewer a different decision). The emitted signal carries the same quantised value, so
the output log (and the run hash) is the same under both backends.

**The model must match.** The training script stores the canonical feature spec in the
ONNX metadata (``tickloop.feature_spec``); the strategy refuses a model whose spec
differs from its ``features`` param (files without it must at least carry the column
names, ``tickloop.features``, equal to the spec's). ``model_sha256``, when given, pins the
file's content (the run config names the file by path, so this puts its identity under the
run hash).

**Backend choice is not part of the run's identity.** ``backend=auto`` picks
``$TICKLOOP_INFERENCE_BACKEND`` (``onnxruntime`` or ``numpy``) when set, else onnxruntime
when installed, else numpy. Like numba on/off it is a platform matter that must not change
the output, which is how a run under either backend gives the same run hash.
"""

from __future__ import annotations

import math
import os
from decimal import Decimal
from typing import Any, ClassVar

from engine.book import L2Book
from engine.errors import ConfigError
from engine.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    Kind,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    QuoteReceived,
    TradeReceived,
)
from engine.fixed import SCALE, parse_e8
from engine.identifiers import InstrumentId
from engine.orders import ListStatusType, OrderSide, OrderStatus, OrderType, SubmitOrderList, TimeInForce
from engine.portfolio import commission_side
from engine.risk.sizing import kelly_qty
from engine.strategy import Strategy, StrategyConfig
from strategies.features.spec import FeatureSet, book_depth, columns_of, parse_specs, specs_text

SPEC_KEY = "tickloop.feature_spec"
"""ONNX metadata_props key with the canonical feature spec the model was trained on."""
BACKEND_ENV = "TICKLOOP_INFERENCE_BACKEND"
QUANTUM_DIGITS = 6
"""p is rounded to 1e-6 before it is compared or emitted (see the module doc)."""
BPS = 10_000

FLAT, ENTERING, EXITING, CLOSING = range(4)


def quantise(p: float) -> float:
    """P(up) rounded to 1e-6 (Python's correctly rounded ``round``): what decisions see."""
    return round(p, QUANTUM_DIGITS)


def _e8(name: str, d: Decimal) -> int:
    if not d.is_finite() or d <= 0:
        raise ValueError(f"{name} must be a positive decimal, got {d}")
    try:
        return parse_e8(format(d, "f"))
    except ValueError as exc:
        raise ValueError(f"{name} {d}: {exc}") from None


class ModelConfig(StrategyConfig, frozen=True, kw_only=True):
    """Model file, its feature spec, the entry threshold, sizing, exits and cooldown."""

    model_path: str = ""
    model_sha256: str = ""
    features: str = "rsi:14,obi:5,tfi:100,vol:20"
    backend: str = "auto"
    threshold: float = 0.6
    notional: Decimal = Decimal("100")
    sizing: str = "notional"
    capital: Decimal = Decimal("1000")
    kelly_scale: float = 0.25
    tp_bps: int = 20
    sl_bps: int = 20
    stop_slip_bps: int = 10
    cooldown_ms: int = 1000
    tick: Decimal = Decimal("0.01")
    step: Decimal = Decimal("0.00001")
    signal_all: bool = False

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ValueError("model_path is required (an ONNX file written by examples/train_mlp.py)")
        if self.backend not in ("auto", "onnxruntime", "numpy"):
            raise ValueError(f"backend must be auto, onnxruntime or numpy, got {self.backend!r}")
        if not math.isfinite(self.threshold) or not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be within 0..1, got {self.threshold}")
        for name, bps in (("tp_bps", self.tp_bps), ("sl_bps", self.sl_bps)):
            if not 0 < bps < BPS:
                raise ValueError(f"{name} must be in 1..9999, got {bps}")
        if not 0 <= self.stop_slip_bps < BPS - self.sl_bps:
            raise ValueError(f"stop_slip_bps must be in 0..{BPS - self.sl_bps - 1}, got {self.stop_slip_bps}")
        if self.sizing not in ("notional", "kelly"):
            raise ValueError(f"sizing must be notional or kelly, got {self.sizing!r}")
        if not math.isfinite(self.kelly_scale) or not 0.0 < self.kelly_scale <= 1.0:
            raise ValueError(f"kelly_scale must be within (0, 1], got {self.kelly_scale}")
        if self.cooldown_ms < 0:
            raise ValueError(f"cooldown_ms must be >= 0, got {self.cooldown_ms}")
        for name, d in (("notional", self.notional), ("capital", self.capital), ("tick", self.tick),
                        ("step", self.step)):
            _e8(name, d)
        if self.model_sha256 and (len(self.model_sha256) != 64 or not _is_hex(self.model_sha256)):
            raise ValueError(f"model_sha256 must be 64 hex digits, got {self.model_sha256!r}")
        parse_specs(self.features)


def _is_hex(s: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in s)


def resolve_backend(backend: str) -> Any:
    """``auto`` -> ``$TICKLOOP_INFERENCE_BACKEND`` when set, else ``auto`` (see module doc)."""
    if backend != "auto":
        return backend
    env = os.environ.get(BACKEND_ENV, "").strip()
    if env and env not in ("auto", "onnxruntime", "numpy"):
        raise ConfigError(f"${BACKEND_ENV}={env!r}: expected auto, onnxruntime or numpy")
    return env or "auto"


class _State:
    """One instrument's features and position cycle."""

    __slots__ = ("cooldown_until", "entry_qty", "entry_quote", "features", "held", "mode")

    def __init__(self, features: FeatureSet) -> None:
        self.features = features
        self.mode = FLAT
        self.cooldown_until = 0
        self.held = 0
        self.entry_qty = 0
        self.entry_quote = 0


class ModelStrategy(Strategy[ModelConfig]):
    """See module doc."""

    name: ClassVar[str] = "model"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset({Kind.TRADE})

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        from strategies.inference import load_model

        self.specs = parse_specs(config.features)
        self.model = load_model(config.model_path, backend=resolve_backend(config.backend))
        self._check_model()
        kinds = {Kind.TRADE}
        probe = FeatureSet(self.specs)
        if probe.needs_quotes:
            kinds.add(Kind.QUOTE)
        if probe.needs_book:
            kinds |= {Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT}
        # The kernel reads the instance's subscriptions: only what the spec needs.
        self.subscriptions = frozenset(kinds)  # type: ignore[misc]
        self._depth = book_depth(self.specs)
        self._threshold = config.threshold
        self.notional_e8 = _e8("notional", config.notional)
        self.cash_e8 = _e8("capital", config.capital)  # the strategy's own capital: + sells - buys - quote fees
        self.tick_e8 = _e8("tick", config.tick)
        self.step_e8 = _e8("step", config.step)
        self._cooldown_ns = config.cooldown_ms * 1_000_000
        self._states: dict[InstrumentId, _State] = {}
        self.predictions = 0
        self.entries = 0
        self.exits = 0
        self.rejections = 0

    def _check_model(self) -> None:
        """Refuse a model trained on another feature spec (or one that cannot say)."""
        info = self.model.info
        meta = dict(info.metadata)
        own = specs_text(self.specs)
        cols = columns_of(self.specs)
        where = f"model {info.source}"
        if SPEC_KEY in meta:
            if specs_text(parse_specs(meta[SPEC_KEY])) != own:
                raise ConfigError(f"{where} was trained on features {meta[SPEC_KEY]!r}, the strategy computes {own!r}")
        elif info.feature_names is None:
            raise ConfigError(f"{where} records neither {SPEC_KEY!r} nor column names: cannot check its features")
        if info.feature_names is not None and tuple(info.feature_names) != cols:
            raise ConfigError(f"{where} expects columns {','.join(info.feature_names)}, the spec gives {','.join(cols)}")
        if info.n_features is not None and info.n_features != len(cols):
            raise ConfigError(f"{where} takes {info.n_features} inputs, the spec gives {len(cols)}")
        want = self.config.model_sha256.lower()
        if want and info.sha256 != want:
            raise ConfigError(f"{where} has sha256 {info.sha256}, not the model_sha256 {want} the run asks for")

    def _state(self, instrument: InstrumentId) -> _State:
        st = self._states.get(instrument)
        if st is None:
            st = self._states[instrument] = _State(FeatureSet(self.specs))
        return st

    # ----------------------------------------------------------------- market data

    def on_quote(self, quote: QuoteReceived) -> None:
        self._state(quote.instrument).features.on_quote(
            quote.bid_price, quote.bid_qty, quote.ask_price, quote.ask_qty
        )

    def on_book(self, event: BookDeltaReceived | BookSnapshotReceived, book: L2Book) -> None:
        bids, asks = book.top(self._depth)
        self._state(event.instrument).features.on_book(bids, asks)

    def on_trade(self, trade: TradeReceived) -> None:
        st = self._state(trade.instrument)
        st.features.on_trade(trade.ts_event, trade.price, trade.qty, trade.buyer_maker)
        if st.mode != FLAT or trade.ts_recv < st.cooldown_until:
            return
        x = st.features.vector()
        if any(v != v for v in x):  # NaN: a feature is still warming up
            return
        p = self.model.predict_one(x)
        pq = quantise(float(p) if isinstance(p, float) else float(p[-1]))
        self.predictions += 1
        enter = pq >= self._threshold
        if enter or self.config.signal_all:
            self.ctx.emit_signal("p_up", pq, trade.instrument)
        if enter:
            self._enter(trade.instrument, st, trade.price, pq)

    # ----------------------------------------------------------------- orders

    def _enter(self, instrument: InstrumentId, st: _State, price: int, p_up: float) -> None:
        qty = self.entry_qty_e8(price, p_up)
        if qty <= 0:
            return
        st.mode = ENTERING
        st.entry_qty = st.entry_quote = 0
        self.entries += 1
        self.ctx.submit_order(instrument, OrderSide.BUY, qty)

    def entry_qty_e8(self, price: int, p_up: float) -> int:
        """How much to buy at ``price``: a fixed quote ``notional``, or fractional Kelly.

        Kelly uses the risk engine's sizing (``engine.risk.sizing.kelly_qty``): win probability =
        the model's quantised P(up), payoff ratio = ``tp_bps / sl_bps`` (the OCO's barriers),
        staked on the strategy's own capital (``capital`` + realised cash flow; the strategy is
        flat whenever it enters, so that is its equity). The risk engine still checks the order.
        """
        if self.config.sizing == "kelly":
            return kelly_qty(self.cash_e8, price, p_up, self.config.tp_bps / self.config.sl_bps,
                             scale=self.config.kelly_scale, step=self.step_e8)
        return self.notional_e8 * SCALE // price // self.step_e8 * self.step_e8

    def sellable_e8(self, st: _State) -> int:
        """The holding rounded down to ``step``: what a SELL can send."""
        return st.held // self.step_e8 * self.step_e8 if st.held > 0 else 0

    def exit_prices(self, entry_price: int) -> tuple[int, int, int]:
        """(take profit, stop, stop limit) e8 prices on the tick grid for an average entry price."""
        c, tick = self.config, self.tick_e8
        tp = -(-entry_price * (BPS + c.tp_bps) // (BPS * tick)) * tick
        stop = entry_price * (BPS - c.sl_bps) // (BPS * tick) * tick
        limit = stop * (BPS - c.stop_slip_bps) // (BPS * tick) * tick
        return tp, stop, limit

    def _protect(self, instrument: InstrumentId, st: _State) -> None:
        """Place the OCO take-profit / stop-loss list over what is held."""
        qty = self.sellable_e8(st)
        if qty <= 0 or st.entry_qty <= 0:
            self._flat(st)
            return
        tp, stop, limit = self.exit_prices(st.entry_quote * SCALE // st.entry_qty)
        if limit <= 0:
            self._close(instrument, st)
            return
        st.mode = EXITING
        self.ctx.send(
            SubmitOrderList.oco(
                instrument,
                OrderSide.SELL,
                qty,
                above={"order_type": OrderType.LIMIT_MAKER, "price": tp},
                below={"order_type": OrderType.STOP_LOSS_LIMIT, "price": limit, "stop_price": stop,
                       "time_in_force": TimeInForce.GTC},  # fmt: skip
            )
        )

    def _close(self, instrument: InstrumentId, st: _State) -> None:
        """MARKET SELL whatever is held (a refused or unfinished exit)."""
        qty = self.sellable_e8(st)
        if qty <= 0:
            self._flat(st)
            return
        st.mode = CLOSING
        self.ctx.submit_order(instrument, OrderSide.SELL, qty)

    def _flat(self, st: _State) -> None:
        st.mode = FLAT
        st.cooldown_until = self.ctx.clock.now_ns() + self._cooldown_ns

    def on_order_event(self, event: Event) -> None:
        """Fills move the position and drive the cycle: entry -> OCO exit -> flat (+ cooldown)."""
        st = self._states.get(event.instrument)
        if st is None:
            return
        if type(event) is OrderFilled:
            self._on_fill(event, st)
        elif isinstance(event, OrderRejected):
            self.rejections += 1
            if st.mode == ENTERING and self.sellable_e8(st) > 0:
                self._protect(event.instrument, st)
            elif st.mode == ENTERING:
                self._flat(st)
            elif st.mode == EXITING:
                self._close(event.instrument, st)
            elif st.mode == CLOSING:
                self._flat(st)
        elif isinstance(event, OrderExpired | OrderCanceled):
            if st.mode == ENTERING:  # a MARKET BUY that found no (more) liquidity
                self._protect(event.instrument, st)
            elif st.mode == CLOSING and event.cum_qty > 0:  # sold some: send the rest
                self._close(event.instrument, st)
            elif st.mode == CLOSING:  # sold nothing: give up rather than resend forever
                self._flat(st)
        elif (
            isinstance(event, OrderListStatusChanged)
            and event.list_status_type is ListStatusType.ALL_DONE
            and st.mode == EXITING
        ):
            self._close(event.instrument, st)

    def _on_fill(self, fill: OrderFilled, st: _State) -> None:
        buy = fill.side is OrderSide.BUY
        st.held += fill.qty if buy else -fill.qty
        self.cash_e8 += -fill.quote_qty if buy else fill.quote_qty
        paid_in = commission_side(fill.instrument, fill.commission_asset)
        if paid_in == "quote":
            self.cash_e8 -= fill.commission
        elif paid_in == "base":
            st.held -= fill.commission  # we hold that much less
        if buy:
            st.entry_qty += fill.qty
            st.entry_quote += fill.quote_qty
            if fill.status is OrderStatus.FILLED and st.mode == ENTERING:
                self._protect(fill.instrument, st)
        elif self.sellable_e8(st) == 0 and st.mode in (EXITING, CLOSING):
            self.exits += 1
            self._flat(st)
