"""Run the venue server in a background thread: the fixture other tests (and engineers) build on.

::

    from venues.server.testing import ServerConfig, serve_in_thread

    with serve_in_thread(ServerConfig(demo=True, speed=0, seed=7)) as info:
        requests.get(info.base_url + "/api/v3/time")
        info.control.set_faults(error_next=2)       # same as POST /_tickloop/faults
        info.control.wait_market_done(timeout=30)   # the replay has ended (speed 0 / short demo)

``ServerConfig`` says *what* to serve (a log or the seeded demo market, pace, seed, faults,
credentials, output log, limits); the objects are built by the composition root
(``tickloop.commands.serve_venue.build_setup``), because reading logs and generating the demo
market live in layers ``venues`` may not import. A caller that already has a
:class:`~venues.server.app.ServerSetup` passes it as ``setup=`` instead.

The server runs in its own thread with its own event loop; :class:`ServerControl` methods are
thread-safe (they run on that loop). Leaving the ``with`` block stops the server, closes every
connection and closes its log cleanly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import ConfigError
from venues.server.app import ServerSetup, VenueServer
from venues.server.limits import LimitsConfig

T = TypeVar("T")
START_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What ``serve-venue`` serves; the CLI flags map one to one.

    - ``log``: replay this event log (``--log``); when None, the synthetic ``demo`` market
      (``replay.synthetic``, seeded by ``seed``, ``demo_duration_s`` long) is served.
    - ``speed``: 1.0 = real time, 10 = ten times faster, 0 = as fast as possible.
    - ``seed``: the demo market's seed and the demo credentials' seed.
    - ``faults``: initial fault settings (``venues.server.faults.Faults`` field names).
    - ``out``: directory for the server's own event log (commands received, venue events).
    - ``api_key``/``api_secret``: fixed credentials (else derived from ``seed``).
    - ``host``/``port``: where to listen (port 0 = ephemeral).
    - ``limits``: rate limits (lower them in tests to reach 429/418 quickly).
    - ``venue_config``: the backtest's venue TOML; ``balances``: ``ASSET=AMOUNT`` entries over it
      (the demo defaults to 1,000,000 USDT, 10 BTC and 100 ETH).
    - ``wait_for_client``: start the market replay only when the first WebSocket market stream is
      subscribed (for short fast replays a slow-starting client must not miss).
    """

    log: Path | None = None
    demo: bool = True
    speed: float = 1.0
    seed: int = 0
    faults: Mapping[str, Any] = field(default_factory=dict)
    out: Path | None = None
    api_key: str | None = None
    api_secret: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    demo_duration_s: float = 120.0
    venue_config: Path | None = None
    balances: tuple[str, ...] = ()
    wait_for_client: bool = False


class ServerControl:
    """Thread-safe handle on a server running in another thread's event loop."""

    def __init__(self, server: VenueServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``fn`` on the server's loop (e.g. read venue state) and return its result."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change fault settings (as ``POST /_tickloop/faults``); returns the new settings."""

        def apply() -> dict[str, Any]:
            self.server.faults.update(changes)
            return self.server.faults.to_json()

        return self.call(apply)

    def status(self) -> dict[str, Any]:
        return self.call(lambda: {"events_replayed": self.server.events_replayed,
                                  "market_done": self.server.market_done.is_set()})

    def wait_market_done(self, timeout: float = 60.0) -> None:
        """Block until the market replay has ended (TimeoutError otherwise)."""
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(self.server.market_done.wait(), timeout), self.loop).result()

    def wait_events(self, n: int, timeout: float = 30.0) -> None:
        """Block until at least ``n`` market events were replayed (or the replay ended)."""

        async def wait() -> None:
            while self.server.events_replayed < n and not self.server.market_done.is_set():
                await asyncio.sleep(0.01)

        asyncio.run_coroutine_threadsafe(asyncio.wait_for(wait(), timeout), self.loop).result()


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a client needs: URLs and credentials; ``control`` for faults and state."""

    base_url: str
    ws_url: str
    api_key: str
    api_secret: str
    control: ServerControl
    symbols: tuple[str, ...] = ()
    ws_api_url: str = ""
    """The WebSocket API (``<ws_url>/ws-api/v3``): the user data stream's ``userDataStream.subscribe.signature``."""


@contextmanager
def serve_in_thread(config: ServerConfig, *, setup: ServerSetup) -> Iterator[ServerInfo]:
    """Start the server ``setup`` describes in a background thread; yields its :class:`ServerInfo`.

    ``setup`` comes from the composition layer (``replay.serve.build_setup``, which also offers
    ``serve_in_thread(config)``): this layer may not read logs or build the demo market.
    """
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    box: dict[str, Any] = {}

    async def main() -> None:
        server = VenueServer(setup)
        stop_event = asyncio.Event()
        stop.append(stop_event)
        try:
            await server.start(config.host, config.port)
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            raise
        box["server"] = server
        ready.set()
        try:
            await stop_event.wait()
        finally:
            await server.stop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported to the caller below
            box.setdefault("error", exc)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="tickloop-venue-server", daemon=True)
    thread.start()
    if not ready.wait(START_TIMEOUT_S) or "server" not in box:
        thread.join(5)
        raise ConfigError(f"venue server failed to start: {box.get('error', 'timeout')!r}")
    server: VenueServer = box["server"]
    creds = setup.credentials
    info = ServerInfo(server.base_url, server.ws_url, creds.api_key, creds.api_secret, ServerControl(server, loop),
                      tuple(server.protocol.symbol_of(i) for i in server.protocol.exchange_symbols), server.ws_api_url)
    try:
        yield info
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(30)
