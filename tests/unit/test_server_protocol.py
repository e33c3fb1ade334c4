"""venues/server protocol (REST endpoints over SimVenue) and stream payloads, sans-I/O."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

import pytest

from engine.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    MarkPriceReceived,
    QuoteReceived,
    TradeReceived,
)
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from venues.server import streams
from venues.server.auth import Credentials
from venues.server.limits import LimitsConfig
from venues.server.market import MarketState
from venues.server.protocol import Request, Response, VenueProtocol
from venues.sim.filters import symbol_rules
from venues.sim.venue import SimVenue, SymbolSpec

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
T0 = 1_800_000_000_000_000_000
MS = 1_000_000
CREDS = Credentials.demo(3)
RAW = {
    "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
    "baseAssetPrecision": 8, "quoteAssetPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
    "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
    ],
}


def _e8(x: str) -> int:
    whole, _, frac = x.partition(".")
    return int(whole) * SCALE + int(frac.ljust(8, "0") or 0)


class Fixture:
    def __init__(self, limits: LimitsConfig | None = None) -> None:
        spec = SymbolSpec.from_rules(symbol_rules(RAW, source="test"), RAW)
        self.venue = SimVenue([spec], {"USDT": 100_000 * SCALE, "BTC": 2 * SCALE})
        self.events: list[Event] = []
        self.commands: list[Any] = []
        self.proto = VenueProtocol(self.venue, MarketState([BTC]), {BTC: RAW}, CREDS, limits=limits,
                                   on_command=lambda c, ts: self.commands.append(c), on_events=self.events.extend)
        self.now = T0

    def market(self, ev: Event) -> list[tuple[str, dict[str, Any]]]:
        self.now = max(self.now, ev.ts_recv)
        return self.proto.on_market(ev, ev.ts_recv)[0]

    def seed_book(self) -> None:
        bids = ((_e8("59999.99"), _e8("1")), (_e8("59999.50"), _e8("2")))
        asks = ((_e8("60000.01"), _e8("1")), (_e8("60000.50"), _e8("2")))
        self.market(BookSnapshotReceived(0, T0, T0, BTC, 100, bids, asks))
        self.market(BookDeltaReceived(0, T0 + MS, T0 + MS, BTC, 99, 101, -1, ((_e8("59999.98"), _e8("0.5")),), ()))
        self.market(TradeReceived(0, T0 + 2 * MS, T0 + 2 * MS, BTC, _e8("60000.01"), _e8("0.1"), 7, False))
        self.market(QuoteReceived(0, T0 + 3 * MS, T0 + 3 * MS, BTC, 101, _e8("59999.99"), _e8("1"), _e8("60000.01"), _e8("0.9")))

    def call(self, method: str, path: str, signed: bool = False, key: str | None = None, **params: Any) -> Response:
        headers = {}
        if signed:
            params["timestamp"] = self.now // MS
            query = urlencode(params)
            query += "&signature=" + hmac.new(CREDS.api_secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        else:
            query = urlencode(params)
        if signed or key:
            headers["x-mbx-apikey"] = key or CREDS.api_key
        self.now += MS
        return self.proto.handle(Request(method, "/api/v3/" + path, query, "", headers), self.now)


@pytest.fixture
def fx() -> Fixture:
    f = Fixture()
    f.seed_book()
    return f


def test_public_endpoints_shapes(fx: Fixture) -> None:
    assert fx.call("GET", "ping").body == {}
    assert fx.call("GET", "time").body == {"serverTime": fx.now // MS}
    info = fx.call("GET", "exchangeInfo").body
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT"]
    assert {r["rateLimitType"] for r in info["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS", "RAW_REQUESTS"}
    assert info["symbols"][0]["permissions"] == ["SPOT"] and info["symbols"][0]["filters"] == RAW["filters"]
    depth = fx.call("GET", "depth", symbol="BTCUSDT", limit=5).body
    assert depth == {"lastUpdateId": 101,
                     "bids": [["59999.99000000", "1.00000000"], ["59999.98000000", "0.50000000"], ["59999.50000000", "2.00000000"]],
                     "asks": [["60000.01000000", "1.00000000"], ["60000.50000000", "2.00000000"]]}
    trades = fx.call("GET", "trades", symbol="BTCUSDT").body
    assert trades == [{"id": 7, "price": "60000.01000000", "qty": "0.10000000", "quoteQty": "6000.00100000",
                       "time": (T0 + 2 * MS) // MS, "isBuyerMaker": False, "isBestMatch": True}]
    agg = fx.call("GET", "aggTrades", symbol="BTCUSDT").body
    assert set(agg[0]) == {"a", "p", "q", "f", "l", "T", "m", "M"}
    kl = fx.call("GET", "klines", symbol="BTCUSDT", interval="1m").body
    assert len(kl) == 1 and len(kl[0]) == 12 and kl[0][1] == "60000.01000000" and kl[0][8] == 1
    assert kl[0][0] % 60_000 == 0 and kl[0][6] == kl[0][0] + 59_999
    bt = fx.call("GET", "ticker/bookTicker", symbol="BTCUSDT").body
    assert bt == {"symbol": "BTCUSDT", "bidPrice": "59999.99000000", "bidQty": "1.00000000",
                  "askPrice": "60000.01000000", "askQty": "1.00000000"}
    assert fx.call("GET", "ticker/price").body == [{"symbol": "BTCUSDT", "price": "60000.01000000"}]
    avg = fx.call("GET", "avgPrice", symbol="BTCUSDT").body
    assert avg["mins"] == 5 and avg["price"] == "60000.01000000"


def test_request_errors(fx: Fixture) -> None:
    r = fx.call("GET", "nope")
    assert r.status == 404
    assert fx.call("GET", "depth").body["code"] == -1102
    r = fx.call("GET", "depth", symbol="XXXYYY")
    assert (r.status, r.body) == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert fx.call("GET", "klines", symbol="BTCUSDT", interval="7m").body["code"] == -1120
    r = fx.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                quantity="0.001", price="60000.000000001")
    assert r.body == {"code": -1111, "msg": "Parameter 'price' has too much precision."}
    r = fx.call("POST", "order", signed=True, symbol="BTCUSDT", side="UP", type="LIMIT")
    assert r.body["code"] == -1117
    r = fx.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                quantity="0.001", price="60000.005")
    assert r.body == {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
    r = fx.call("GET", "account")  # no key at all
    assert (r.status, r.body["code"]) == (401, -2014)
    r = fx.call("POST", "userDataStream", key="B" * 64)
    assert (r.status, r.body["code"]) == (401, -2015)


def test_order_lifecycle_over_rest(fx: Fixture) -> None:
    r = fx.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                quantity="0.5", price="59000", newClientOrderId="mine-1")
    assert r.status == 200 and r.order_taken
    assert r.body["status"] == "NEW" and r.body["clientOrderId"] == "mine-1" and r.body["fills"] == []
    assert ("X-MBX-ORDER-COUNT-10S", "1") in r.headers
    oid = r.body["orderId"]
    dup = fx.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                  quantity="0.5", price="59000", newClientOrderId="mine-1")
    assert dup.body == {"code": -2010, "msg": "Duplicate order sent."} and not dup.order_taken
    q = fx.call("GET", "order", signed=True, symbol="BTCUSDT", origClientOrderId="mine-1").body
    assert q["orderId"] == oid and q["status"] == "NEW" and q["isWorking"] is True
    assert [o["orderId"] for o in fx.call("GET", "openOrders", signed=True).body] == [oid]
    acct = fx.call("GET", "account", signed=True).body
    usdt = next(b for b in acct["balances"] if b["asset"] == "USDT")
    assert usdt == {"asset": "USDT", "free": "70500.00000000", "locked": "29500.00000000"}
    c = fx.call("DELETE", "order", signed=True, symbol="BTCUSDT", orderId=oid).body
    assert c["status"] == "CANCELED" and c["origClientOrderId"] == "mine-1" and c["orderId"] == oid
    assert fx.call("DELETE", "order", signed=True, symbol="BTCUSDT", orderId=oid).body == {
        "code": -2011, "msg": "Unknown order sent."}
    m = fx.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.2").body
    assert m["status"] == "FILLED" and m["executedQty"] == "0.20000000"
    assert [f["price"] for f in m["fills"]] == ["60000.01000000"]
    trades = fx.call("GET", "myTrades", signed=True, symbol="BTCUSDT").body
    assert len(trades) == 1 and trades[0]["isBuyer"] is True and trades[0]["orderId"] == m["orderId"]
    assert [o["status"] for o in fx.call("GET", "allOrders", signed=True, symbol="BTCUSDT").body] == ["CANCELED", "FILLED"]
    assert fx.call("GET", "order", signed=True, symbol="BTCUSDT", orderId=999).body["code"] == -2013
    assert [type(c).__name__ for c in fx.commands] == ["SubmitOrder", "SubmitOrder", "QueryOrder", "CancelOrder",
                                                         "CancelOrder", "SubmitOrder", "QueryOrder"]
    assert any(type(e).__name__ == "OrderFilled" for e in fx.events)


def test_oco_both_shapes_and_list_queries(fx: Fixture) -> None:
    r = fx.call("POST", "orderList/oco", signed=True, symbol="BTCUSDT", side="SELL", quantity="0.1",
                aboveType="LIMIT_MAKER", abovePrice="61000", belowType="STOP_LOSS_LIMIT", belowStopPrice="59000",
                belowPrice="58900", belowTimeInForce="GTC", listClientOrderId="list-a")
    body = r.body
    assert r.status == 200 and body["contingencyType"] == "OCO" and body["listOrderStatus"] == "EXECUTING"
    assert len(body["orders"]) == 2 and len(body["orderReports"]) == 2
    assert ("X-MBX-ORDER-COUNT-10S", "2") in r.headers
    lid = body["orderListId"]
    legacy = fx.call("POST", "order/oco", signed=True, symbol="BTCUSDT", side="SELL", quantity="0.1", price="61500",
                     stopPrice="58000", stopLimitPrice="57900", stopLimitTimeInForce="GTC").body
    assert legacy["contingencyType"] == "OCO" and {o["type"] for o in legacy["orderReports"]} == {"LIMIT_MAKER", "STOP_LOSS_LIMIT"}
    assert {x["orderListId"] for x in fx.call("GET", "openOrderList", signed=True).body} == {lid, legacy["orderListId"]}
    assert fx.call("GET", "orderList", signed=True, orderListId=lid).body["listClientOrderId"] == "list-a"
    c = fx.call("DELETE", "orderList", signed=True, symbol="BTCUSDT", orderListId=lid).body
    assert c["listOrderStatus"] == "ALL_DONE" and {x["status"] for x in c["orderReports"]} == {"CANCELED"}
    left = fx.call("DELETE", "openOrders", signed=True, symbol="BTCUSDT").body
    assert [x["orderListId"] for x in left] == [legacy["orderListId"]]
    bad = fx.call("POST", "orderList/oco", signed=True, symbol="BTCUSDT", side="SELL", quantity="0.1",
                  aboveType="LIMIT_MAKER", abovePrice="59000", belowType="STOP_LOSS", belowStopPrice="58000").body
    assert bad["code"] < 0


def test_listen_keys(fx: Fixture) -> None:
    key = fx.call("POST", "userDataStream", key=CREDS.api_key).body["listenKey"]
    assert len(key) == 60 and fx.proto.listen_key_valid(key, fx.now)
    assert fx.call("PUT", "userDataStream", key=CREDS.api_key, listenKey=key).body == {}
    assert fx.call("DELETE", "userDataStream", key=CREDS.api_key, listenKey=key).body == {}
    assert fx.call("PUT", "userDataStream", key=CREDS.api_key, listenKey=key).body["code"] == -1125


def test_rate_limit_429_then_418_over_rest() -> None:
    fx = Fixture(LimitsConfig(weight_per_minute=30, ban_after=2))
    fx.now = (T0 // 60_000_000_000) * 60_000_000_000  # a minute boundary
    statuses = []
    for _ in range(10):
        r = fx.call("GET", "exchangeInfo")  # weight 20
        statuses.append(r.status)
        if r.status != 200:
            assert dict(r.headers)["Retry-After"].isdigit()
    assert statuses[:4] == [200, 429, 429, 418]
    assert dict(fx.call("GET", "ping").headers).get("Retry-After") is not None


def test_successful_orders_cost_no_weight_failed_ones_do(fx: Fixture) -> None:
    def used(r: Response) -> int:
        return int(dict(r.headers)["X-MBX-USED-WEIGHT-1M"])

    base = used(fx.call("GET", "ping"))
    ok = fx.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                 quantity="0.01", price="50000")
    assert ok.status == 200 and used(ok) == base
    bad = fx.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                  quantity="0.01", price="50000.001")
    assert bad.status == 400 and used(bad) == base + 1
    cancel = fx.call("DELETE", "order", signed=True, symbol="BTCUSDT", orderId=ok.body["orderId"])
    assert cancel.status == 200 and used(cancel) == base + 1


# --------------------------------------------------------------------------- streams


def test_market_stream_payload_keys_match_the_reference(fx: Fixture) -> None:
    msgs = dict(fx.market(TradeReceived(0, T0 + 9 * MS, T0 + 10 * MS, BTC, _e8("60000.02"), _e8("0.3"), 8, True)))
    assert list(msgs["btcusdt@trade"]) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
    assert list(msgs["btcusdt@aggTrade"]) == ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]
    k = msgs["btcusdt@kline_1m"]["k"]
    assert set(k) == {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"}
    assert k["n"] == 2 and k["h"] == "60000.02000000"
    msgs = dict(fx.market(BookDeltaReceived(0, T0 + 11 * MS, T0 + 12 * MS, BTC, 102, 104, -1,
                                            ((_e8("59999.99"), 0),), ())))
    d = msgs["btcusdt@depth@100ms"]
    assert list(d) == ["e", "E", "s", "U", "u", "b", "a"] and (d["U"], d["u"]) == (102, 104)
    assert d["b"] == [["59999.99000000", "0.00000000"]]
    part = msgs["btcusdt@depth20@100ms"]
    assert list(part) == ["lastUpdateId", "bids", "asks"] and part["bids"][0][0] == "59999.98000000"
    q = dict(fx.market(QuoteReceived(0, T0 + 13 * MS, T0 + 13 * MS, BTC, 105, 1, 1, 2, 2)))["btcusdt@bookTicker"]
    assert list(q) == ["u", "s", "b", "B", "a", "A"]


def test_futures_payloads_carry_pu_and_times() -> None:
    iid = InstrumentId("BTCUSDT.USDM")
    ms_ = MarketState([iid])
    d = BookDeltaReceived(0, T0, T0 + MS, iid, 10, 12, 9, (), ())
    msg = dict(ms_.apply(d))["btcusdt@depth@100ms"]
    assert list(msg) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"] and msg["pu"] == 9
    mp = MarkPriceReceived(0, T0, T0, iid, 60_000 * SCALE, 59_990 * SCALE, 0, 10_000, T0 + 3_600_000 * MS)
    m = dict(ms_.apply(mp))["btcusdt@markPrice@1s"]
    assert list(m) == ["e", "E", "s", "p", "i", "P", "r", "T"] and m["r"] == "0.00010000"
    fut_trade = dict(ms_.apply(TradeReceived(0, T0, T0, iid, SCALE, SCALE, 1, False)))["btcusdt@trade"]
    assert "X" in fut_trade and "M" not in fut_trade


def test_execution_reports_have_every_documented_field(fx: Fixture) -> None:
    fx.events.clear()
    fx.call("POST", "order", signed=True, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
            quantity="0.5", price="60000.01")
    reports = [streams.execution_report(e, fx.venue.order(getattr(e, "order_id", -1)), "BTCUSDT") for e in fx.events]
    reps = [r for r in reports if r is not None]
    assert [r["x"] for r in reps] == ["NEW", "TRADE"]
    documented = {"e", "E", "s", "c", "S", "o", "f", "q", "p", "P", "F", "g", "C", "x", "X", "r", "i", "l", "z", "L",
                  "n", "N", "T", "t", "I", "w", "m", "M", "O", "Z", "Y", "Q", "W", "V"}
    for r in reps:
        assert documented <= set(r), documented - set(r)
    new, trade = reps
    assert new["X"] == "NEW" and new["z"] == "0.00000000" and new["t"] == -1
    assert trade["X"] in ("PARTIALLY_FILLED", "FILLED") and trade["L"] == "60000.01000000" and trade["N"] == "BTC"
    assert trade["I"] > new["I"]
    bal = next(e for e in fx.events if type(e).__name__ == "BalanceUpdated")
    pos = streams.account_position(bal)  # type: ignore[arg-type]
    assert pos["e"] == "outboundAccountPosition" and {"a", "f", "l"} == set(pos["B"][0])


def test_my_trades_costs_5_with_an_order_id_and_20_without(fx: Fixture) -> None:
    def used(r: Response) -> int:
        return int(dict(r.headers)["X-MBX-USED-WEIGHT-1M"])

    base = used(fx.call("GET", "ping"))
    narrow = fx.call("GET", "myTrades", signed=True, symbol="BTCUSDT", orderId=1)
    assert narrow.status == 200 and used(narrow) == base + 5
    wide = fx.call("GET", "myTrades", signed=True, symbol="BTCUSDT")
    assert wide.status == 200 and used(wide) == base + 25


def test_unknown_order_list_is_2011_like_the_adapter_expects(fx: Fixture) -> None:
    from venues.binance.orders import NOT_FOUND_CODES

    body = fx.call("GET", "orderList", signed=True, orderListId=424242).body
    assert body == {"code": -2011, "msg": "Order list does not exist."}
    assert body["code"] in NOT_FOUND_CODES
