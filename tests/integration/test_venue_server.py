"""The venue server end to end on localhost: REST, streams, user data stream, faults, log, CLI."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from engine.events import CommandIssued, OrderAccepted
from engine.orders import CancelAllOrders, SubmitOrder
from replay.serve import ServerConfig, ServerInfo, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]


class Rest:
    """A minimal signed Binance REST client (what the tests need, nothing more)."""

    def __init__(self, info: ServerInfo) -> None:
        self.info = info
        self.http = httpx.Client(base_url=info.base_url, timeout=10)

    def call(self, method: str, path: str, signed: bool = False, timeout: float = 10, **params: Any) -> httpx.Response:
        headers = {"X-MBX-APIKEY": self.info.api_key}
        if signed:
            params["timestamp"] = int(time.time() * 1000)
            q = urlencode(params)
            q += "&signature=" + hmac.new(self.info.api_secret.encode(), q.encode(), hashlib.sha256).hexdigest()
        else:
            q = urlencode(params)
        return self.http.request(method, f"/api/v3/{path}?{q}", headers=headers, timeout=timeout)


_OPEN: list[Rest] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Every REST client a test made is closed after it (warnings are errors: no leaked sockets)."""
    yield
    while _OPEN:
        _OPEN.pop().http.close()


def _rest(info: ServerInfo) -> Rest:
    r = Rest(info)
    _OPEN.append(r)
    return r


@pytest.fixture(scope="module")
def done_server() -> Iterator[ServerInfo]:
    """The demo market replayed as fast as possible, to the end: a fixed state to query."""
    with serve_in_thread(ServerConfig(speed=0, seed=5, demo_duration_s=60)) as info:
        info.control.wait_market_done(60)
        yield info


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[ServerInfo]:
    """The demo market in real time (streams flowing), writing its own log."""
    with serve_in_thread(ServerConfig(speed=1, seed=6, demo_duration_s=120, out=tmp_path / "server-log")) as info:
        info.control.wait_events(200)
        yield info


def _recv_json(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))  # type: ignore[no-any-return]


