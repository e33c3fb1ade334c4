"""Raw Binance WebSocket recordings -> events (sans-I/O: one line in, events out).

Line shapes understood (one recorder per file, but the parser does not care):

* hftbacktest: ``<local_ns> <json>``
* cryptofeed websocket: ``<local_s.frac>: <json>``, after a ``<ws url> <-> <connect_s>`` header
* cryptofeed REST: ``<url> -> <local_s.frac>: <json>`` (depth snapshots, exchangeInfo, ...)
  and its ``configuration: {...}`` line (not Binance data; ignored)

``<json>`` is a combined-stream wrapper ``{"stream": ..., "data": {...}}``, a bare stream
payload with ``"e"``, or a bare REST depth snapshot ``{"lastUpdateId": ...}`` (hftbacktest
puts one after the first few diffs; it is emitted in file order, the book sync buffers).
Partial-depth streams (``depth5/10/20``) become ``BookSnapshotReceived(partial=True)``; a
futures partial-depth payload looks like a diff, so it is recognised by its stream name
(inside the combined-stream wrapper only).

Times: ``ts_recv`` is the recorded local time; ``ts_event`` is ``E`` (``T`` for trades and
aggTrades); spot ``bookTicker`` and spot partial depth carry no venue time, so there
``ts_event == ts_recv``.

Market (``market=None`` = auto): a diff with ``pu``, a bookTicker with ``e``, a trade with
``X``, any markPrice/forceOrder, or an ``fstream``/``dstream`` URL mean futures (COIN-M when
the symbol is ``<..>USD_<..>``, else USD-M); a diff without ``pu`` or a bookTicker without
``e`` mean spot. The first evidence in a file decides; later contrary evidence is a bad line.
The driver sniffs the file's head first (:func:`sniff`) so that evidence is known up front.

Sequence checks: per instrument, a depth diff whose ``U`` or ``u`` goes below the previous
diff's, or whose ``U > u``, and a bookTicker whose ``u`` goes below the previous one, are bad
lines. Gaps are not errors here: the book sync reports them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

from engine.events import (
    AggTradeReceived,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    KlineReceived,
    LiquidationReceived,
    MarkPriceReceived,
    QuoteReceived,
    TradeReceived,
)
from engine.identifiers import InstrumentId, Market, instrument_id

from .common import (
    AMBIGUOUS_SYMBOL,
    BAD_VALUE,
    MALFORMED_JSON,
    MALFORMED_LINE,
    MARKET_MISMATCH,
    MS,
    NON_MONOTONIC,
    UNKNOWN_TYPE,
    BadRecord,
    bool_field,
    e8_field,
    futures_market_of,
    id_field,
    int_field,
    levels_field,
    need,
    seconds_text_to_ns,
    str_field,
)
from .sources import decode_text

_decode_json = msgspec.json.Decoder().decode
_PARTIAL_DEPTHS = frozenset({"depth5", "depth10", "depth20"})


@dataclass(frozen=True)
class StreamHints:
    """What the head of a file says: spot or futures, and which symbols have depth streams."""

    futures: bool | None = None
    depth_symbols: frozenset[str] = field(default_factory=frozenset)


def _decode(body: bytes | str) -> Any:
    try:
        return _decode_json(body)
    except msgspec.DecodeError as exc:
        raise BadRecord(f"malformed JSON: {exc}", category=MALFORMED_JSON) from None


def _url_is_futures(url: str) -> bool | None:
    """Spot or futures from a Binance URL's host/path (None when it says neither)."""
    parts = urlsplit(url)
    host, path = parts.hostname or "", parts.path
    if host.startswith(("fstream", "dstream")) or path.startswith(("/fapi/", "/dapi/")):
        return True
    if "binance" in host:
        return False
    return None


