"""The strategy API: typed synchronous callbacks plus a :class:`Context` to act through.

The same strategy object runs in backtest, paper and live: it sees the world only through
its callbacks and its context (clock, signals, timers, orders), never through files,
sockets or the OS clock. A strategy declares the market kinds it wants in
``subscriptions``; the kernel calls only those callbacks, and skips building event
objects for chunks nobody subscribed to (see ``engine.kernel``).

Configs are frozen msgspec Structs (:class:`StrategyConfig`); :func:`parse_params` turns
``--param K=V`` strings into one, naming the bad key or value and listing the valid ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import msgspec

from engine.errors import ConfigError
from engine.events import (
    AggTradeReceived,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    Kind,
    KlineReceived,
    MarkPriceReceived,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import ClientOrderId, InstrumentId
from engine.orders import AnyCommand, CancelOrder, OrderSide, OrderType, SubmitOrder, TimeInForce

if TYPE_CHECKING:
    from numpy.random import Generator

    from engine.book import L2Book
    from engine.clock import Clock

NO_INSTRUMENT = InstrumentId("")
"""Instrument of output events that concern no instrument (run start/end, timers)."""


# --------------------------------------------------------------------------- config


class StrategyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every strategy config: frozen, every field has a default.

    Validate value ranges in ``__post_init__`` by raising ``ValueError`` with a message
    that names the field; :func:`make_config` turns it into a :class:`ConfigError`.
    """


C = TypeVar("C", bound=StrategyConfig)


def describe_params(config_type: type[StrategyConfig]) -> str:
    """``period: int = 14, lower: float = 30.0, ...`` for error messages and help."""
    parts = []
    for f in msgspec.structs.fields(config_type):
        tname = getattr(f.type, "__name__", str(f.type))
        parts.append(f"{f.name}: {tname} = {f.default!s}")
    return ", ".join(parts) if parts else "(none)"