def _collect(ws: Any, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        try:
            out.append(_recv_json(ws, max(0.1, end - time.monotonic())))
        except TimeoutError:
            break
    return out


def test_every_public_endpoint_answers_in_binance_shape(done_server: ServerInfo) -> None:
    rest = _rest(done_server)
    assert rest.call("GET", "ping").json() == {}
    server_ms = rest.call("GET", "time").json()["serverTime"]
    assert abs(server_ms - time.time() * 1000) < 5000  # the server's clock is the wall clock
    info = rest.call("GET", "exchangeInfo").json()
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    depth = rest.call("GET", "depth", symbol="BTCUSDT", limit=10).json()
    assert depth["lastUpdateId"] > 0 and len(depth["bids"]) == 10 and depth["bids"][0][0] < depth["asks"][0][0]
    r = rest.call("GET", "trades", symbol="ETHUSDT", limit=3)
    assert len(r.json()) == 3 and r.headers["X-MBX-USED-WEIGHT-1M"].isdigit()
    last_trade = r.json()[-1]
    assert abs(last_trade["time"] - server_ms) < 120_000  # re-stamped to now, not 2024
    assert len(rest.call("GET", "aggTrades", symbol="BTCUSDT", limit=4).json()) == 4
    assert rest.call("GET", "klines", symbol="BTCUSDT", interval="1m").json()[-1][8] > 0
    assert rest.call("GET", "ticker/bookTicker", symbol="BTCUSDT").json()["bidPrice"] == depth["bids"][0][0]
    assert len(rest.call("GET", "ticker/price").json()) == 2
    assert rest.call("GET", "avgPrice", symbol="BTCUSDT").json()["mins"] == 5
    assert rest.call("GET", "nothing/here").status_code == 404


def test_signed_endpoint_errors(done_server: ServerInfo) -> None:
    rest = _rest(done_server)
    r = rest.http.get("/api/v3/account", params={"timestamp": int(time.time() * 1000), "signature": "00"},
                      headers={"X-MBX-APIKEY": done_server.api_key})
    assert (r.status_code, r.json()) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
    stale = {"timestamp": int(time.time() * 1000) - 10_000}
    q = urlencode(stale)
    sig = hmac.new(done_server.api_secret.encode(), q.encode(), hashlib.sha256).hexdigest()
    r = rest.http.get(f"/api/v3/account?{q}&signature={sig}", headers={"X-MBX-APIKEY": done_server.api_key})
    assert r.json()["code"] == -1021
    r = rest.http.get(f"/api/v3/account?{q}&signature={sig}", headers={"X-MBX-APIKEY": "Z" * 64})
    assert (r.status_code, r.json()["code"]) == (401, -2015)
    r = rest.http.get(f"/api/v3/account?{q}&signature={sig}")
    assert (r.status_code, r.json()["code"]) == (401, -2014)


def test_orders_fill_and_the_user_stream_reports_them(live_server: ServerInfo, tmp_path: Path) -> None:
    rest = _rest(live_server)
    key = rest.call("POST", "userDataStream").json()["listenKey"]
    with connect(f"{live_server.ws_url}/ws/{key}") as ws:
        top = rest.call("GET", "ticker/bookTicker", symbol="BTCUSDT").json()
        far = rest.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                        quantity="0.01", price="50000", newClientOrderId="far-1").json()
        assert far["status"] == "NEW"
        taker = rest.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="MARKET",
                          quantity="0.001", newClientOrderId="taker-1").json()
        assert taker["status"] == "FILLED" and float(taker["fills"][0]["price"]) >= float(top["askPrice"]) - 100
        cancel = rest.call("DELETE", "order", signed=True, symbol="BTCUSDT", origClientOrderId="far-1").json()
        assert cancel["status"] == "CANCELED"
        msgs = _collect(ws, 100, timeout=1.5)
    reports = [(m["c"], m["x"]) for m in msgs if m.get("e") == "executionReport"]
    assert ("far-1", "NEW") in reports and ("taker-1", "NEW") in reports and ("taker-1", "TRADE") in reports
    assert any(x == "CANCELED" for _, x in reports)
    assert any(m.get("e") == "outboundAccountPosition" for m in msgs)


def test_server_log_records_commands_and_venue_events(tmp_path: Path) -> None:
    from catalogs.log import LogReader

    out = tmp_path / "srv"
    with serve_in_thread(ServerConfig(speed=0, seed=2, demo_duration_s=20, out=out)) as info:
        info.control.wait_market_done(60)
        rest = _rest(info)
        ids = []
        for i in range(3):
            r = rest.call("POST", "order", signed=True, symbol="ETHUSDT", side="SELL", type="LIMIT", timeInForce="GTC",
                          quantity="0.1", price=f"{3000 + i}", newClientOrderId=f"o-{i}").json()
            ids.append(r["orderId"])
        rest.call("DELETE", "openOrders", signed=True, symbol="ETHUSDT")
    with LogReader(out) as reader:
        events = list(reader.events())
    kinds = [type(e).__name__ for e in events]
    cmds = [e.command for e in events if isinstance(e, CommandIssued)]
    assert [c.client_order_id for c in cmds[:3] if isinstance(c, SubmitOrder)] == ["o-0", "o-1", "o-2"]
    assert isinstance(cmds[3], CancelAllOrders)
    assert [e.order_id for e in events if isinstance(e, OrderAccepted)] == ids
    assert kinds.count("OrderCanceled") == 3
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_market_streams_combined_raw_and_subscribe(live_server: ServerInfo) -> None:
    names = ["btcusdt@aggTrade", "btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@depth20@100ms",
             "btcusdt@bookTicker", "btcusdt@kline_1m"]
    with connect(f"{live_server.ws_url}/stream?streams=" + "/".join(names)) as ws:
        seen: dict[str, dict[str, Any]] = {}
        end = time.monotonic() + 15
        while len(seen) < len(names) and time.monotonic() < end:
            m = _recv_json(ws)
            assert set(m) == {"stream", "data"}
            seen.setdefault(m["stream"], m["data"])
    assert set(seen) == set(names)
    assert abs(seen["btcusdt@trade"]["E"] - time.time() * 1000) < 5000
    with connect(f"{live_server.ws_url}/ws") as ws:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@depth"], "id": 7}))
        first = _recv_json(ws)
        assert first == {"result": None, "id": 7}
        diffs = [m for m in _collect(ws, 3) if m.get("e") == "depthUpdate"]
        assert diffs and all(d["s"] == "ETHUSDT" for d in diffs)
        for a, b in zip(diffs, diffs[1:], strict=False):
            assert b["U"] == a["u"] + 1  # no gap without a fault
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}))
        replies = [m for m in _collect(ws, 20, timeout=3) if m.get("id") == 8]
        assert replies == [{"result": ["ethusdt@depth"], "id": 8}]


