"""The live adapter's sans-I/O cores: signing, request bytes, answers and reports -> events,
stream parsing (parity with the recording importer on the real data), dedupe, rate limits."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import random
from itertools import islice
from urllib.parse import parse_qsl

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import (
    BalanceUpdated,
    Event,
    LatencyRecorded,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    OrderStatusReported,
)
from engine.identifiers import InstrumentId
from engine.orders import (
    AnyCommand,
    CancelOrder,
    ExpiryReason,
    ListStatusType,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    QueryOrder,
    RejectReason,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
)
from tests.conftest import binance_file
from venues.binance.protocol import MarketParser, UserParser, depth_snapshot_event
from venues.binance.requests import RequestBuilder, SignedRequest, answer_events
from venues.binance.rest import RateLimit, RateLimiter, RestClient, limits_from_exchange_info
from venues.binance.signing import Credentials, ServerTime, Signer, encode_params, hmac_sha256_hex
from venues.binance.streams import Backoff, DepthBook
from venues.binance.venue import Deduper, LiveConfig, LiveVenue

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
# Binance's worked example (rest-api.md, "SIGNED Endpoint Examples ... HMAC Keys"), via the reference §7.
REF_SECRET = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
REF_PAYLOAD = b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
REF_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


class FixedClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now


def _signer(offset_ms: int = 0, secret: bytes = REF_SECRET) -> Signer:
    return Signer(Credentials("key-1", secret), ServerTime(offset_ms=offset_ms))


# --------------------------------------------------------------------------- signing


def test_signature_matches_binance_worked_example() -> None:
    assert hmac_sha256_hex(REF_SECRET, REF_PAYLOAD) == REF_SIGNATURE


def test_signer_reproduces_the_worked_example_bytes() -> None:
    local_ns = 1_499_827_319_000 * 1_000_000
    signer = _signer(offset_ms=559)  # server clock 559 ms ahead of ours
    params = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "1"),
              ("price", "0.1")]
    payload, ts = signer.sign(params, local_ns)
    assert ts == 1_499_827_319_559
    assert payload == REF_PAYLOAD + b"&signature=" + REF_SIGNATURE.encode()


def test_encoding_keeps_order_and_percent_encodes() -> None:
    assert encode_params([("b", "x y"), ("a", "é/&=")]) == "b=x%20y&a=%C3%A9%2F%26%3D"
    assert encode_params([("id", "A-z_0.9~")]) == "id=A-z_0.9~"


def test_server_time_keeps_the_tightest_round_trip_and_resyncs() -> None:
    st_ = ServerTime(resync_ns=10_000_000_000)
    assert st_.due(0)
    st_.observe(1_000_000_000, 2_000, 1_100_000_000)  # rtt 100 ms, midpoint 1050 ms
    assert st_.offset_ms == 950
    st_.observe(2_000_000_000, 3_000, 2_010_000_000)  # rtt 10 ms: better
    assert st_.offset_ms == 995
    st_.observe(3_000_000_000, 9_999, 3_500_000_000)  # worse rtt: ignored
    assert st_.offset_ms == 995
    assert not st_.due(5_000_000_000) and st_.due(12_010_000_001)
    st_.invalidate()
    assert st_.due(2_100_000_000)
    assert st_.server_ms(2_000_000_000) == 2_995


# --------------------------------------------------------------------------- requests


def _verify(req: SignedRequest, secret: bytes = REF_SECRET) -> dict[str, str]:
    raw = req.query or req.body
    payload, _, sig = raw.rpartition(b"&signature=")
    assert hmac.new(secret, payload, hashlib.sha256).hexdigest().encode() == sig
    return dict(parse_qsl(raw.decode()))


def test_new_order_bytes() -> None:
    b = RequestBuilder(_signer())
    cmd = SubmitOrder(BTC, OrderSide.BUY, OrderType.LIMIT, quantity=1_000_000, price=6_000_012_000_000,
                      time_in_force=TimeInForce.GTC, client_order_id="rsi-1")
    req = b.new_order(cmd, 1_700_000_000_000_000_000)
    assert (req.method, req.path, req.query, req.order) == ("POST", "/api/v3/order", b"", True)
    assert dict(req.headers) == {"X-MBX-APIKEY": "key-1", "Content-Type": "application/x-www-form-urlencoded"}
    assert req.body.startswith(
        b"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=60000.12&newClientOrderId=rsi-1"
        b"&newOrderRespType=FULL&recvWindow=5000&timestamp=1700000000000&signature="
    )
    _verify(req)
    assert req.timestamp_ms == 1_700_000_000_000 and req.recv_window_ms == 5000


def test_order_without_client_id_is_refused() -> None:
    with pytest.raises(ValueError, match="client_order_id"):
        RequestBuilder(_signer()).new_order(SubmitOrder(BTC, OrderSide.BUY, OrderType.MARKET, quantity=1), 0)


def test_cancel_query_and_oco_requests() -> None:
    b = RequestBuilder(_signer())
    cancel = b.build(CancelOrder(BTC, orig_client_order_id="a1"), 5_000_000)
    assert cancel.method == "DELETE" and cancel.body == b"" and cancel.idempotent
    assert _verify(cancel)["origClientOrderId"] == "a1"
    query = b.build(QueryOrder(BTC, order_id=42), 5_000_000)
    assert query.method == "GET" and _verify(query)["orderId"] == "42" and query.weight == 4
    oco = SubmitOrderList.oco(
        BTC, OrderSide.SELL, 100_000,
        OrderLeg(OrderSide.SELL, OrderType.LIMIT_MAKER, 100_000, price=7_000_000_000_000, client_order_id="up"),
        OrderLeg(OrderSide.SELL, OrderType.STOP_LOSS_LIMIT, 100_000, price=5_000_000_000_000,
                 stop_price=5_100_000_000_000, time_in_force=TimeInForce.GTC, client_order_id="dn"),
        list_client_order_id="L1",
    )
    req = b.build(oco, 5_000_000)
    params = _verify(req)
    assert req.path == "/api/v3/orderList/oco"
    assert {k: params[k] for k in ("listClientOrderId", "side", "quantity", "aboveType", "abovePrice", "belowType",
                                   "belowStopPrice", "belowPrice", "belowTimeInForce", "aboveClientOrderId")} == {
        "listClientOrderId": "L1", "side": "SELL", "quantity": "0.001", "aboveType": "LIMIT_MAKER",
        "abovePrice": "70000", "belowType": "STOP_LOSS_LIMIT", "belowStopPrice": "51000", "belowPrice": "50000",
        "belowTimeInForce": "GTC", "aboveClientOrderId": "up"}


FULL = {
    "symbol": "BTCUSDT", "orderId": 28, "orderListId": -1, "clientOrderId": "c1", "transactTime": 1507725176595,
    "price": "0.00000000", "origQty": "10.00000000", "executedQty": "4.00000000", "origQuoteOrderQty": "0.00000000",
    "cummulativeQuoteQty": "16000.00000000", "status": "EXPIRED", "timeInForce": "GTC", "type": "MARKET",
    "side": "BUY", "workingTime": 1507725176595, "selfTradePreventionMode": "NONE",
    "fills": [
        {"price": "4000.00000000", "qty": "1.00000000", "commission": "0.001", "commissionAsset": "BTC", "tradeId": 56},
        {"price": "4000.00000000", "qty": "3.00000000", "commission": "0.003", "commissionAsset": "BTC", "tradeId": 57},
    ],
}


def test_full_answer_becomes_accept_fills_and_expiry() -> None:
    cmd = SubmitOrder(BTC, OrderSide.BUY, OrderType.MARKET, quantity=10 * 10**8, client_order_id="c1")
    evs = answer_events(cmd, 200, FULL, 7)
    assert [type(e) for e in evs] == [OrderAccepted, OrderFilled, OrderFilled, OrderExpired]
    acc, f1, f2, exp = evs
    assert isinstance(acc, OrderAccepted) and acc.order_id == 28 and acc.status is OrderStatus.NEW
    assert isinstance(f2, OrderFilled) and isinstance(f1, OrderFilled)
    assert (f1.cum_qty, f2.cum_qty, f2.cum_quote, f2.trade_id) == (10**8, 4 * 10**8, 16_000 * 10**8, 57)
    assert f2.status is OrderStatus.PARTIALLY_FILLED and f2.commission == 300_000 and f2.commission_asset == "BTC"
    assert isinstance(exp, OrderExpired) and exp.expiry_reason is ExpiryReason.INSUFFICIENT_LIQUIDITY
    assert all(e.ts_event == 1507725176595 * 10**6 and e.ts_recv == 7 for e in evs)


def test_errors_map_like_the_sim() -> None:
    cmd = SubmitOrder(BTC, OrderSide.BUY, OrderType.LIMIT_MAKER, quantity=1, price=1, client_order_id="m1")
    [rej] = answer_events(cmd, 400, {"code": -2010, "msg": "Order would immediately match and take."}, 1)
    assert isinstance(rej, OrderRejected)
    assert (rej.code, rej.reject_reason, rej.client_order_id) == (-2010, RejectReason.WOULD_MATCH_IMMEDIATELY, "m1")
    [flt] = answer_events(cmd, 400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}, 1)
    assert isinstance(flt, OrderRejected) and flt.reject_reason is RejectReason.NONE and flt.code == -1013
    [miss] = answer_events(QueryOrder(BTC, orig_client_order_id="zz"), 400,
                           {"code": -2013, "msg": "Order does not exist."}, 1)
    assert isinstance(miss, OrderStatusReported) and miss.order is None and miss.code == -2013
    [canc] = answer_events(CancelOrder(BTC, orig_client_order_id="c1"), 200,
                           {"symbol": "BTCUSDT", "origClientOrderId": "c1", "orderId": 28, "orderListId": -1,
                            "clientOrderId": "cx", "transactTime": 5, "executedQty": "1", "cummulativeQuoteQty": "2",
                            "status": "CANCELED"}, 9)
    assert isinstance(canc, OrderCanceled)
    assert (canc.client_order_id, canc.cancel_client_order_id, canc.cum_qty) == ("c1", "cx", 10**8)


# --------------------------------------------------------------------------- user stream

def _report(x: str, status: str, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "e": "executionReport", "E": 1499405658658, "s": "BTCUSDT", "c": "c1", "S": "BUY", "o": "MARKET",
        "f": "GTC", "q": "10.00000000", "p": "0.00000000", "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "",
        "x": x, "X": status, "r": "NONE", "i": 28, "l": "0.00000000", "z": "0.00000000", "L": "0.00000000",
        "n": "0", "N": None, "T": 1499405658657, "t": -1, "I": 8641984, "w": True, "m": False, "M": False,
        "O": 1499405658657, "Z": "0.00000000", "Y": "0.00000000", "Q": "0.00000000", "W": 1499405658657, "V": "NONE",
    }
    base.update(extra)
    return base


def test_execution_reports_and_account_become_events() -> None:
    up = UserParser()
    enc = msgspec.json.encode
    [acc] = up.parse(enc(_report("NEW", "NEW")), 5)
    assert isinstance(acc, OrderAccepted) and acc.exec_id == 8641984 and acc.working_time == 1499405658657 * 10**6
    [fill] = up.parse(enc({"subscriptionId": 0, "event": _report(
        "TRADE", "PARTIALLY_FILLED", l="1.00000000", z="1.00000000", L="4000.00000000", Y="4000.00000000",
        Z="4000.00000000", n="0.001", N="BTC", t=56)}), 5)
    assert isinstance(fill, OrderFilled)
    assert (fill.qty, fill.price, fill.quote_qty, fill.trade_id, fill.commission_asset) == (
        10**8, 4000 * 10**8, 4000 * 10**8, 56, "BTC")
    [cx] = up.parse(enc(_report("CANCELED", "CANCELED", c="cancel-9", C="c1")), 5)
    assert isinstance(cx, OrderCanceled) and (cx.client_order_id, cx.cancel_client_order_id) == ("c1", "cancel-9")
    [ex] = up.parse(enc(_report("EXPIRED", "EXPIRED", eR="OCO_TRIGGER")), 5)
    assert isinstance(ex, OrderExpired) and ex.expiry_reason is ExpiryReason.OCO_TRIGGER
    [bal] = up.parse(enc({"e": "outboundAccountPosition", "E": 1564034571105, "u": 1564034571073,
                          "B": [{"a": "ETH", "f": "10000.000000", "l": "0.000000"}]}), 5)
    assert isinstance(bal, BalanceUpdated) and bal.balances == (("ETH", 10_000 * 10**8, 0),)
    [ls] = up.parse(enc({"e": "listStatus", "E": 1564035303637, "s": "ETHBTC", "g": 2, "c": "OCO", "l": "EXEC_STARTED",
                         "L": "EXECUTING", "r": "NONE", "C": "F4QN4G8DlFATFlIUQ0cjdD", "T": 1564035303625,
                         "O": [{"s": "ETHBTC", "i": 17, "c": "AJYsMjErWJesZvqlJCTUgL"}]}), 5)
    assert isinstance(ls, OrderListStatusChanged) and ls.order_ids == (17,)
    assert ls.list_status_type is ListStatusType.EXEC_STARTED
    assert up.parse(enc({"e": "balanceUpdate", "E": 1, "a": "BTC", "d": "1", "T": 1}), 5) == []


def test_rest_and_stream_copies_of_one_execution_are_emitted_once() -> None:
    cmd = SubmitOrder(BTC, OrderSide.BUY, OrderType.MARKET, quantity=10 * 10**8, client_order_id="c1")
    rest = answer_events(cmd, 200, FULL, 1)
    stream = UserParser().parse(msgspec.json.encode(_report(
        "TRADE", "PARTIALLY_FILLED", l="1.00000000", z="1.00000000", L="4000.00000000", t=56)), 2)
    other = UserParser().parse(msgspec.json.encode(_report(
        "TRADE", "PARTIALLY_FILLED", l="1.00000000", z="5.00000000", L="4000.00000000", t=99)), 3)
    d = Deduper()
    assert d.fresh(rest) == rest
    assert d.fresh(stream) == [] and d.fresh(other) == other and d.dropped == 1


# --------------------------------------------------------------------------- live venue (no I/O)


def test_handle_signs_at_once_and_records_tick_to_order() -> None:
    clock = FixedClock(1_700_000_000_000_000_000)
    sent: list[tuple[AnyCommand, SignedRequest]] = []
    rest = RestClient("http://127.0.0.1:9", RequestBuilder(_signer()), clock=clock)
    venue = LiveVenue(LiveConfig("key-1", "unused"), lambda evs: None, clock=clock, rest=rest,
                      dispatch=lambda c, r: sent.append((c, r)))
    venue.set_market_recv_ns(clock.now - 123_000)
    cmd = SubmitOrder(BTC, OrderSide.SELL, OrderType.MARKET, quantity=5, client_order_id="rsi-7")
    assert venue.handle(cmd, 0) == [] and venue.market_kinds == frozenset()
    [(got, req)] = sent
    assert got is cmd and _verify(req)["newClientOrderId"] == "rsi-7"
    assert list(venue.tick_to_order_ns) == [123_000]
    assert LatencyRecorded(0, 1, 1, BTC, "tick_to_order", 123_000, "rsi-7").metric == "tick_to_order"


# --------------------------------------------------------------------------- rate limits, backoff


def test_rate_limiter_holds_back_before_the_limit() -> None:
    lim = RateLimiter((RateLimit("weight", "1M", 100), RateLimit("orders", "10S", 5)), headroom=0.9)
    t0 = 60 * 10**9 * 1000 + 5 * 10**9  # 5 s into a minute window
    lim.observe({"X-MBX-USED-WEIGHT-1M": "85", "X-MBX-ORDER-COUNT-10S": "2"}, t0)
    assert lim.used("weight", "1m", t0) == 85
    assert lim.wait_ns(5, False, t0) == 0
    assert lim.wait_ns(6, False, t0) == 55 * 10**9  # 85 + 6 > 90: wait for the next minute
    lim.note_sent(1, True, t0)
    lim.note_sent(1, True, t0)
    assert lim.wait_ns(1, True, t0) == 5 * 10**9  # orders: 4 + 1 > 4.5
    assert lim.wait_ns(1, False, t0 + 55 * 10**9) == 0  # new windows
    lim.block(t0 + 10**9)
    assert lim.wait_ns(0, False, t0) == 10**9


def test_rate_limiter_counts_raw_requests_itself() -> None:
    info = {"rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 10},
    ]}
    limits = limits_from_exchange_info(info)
    assert RateLimit("requests", "5M", 10) in limits
    lim = RateLimiter(limits, headroom=0.9)
    t0 = 300 * 10**9 * 1000 + 60 * 10**9  # one minute into a 5-minute window
    for _ in range(9):
        assert lim.wait_ns(0, False, t0) == 0
        lim.note_sent(0, False, t0)  # weight 0: only the raw count moves
    assert lim.used("weight", "1M", t0) == 0 and lim.used("requests", "5M", t0) == 9
    assert lim.wait_ns(0, False, t0) == 240 * 10**9  # 9 + 1 > 9: no header will tell us, so wait the window out


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 12))
def test_backoff_is_seeded_bounded_and_grows(seed: int, n: int) -> None:
    a = Backoff(0.5, 8.0, random.Random(seed))
    b = Backoff(0.5, 8.0, random.Random(seed))
    delays = [a.next() for _ in range(n)]
    assert delays == [b.next() for _ in range(n)]
    for i, d in enumerate(delays):
        nominal = min(8.0, 0.5 * 2**i)
        assert nominal / 2 <= d <= nominal
    a.reset()
    assert a.next() <= 0.5


# --------------------------------------------------------------------------- stream parsing parity


def _hft_pairs(relative: str, limit: int) -> list[tuple[bytes, int]]:
    path = binance_file(relative)
    with gzip.open(path, "rb") as fh:
        out = []
        for line in islice(fh, limit):
            head, _, body = line.strip().partition(b" ")
            out.append((body, int(head)))
        return out


@pytest.mark.parametrize(
    ("relative", "futures"),
    [
        ("spot/hftbacktest_2024-08-08/btcusdt_20240808.gz", False),
        ("usdm/hftbacktest_2024-08-08/btcusdt_20240808.gz", True),
        ("coinm/hftbacktest_2024-08-08/btcusd_perp_20240808.gz", True),
    ],
)
def test_live_parser_matches_the_importer_on_real_recordings(relative: str, futures: bool) -> None:
    from catalogs.importers.binance_stream import BinanceStreamParser

    imp, live = BinanceStreamParser(), MarketParser(futures=futures)
    kinds: set[str] = set()
    for body, ts in _hft_pairs(relative, 4000):
        want = imp.feed(str(ts).encode() + b" " + body)
        if b'"stream"' in body:
            got = live.parse(body, ts)
        else:  # the recorder's REST snapshot line: what the live book fetches over REST
            got = [depth_snapshot_event(msgspec.json.decode(body), want[0].instrument, ts)]
        assert got == want
        kinds.update(type(e).__name__ for e in got)
    assert {"TradeReceived", "QuoteReceived", "BookDeltaReceived", "BookSnapshotReceived"} <= kinds


@pytest.mark.parametrize(
    ("relative", "futures"),
    [
        ("spot/cryptofeed_2021-10-12/BINANCE.ws.1.0.streams.txt", False),
        ("usdm/cryptofeed_2021-07-22/BINANCE_FUTURES.ws.1.0.streams.txt", True),
    ],
)
def test_live_parser_matches_the_importer_on_agg_trades_and_klines(relative: str, futures: bool) -> None:
    from catalogs.importers.binance_stream import BinanceStreamParser

    imp, live = BinanceStreamParser(), MarketParser(futures=futures)
    kinds: set[str] = set()
    with binance_file(relative).open("rb") as fh:
        for line in fh:
            want = imp.feed(line)
            if not want:
                continue
            got = live.parse(line.strip().partition(b": ")[2], want[0].ts_recv)
            assert got == want
            kinds.update(type(e).__name__ for e in got)
    assert {"AggTradeReceived", "KlineReceived"} <= kinds


def test_partial_depth_and_mark_price_frames() -> None:
    spot = MarketParser()
    [p] = spot.parse(b'{"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":7,"bids":[["1.5","2"]],"asks":[]}}', 9)
    assert (p.instrument, p.ts_event, p.last_update_id, p.bids, p.partial) == (  # type: ignore[attr-defined]
        "BTCUSDT.SPOT", 9, 7, ((150_000_000, 200_000_000),), True)
    fut = MarketParser(futures=True)
    [m] = fut.parse(b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,'
                    b'"s":"BTCUSDT","p":"11794.15","i":"11784.62","P":"11784.25","r":"-0.00038167",'
                    b'"T":1562306400000}}', 3)
    assert (m.instrument, m.funding_rate, m.next_funding_time) == (  # type: ignore[attr-defined]
        "BTCUSDT.USDM", -38167, 1562306400000 * 10**6)
    assert spot.parse(b'{"result":null,"id":1}', 1) == []


def test_depth_book_asks_for_a_snapshot_and_detects_a_gap() -> None:
    from engine.events import BookDeltaReceived, BookSnapshotReceived

    book = DepthBook(BTC)
    assert book.needs_snapshot
    d = [BookDeltaReceived(0, 1, 1, BTC, u, u, -1, ((100, u),), ((200, 1),)) for u in (11, 12, 13, 15)]
    book.feed(d[0])
    book.fetching = True
    assert not book.needs_snapshot
    book.fetching = False
    assert book.feed(BookSnapshotReceived(0, 1, 1, BTC, 11, ((100, 5),), ((200, 1),))) == []
    assert book.feed(d[1]) == [] and book.feed(d[2]) == [] and book.sync.last_update_id == 13
    gaps: list[Event] = book.feed(d[3])
    assert len(gaps) == 1 and book.needs_snapshot and book.gaps == 1
