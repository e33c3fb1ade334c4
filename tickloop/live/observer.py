"""What a running session offers to the tools that watch and steer it.

A live session (``tickloop record | paper | live``) owns the event loop, the kernel and the
two logs. Notifiers, the dashboard and the metrics endpoint never touch those: they are
:class:`SessionObserver` s, shown every event the session sees (``input``: what was fed to
the kernel, in arrival order; ``output``: what the kernel emitted), and they steer the
session only through :class:`SessionControl`. Observers run on the session's event loop, so
``on_event`` must return at once (queue slow work; never block, never raise: a failing
observer must not stop trading, so the session logs and drops its exceptions).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from engine.events import Event

Source = Literal["input", "output"]


class SessionObserver(Protocol):
    """Sees every event of a session; must not block or raise."""

    def on_event(self, event: Event, source: Source) -> None:
        """One event, as it is written to the session's ``input`` or ``output`` log."""
        ...

    async def aclose(self) -> None:
        """The session is ending: flush what is queued (bounded time), release resources."""
        ...


class SessionControl(Protocol):
    """What operator tools may ask of a running session."""

    def request_kill(self, reason: str) -> None:
        """Engage the kill switch (cancel all, optionally flatten, refuse new risk until reset)."""
        ...

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot: mode, session dir, event counts, feed state per stream, risk state."""
        ...
