"""``exchangeInfo`` responses -> one ``InstrumentUpdated`` per symbol, filters kept verbatim.

Accepts the REST body as a file, or cryptofeed's recording (``<url> -> <local_s>: <json>``
then a ``configuration:`` line). ``raw`` is ``json.dumps(symbol_object,
separators=(",", ":"), ensure_ascii=False)`` of the parsed object, keys in Binance's order,
so every filter the venue sent survives (including ones this code has never heard of).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.events import InstrumentUpdated
from engine.identifiers import Market, instrument_id

from .common import BAD_VALUE, MALFORMED_JSON, MALFORMED_LINE, MS, BadRecord, id_field, seconds_text_to_ns
from .sources import decode_text, iter_lines, open_binary, read_json_document


def market_of_exchange_info(doc: dict[str, Any]) -> Market:
    """Spot, USD-M or COIN-M from the body's shape (``futuresType``, contract fields)."""
    futures_type = doc.get("futuresType")
    if futures_type == "U_MARGINED":
        return Market.USDM
    if futures_type == "COIN_MARGINED":
        return Market.COINM
    symbols = doc.get("symbols") or [{}]
    first = symbols[0] if type(symbols[0]) is dict else {}
    if "contractSize" in first:
        return Market.COINM
    if "contractType" in first:
        return Market.USDM
    return Market.SPOT


def market_of_url(url: str) -> Market | None:
    """``/fapi/`` -> USD-M, ``/dapi/`` -> COIN-M, ``/api/`` -> spot (None if none of them)."""
    if "/fapi/" in url:
        return Market.USDM
    if "/dapi/" in url:
        return Market.COINM
    if "/api/" in url:
        return Market.SPOT
    return None


@dataclass(frozen=True)
class ExchangeInfoBody:
    """A parsed exchangeInfo body: its market, its times and its symbol objects."""

    market: Market
    ts_event: int
    ts_recv: int
    symbols: list[Any]

    def event(self, i: int) -> InstrumentUpdated:
        """The InstrumentUpdated of ``symbols[i]`` (``raw`` = its JSON, verbatim order)."""
        sym = self.symbols[i]
        name = sym.get("symbol") if type(sym) is dict else None
        if type(name) is not str or not name:
            raise BadRecord("symbol object has no 'symbol' name", category=BAD_VALUE)
        try:
            iid = instrument_id(name, self.market)
        except ValueError as exc:
            raise BadRecord(str(exc), category=BAD_VALUE) from None
        raw = json.dumps(sym, sort_keys=False, separators=(",", ":"), ensure_ascii=False)
        return InstrumentUpdated(0, self.ts_event, self.ts_recv, iid, raw)


def read_body(
    doc: Any, *, market: Market | None = None, ts_recv: int | None = None, latency_ns: int = 0
) -> ExchangeInfoBody:
    """``ts_event`` is ``serverTime``; ``ts_recv`` the recorded local time, else
    ``serverTime + latency_ns``. The market is forced, or read off the body's shape."""
    if type(doc) is not dict or type(doc.get("symbols")) is not list:
        raise BadRecord("not an exchangeInfo body (no 'symbols' list)", category=MALFORMED_LINE)
    server_ns = id_field(doc, "serverTime", "exchangeInfo") * MS if "serverTime" in doc else None
    ts_event = server_ns if server_ns is not None else (ts_recv or 0)
    recv = ts_recv if ts_recv is not None else ts_event + latency_ns
    return ExchangeInfoBody(market or market_of_exchange_info(doc), ts_event, recv, doc["symbols"])


def exchange_info_events(
    doc: Any, *, market: Market | None = None, ts_recv: int | None = None, latency_ns: int = 0
) -> list[InstrumentUpdated]:
    """One event per symbol (the first bad symbol raises; the driver goes item by item)."""
    body = read_body(doc, market=market, ts_recv=ts_recv, latency_ns=latency_ns)
    return [body.event(i) for i in range(len(body.symbols))]


def is_rest_body(path: str | Path) -> bool:
    """True when the file is a bare JSON body (starts with ``{``), not a recorder's lines."""
    with open_binary(path) as stream:
        return stream.read(64).lstrip()[:1] == b"{"


def parse_recorded_line(line: bytes | str) -> tuple[Any, int, Market | None] | None:
    """``<url> -> <local_s>: <json>`` as ``(body, local ns, market of the URL)``; None for the
    recorder's ``configuration:`` and blank lines."""
    text = (decode_text(line) if isinstance(line, bytes) else line).strip()
    if not text or text.startswith("configuration:"):
        return None
    url, sep, rest = text.partition(" -> ")
    stamp, sep2, body = rest.partition(": ")
    if not sep or not sep2:
        raise BadRecord("expected '<url> -> <local time>: <exchangeInfo json>'", category=MALFORMED_LINE)
    ts_recv = seconds_text_to_ns(stamp)
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadRecord(f"malformed JSON: {exc.msg} (column {exc.colno})", category=MALFORMED_JSON) from None
    return doc, ts_recv, market_of_url(url)


def exchange_info_documents(path: str | Path) -> Iterator[tuple[int | None, Any, int | None, Market | None]]:
    """``(line, body, recorded local ns or None, market from the URL or None)`` per response
    in a file (a REST body, or a recorder's lines). Errors are located."""
    if is_rest_body(path):
        yield None, read_json_document(path, exact_floats=False), None, None
        return
    for lineno, line in iter_lines(path):
        try:
            parsed = parse_recorded_line(line)
        except BadRecord as exc:
            raise exc.at(str(path), lineno) from None
        if parsed is not None:
            yield lineno, *parsed


def load_exchange_info(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{symbol: symbol object}`` of an exchangeInfo file (REST body or cryptofeed recording),
    for code that needs the filters (tick size, lot size, notional...) without a log."""
    out: dict[str, dict[str, Any]] = {}
    for line, doc, _, _ in exchange_info_documents(path):
        try:
            body = read_body(doc)
        except BadRecord as exc:
            raise exc.at(str(path), line) from None
        for sym in body.symbols:
            if type(sym) is dict and type(sym.get("symbol")) is str:
                out[sym["symbol"]] = sym
    return out