def test_depth_snapshot_lines_up_with_the_diff_stream(live_server: ServerInfo) -> None:
    rest = _rest(live_server)
    with connect(f"{live_server.ws_url}/ws/btcusdt@depth@100ms") as ws:
        first = _recv_json(ws)
        snap = rest.call("GET", "depth", symbol="BTCUSDT", limit=5000).json()
        later = _collect(ws, 5, timeout=3)
    assert snap["lastUpdateId"] >= first["U"] - 1
    following = [d for d in [first, *later] if d["u"] > snap["lastUpdateId"]]
    assert following and following[0]["U"] <= snap["lastUpdateId"] + 1  # Binance's bridging rule holds


# --------------------------------------------------------------------------- faults


def test_fault_errors_delay_and_control_endpoint(done_server: ServerInfo) -> None:
    rest = _rest(done_server)
    r = rest.http.post("/_tickloop/faults", json={"error_next": 2, "error_status": 503})
    assert r.status_code == 200 and r.json()["error_next"] == 2
    assert [rest.call("GET", "ping").status_code for _ in range(3)] == [503, 503, 200]
    done_server.control.set_faults(error_next=1, error_status=429)
    r = rest.call("GET", "ping")
    assert (r.status_code, r.headers["Retry-After"]) == (429, "1")
    early = rest.call("GET", "ping")  # the injected 429's Retry-After binds like a real one: one strike
    assert early.status_code == 429 and early.json()["code"] == -1003
    time.sleep(1.1)  # wait it out (two more strikes would ban this IP for the rest of the module)
    assert rest.http.post("/_tickloop/faults", json={"bogus": 1}).status_code == 400
    assert done_server.control.set_faults(delay_next=1, delay_next_ms=300)["delay_next"] == 1
    assert rest.call("GET", "ping").status_code == 200
    assert done_server.control.set_faults()["delay_next"] == 0  # that request took the delay (no wall-time check)


def test_dropped_order_response_never_duplicates_the_order(done_server: ServerInfo) -> None:
    rest = _rest(done_server)
    done_server.control.set_faults(drop_order_responses=1, drop_mode="close")
    params: dict[str, Any] = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
              "price": "40000", "newClientOrderId": "retry-me"}
    with pytest.raises(httpx.HTTPError):
        rest.call("POST", "order", signed=True, **params)
    retry = rest.call("POST", "order", signed=True, **params).json()
    assert retry == {"code": -2010, "msg": "Duplicate order sent."}
    found = rest.call("GET", "order", signed=True, symbol="BTCUSDT", origClientOrderId="retry-me").json()
    assert found["status"] == "NEW"
    mine = [o for o in rest.call("GET", "allOrders", signed=True, symbol="BTCUSDT").json() if o["clientOrderId"] == "retry-me"]
    assert len(mine) == 1
    done_server.control.set_faults(drop_order_responses=1, drop_mode="hang")
    with pytest.raises(httpx.TimeoutException):
        rest.call("POST", "order", signed=True, timeout=0.5, **{**params, "newClientOrderId": "hang-1"})
    assert rest.call("GET", "order", signed=True, symbol="BTCUSDT", origClientOrderId="hang-1").json()["status"] == "NEW"
    rest.call("DELETE", "openOrders", signed=True, symbol="BTCUSDT")


