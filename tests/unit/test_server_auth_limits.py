"""venues/server auth (signing, timestamps, keys), rate limits (429 -> 418) and fault settings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError
from venues.server.auth import Auth, Credentials, sign, signed_payload, strip_signature
from venues.server.errors import ApiError
from venues.server.faults import Faults
from venues.server.limits import LimitsConfig, RateLimiter

pytestmark = pytest.mark.edge

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
VECTOR = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
VECTOR_SIG = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
NOW = 1499827319559


def _auth() -> Auth:
    return Auth(Credentials("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A", SECRET))


def _code(fn: object, *args: object) -> tuple[int, int]:
    with pytest.raises(ApiError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.code, info.value.status


def test_binance_documented_signature_vector() -> None:
    assert sign(SECRET, VECTOR) == VECTOR_SIG


def test_payload_is_query_plus_body_without_the_signature() -> None:
    q = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    b = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559&signature=abc"
    payload, sig = signed_payload(q, b)
    assert payload == q + b.rsplit("&signature=", 1)[0]
    assert sig == "abc"
    assert strip_signature("signature=x&a=1") == ("a=1", "x")


def test_valid_request_passes_in_query_body_or_mixed() -> None:
    auth = _auth()
    key = auth.credentials.api_key
    params = {"timestamp": str(NOW), "recvWindow": "5000"}
    auth.check(VECTOR + "&signature=" + VECTOR_SIG, "", params, key, NOW)
    auth.check("", VECTOR + "&signature=" + VECTOR_SIG.upper(), params, key, NOW)  # hex is case-insensitive
    head, tail = VECTOR[:40], VECTOR[40:]
    auth.check(head, tail + "&signature=" + sign(SECRET, head + tail), params, key, NOW)


def test_key_signature_and_timestamp_errors_have_binance_codes() -> None:
    auth = _auth()
    key = auth.credentials.api_key
    good = VECTOR + "&signature=" + VECTOR_SIG
    params = {"timestamp": str(NOW), "recvWindow": "5000"}
    assert _code(auth.check, good, "", params, None, NOW) == (-2014, 401)
    assert _code(auth.check, good, "", params, "not a key!", NOW) == (-2014, 401)
    assert _code(auth.check, good, "", params, "A" * 64, NOW) == (-2015, 401)
    assert _code(auth.check, VECTOR + "&signature=" + "0" * 64, "", params, key, NOW) == (-1022, 400)
    assert _code(auth.check, VECTOR, "", params, key, NOW) == (-1102, 400)
    assert _code(auth.check, good, "", params, key, NOW + 5001) == (-1021, 400)
    auth.check(good, "", params, key, NOW + 5000)
    assert _code(auth.check, good, "", params, key, NOW - 1000) == (-1021, 400)  # 1000 ms ahead of the server
    auth.check(good, "", params, key, NOW - 999)
    assert _code(auth.check, good, "", {"timestamp": str(NOW), "recvWindow": "60001"}, key, NOW) == (-1131, 400)
    assert _code(auth.check, good, "", {"recvWindow": "5000"}, key, NOW) == (-1102, 400)


def test_default_recv_window_is_5000() -> None:
    auth = _auth()
    payload = f"timestamp={NOW}"
    query = payload + "&signature=" + sign(SECRET, payload)
    auth.check(query, "", {"timestamp": str(NOW)}, auth.credentials.api_key, NOW + 5000)
    assert _code(auth.check, query, "", {"timestamp": str(NOW)}, auth.credentials.api_key, NOW + 5001)[0] == -1021


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="abcdefghij=0123456789.", max_size=40), st.integers(0, 63))
def test_any_tampered_hex_digit_is_rejected_with_1022(extra: str, pos: int) -> None:
    auth = _auth()
    payload = f"timestamp={NOW}&note={extra}"
    good = sign(SECRET, payload)
    bad = good[:pos] + ("0" if good[pos] != "0" else "1") + good[pos + 1:]
    params = {"timestamp": str(NOW)}
    auth.check(payload + "&signature=" + good, "", params, auth.credentials.api_key, NOW)
    assert _code(auth.check, payload + "&signature=" + bad, "", params, auth.credentials.api_key, NOW)[0] == -1022


def test_demo_credentials_are_seeded() -> None:
    a, b, c = Credentials.demo(1), Credentials.demo(1), Credentials.demo(2)
    assert a == b and a != c
    assert len(a.api_key) == 64 and a.api_key.isalnum() and a.api_key != a.api_secret


def test_weight_headers_then_429_then_418_with_escalating_bans() -> None:
    lim = RateLimiter(LimitsConfig(weight_per_minute=10, ban_after=2, ban_base_s=120))
    t = 60_000 * 1000 + 5_000
    for _ in range(2):
        lim.charge("ip", 5, t)
    assert lim.headers("ip", t, False) == [("X-MBX-USED-WEIGHT-1M", "10")]
    with pytest.raises(ApiError) as e429:
        lim.charge("ip", 1, t)
    assert (e429.value.status, e429.value.code, e429.value.retry_after_s) == (429, -1003, 55)
    with pytest.raises(ApiError) as again:
        lim.charge("ip", 1, t + 1)
    assert again.value.status == 429
    with pytest.raises(ApiError) as ban:
        lim.charge("ip", 1, t + 2)
    assert (ban.value.status, ban.value.retry_after_s) == (418, 120)
    with pytest.raises(ApiError) as still:
        lim.charge("ip", 1, t + 60_000)  # a new minute does not lift a ban
    assert still.value.status == 418
    lim.charge("other-ip", 1, t)  # per IP
    t2 = t + 121_000  # ban over, a fresh window
    lim.charge("ip", 10, t2)
    for _ in range(2):
        with pytest.raises(ApiError):
            lim.charge("ip", 1, t2)
    with pytest.raises(ApiError) as second_ban:
        lim.charge("ip", 1, t2)
    assert (second_ban.value.status, second_ban.value.retry_after_s) == (418, 240)


def test_an_outside_429_binds_until_retry_after_and_counts_early_requests() -> None:
    lim = RateLimiter(LimitsConfig(ban_after=3))
    t = 1_000_000
    lim.block("ip", t, 2)  # an injected 429 with Retry-After: 2
    with pytest.raises(ApiError) as early:
        lim.charge("ip", 1, t + 500)
    assert (early.value.status, early.value.retry_after_s) == (429, 2)
    with pytest.raises(ApiError) as later:
        lim.charge("ip", 1, t + 1_500)
    assert later.value.retry_after_s == 1  # what is left of the block, rounded up
    assert lim.early_requests("ip") == 2 and lim.early_requests("other") == 0
    lim.charge("ip", 1, t + 2_000)  # the block is over: accepted, and it was not early
    assert lim.early_requests("ip") == 2
    lim.block("ip", t + 3_000, 1)
    for _ in range(2):
        with pytest.raises(ApiError):
            lim.charge("ip", 1, t + 3_100)
    with pytest.raises(ApiError) as ban:
        lim.charge("ip", 1, t + 3_200)  # the third request through a Retry-After: banned
    assert ban.value.status == 418 and lim.early_requests("ip") == 5


def test_order_count_limits_and_headers() -> None:
    lim = RateLimiter(LimitsConfig(orders_per_10s=3))
    t = 1_000_000_000_000
    lim.check_order("ip", t)
    lim.count_orders(t, 2)
    lim.check_order("ip", t)
    lim.count_orders(t, 1)
    with pytest.raises(ApiError) as info:
        lim.check_order("ip", t)
    assert (info.value.status, info.value.code) == (429, -1015)
    assert info.value.msg == "Too many new orders; current limit is 3 orders per 10 SECOND."
    assert ("X-MBX-ORDER-COUNT-10S", "3") in lim.headers("ip", t, True)
    assert ("X-MBX-ORDER-COUNT-1D", "3") in lim.headers("ip", t, True)
    assert ("X-MBX-ORDER-COUNT-10S", "0") in lim.headers("ip", t + 10_000, True)


def test_first_fill_gives_an_order_back_in_every_window() -> None:
    lim = RateLimiter(LimitsConfig(orders_per_10s=2))
    t = 1_000_000_000_000
    lim.count_orders(t, 2)
    with pytest.raises(ApiError):
        lim.check_order("other-ip", t)  # the ORDERS limit is per account, not per IP
    lim.order_first_filled(t + 1)
    lim.check_order("ip", t + 1)  # one of the two is no longer unfilled: room for one more
    assert ("X-MBX-ORDER-COUNT-10S", "1") in lim.headers("ip", t + 1, True)
    assert ("X-MBX-ORDER-COUNT-1D", "1") in lim.headers("ip", t + 1, True)
    lim.order_first_filled(t + 10_000)  # a fresh 10 s window never goes below zero
    assert ("X-MBX-ORDER-COUNT-10S", "0") in lim.headers("ip", t + 10_000, True)
    assert ("X-MBX-ORDER-COUNT-1D", "0") in lim.headers("ip", t + 10_000, True)


def test_raw_requests_are_counted_per_ip_whatever_their_weight() -> None:
    lim = RateLimiter(LimitsConfig(raw_requests_per_5m=3, weight_per_minute=10_000))
    t = 300_000 * 1000 + 60_000  # one minute into a 5-minute window
    for _ in range(3):
        lim.charge("ip", 0, t)  # weight 0 still counts as a request
    with pytest.raises(ApiError) as over:
        lim.charge("ip", 0, t)
    assert (over.value.status, over.value.code, over.value.retry_after_s) == (429, -1003, 240)
    assert "3 requests per 5 minutes" in over.value.msg
    lim.charge("other-ip", 0, t)
    lim.charge("ip", 0, t + 240_000)  # the next window
    assert LimitsConfig().rate_limits_json()[-1] == {
        "rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300_000}


def test_faults_update_and_count_down() -> None:
    f = Faults()
    f.update({"error_next": 2, "error_status": 500, "skip_depth_updates": 1, "delay_next": 1, "delay_next_ms": 50})
    assert [f.take_error(), f.take_error(), f.take_error()] == [500, 500, None]
    assert [f.take_skip_depth(), f.take_skip_depth()] == [True, False]
    assert [f.take_delay_s(), f.take_delay_s()] == [0.05, 0.0]
    with pytest.raises(ConfigError, match="unknown fault 'nope'"):
        f.update({"nope": 1, "error_next": 5})
    assert f.error_next == 0  # nothing applied from a bad update
    with pytest.raises(ConfigError, match="error_status"):
        f.update({"error_status": 200})
    with pytest.raises(ConfigError, match="drop_mode"):
        f.update({"drop_mode": "explode"})
