"""The kill switch's three handles: a signal, a file, and the dashboard's button.

Each pull becomes one :class:`~engine.events.OperatorRequested` event that the session feeds
to the kernel like any other input, so the risk engine reacts at a logged point of the
input log and an audit replay reproduces the kill exactly. This module only turns the
handles into such events; acting on them is risk's job (``engine.risk``).

- ``SIGUSR1``: ``kill -USR1 <pid>`` (``systemctl kill -s USR1 tickloop-live``).
- ``--kill-file PATH``: polled every second; when the file appears (or changes), its first
  line is the reason. The file is left in place (the operator removes it), and pulls again
  only if it is rewritten, so a file that stays does not re-kill every second.
- :meth:`KillSwitch.request` from :class:`~tickloop.live.observer.SessionControl` (HTTP).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

from engine.events import OperatorRequested
from engine.strategy import NO_INSTRUMENT

MAX_REASON = 200
POLL_S = 1.0


def operator_event(action: str, origin: str, reason: str) -> OperatorRequested:
    """An unstamped request (the session sets ``ts_event``/``ts_recv`` when it takes it in)."""
    return OperatorRequested(0, 0, 0, NO_INSTRUMENT, action, origin, reason[:MAX_REASON])


class KillSwitch:
    """Turns signals, a kill file and API calls into OperatorRequested events via ``submit``.

    ``submit`` must be safe to call on the session's loop; :meth:`request` may be called from
    any thread (it hops onto the loop when one is attached).
    """

    def __init__(self, submit: Callable[[OperatorRequested], None], kill_file: str | Path | None = None) -> None:
        self._submit = submit
        self.kill_file = Path(kill_file) if kill_file is not None else None
        self._seen: tuple[int, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.pulls = 0

    def request(self, action: str, origin: str, reason: str) -> None:
        """Pull (``kill``) or reset (``reset``); thread-safe."""
        ev = operator_event(action, origin, reason)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._pull, ev)
                return
        self._pull(ev)

    def _pull(self, ev: OperatorRequested) -> None:
        self.pulls += 1
        self._submit(ev)

    def attach(self, loop: asyncio.AbstractEventLoop, *, signals: bool = True) -> None:
        """Install the SIGUSR1 handler (main thread only) and start polling the kill file."""
        self._loop = loop
        if signals:
            loop.add_signal_handler(signal.SIGUSR1, self.request, "kill", "signal", "SIGUSR1")
        if self.kill_file is not None:
            self._seen = self._stamp()  # a file already there at start is a pull too (fail safe)
            if self._seen is not None:
                self._pull(operator_event("kill", "file", self._reason()))
            self._task = loop.create_task(self._poll())

    def check_file(self) -> bool:
        """One poll of the kill file; True when it pulled."""
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            if stamp is None:
                self._seen = None
            return False
        self._seen = stamp
        self._pull(operator_event("kill", "file", self._reason()))
        return True

    def _stamp(self) -> tuple[int, int] | None:
        assert self.kill_file is not None
        try:
            st = self.kill_file.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reason(self) -> str:
        assert self.kill_file is not None
        try:
            text = self.kill_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        first = text.strip().splitlines()[0].strip() if text.strip() else ""
        return first or f"kill file {self.kill_file}"

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            self.check_file()

    def detach(self) -> None:
        """Remove the signal handler and stop polling."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.remove_signal_handler(signal.SIGUSR1)
        self._loop = None