def test_skipped_depth_update_and_stream_disconnect(live_server: ServerInfo) -> None:
    with connect(f"{live_server.ws_url}/ws/btcusdt@depth@100ms") as ws:
        first = _recv_json(ws)
        live_server.control.set_faults(skip_depth_updates=1)
        nxt = _collect(ws, 2)
        chain = [first, *nxt]
        gaps = [b["U"] - a["u"] - 1 for a, b in zip(chain, chain[1:], strict=False)]
        assert any(g > 0 for g in gaps), gaps
    with connect(f"{live_server.ws_url}/ws/btcusdt@bookTicker") as ws:
        _recv_json(ws)
        live_server.control.set_faults(disconnect_streams=True)
        with pytest.raises(ConnectionClosed):
            for _ in range(10_000):
                ws.recv(timeout=5)


def test_streams_disconnected_every_n_seconds(live_server: ServerInfo) -> None:
    live_server.control.set_faults(disconnect_every_s=0.3)
    try:
        for _ in range(2):  # a reconnecting client is cut again
            with connect(f"{live_server.ws_url}/ws/ethusdt@bookTicker") as ws, pytest.raises(ConnectionClosed):
                for _ in range(10_000):  # without the fault this ends in 10,000 messages or a recv timeout
                    ws.recv(timeout=5)
    finally:
        live_server.control.set_faults(disconnect_every_s=0)


def test_wait_for_client_holds_the_replay_until_a_stream_subscribes() -> None:
    with serve_in_thread(ServerConfig(speed=0, demo_duration_s=5, wait_for_client=True)) as info:
        time.sleep(0.3)
        assert info.control.status()["events_replayed"] == 0
        with connect(f"{info.ws_url}/ws/btcusdt@trade") as ws:
            assert _recv_json(ws)["e"] == "trade"
            info.control.wait_market_done(30)
            _collect(ws, 100_000, timeout=2)  # read it all: a full client queue would stall the close handshake
        assert info.control.status()["events_replayed"] > 0