def split_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["K=V", ...]`` -> ``{K: V}``; a missing ``=``, an empty key or a repeated key is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--param {pair!r}: expected KEY=VALUE")
        if key in out:
            raise ConfigError(f"--param {key!r} given twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def make_config(config_type: type[C], params: Mapping[str, Any], *, strategy: str) -> C:
    """Build and validate a config from loose values (strings are converted to the field types).

    Raises ConfigError naming the offending parameter and listing the valid ones.
    """
    fields = {f.name: f for f in msgspec.structs.fields(config_type)}
    valid = f"valid params for {strategy}: {describe_params(config_type)}"
    for key in params:
        if key not in fields:
            raise ConfigError(f"unknown parameter {key!r} for strategy {strategy!r}; {valid}")
    for key, value in params.items():
        try:  # the type alone first, so the error names this parameter
            msgspec.convert(value, fields[key].type, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(
                f"bad value {value!r} for parameter {key!r} of {strategy!r}: {exc}; {valid}"
            ) from exc
    try:  # then range and cross-field checks (__post_init__), whose messages name the fields
        return msgspec.convert(dict(params), config_type, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid parameters for {strategy!r}: {exc}; {valid}") from exc


def parse_params(config_type: type[C], pairs: Sequence[str], *, strategy: str) -> C:
    """``--param K=V`` strings -> a validated config (see :func:`make_config`)."""
    return make_config(config_type, split_params(pairs), strategy=strategy)


def config_dict(config: StrategyConfig) -> dict[str, Any]:
    """The config as JSON-ready builtins (Decimals as strings), every field included."""
    out: dict[str, Any] = msgspec.to_builtins(config)
    return out


# --------------------------------------------------------------------------- context


class KernelServices(Protocol):
    """What a Context needs from the kernel (implemented by ``engine.kernel.Kernel``)."""

    def emit_signal(self, strategy_id: str, name: str, value: float, instrument: InstrumentId) -> None: ...
    def set_timer(self, strategy_id: str, name: str, at_ns: int) -> None: ...
    def cancel_timer(self, strategy_id: str, name: str) -> bool: ...
    def queue_command(self, strategy_id: str, command: AnyCommand) -> None: ...
    def last_price(self, instrument: InstrumentId) -> int | None: ...
    def last_quote(self, instrument: InstrumentId) -> QuoteReceived | None: ...
    def book(self, instrument: InstrumentId) -> L2Book | None: ...


class Context:
    """A strategy's handle on the world. Everything it does goes through here, deterministically."""

    __slots__ = ("_kernel", "_next_order", "_rng", "clock", "strategy_id")

    def __init__(
        self, strategy_id: str, kernel: KernelServices, clock: Clock, rng: Generator | None = None
    ) -> None:
        self.strategy_id = strategy_id
        self.clock = clock
        self._kernel = kernel
        self._rng = rng
        self._next_order = 1

    @property
    def rng(self) -> Generator:
        """This strategy's seeded random generator (derived from the run's seed)."""
        if self._rng is None:
            raise ConfigError(f"strategy {self.strategy_id!r} asked for randomness but the run has no seed")
        return self._rng

    def emit_signal(self, name: str, value: float, instrument: InstrumentId = NO_INSTRUMENT) -> None:
        """Record a signal (a decision or feature value) in the run's output at the current time."""
        if not math.isfinite(value):
            raise ValueError(f"signal {name!r} of {self.strategy_id!r}: value must be finite, got {value!r}")
        self._kernel.emit_signal(self.strategy_id, name, float(value), instrument)

    def set_timer(self, name: str, at_ns: int) -> None:
        """Call ``on_timer(name, ...)`` at replay time ``at_ns`` (now if it is in the past).

        Setting a timer whose name is pending replaces it: at most one timer per name.
        """
        self._kernel.set_timer(self.strategy_id, name, at_ns)

    def cancel_timer(self, name: str) -> bool:
        """Cancel a pending timer; False if none by that name was pending."""
        return self._kernel.cancel_timer(self.strategy_id, name)

    def submit_order(
        self,
        instrument: InstrumentId,
        side: OrderSide | str,
        quantity: int,
        *,
        order_type: OrderType | str = OrderType.MARKET,
        price: int = 0,
        time_in_force: TimeInForce | None = None,
    ) -> ClientOrderId:
        """Queue a new order for the venue (through risk); returns its client order id.

        ``quantity`` and ``price`` are e8 ints (0 = not sent, as in ``engine.orders``);
        the venue validates the rest, as Binance would. Stops, icebergs and order lists go
        through :meth:`send`.
        """
        if quantity <= 0:
            raise ValueError(f"quantity must be positive e8, got {quantity}")
        coid = self.next_client_order_id()
        command = SubmitOrder(
            instrument,
            OrderSide(side),
            OrderType(order_type),
            quantity,
            price,
            time_in_force,
            client_order_id=coid,
        )
        self.send(command)
        return coid

    def cancel_order(self, instrument: InstrumentId, client_order_id: str) -> None:
        """Queue a cancel of one of this strategy's orders, by its client order id."""
        self.send(CancelOrder(instrument, orig_client_order_id=client_order_id))

    def send(self, command: AnyCommand) -> None:
        """Queue any ``engine.orders`` command; the kernel runs it through risk to the venue."""
        self._kernel.queue_command(self.strategy_id, command)

    def next_client_order_id(self) -> ClientOrderId:
        """``<strategy id>-<n>``: unique per strategy within a run, and the same in every replay."""
        coid = ClientOrderId(f"{self.strategy_id}-{self._next_order}")
        self._next_order += 1
        return coid

    def last_price(self, instrument: InstrumentId) -> int | None:
        """Price (e8) of the instrument's last trade or aggregate trade seen so far."""
        return self._kernel.last_price(instrument)

    def last_quote(self, instrument: InstrumentId) -> QuoteReceived | None:
        """The instrument's last bookTicker seen so far."""
        return self._kernel.last_quote(instrument)

    def book(self, instrument: InstrumentId) -> L2Book | None:
        """The synced local L2 book, or None (not synced, or no strategy subscribed to books)."""
        return self._kernel.book(instrument)


# --------------------------------------------------------------------------- strategy


class Strategy(Generic[C]):
    """Base class: override the callbacks for the kinds listed in ``subscriptions``.

    Subscribing to ``Kind.BOOK_DELTA`` or ``Kind.BOOK_SNAPSHOT`` makes the kernel keep a
    synced L2 book per instrument and call :meth:`on_book` after each change.
    Timers and order events are always delivered. ``ctx`` is set by the kernel
    (:meth:`attach`) before :meth:`on_start`.
    """

    name: ClassVar[str] = "strategy"
    subscriptions: ClassVar[frozenset[Kind]] = frozenset()

    ctx: Context

    def __init__(self, config: C) -> None:
        self.config = config

    def attach(self, ctx: Context) -> None:
        """Called once by the kernel; the strategy acts only through ``ctx``."""
        self.ctx = ctx

    def on_start(self) -> None:
        """Before the first event (the clock is at the first event's time)."""

    def on_stop(self) -> None:
        """After the last event."""

    def on_trade(self, trade: TradeReceived) -> None:
        """A raw trade."""

    def on_agg_trade(self, trade: AggTradeReceived) -> None:
        """An aggregate trade."""

    def on_quote(self, quote: QuoteReceived) -> None:
        """A bookTicker."""

    def on_book(self, event: BookDeltaReceived | BookSnapshotReceived, book: L2Book) -> None:
        """The instrument's synced book changed because of ``event``."""

    def on_mark_price(self, mark: MarkPriceReceived) -> None:
        """A futures mark price update."""

    def on_kline(self, kline: KlineReceived) -> None:
        """A candle."""

    def on_timer(self, name: str, now_ns: int) -> None:
        """A timer set with ``ctx.set_timer(name, ...)`` came due."""

    def on_order_event(self, event: Event) -> None:
        """A venue (or risk) event about one of this strategy's orders, or about the account."""
