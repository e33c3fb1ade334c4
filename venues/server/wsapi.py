"""Binance's spot WebSocket API (``/ws-api/v3``), the user-data-stream part, sans-I/O.

Text frame in, reply frames out (:meth:`WsApi.handle`), at the server's "now"; nothing here
touches a socket or a clock, so every answer is unit-testable with plain values. Facts (with
their sources) are in ``docs/live-adapter.md`` ("WebSocket API facts"):

- request ``{"id", "method", "params"}`` -> ``{"id", "status", "result" | "error", "rateLimits"}``;
  ``status`` is HTTP's (200, 4XX); ``error`` is ``{"code", "msg"}`` with REST's codes;
  ``"returnRateLimits": false`` in ``params`` drops ``rateLimits``;
- a SIGNED request's ``signature`` is the HMAC-SHA256 hex of *all other params sorted by name*,
  joined as ``name=value`` with ``&`` (not the wire order, as REST is); ``timestamp`` and
  ``recvWindow`` follow REST's rule (-1021);
- methods: ``ping``, ``time``, ``userDataStream.subscribe.signature`` (-> ``{"subscriptionId"}``;
  one active subscription per account per connection, -2035 otherwise),
  ``userDataStream.unsubscribe`` (optional ``subscriptionId``; every subscription when omitted;
  -2036 when none matches), ``session.subscriptions``; weight 1 for ping/time, 2 for the
  user-data-stream methods, 2 for opening the connection;
- events are wrapped ``{"subscriptionId": N, "event": {...}}`` (:meth:`WsApi.event_frames`);
  a subscription ended by ``userDataStream.unsubscribe`` gets an ``eventStreamTerminated`` event.

Choices of ours where the docs are silent: an unparseable frame -> 400 ``-1135`` "Invalid JSON
Request"; an unknown method -> 400 ``-1020`` "This operation is not supported."; a parameter the
method does not take -> 400 ``-1103``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from venues.server.auth import Auth, check_timestamp, sign
from venues.server.errors import ApiError, mandatory
from venues.server.limits import RateLimiter

PATH = "/ws-api/v3"
CONNECT_WEIGHT = 2
USER_STREAM_WEIGHT = 2
MAX_SUBSCRIPTIONS_PER_SESSION = 65_535
"""Binance: a session can hand out at most 65,535 subscription ids in its lifetime (-2042)."""
SIGNED_PARAMS = frozenset({"apiKey", "timestamp", "recvWindow", "signature", "returnRateLimits"})

Json = dict[str, Any]


@dataclass(slots=True)
class WsApiSession:
    """One WebSocket API connection: who it is and its live subscriptions (id -> API key)."""

    ip: str
    subscriptions: dict[int, str] = field(default_factory=dict)
    next_id: int = 0


@dataclass(frozen=True, slots=True)
class _Method:
    handler: Callable[[WsApiSession, Json, int], Any]
    weight: int
    params: frozenset[str]


def _text(doc: Json) -> str:
    return json.dumps(doc, separators=(",", ":"))


def ws_api_payload(params: Mapping[str, Any]) -> str:
    """The bytes a WS-API signature covers: every param but ``signature``, sorted by name, ``k=v&...``."""
    return "&".join(f"{k}={_param_text(v)}" for k, v in sorted(params.items()) if k != "signature")


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class WsApi:
    """The WebSocket API of one simulated account (see module doc)."""

    def __init__(self, auth: Auth, limiter: RateLimiter) -> None:
        self.auth = auth
        self.limiter = limiter
        self._methods: dict[str, _Method] = {
            "ping": _Method(self._ping, 1, frozenset()),
            "time": _Method(self._time, 1, frozenset()),
            "userDataStream.subscribe.signature": _Method(self._subscribe, USER_STREAM_WEIGHT, SIGNED_PARAMS),
            "userDataStream.unsubscribe": _Method(self._unsubscribe, USER_STREAM_WEIGHT, frozenset({"subscriptionId"})),
            "session.subscriptions": _Method(self._subscriptions, USER_STREAM_WEIGHT, frozenset()),
        }

    # ----------------------------------------------------------------- entry points

    def connect(self, ip: str, now_ns: int) -> WsApiSession:
        """A new connection from ``ip`` (costs 2 weight); ApiError 429/418 when the IP may not connect."""
        self.limiter.charge(ip, CONNECT_WEIGHT, now_ns // 1_000_000)
        return WsApiSession(ip)

    def handle(self, session: WsApiSession, text: str, now_ns: int) -> list[str]:
        """One request frame -> the frames to send back (the reply, then any events it caused)."""
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            return [self._error(session, None, ApiError(-1135, "Invalid JSON Request"), now_ns, True)]
        if not isinstance(msg, dict) or not isinstance(msg.get("method"), str) or "id" not in msg:
            rid = msg.get("id") if isinstance(msg, dict) else None
            return [self._error(session, rid, ApiError(-1135, "Invalid JSON Request: expected an object with "
                                                       "'id' and 'method'"), now_ns, True)]
        rid, name = msg["id"], msg["method"].removeprefix("v3/")
        params = msg.get("params", {})
        if not isinstance(params, dict):
            return [self._error(session, rid, ApiError(-1135, "JSON sent for parameter 'params' is not valid"),
                                now_ns, True)]
        show_limits = params.get("returnRateLimits", True) is not False
        method = self._methods.get(name)
        if method is None:
            return [self._error(session, rid, ApiError(-1020, "This operation is not supported."), now_ns, show_limits)]
        try:
            self.limiter.charge(session.ip, method.weight, now_ns // 1_000_000)
            unknown = sorted(set(params) - method.params - {"returnRateLimits"})
            if unknown:
                raise ApiError(-1103, f"An unknown parameter was sent: {', '.join(unknown)}.")
            result, after = method.handler(session, params, now_ns)
        except ApiError as err:
            return [self._error(session, rid, err, now_ns, show_limits)]
        reply: Json = {"id": rid, "status": 200, "result": result}
        if show_limits:
            reply["rateLimits"] = self._rate_limits(session, now_ns)
        return [_text(reply), *after]

    def event_frames(self, session: WsApiSession, event: Json) -> list[str]:
        """One user-data event as this connection receives it: once per subscription, wrapped."""
        return [_text({"subscriptionId": sid, "event": event}) for sid in session.subscriptions]

    # ----------------------------------------------------------------- methods

    def _ping(self, session: WsApiSession, params: Json, now_ns: int) -> tuple[Json, list[str]]:
        return {}, []

    def _time(self, session: WsApiSession, params: Json, now_ns: int) -> tuple[Json, list[str]]:
        return {"serverTime": now_ns // 1_000_000}, []

    def _subscribe(self, session: WsApiSession, params: Json, now_ns: int) -> tuple[Json, list[str]]:
        key = params.get("apiKey")
        secret = self.auth.check_key(key if isinstance(key, str) else None)
        signature = params.get("signature")
        if not isinstance(signature, str) or not signature:
            raise mandatory("signature")
        if not hmac.compare_digest(sign(secret, ws_api_payload(params)), signature.lower()):
            raise ApiError(-1022, "Signature for this request is not valid.")
        check_timestamp({k: _param_text(v) for k, v in params.items() if k in ("timestamp", "recvWindow")},
                        now_ns // 1_000_000)
        if key in session.subscriptions.values():
            raise ApiError(-2035, "User Data Stream subscription already active.")
        if session.next_id >= MAX_SUBSCRIPTIONS_PER_SESSION:
            raise ApiError(-2042, "Maximum subscription ID reached for this connection.")
        sid = session.next_id
        session.next_id += 1
        session.subscriptions[sid] = str(key)
        return {"subscriptionId": sid}, []

    def _unsubscribe(self, session: WsApiSession, params: Json, now_ns: int) -> tuple[Json, list[str]]:
        wanted = params.get("subscriptionId")
        if wanted is None:
            ended = sorted(session.subscriptions)
        elif isinstance(wanted, int) and not isinstance(wanted, bool) and wanted in session.subscriptions:
            ended = [wanted]
        elif isinstance(wanted, int) and not isinstance(wanted, bool):
            ended = []
        else:
            raise ApiError(-1100, "Illegal characters found in parameter 'subscriptionId'; legal range is '^[0-9]{1,5}$'.")
        if not ended:
            raise ApiError(-2036, "User Data Stream subscription not active.")
        frames = [_text({"subscriptionId": sid, "event": {"e": "eventStreamTerminated", "E": now_ns // 1_000_000}})
                  for sid in ended]
        for sid in ended:
            del session.subscriptions[sid]
        return {}, frames

    def _subscriptions(self, session: WsApiSession, params: Json, now_ns: int) -> tuple[list[Json], list[str]]:
        return [{"subscriptionId": sid} for sid in sorted(session.subscriptions)], []

    # ----------------------------------------------------------------- replies

    def _rate_limits(self, session: WsApiSession, now_ns: int) -> list[Json]:
        used = int(self.limiter.headers(session.ip, now_ns // 1_000_000, False)[0][1])
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.limiter.config.weight_per_minute, "count": used}]

    def _error(self, session: WsApiSession, rid: Any, err: ApiError, now_ns: int, show_limits: bool) -> str:
        error: Json = {"code": err.code, "msg": err.msg}
        if err.retry_after_s is not None:
            now_ms = now_ns // 1_000_000
            error["data"] = {"serverTime": now_ms, "retryAfter": now_ms + err.retry_after_s * 1000}
        reply: Json = {"id": rid, "status": err.status, "error": error}
        if show_limits:
            reply["rateLimits"] = self._rate_limits(session, now_ns)
        return _text(reply)


__all__ = ["PATH", "WsApi", "WsApiSession", "ws_api_payload"]