def test_filled_orders_give_their_order_count_back() -> None:
    from venues.server.limits import LimitsConfig

    with serve_in_thread(ServerConfig(speed=0, seed=5, demo_duration_s=30, limits=LimitsConfig(orders_per_10s=2))) as info:
        info.control.wait_market_done(60)
        rest = _rest(info)
        counts: list[str] = []
        for i in range(4):  # four takers within a window of two: each one's first fill frees its count again
            r = rest.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001",
                          newClientOrderId=f"taker-{i}")
            assert r.status_code == 200 and r.json()["status"] == "FILLED", r.text
            counts.append(r.headers["X-MBX-ORDER-COUNT-10S"])
        assert counts == ["0"] * 4, counts
        rests = [rest.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.01", price="10000", newClientOrderId=f"rest-{i}") for i in range(3)]
        # resting orders stay unfilled: the third in the same window is refused (unless a window ended between)
        assert [r.status_code for r in rests[:2]] == [200, 200]
        assert rests[2].status_code == 429 and rests[2].json()["code"] == -1015 or rests[2].headers.get(
            "X-MBX-ORDER-COUNT-10S") == "1"


def test_rate_limit_over_http_gives_429_then_418() -> None:
    from venues.server.limits import LimitsConfig

    with serve_in_thread(ServerConfig(speed=0, demo_duration_s=5, limits=LimitsConfig(weight_per_minute=45, ban_after=2))) as info:
        rest = _rest(info)
        statuses = [rest.call("GET", "exchangeInfo").status_code for _ in range(6)]
        assert statuses[:2] == [200, 200] and 429 in statuses and statuses[-1] == 418
        r = rest.call("GET", "ping")
        assert r.status_code == 418 and int(r.headers["Retry-After"]) > 60


# --------------------------------------------------------------------------- real data


def test_stream_keys_match_the_real_recording(shared_data: Path, live_server: ServerInfo) -> None:
    """Where the recordings have the same stream, our payload has exactly the recorded keys."""
    recorded: dict[str, set[str]] = {}
    path = shared_data / "spot" / "hftbacktest_2024-08-08" / "btcusdt_20240808.gz"
    if not path.exists():
        pytest.skip(f"../shared/data absent: {path}")
    with gzip.open(path, "rt") as f:
        for line in f:
            body = json.loads(line.split(" ", 1)[1])
            if "stream" in body:
                recorded.setdefault(body["stream"], set(body["data"]))
            if len(recorded) >= 3:
                break
    with connect(f"{live_server.ws_url}/stream?streams=" + "/".join(recorded)) as ws:
        ours: dict[str, set[str]] = {}
        end = time.monotonic() + 15
        while len(ours) < len(recorded) and time.monotonic() < end:
            m = _recv_json(ws)
            ours.setdefault(m["stream"], set(m["data"]))
    assert ours == recorded


# --------------------------------------------------------------------------- CLI


def test_cli_prints_one_json_line_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "cli-log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickloop.cli", "serve-venue", "--demo", "--speed", "0", "--demo-duration", "10",
         "--seed", "4", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert set(line) == {"base_url", "ws_url", "ws_api_url", "api_key", "api_secret", "symbols"}
        assert line["base_url"].startswith("http://127.0.0.1:") and line["symbols"] == ["BTCUSDT", "ETHUSDT"]
        assert line["ws_api_url"] == line["ws_url"] + "/ws-api/v3"
        from venues.server.auth import Credentials

        assert line["api_key"] == Credentials.demo(4).api_key
        r = httpx.get(line["base_url"] + "/api/v3/time", timeout=10)
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # closes the pipes
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["meta"]["serve_venue"]["source"] == "demo:seed=4"


def test_replays_a_real_recording_log(shared_data: Path, tmp_path: Path) -> None:
    """``--log``: the real BTCUSDT recording, as fast as possible; REST answers its final state, re-stamped."""
    from catalogs.importers.driver import import_binance_stream
    from catalogs.log import LogReader
    from engine.events import BookDeltaReceived, TradeReceived

    raw = shared_data / "spot" / "hftbacktest_2024-08-08" / "btcusdt_20240808.gz"
    if not raw.exists():
        pytest.skip(f"../shared/data absent: {raw}")
    log = tmp_path / "log"
    import_binance_stream([raw], log)
    with LogReader(log) as reader:
        events = list(reader.events())
    last_u = [e.last_update_id for e in events if isinstance(e, BookDeltaReceived)][-1]
    last_trades = [e for e in events if isinstance(e, TradeReceived)][-3:]
    with serve_in_thread(ServerConfig(log=log, speed=0)) as info:
        info.control.wait_market_done(120)
        assert info.symbols == ("BTCUSDT",)
        rest = _rest(info)
        assert rest.call("GET", "depth", symbol="BTCUSDT").json()["lastUpdateId"] == last_u
        trades = rest.call("GET", "trades", symbol="BTCUSDT", limit=3).json()
        assert [t["id"] for t in trades] == [t.trade_id for t in last_trades]
        assert abs(trades[-1]["time"] - time.time() * 1000) < 120_000  # re-stamped to the server's clock
        order = rest.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001").json()
        assert order["status"] == "FILLED"
