"""Unmodified third-party Binance clients (ccxt, python-binance) against the local venue server.

Only configuration is changed: the clients' base URLs point at the server, and ccxt is told not
to load margin pairs and currencies (``sapi`` endpoints a spot venue does not serve).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from replay.serve import ServerConfig, ServerInfo, serve_in_thread

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def server() -> Iterator[ServerInfo]:
    with serve_in_thread(ServerConfig(speed=1, seed=11, demo_duration_s=180)) as info:
        info.control.wait_events(300)
        yield info


def _ccxt(info: ServerInfo) -> Any:
    ccxt = pytest.importorskip("ccxt")
    ex = ccxt.binance({
        "apiKey": info.api_key,
        "secret": info.api_secret,
        "options": {"fetchCurrencies": False, "fetchMargins": False, "fetchMarkets": {"types": ["spot"]},
                    "defaultType": "spot"},
    })
    for name, url in list(ex.urls["api"].items()):
        if isinstance(url, str) and url.startswith("https://api.binance.com/api"):
            ex.urls["api"][name] = info.base_url + "/api/v3"
    return ex


def test_ccxt_markets_book_trades_balance_and_orders(server: ServerInfo) -> None:
    ex = _ccxt(server)
    markets = ex.load_markets()
    assert {"BTC/USDT", "ETH/USDT"} <= set(markets)
    assert markets["BTC/USDT"]["precision"]["price"] == 0.01
    book = ex.fetch_order_book("BTC/USDT", 5)
    assert len(book["bids"]) == 5 and book["bids"][0][0] < book["asks"][0][0]
    trades = ex.fetch_trades("ETH/USDT", limit=3)
    assert len(trades) == 3 and all(t["price"] > 0 for t in trades)
    assert ex.fetch_balance()["USDT"]["free"] == 1_000_000.0
    bid = book["bids"][0][0]
    limit = ex.create_order("BTC/USDT", "limit", "buy", 0.01, round(bid * 0.9, 2))
    assert limit["status"] == "open"
    assert [o["id"] for o in ex.fetch_open_orders("BTC/USDT")] == [limit["id"]]
    assert ex.cancel_order(limit["id"], "BTC/USDT")["status"] == "canceled"
    market = ex.create_order("BTC/USDT", "market", "buy", 0.002)
    assert market["status"] == "closed" and market["filled"] == 0.002
    assert ex.fetch_balance()["BTC"]["total"] > 10.0


def test_python_binance_client(server: ServerInfo) -> None:
    client_mod = pytest.importorskip("binance.client")
    Client = client_mod.Client
    url = server.base_url + "/api"
    original = Client.API_URL
    Client.API_URL = url  # the constructor pings before an instance attribute could be set
    try:
        c = Client(server.api_key, server.api_secret)
    finally:
        Client.API_URL = original
    c.API_URL = url
    try:
        assert abs(c.get_server_time()["serverTime"] - time.time() * 1000) < 5000
        assert len(c.get_exchange_info()["symbols"]) == 2
        book = c.get_order_book(symbol="BTCUSDT", limit=5)
        assert book["lastUpdateId"] > 0 and len(book["asks"]) == 5
        assert len(c.get_recent_trades(symbol="BTCUSDT", limit=3)) == 3
        usdt = c.get_asset_balance(asset="USDT")
        assert float(usdt["free"]) > 900_000 and usdt["locked"] == "0.00000000"
        price = f"{float(book['bids'][0][0]) * 0.9:.2f}"
        order = c.order_limit_buy(symbol="BTCUSDT", quantity="0.01", price=price)
        assert order["status"] == "NEW"
        assert c.cancel_order(symbol="BTCUSDT", orderId=order["orderId"])["status"] == "CANCELED"
        mkt = c.order_market_sell(symbol="ETHUSDT", quantity="0.05")
        assert mkt["status"] == "FILLED" and mkt["fills"]
    finally:
        c.close_connection()
        # python-binance's constructor makes (and never closes) an event loop for this thread; close it
        # here, or its self-pipe sockets are reported as leaked in whatever test the GC happens to run in.
        loop = getattr(c, "loop", None)
        if loop is not None and not loop.is_running() and not loop.is_closed():
            loop.close()
            asyncio.set_event_loop(None)