class BinanceStreamParser:
    """Turns recorded lines into events; one instance per import (state spans its files).

    ``market``: None for auto-detection, or a Market to force. ``symbol``: which symbol a
    bare REST depth snapshot belongs to when the file has depth streams for several.
    ``ignored`` counts lines that are not market data (headers, blanks, ``configuration:``,
    REST endpoints without market data).
    """

    def __init__(self, *, market: Market | None = None, symbol: str | None = None) -> None:
        self._forced = market
        self._symbol = symbol.upper() if symbol else None
        self._last_diff: dict[str, tuple[int, int]] = {}
        self._last_quote: dict[str, int] = {}
        self._ids: dict[tuple[str, Market], InstrumentId] = {}
        self.ignored: Counter[str] = Counter()
        self._futures: bool | None = None
        self._depth_symbols: set[str] = set()
        self._handlers: dict[str, Callable[[dict[str, Any], int, str | None], list[Event]]] = {
            "depthUpdate": self._depth_update,
            "bookTicker": self._book_ticker,
            "trade": self._trade,
            "aggTrade": self._agg_trade,
            "kline": self._kline,
            "markPriceUpdate": self._mark_price,
            "forceOrder": self._force_order,
        }

    # ------------------------------------------------------------------ public

    def start_file(self, hints: StreamHints | None = None) -> None:
        """Forget per-file facts (detected market, depth symbols); keep sequence state,
        so a continuation file is checked against the end of the previous one."""
        hints = hints or StreamHints()
        self._futures = hints.futures
        self._depth_symbols = set(hints.depth_symbols)

    def feed(self, line: bytes | str) -> list[Event]:
        """Events of one recorded line (possibly none); raises BadRecord when it is bad."""
        raw = line.encode() if isinstance(line, str) else line
        raw = raw.strip()
        if not raw:
            self.ignored["blank"] += 1
            return []
        if raw[:1].isdigit():
            head, sep, body = raw.partition(b" ")
            if not sep:
                raise BadRecord("expected '<local time> <json>'", category=MALFORMED_LINE)
            return self._message(body, self._local_time(head))
        text = decode_text(raw)
        if text.startswith("configuration:"):
            self.ignored["configuration"] += 1
            return []
        if " <-> " in text:
            self._ws_header(text.partition(" <-> ")[0])
            return []
        if " -> " in text:
            url, _, rest = text.partition(" -> ")
            stamp, found, doc = rest.partition(": ")
            if not found:
                raise BadRecord("expected '<url> -> <local time>: <json>'", category=MALFORMED_LINE)
            return self._http(url, seconds_text_to_ns(stamp), doc)
        if text.startswith("{"):
            raise BadRecord("JSON without a local receive time in front of it", category=MALFORMED_LINE)
        raise BadRecord(f"unrecognised line {text[:60]!r}", category=MALFORMED_LINE)

    # ------------------------------------------------------------------ line shapes

    @staticmethod
    def _local_time(head: bytes) -> int:
        if head.endswith(b":"):  # cryptofeed: seconds with a fraction
            return seconds_text_to_ns(head[:-1].decode("ascii", "replace"))
        if not head.isdigit():
            raise BadRecord(f"bad local time {head[:40]!r} (expected integer ns)", category=BAD_VALUE)
        return int(head)

    def _ws_header(self, url: str) -> None:
        self.ignored["ws_header"] += 1
        futures = _url_is_futures(url)
        if self._forced is None and futures is not None:
            self._futures = futures
        for stream in urlsplit(url).query.partition("streams=")[2].split("/"):
            sym, _, kind = stream.partition("@")
            if kind == "depth" or kind.startswith("depth@"):
                self._depth_symbols.add(sym.upper())

    def _http(self, url: str, ts_recv: int, body: str) -> list[Event]:
        """A recorded REST response: route it to the REST / exchangeInfo parsers."""
        from .binance_rest import RestContext, rest_events
        from .exchange_info import exchange_info_events

        doc = _decode(body)
        parts = urlsplit(url)
        endpoint = parts.path.rstrip("/").rpartition("/")[2]
        futures = _url_is_futures(url)
        if endpoint == "exchangeInfo":
            market = self._forced or _exchange_info_market_of_url(parts.path)
            return list(exchange_info_events(doc, market=market, ts_recv=ts_recv))
        symbols = parse_qs(parts.query).get("symbol", [])
        symbol = symbols[0].upper() if symbols else None
        market = self._forced
        if market is None and symbol is not None:
            market = futures_market_of(symbol) if futures else Market.SPOT
        ctx = RestContext(symbol=symbol, market=market or Market.SPOT, recv_ns=ts_recv)
        events, ignored = rest_events(doc, ctx)
        for name in ignored:
            self.ignored[name] += 1
        return events

    def _message(self, body: bytes, ts_recv: int) -> list[Event]:
        doc = _decode(body)
        if type(doc) is not dict:
            raise BadRecord(f"expected a JSON object, got {type(doc).__name__}", category=MALFORMED_LINE)
        data = doc.get("data")
        if "stream" in doc:
            if type(data) is not dict:
                raise BadRecord(f"field 'data' must be an object, got {data!r:.60}", category=BAD_VALUE)
            stream = doc["stream"]
            if type(stream) is not str:
                raise BadRecord(f"field 'stream' must be a string, got {stream!r}", category=BAD_VALUE)
            return self._payload(data, ts_recv, stream)
        if "lastUpdateId" in doc:
            return self._rest_snapshot(doc, ts_recv)
        return self._payload(doc, ts_recv, None)

    def _payload(self, data: dict[str, Any], ts_recv: int, stream: str | None) -> list[Event]:
        etype = data.get("e")
        if etype is None:
            # Spot bookTicker and spot partial depth carry no event type: the stream name says.
            kind = stream.split("@")[1] if stream and "@" in stream else ""
            if kind == "bookTicker" or (not stream and {"u", "b", "a"} <= data.keys()):
                return self._book_ticker(data, ts_recv, stream)
            if kind in _PARTIAL_DEPTHS and "lastUpdateId" in data:
                return self._partial_depth_spot(data, ts_recv, stream or "")
            raise BadRecord(
                f"unknown stream {stream!r} (payload has no event type 'e')", category=UNKNOWN_TYPE
            )
        handler = self._handlers.get(etype) if type(etype) is str else None
        if handler is None:
            raise BadRecord(f"unknown event type e={etype!r} on stream {stream!r}", category=UNKNOWN_TYPE)
        return handler(data, ts_recv, stream)

    # ------------------------------------------------------------------ market

    def _instrument(self, symbol: str, evidence: bool | None, what: str) -> InstrumentId:
        """The instrument id, taking this message's spot/futures ``evidence`` into account."""
        if self._forced is not None:
            market = self._forced
        else:
            if evidence is not None:
                if self._futures is None:
                    self._futures = evidence
                elif self._futures != evidence:
                    found, known = ("futures", "spot") if evidence else ("spot", "futures")
                    raise BadRecord(
                        f"{what} looks like a {found} message but this file was detected as {known} "
                        "(pass an explicit market to import it anyway)",
                        category=MARKET_MISMATCH,
                    )
            market = futures_market_of(symbol) if self._futures else Market.SPOT
        key = (symbol, market)
        iid = self._ids.get(key)
        if iid is None:
            try:
                iid = self._ids[key] = instrument_id(symbol, market)
            except ValueError as exc:
                raise BadRecord(f"{what}: {exc}", category=BAD_VALUE) from None
        return iid

    # ------------------------------------------------------------------ handlers

    def _depth_update(self, d: dict[str, Any], ts_recv: int, stream: str | None) -> list[Event]:
        kind = stream.split("@")[1] if stream and "@" in stream else "depth"
        what = "depthUpdate"
        symbol = str_field(d, "s", what).upper()
        ts_event = id_field(d, "E", what) * MS
        first, last = id_field(d, "U", what), id_field(d, "u", what)
        prev = int_field(d, "pu", what) if "pu" in d else -1
        bids, asks = levels_field(d, "b", what), levels_field(d, "a", what)
        if kind in _PARTIAL_DEPTHS:  # futures depth5/10/20: same payload, but a top-N book
            iid = self._instrument(symbol, True, what)
            return [BookSnapshotReceived(0, ts_event, ts_recv, iid, last, bids, asks, True)]
        iid = self._instrument(symbol, "pu" in d, what)
        if first > last:
            raise BadRecord(
                f"depthUpdate {symbol}: first update id U={first} > last u={last}", category=BAD_VALUE
            )
        before = self._last_diff.get(iid)
        if before is not None and (first < before[0] or last < before[1]):
            raise BadRecord(
                f"depthUpdate {symbol}: update ids go backwards (U={first}, u={last} after U={before[0]}, "
                f"u={before[1]})",
                category=NON_MONOTONIC,
            )
        self._last_diff[iid] = (first, last)
        self._depth_symbols.add(symbol)
        return [BookDeltaReceived(0, ts_event, ts_recv, iid, first, last, prev, bids, asks)]

    def _book_ticker(self, d: dict[str, Any], ts_recv: int, stream: str | None) -> list[Event]:
        what = "bookTicker"
        symbol = str_field(d, "s", what).upper()
        update_id = id_field(d, "u", what)
        bid, bid_qty = e8_field(d, "b", what), e8_field(d, "B", what)
        ask, ask_qty = e8_field(d, "a", what), e8_field(d, "A", what)
        ts_event = id_field(d, "E", what) * MS if "E" in d else ts_recv
        iid = self._instrument(symbol, "e" in d, what)
        before = self._last_quote.get(iid)
        if before is not None and update_id < before:
            raise BadRecord(
                f"bookTicker {symbol}: update id goes backwards (u={update_id} after u={before})",
                category=NON_MONOTONIC,
            )
        self._last_quote[iid] = update_id
        return [QuoteReceived(0, ts_event, ts_recv, iid, update_id, bid, bid_qty, ask, ask_qty)]

    def _trade(self, d: dict[str, Any], ts_recv: int, stream: str | None) -> list[Event]:
        what = "trade"
        symbol = str_field(d, "s", what).upper()
        price, qty = e8_field(d, "p", what), e8_field(d, "q", what)
        trade_id, ts_event = id_field(d, "t", what), id_field(d, "T", what) * MS
        buyer_maker = bool_field(d, "m", what)
        iid = self._instrument(symbol, True if "X" in d else None, what)
        return [TradeReceived(0, ts_event, ts_recv, iid, price, qty, trade_id, buyer_maker)]

    def _agg_trade(self, d: dict[str, Any], ts_recv: int, stream: str | None) -> list[Event]:
        what = "aggTrade"
        symbol = str_field(d, "s", what).upper()
        price, qty = e8_field(d, "p", what), e8_field(d, "q", what)
        agg_id, first, last = id_field(d, "a", what), id_field(d, "f", what), id_field(d, "l", what)
        ts_event, buyer_maker = id_field(d, "T", what) * MS, bool_field(d, "m", what)
        iid = self._instrument(symbol, None, what)
        return [AggTradeReceived(0, ts_event, ts_recv, iid, price, qty, agg_id, first, last, buyer_maker)]

    def _kline(self, d: dict[str, Any], ts_recv: int, stream: str | None) -> list[Event]:
        what = "kline"
        k = need(d, "k", what)
        if type(k) is not dict:
            raise BadRecord(f"kline: field 'k' must be an object, got {k!r}", category=BAD_VALUE)
        symbol = str_field(d, "s", what).upper()
        event = KlineReceived(
            0,
            id_field(d, "E", what) * MS,
            ts_recv,
            self._instrument(symbol, None, what),
            str_field(k, "i", what),
            id_field(k, "t", what) * MS,
            id_field(k, "T", what) * MS,
            e8_field(k, "o", what),
            e8_field(k, "h", what),
            e8_field(k, "l", what),
            e8_field(k, "c", what),
            e8_field(k, "v", what),
            e8_field(k, "q", what),
            id_field(k, "n", what),
            e8_field(k, "V", what),
            e8_field(k, "Q", what),
            bool_field(k, "x", what),
        )
        return [event]

    def _mark_price(self, d: dict[str, Any], ts_recv: int, stream: str | None) -> list[Event]:
        what = "markPriceUpdate"
        symbol = str_field(d, "s", what).upper()

        def optional(key: str, *, signed: bool = False) -> int:
            # COIN-M delivery contracts send "" for the funding rate; absent fields are 0.
            return e8_field(d, key, what, signed=signed) if d.get(key, "") != "" else 0

        event = MarkPriceReceived(
            0,
            id_field(d, "E", what) * MS,
            ts_recv,
            self._instrument(symbol, True, what),
            e8_field(d, "p", what),
            optional("i"),
            optional("P"),
            optional("r", signed=True),
            id_field(d, "T", what) * MS if "T" in d else 0,
        )
        return [event]

    def _force_order(self, d: dict[str, Any], ts_recv: int, stream: str | None) -> list[Event]:
        what = "forceOrder"
        o = need(d, "o", what)
        if type(o) is not dict:
            raise BadRecord(f"forceOrder: field 'o' must be an object, got {o!r}", category=BAD_VALUE)
        symbol = str_field(o, "s", what).upper()
        event = LiquidationReceived(
            0,
            id_field(d, "E", what) * MS,
            ts_recv,
            self._instrument(symbol, True, what),
            str_field(o, "S", what),
            e8_field(o, "p", what),
            e8_field(o, "q", what),
            e8_field(o, "ap", what),
            e8_field(o, "z", what),
            str_field(o, "X", what),
        )
        return [event]

    def _partial_depth_spot(self, d: dict[str, Any], ts_recv: int, stream: str) -> list[Event]:
        what = "partial depth"
        symbol = stream.partition("@")[0].upper()
        last = id_field(d, "lastUpdateId", what)
        bids, asks = levels_field(d, "bids", what), levels_field(d, "asks", what)
        iid = self._instrument(symbol, None, what)
        return [BookSnapshotReceived(0, ts_recv, ts_recv, iid, last, bids, asks, True)]

    def _rest_snapshot(self, d: dict[str, Any], ts_recv: int) -> list[Event]:
        """The bare REST depth snapshot a recorder interleaves with the diffs."""
        what = "depth snapshot"
        last = id_field(d, "lastUpdateId", what)
        bids, asks = levels_field(d, "bids", what), levels_field(d, "asks", what)
        ts_event = id_field(d, "E", what) * MS if "E" in d else ts_recv
        symbol = self._snapshot_symbol(d)
        iid = self._instrument(symbol, None, what)
        return [BookSnapshotReceived(0, ts_event, ts_recv, iid, last, bids, asks, False)]

    def _snapshot_symbol(self, d: Mapping[str, Any]) -> str:
        if self._symbol:
            return self._symbol
        if type(d.get("symbol")) is str:  # COIN-M snapshots name their symbol
            return str(d["symbol"]).upper()
        if len(self._depth_symbols) == 1:
            return next(iter(self._depth_symbols))
        found = ", ".join(sorted(self._depth_symbols)) or "none"
        raise BadRecord(
            f"a bare REST depth snapshot names no symbol and the file has depth streams for: {found}; "
            "say which symbol it belongs to (--symbol)",
            category=AMBIGUOUS_SYMBOL,
        )


def _exchange_info_market_of_url(path: str) -> Market | None:
    if path.startswith("/fapi/"):
        return Market.USDM
    if path.startswith("/dapi/"):
        return Market.COINM
    if path.startswith("/api/"):
        return Market.SPOT
    return None


def sniff(lines: Iterable[bytes | str]) -> StreamHints:
    """Spot/futures evidence and depth-stream symbols from the head of a file.

    Uses a throwaway parser in auto mode and ignores bad lines: this only sets expectations,
    the real parse reports errors.
    """
    probe = BinanceStreamParser()
    for line in lines:
        try:
            probe.feed(line)
        except BadRecord:
            continue
    return StreamHints(futures=probe._futures, depth_symbols=frozenset(probe._depth_symbols))
