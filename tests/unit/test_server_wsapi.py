"""venues/server/wsapi: the WebSocket API's user-data-stream methods, frames in -> frames out (no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venues.binance import signing
from venues.server.auth import Auth, Credentials, sign
from venues.server.errors import ApiError
from venues.server.limits import LimitsConfig, RateLimiter
from venues.server.wsapi import WsApi, WsApiSession, ws_api_payload

pytestmark = pytest.mark.edge

# Binance's documented WS-API HMAC example (web-socket-api.md, "SIGNED request example (HMAC)").
KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PARAMS: dict[str, str | int] = {
    "symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000000",
    "price": "52000.00", "newOrderRespType": "ACK", "recvWindow": 100, "timestamp": 1645423376532, "apiKey": KEY,
}
DOC_PAYLOAD = (
    f"apiKey={KEY}&newOrderRespType=ACK&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL"
    "&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
)
DOC_SIGNATURE = "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
NOW_MS = 1_700_000_000_000
NOW = NOW_MS * 1_000_000
IP = "10.0.0.1"


def _api(limits: LimitsConfig | None = None) -> WsApi:
    return WsApi(Auth(Credentials(KEY, SECRET)), RateLimiter(limits))


def _send(api: WsApi, session: WsApiSession, method: str, params: dict[str, Any] | None = None,
          rid: object = 1, now: int = NOW) -> list[dict[str, Any]]:
    msg: dict[str, Any] = {"id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return [json.loads(f) for f in api.handle(session, json.dumps(msg), now)]


def _signed(ts_ms: int = NOW_MS, secret: str = SECRET, key: str = KEY, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"apiKey": key, "timestamp": ts_ms, "recvWindow": 5000, **extra}
    params["signature"] = sign(secret, ws_api_payload(params))
    return params


def _error(frames: list[dict[str, Any]]) -> tuple[int, int]:
    assert len(frames) == 1 and "result" not in frames[0]
    return frames[0]["status"], frames[0]["error"]["code"]


# --------------------------------------------------------------------------- signing


def test_documented_ws_api_signature_vector_on_both_sides() -> None:
    assert ws_api_payload(DOC_PARAMS) == DOC_PAYLOAD == signing.ws_api_payload(DOC_PARAMS)
    assert sign(SECRET, DOC_PAYLOAD) == DOC_SIGNATURE
    assert ws_api_payload({**DOC_PARAMS, "signature": "x"}) == DOC_PAYLOAD  # the signature signs everything else


def test_client_signer_output_is_accepted_by_the_server() -> None:
    time = signing.ServerTime(offset_ms=0)
    signer = signing.Signer(signing.Credentials(KEY, SECRET.encode()), time, recv_window_ms=5000)
    params, ts = signer.sign_ws_api({}, NOW)
    assert ts == NOW_MS and set(params) == {"apiKey", "recvWindow", "timestamp", "signature"}
    assert params["signature"] == sign(SECRET, f"apiKey={KEY}&recvWindow=5000&timestamp={NOW_MS}")
    api, session = _api(), WsApiSession(IP)
    assert _send(api, session, "userDataStream.subscribe.signature", params)[0]["result"] == {"subscriptionId": 0}


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,12}", fullmatch=True),
                       st.one_of(st.from_regex(r"[A-Za-z0-9.\-]{0,16}", fullmatch=True), st.integers(0, 10**15)),
                       max_size=8))
def test_payload_ignores_param_order_and_matches_the_client(params: dict[str, str | int]) -> None:
    reversed_params = dict(reversed(list(params.items())))
    assert ws_api_payload(params) == ws_api_payload(reversed_params) == signing.ws_api_payload(params)
    assert [p.split("=", 1)[0] for p in ws_api_payload(params).split("&") if p] == sorted(params)


# --------------------------------------------------------------------------- methods


def test_ping_and_time_answer_in_binance_envelope_with_rate_limits() -> None:
    api = _api()
    session = api.connect(IP, NOW)  # opening the connection costs 2
    ping = _send(api, session, "ping", rid="a-1")
    assert ping == [{"id": "a-1", "status": 200, "result": {}, "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 3}]}]
    time_ = _send(api, session, "time", {}, rid=2)[0]
    assert time_["result"] == {"serverTime": NOW_MS} and time_["rateLimits"][0]["count"] == 4
    quiet = _send(api, session, "v3/time", {"returnRateLimits": False}, rid=None)
    assert quiet == [{"id": None, "status": 200, "result": {"serverTime": NOW_MS}}]


def test_subscribe_list_and_unsubscribe_with_event_stream_terminated() -> None:
    api, session = _api(), WsApiSession(IP)
    sub = _send(api, session, "userDataStream.subscribe.signature", _signed())
    assert sub[0]["status"] == 200 and sub[0]["result"] == {"subscriptionId": 0}
    assert sub[0]["rateLimits"][0]["count"] == 2  # weight 2
    assert _error(_send(api, session, "userDataStream.subscribe.signature", _signed())) == (400, -2035)
    assert _send(api, session, "session.subscriptions")[0]["result"] == [{"subscriptionId": 0}]
    event = {"e": "executionReport", "E": NOW_MS, "x": "NEW"}
    assert [json.loads(f) for f in api.event_frames(session, event)] == [{"subscriptionId": 0, "event": event}]
    reply, ended = _send(api, session, "userDataStream.unsubscribe", {"subscriptionId": 0}, rid=9)
    assert reply["id"] == 9 and reply["status"] == 200 and reply["result"] == {}
    assert ended == {"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": NOW_MS}}
    assert _send(api, session, "session.subscriptions")[0]["result"] == []
    assert api.event_frames(session, event) == []
    assert _error(_send(api, session, "userDataStream.unsubscribe")) == (400, -2036)
    again = _send(api, session, "userDataStream.subscribe.signature", _signed())
    assert again[0]["result"] == {"subscriptionId": 1}  # ids are never reused on a connection
    assert _error(_send(api, session, "userDataStream.unsubscribe", {"subscriptionId": 7})) == (400, -2036)
    assert _error(_send(api, session, "userDataStream.unsubscribe", {"subscriptionId": "1"})) == (400, -1100)
    all_ = _send(api, session, "userDataStream.unsubscribe", {})
    assert all_[1] == {"subscriptionId": 1, "event": {"e": "eventStreamTerminated", "E": NOW_MS}}


def test_subscribe_refusals_have_rest_codes() -> None:
    api, session = _api(), WsApiSession(IP)
    method = "userDataStream.subscribe.signature"
    assert _error(_send(api, session, method, _signed(secret="not-the-secret"))) == (400, -1022)
    assert _error(_send(api, session, method, _signed(key="UnknownKey123"))) == (401, -2015)
    assert _error(_send(api, session, method, _signed(key=""))) == (401, -2014)
    no_sig = _signed()
    del no_sig["signature"]
    assert _error(_send(api, session, method, no_sig)) == (400, -1102)
    assert _error(_send(api, session, method, _signed(ts_ms=NOW_MS - 5001))) == (400, -1021)  # outside recvWindow
    assert _error(_send(api, session, method, _signed(ts_ms=NOW_MS + 1000))) == (400, -1021)  # ahead of the server
    assert _send(api, session, method, _signed(ts_ms=NOW_MS - 5000))[0]["status"] == 200  # the window's edge
    tampered = _signed()
    tampered["recvWindow"] = 6000  # changed after signing
    assert _error(_send(api, WsApiSession(IP), method, tampered)) == (400, -1022)
    assert _error(_send(api, WsApiSession(IP), method, _signed(symbol="BTCUSDT"))) == (400, -1103)


def test_malformed_frames_and_unknown_methods() -> None:
    api, session = _api(), WsApiSession(IP)
    bad = [json.loads(f) for f in api.handle(session, "{not json", NOW)]
    assert bad[0]["id"] is None and (bad[0]["status"], bad[0]["error"]["code"]) == (400, -1135)
    no_method = [json.loads(f) for f in api.handle(session, json.dumps({"id": 4}), NOW)]
    assert no_method[0]["id"] == 4 and no_method[0]["error"]["code"] == -1135
    unknown = _send(api, session, "order.place", {}, rid=5)
    assert _error(unknown) == (400, -1020) and unknown[0]["id"] == 5
    assert _error(_send(api, session, "ping", [1, 2])) == (400, -1135)  # type: ignore[arg-type]
    assert _error(_send(api, session, "ping", {"symbol": "X"})) == (400, -1103)


def test_over_the_weight_limit_is_429_with_retry_after_then_418() -> None:
    api = _api(LimitsConfig(weight_per_minute=3, ban_after=2))
    session = api.connect(IP, NOW)
    assert _send(api, session, "ping")[0]["status"] == 200  # 2 + 1 = 3: at the limit
    over = _send(api, session, "ping")[0]
    assert (over["status"], over["error"]["code"]) == (429, -1003)
    data = over["error"]["data"]
    assert data["serverTime"] == NOW_MS and data["retryAfter"] > NOW_MS
    codes = [_send(api, session, "ping")[0]["status"] for _ in range(3)]
    assert codes[-1] == 418
    with pytest.raises(ApiError) as refused:
        api.connect(IP, NOW)  # a banned IP may not open a connection either
    assert refused.value.status == 418
