"""How a command enters a run's output: the :class:`CommandIssued` envelope.

The commands themselves (``SubmitOrder``, ``CancelOrder``, ``SubmitOrderList``, ...) are
``engine.orders`` values: plain Binance-shaped requests with no envelope. Every command a
strategy issues is an output event of the run (DESIGN.md §3: "every command ... goes in"),
so the kernel wraps it with the usual ``seq``/``ts_event``/``ts_recv``/``instrument``
envelope plus the issuing strategy's id.

Log code 40 is provisional: ``engine.events.Kind`` reserves 40-59 for commands but does not
define this class yet, so it is not in ``AnyEvent`` and ``catalogs.log.LogWriter`` refuses it.
Runs whose strategies issue no commands (``noop``, ``rsi``) are unaffected; moving this class
into ``engine.events`` (Kind 40, member of ``AnyEvent``) makes commands loggable.
"""

from __future__ import annotations

from typing import ClassVar, cast

from engine.events import Event, Kind
from engine.orders import AnyCommand

COMMAND_ISSUED_KIND = 40


class CommandIssued(Event, frozen=True, gc=False):
    """A strategy issued ``command`` at ``ts_recv`` (before risk and the venue saw it)."""

    kind: ClassVar[Kind] = cast(Kind, COMMAND_ISSUED_KIND)
    strategy: str
    command: AnyCommand
