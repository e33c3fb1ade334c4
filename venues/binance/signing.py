"""Binance request signing: the query string exactly as Binance hashes it, HMAC-SHA256, and time.

Sans-I/O. Binance signs ``totalParams`` = the query string concatenated (no separator) with the
form body, after percent-encoding; the server hashes the bytes it *received*, so the only rule
is that we hash exactly the bytes we send. We keep the caller's parameter order (Binance does
not sort) and percent-encode everything but RFC 3986's unreserved characters, which is what
``requests``/aiohttp would send for the same values, so third-party servers agree too.

The WebSocket API signs differently (:func:`ws_api_payload`, :meth:`Signer.sign_ws_api`): the
request's ``params`` are a JSON object, so there are no wire bytes to hash; Binance hashes every
param but ``signature``, *sorted by name*, joined as ``name=value`` with ``&`` (its documented
example: ``apiKey=vmPU...&newOrderRespType=ACK&price=52000.00&...`` ->
``cc154777...``, checked in the unit tests). ``apiKey`` is itself a param and is signed.

Time: signed requests carry ``timestamp`` (server ms) and ``recvWindow``. The venue rejects a
timestamp more than 1 s ahead of its clock or older than ``recvWindow`` (``-1021``), so we
stamp requests with *server* time = local time + an offset measured from ``/api/v3/time`` round
trips (:class:`ServerTime`): the offset is ``server - midpoint(send, receive)``; the sample with
the shortest round trip wins, since its midpoint error is smallest.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from engine.errors import ConfigError

NS_PER_MS = 1_000_000
DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000
RESYNC_INTERVAL_NS = 10 * 60 * 1_000_000_000
"""Re-measure the server-time offset this often (clocks drift; ten minutes keeps it tiny)."""

_SAFE = "-_.~"  # RFC 3986 unreserved (letters and digits are never quoted)


_PLAIN = re.compile(r"[A-Za-z0-9_.~=&-]*\Z").match


def encode_params(params: Sequence[tuple[str, str]]) -> str:
    """``k1=v1&k2=v2`` in the given order, values percent-encoded (UTF-8) as sent on the wire.

    Almost every request is plain ASCII (numbers, enums, ids): it is joined as is after one
    check of the whole string (the separator counts prove no value holds ``=`` or ``&``);
    anything else goes through ``quote`` item by item.
    """
    raw = "&".join([f"{k}={v}" for k, v in params])
    if _PLAIN(raw) and raw.count("=") == len(params) and raw.count("&") == max(0, len(params) - 1):
        return raw
    return "&".join([f"{quote(k, safe=_SAFE)}={quote(v, safe=_SAFE)}" for k, v in params])


def ws_api_payload(params: Mapping[str, str | int]) -> str:
    """What a WebSocket API signature covers: every param but ``signature``, sorted by name, ``k=v&...``."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")


def hmac_sha256_hex(secret: bytes, payload: bytes) -> str:
    """Binance's HMAC signature: lowercase hex of HMAC-SHA256(secret, payload)."""
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class ServerTime:
    """Estimated ``server ms - local ms``, from ``/api/v3/time`` round trips.

    ``observe(sent_ns, server_ms, received_ns)`` feeds one sample; the one with the smallest
    round trip since the last :meth:`invalidate` is kept. :meth:`due` says when to measure
    again (never measured, invalidated after a ``-1021``, or older than ``resync_ns``).
    """

    resync_ns: int = RESYNC_INTERVAL_NS
    offset_ms: int = 0
    round_trip_ns: int | None = None
    measured_at_ns: int | None = None
    samples: int = 0

    def observe(self, sent_ns: int, server_ms: int, received_ns: int) -> None:
        if received_ns < sent_ns:
            raise ValueError(f"server time sample received ({received_ns}) before sent ({sent_ns})")
        rtt = received_ns - sent_ns
        self.samples += 1
        if self.round_trip_ns is not None and rtt > self.round_trip_ns and not self._stale(received_ns):
            return
        midpoint_ms = (sent_ns + rtt // 2) // NS_PER_MS
        self.offset_ms = server_ms - midpoint_ms
        self.round_trip_ns = rtt
        self.measured_at_ns = received_ns

    def _stale(self, now_ns: int) -> bool:
        return self.measured_at_ns is None or now_ns - self.measured_at_ns >= self.resync_ns

    def due(self, now_ns: int) -> bool:
        """True when the offset should be (re)measured."""
        return self._stale(now_ns)

    def invalidate(self) -> None:
        """Forget the measurement (after a ``-1021``): the next :meth:`due` is True."""
        self.round_trip_ns = None
        self.measured_at_ns = None

    def server_ms(self, local_ns: int) -> int:
        """The server's clock in ms at local time ``local_ns``."""
        return local_ns // NS_PER_MS + self.offset_ms


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key and its HMAC secret. ``repr`` never shows the secret."""

    api_key: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.api_key or not self.secret:
            raise ConfigError("Binance credentials need a non-empty api_key and secret")


class Signer:
    """Adds ``recvWindow``, ``timestamp`` and ``signature`` to a parameter list."""

    __slots__ = ("credentials", "recv_window_ms", "server_time", "_mac")

    def __init__(
        self, credentials: Credentials, server_time: ServerTime, recv_window_ms: int = DEFAULT_RECV_WINDOW_MS
    ) -> None:
        if not 0 < recv_window_ms <= MAX_RECV_WINDOW_MS:
            raise ConfigError(f"recvWindow must be within 1..{MAX_RECV_WINDOW_MS} ms, got {recv_window_ms}")
        self.credentials = credentials
        self.recv_window_ms = recv_window_ms
        self.server_time = server_time
        self._mac = hmac.new(credentials.secret, digestmod=hashlib.sha256)

    def sign(self, params: list[tuple[str, str]], local_ns: int) -> tuple[bytes, int]:
        """The signed, encoded parameters (``...&timestamp=..&signature=..``) and the timestamp used."""
        ts_ms = self.server_time.server_ms(local_ns)
        params = [*params, ("recvWindow", str(self.recv_window_ms)), ("timestamp", str(ts_ms))]
        payload = encode_params(params).encode()
        mac = self._mac.copy()  # the keyed state is precomputed once: copy + update is the cheap path
        mac.update(payload)
        return payload + b"&signature=" + mac.hexdigest().encode(), ts_ms

    def sign_ws_api(self, params: Mapping[str, str | int], local_ns: int) -> tuple[dict[str, str | int], int]:
        """WebSocket API ``params`` with ``apiKey``, ``recvWindow``, ``timestamp`` and ``signature`` added.

        Numbers stay JSON numbers (``timestamp``, ``recvWindow``): the server signs their decimal text,
        which is what :func:`ws_api_payload` joins. Returns the params and the timestamp used (ms).
        """
        ts_ms = self.server_time.server_ms(local_ns)
        out: dict[str, str | int] = {**params, "apiKey": self.credentials.api_key,
                                     "recvWindow": self.recv_window_ms, "timestamp": ts_ms}
        mac = self._mac.copy()
        mac.update(ws_api_payload(out).encode())
        out["signature"] = mac.hexdigest()
        return out, ts_ms
