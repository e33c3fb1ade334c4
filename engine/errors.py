"""One exception tree for the whole project.

Third-party errors are translated at the boundary with ``raise ... from exc`` so
that callers catch ``TickloopError`` (or a branch of it) and nothing else.
"We sent something bad" (:class:`RequestRejected`) and "the venue misbehaved"
(:class:`VenueMisbehaved`) are different branches on purpose: the first is a bug
or a limit on our side, the second calls for reconciliation.
"""

from __future__ import annotations


class TickloopError(Exception):
    """Root of every error tickloop raises on purpose."""


class ConfigError(TickloopError):
    """A configuration value, CLI flag or strategy parameter is invalid."""


class InputError(TickloopError):
    """Bad input data; names the source and the line (1-based) when known."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.reason = message
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(f"{where}{message}")


class LogError(TickloopError):
    """The event log is unreadable, inconsistent or misused."""


class LogCorruptError(LogError):
    """A sealed segment or a batch in the middle of a segment is damaged."""


class BookError(TickloopError):
    """The local order book cannot be kept in sync."""


class VenueError(TickloopError):
    """Anything that went wrong talking to a venue."""


class RequestRejected(VenueError):
    """The venue refused what we sent; carries Binance's code and message."""

    def __init__(self, code: int, msg: str) -> None:
        self.code = code
        self.msg = msg
        super().__init__(f"{code} {msg}")


class VenueMisbehaved(VenueError):
    """The venue answered something that contradicts its own protocol."""
