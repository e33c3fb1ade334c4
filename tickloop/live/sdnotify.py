"""A tiny ``sd_notify`` client: READY=1, WATCHDOG=1 and STATUS=... over ``$NOTIFY_SOCKET``.

Why our own: the protocol is one datagram on a unix socket, and the board's edge profile
should not grow a dependency (or libsystemd bindings) for it. Without ``$NOTIFY_SOCKET``
(not started by systemd, or a unit without ``Type=notify``) every call is a no-op, so the
same session code runs from a terminal, a test and a unit.

How a session uses it (deploy/tickloop-*.service have ``Type=notify`` and ``WatchdogSec``)::

    notifier = SdNotifier.from_env()
    ...                                   # open logs, connect, sync books
    notifier.ready("paper: 15 symbols, books synced")
    while running:                        # the session's own loop, NOT a side thread:
        ...                               # a hung loop must stop the keepalives
        notifier.keepalive(time.monotonic_ns())   # sends WATCHDOG=1 at most every interval
    notifier.stopping()

Keepalives are sent from the loop that does the work so that systemd restarts a process
whose loop is stuck, not only one that died. ``keepalive`` rate-limits itself to half of
``$WATCHDOG_USEC`` (systemd's advice), so it is cheap to call on every iteration.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.errors import ConfigError

_MAX_STATUS = 1024  # systemd truncates nothing, but a status line is meant to be one short line


def _address(path: str) -> str:
    """A leading ``@`` names a socket in the abstract namespace (a NUL byte on the wire)."""
    return "\0" + path[1:] if path.startswith("@") else path


def _watchdog_interval_ns(environ: Mapping[str, str], pid: int) -> int | None:
    """Half of ``$WATCHDOG_USEC`` in ns, when the watchdog is meant for this process."""
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner and owner.isdigit() and int(owner) != pid:
        return None
    try:
        value = int(usec)
    except ValueError:
        raise ConfigError(f"$WATCHDOG_USEC is not an integer: {usec!r}") from None
    if value <= 0:
        raise ConfigError(f"$WATCHDOG_USEC must be positive, got {value}")
    return value * 1000 // 2


@dataclass(slots=True)
class SdNotifier:
    """Sends state changes to systemd; every method is a no-op when ``socket_path`` is None.

    ``watchdog_interval_ns`` is how often :meth:`keepalive` pings (None: no watchdog asked).
    Send failures are swallowed and counted in ``errors``: losing a status line must never
    stop a trading process (a missed keepalive is what the watchdog exists to catch).
    """

    socket_path: str | None
    watchdog_interval_ns: int | None = None
    errors: int = 0
    sent: int = 0
    _last_ping_ns: int | None = field(default=None, repr=False)
    _sock: socket.socket | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SdNotifier:
        """Read ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET") or None
        interval = _watchdog_interval_ns(env, os.getpid()) if path else None
        return cls(socket_path=path, watchdog_interval_ns=interval)

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self.socket_path is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; True if it was sent."""
        for item in assignments:
            if "=" not in item or "\n" in item:
                raise ConfigError(f"sd_notify assignment must be one KEY=VALUE line, got {item!r}")
        if self.socket_path is None or not assignments:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(assignments).encode(), _address(self.socket_path))
        except OSError:
            self.errors += 1
            self.close()  # reopened by the next send (systemd may have restarted meanwhile)
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        """Startup is complete (``Type=notify`` units stay "activating" until this)."""
        return self.notify("READY=1", *([_status(status)] if status else []))

    def status(self, text: str) -> bool:
        """A one-line human status shown by ``systemctl status``."""
        return self.notify(_status(text))

    def watchdog(self) -> bool:
        """One keepalive now."""
        return self.notify("WATCHDOG=1")

    def keepalive(self, monotonic_ns: int) -> bool:
        """A keepalive if ``watchdog_interval_ns`` has passed since the last one (caller's monotonic clock)."""
        interval = self.watchdog_interval_ns
        if interval is None or self.socket_path is None:
            return False
        last = self._last_ping_ns
        if last is not None and monotonic_ns - last < interval:
            return False
        self._last_ping_ns = monotonic_ns
        return self.watchdog()

    def stopping(self, status: str = "") -> bool:
        """Shutdown has begun (systemd then waits for exit instead of expecting keepalives)."""
        return self.notify("STOPPING=1", *([_status(status)] if status else []))

    def close(self) -> None:
        """Close the datagram socket (it is reopened by the next send)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status(text: str) -> str:
    one_line = " ".join(text.split())
    return "STATUS=" + one_line[:_MAX_STATUS]


__all__ = ["SdNotifier"]
