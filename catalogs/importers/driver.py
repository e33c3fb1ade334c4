"""The thin I/O driver: files -> sans-I/O parsers -> one event log, plus the import report.

One ``import_*`` function per source family. Each streams its files in the order given into
one log, locates every bad record (file and line) and either raises it as an ``InputError``
or, with ``skip_bad``, skips and counts it (by reason, first 10 locations kept). A truncated
compressed file ends that file (counted when skipping). Either way the writer is closed
cleanly, so every event appended before the bad line stays in the log.

The log's manifest ``meta`` records ``source`` (file, kind, sha256, lines), ``instruments``,
``ts_recv_model`` (``recorded``, or ``constant`` with ``latency_ns`` where the source has no
local receive time) and ``import_stats`` (counts per kind, ignored lines, skipped lines).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from engine.errors import ConfigError, TickloopError
from engine.events import EVENT_TYPES, Event, Kind
from engine.identifiers import Market

from .binance_rest import IGNORED_SHAPES, RestContext, classify, item_events
from .binance_stream import BinanceStreamParser, sniff
from .common import TRUNCATED, BadRecord
from .csv_sources import BAD_HEADER, DepthCsvParser, TardisParser, VisionParser, vision_name_info
from .exchange_info import ExchangeInfoBody, is_rest_body, parse_recorded_line, read_body
from .freqtrade import FreqtradeRows, freqtrade_name_info
from .sources import head_lines, iter_lines, read_json_document, sha256_of

KIND_NAMES: dict[type[Event], str] = {cls: Kind(cls.kind).name.lower() for cls in EVENT_TYPES}
"""Event class -> its count key (``book_delta``, ``quote``, ``trade``, ...)."""
FIRST_SKIPPED_KEPT = 10
SNIFF_LINES = 2000
_ENDS_FILE = frozenset({TRUNCATED, BAD_HEADER})


class EventSink(Protocol):
    """What the driver needs of a log writer (``catalogs.log.LogWriter`` in production)."""

    def append(self, event: Any) -> int: ...

    def close(self) -> None: ...


WriterFactory = Callable[[Path, Mapping[str, Any]], EventSink]


def _default_writer(path: Path, meta: Mapping[str, Any]) -> EventSink:
    from catalogs.log import LogWriter  # imported late: the importers' parsers do not need it

    writer: EventSink = LogWriter(path, meta=meta)
    return writer


@dataclass(frozen=True)
class SkippedRecord:
    """Where a skipped record was and what was wrong with it."""

    file: str
    line: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


@dataclass(frozen=True)
class SourceInfo:
    """One imported file: provenance for the manifest. ``lines`` is the number of lines read
    (for a JSON document file: the number of items in it)."""

    file: str
    kind: str
    sha256: str
    lines: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "kind": self.kind, "sha256": self.sha256, "lines": self.lines}


@dataclass(frozen=True)
class ImportReport:
    """What an import did: counts per kind, skipped and ignored records, instruments."""

    out: str
    counts: Mapping[str, int]
    skipped_by_reason: Mapping[str, int]
    skipped_first: tuple[SkippedRecord, ...]
    ignored: Mapping[str, int]
    instruments: tuple[str, ...]
    sources: tuple[SourceInfo, ...]
    ts_recv_model: Mapping[str, Any]
    complete: bool = True
    error: str | None = None

    @property
    def events(self) -> int:
        return sum(self.counts.values())

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    def import_stats(self) -> dict[str, Any]:
        """The manifest's ``import_stats``."""
        return {
            "events": self.events,
            "counts": dict(self.counts),
            "ignored": dict(self.ignored),
            "skipped": {
                "total": self.skipped,
                "by_reason": dict(self.skipped_by_reason),
                "first": [s.to_json() for s in self.skipped_first],
            },
            "complete": self.complete,
            "error": self.error,
        }

    def meta(self) -> dict[str, Any]:
        """The manifest's ``meta``."""
        return {
            "source": [s.to_json() for s in self.sources],
            "instruments": list(self.instruments),
            "ts_recv_model": dict(self.ts_recv_model),
            "import_stats": self.import_stats(),
        }

    def summary(self) -> dict[str, Any]:
        """The one JSON line the CLI prints."""
        return {
            "out": self.out,
            "events": self.events,
            "counts": dict(self.counts),
            "skipped": self.skipped,
            "skipped_by_reason": dict(self.skipped_by_reason),
            "instruments": len(self.instruments),
            "files": len(self.sources),
        }


@dataclass
class _Source:
    file: str
    kind: str
    sha256: str
    lines: int = 0


@dataclass
class _Session:
    """One import into one log: the writer, the counters and the skip policy."""

    out: Path
    ts_recv_model: Mapping[str, Any]
    skip_bad: bool
    writer_factory: WriterFactory | None
    files: Sequence[tuple[str | Path, str]]
    counts: Counter[str] = field(default_factory=Counter)
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    skipped_first: list[SkippedRecord] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    instruments: set[str] = field(default_factory=set)
    report: ImportReport | None = None
    sources: dict[str, _Source] = field(init=False)
    writer: EventSink = field(init=False)

    def __post_init__(self) -> None:
        self.sources = {str(p): _Source(str(p), kind, sha256_of(p)) for p, kind in self.files}
        initial = self._report(False, "import in progress (final stats not recorded)").meta()
        self.writer = (self.writer_factory or _default_writer)(self.out, initial)

    def __enter__(self) -> _Session:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        error = None if exc is None else (str(exc) or type(exc).__name__)
        self.report = self._report(exc is None, error)
        meta = self.report.meta()
        update = getattr(self.writer, "update_meta", None)
        if callable(update):
            update(meta)
        exit_ = getattr(self.writer, "__exit__", None)
        if callable(exit_):
            exit_(exc_type, exc, tb)
        else:
            self.writer.close()
        if not callable(update):
            try:
                _patch_manifest_meta(self.out, meta)
            except TickloopError:
                if exc is None:
                    raise  # otherwise let the original error through, not this follow-up

    def _report(self, complete: bool, error: str | None) -> ImportReport:
        return ImportReport(
            out=str(self.out),
            counts=dict(self.counts),
            skipped_by_reason=dict(self.skipped_by_reason),
            skipped_first=tuple(self.skipped_first),
            ignored=dict(self.ignored),
            instruments=tuple(sorted(self.instruments)),
            sources=tuple(SourceInfo(s.file, s.kind, s.sha256, s.lines) for s in self.sources.values()),
            ts_recv_model=self.ts_recv_model,
            complete=complete,
            error=error,
        )

    # ------------------------------------------------------------------ appending

    def append(self, events: Iterable[Event]) -> None:
        append, counts, instruments = self.writer.append, self.counts, self.instruments
        for ev in events:
            append(ev)
            counts[KIND_NAMES[type(ev)]] += 1
            instruments.add(ev.instrument)

    def bad(self, exc: BadRecord, src: str, line: int | None, item: str | None = None) -> None:
        """Raise the record's error located, or (``skip_bad``) count it and go on."""
        located = exc if exc.source is not None else exc.at(src, line, item)
        if not self.skip_bad:
            raise located from (None if located is exc else exc)
        self.skipped_by_reason[located.category] += 1
        if len(self.skipped_first) < FIRST_SKIPPED_KEPT:
            self.skipped_first.append(SkippedRecord(src, located.line, located.reason))

    # ------------------------------------------------------------------ sources

    def run_lines(
        self,
        path: str | Path,
        feed: Callable[[bytes], list[Event]],
        finish: Callable[[], list[Event]] | None = None,
    ) -> None:
        """Every line of a file through ``feed`` (and ``finish`` at its end)."""
        src = str(path)
        source = self.sources[src]
        append = self.append
        with closing(iter_lines(path)) as lines:
            while True:
                try:
                    lineno, raw = next(lines)
                except StopIteration:
                    break
                except BadRecord as exc:  # truncated archive: ends this file
                    self.bad(exc, src, None)
                    break
                source.lines = lineno
                try:
                    events = feed(raw)
                except BadRecord as exc:
                    self.bad(exc, src, lineno)
                    if exc.category in _ENDS_FILE:
                        break
                    continue
                append(events)
        if finish is not None:
            try:
                self.append(finish())
            except BadRecord as exc:
                self.bad(exc, src, source.lines)

    def run_items(
        self,
        path: str | Path,
        line: int | None,
        items: Iterable[tuple[str, Any]],
        convert: Callable[[Any], list[Event]],
        *,
        count_items: bool = True,
    ) -> None:
        """Items of a parsed JSON document, one by one (a bad item names its index).

        ``count_items``: a document file's ``lines`` counts its items; a document on one
        line of a line-oriented file does not (that file counts lines)."""
        src = str(path)
        for label, item in items:
            if count_items:
                self.sources[src].lines += 1
            try:
                events = convert(item)
            except BadRecord as exc:
                self.bad(exc, src, line, label)
                continue
            self.append(events)

    def run_exchange_info(self, path: str | Path, market: Market | None, latency_ns: int = 0) -> None:
        src = str(path)
        if is_rest_body(path):
            doc = read_json_document(path, exact_floats=False)
            self.exchange_info_body(src, None, doc, market, None, latency_ns)
            return
        line = 0

        def feed(raw: bytes) -> list[Event]:
            nonlocal line
            line += 1
            parsed = parse_recorded_line(raw)
            if parsed is None:
                self.ignored["configuration_or_blank"] += 1
                return []
            doc, ts_recv, url_market = parsed
            self.exchange_info_body(src, line, doc, market or url_market, ts_recv, latency_ns)
            return []

        self.run_lines(path, feed)

    def exchange_info_body(
        self,
        src: str,
        line: int | None,
        doc: Any,
        market: Market | None,
        ts_recv: int | None,
        latency_ns: int,
    ) -> None:
        try:
            body: ExchangeInfoBody = read_body(doc, market=market, ts_recv=ts_recv, latency_ns=latency_ns)
        except BadRecord as exc:
            self.bad(exc, src, line)
            return
        labelled = ((f"symbols[{i}]", i) for i in range(len(body.symbols)))
        self.run_items(src, line, labelled, lambda i: [body.event(i)], count_items=line is None)


def _patch_manifest_meta(out: Path, meta: Mapping[str, Any]) -> None:
    """Store the final meta when the writer offers no way to update it before closing.

    ``LogWriter`` takes ``meta`` when the log is created, but counts and stats exist only at
    the end: after a clean close, rewrite the manifest (atomically, through the manifest
    module) with the final meta merged over the initial one.
    """
    from dataclasses import replace

    from catalogs.manifest import MANIFEST_NAME, read_manifest, write_manifest

    if not (out / MANIFEST_NAME).is_file():
        return
    manifest = read_manifest(out)
    write_manifest(out, replace(manifest, meta={**manifest.meta, **meta}))


def _paths(files: Sequence[str | Path] | str | Path) -> list[str | Path]:
    if isinstance(files, str | Path):
        return [files]
    if not files:
        raise ConfigError("no input files given")
    return list(files)


def _constant(latency_ns: int) -> dict[str, Any]:
    if latency_ns < 0:
        raise ConfigError(f"recv latency must be >= 0 ns, got {latency_ns}")
    return {"kind": "constant", "latency_ns": latency_ns}


RECORDED: Mapping[str, Any] = {"kind": "recorded"}


# =========================================================================== public importers


def import_binance_stream(
    files: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    exchange_info: str | Path | None = None,
    market: Market | None = None,
    symbol: str | None = None,
    skip_bad: bool = False,
    writer_factory: WriterFactory | None = None,
) -> ImportReport:
    """Raw combined-stream recordings (hftbacktest ``<ns> <json>`` or cryptofeed) into one log.

    ``exchange_info`` (a REST body or cryptofeed recording) puts one InstrumentUpdated per
    symbol first. ``market`` None auto-detects per file; ``symbol`` names the symbol of bare
    REST depth snapshots when a file has depth streams for several.
    """
    paths = _paths(files)
    plan: list[tuple[str | Path, str]] = [(exchange_info, "exchange-info")] if exchange_info else []
    plan += [(p, "binance-stream") for p in paths]
    model = dict(RECORDED)
    if exchange_info and is_rest_body(exchange_info):
        model["exchange_info"] = {"kind": "server_time", "latency_ns": 0}
    with _Session(Path(out), model, skip_bad, writer_factory, plan) as s:
        if exchange_info:
            s.run_exchange_info(exchange_info, market)
        parser = BinanceStreamParser(market=market, symbol=symbol)
        for path in paths:
            parser.start_file(sniff(head_lines(path, SNIFF_LINES)))
            s.run_lines(path, parser.feed)
        s.ignored.update(parser.ignored)
    assert s.report is not None
    return s.report


def import_exchange_info(
    files: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    market: Market | None = None,
    recv_latency_ns: int = 0,
    skip_bad: bool = False,
    writer_factory: WriterFactory | None = None,
) -> ImportReport:
    """exchangeInfo files: one InstrumentUpdated per symbol, ``raw`` kept verbatim."""
    paths = _paths(files)
    recorded = not all(is_rest_body(p) for p in paths)
    model = RECORDED if recorded else _constant(recv_latency_ns)
    with _Session(Path(out), model, skip_bad, writer_factory, [(p, "exchange-info") for p in paths]) as s:
        for path in paths:
            s.run_exchange_info(path, market, recv_latency_ns)
    assert s.report is not None
    return s.report


def import_binance_rest(
    files: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    symbol: str | None,
    market: Market = Market.SPOT,
    recv_latency_ns: int = 0,
    at_ns: int = 0,
    skip_bad: bool = False,
    writer_factory: WriterFactory | None = None,
) -> ImportReport:
    """Binance REST response bodies (aggTrades, trades, klines, depth, bookTicker, fundingRate,
    exchangeInfo; ticker/price and avgPrice are counted as ignored). ``symbol`` is the request's
    (the bodies mostly do not name it). No receive time: ``ts_recv = ts_event + recv_latency_ns``;
    bodies without a venue time (spot depth/bookTicker) get ``ts_event = at_ns``."""
    paths = _paths(files)
    ctx = RestContext(
        symbol=symbol.upper() if symbol else None, market=market, latency_ns=recv_latency_ns, at_ns=at_ns
    )
    with _Session(
        Path(out), _constant(recv_latency_ns), skip_bad, writer_factory, [(p, "binance-rest") for p in paths]
    ) as s:
        for path in paths:
            src = str(path)
            try:
                doc = read_json_document(path)
                shape, items = classify(doc)
            except BadRecord as exc:
                s.bad(exc, src, None)
                continue
            s.sources[src].kind = f"binance-rest:{shape}"
            if shape in IGNORED_SHAPES:
                s.ignored[shape] += len(items)
                continue
            if shape == "exchange_info":  # re-read keeping JSON floats as floats: raw stays verbatim
                doc = read_json_document(path, exact_floats=False)
                s.exchange_info_body(src, None, doc, market, None, recv_latency_ns)
                continue
            labelled = ((f"item [{i}]", it) for i, it in enumerate(items))
            s.run_items(path, None, labelled, functools.partial(item_events, shape, ctx=ctx))
    assert s.report is not None
    return s.report


def import_vision(
    files: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    symbol: str | None = None,
    kind: str | None = None,
    market: Market = Market.SPOT,
    interval: str | None = None,
    recv_latency_ns: int = 0,
    skip_bad: bool = False,
    writer_factory: WriterFactory | None = None,
) -> ImportReport:
    """data.binance.vision CSVs (klines, aggTrades, trades; plain, gzip or zip). The symbol,
    kind and interval come from the arguments, else from the file name
    (``ADABTC-1m-2021-11-27.csv``), else (kind) from the column count."""
    paths = _paths(files)
    plans = []
    for p in paths:
        name_symbol, name_kind, name_interval = vision_name_info(p)
        sym = symbol or name_symbol
        if not sym:
            raise ConfigError(f"{p}: the file name does not say the symbol; give --symbol")
        plans.append((p, sym.upper(), kind or name_kind, interval or name_interval))
    with _Session(
        Path(out),
        _constant(recv_latency_ns),
        skip_bad,
        writer_factory,
        [(p, f"vision:{k or 'auto'}") for p, _, k, _ in plans],
    ) as s:
        for path, sym, k, iv in plans:
            parser = VisionParser(symbol=sym, kind=k, market=market, interval=iv, latency_ns=recv_latency_ns)
            s.run_lines(path, parser.feed)
            s.ignored.update(parser.ignored)
    assert s.report is not None
    return s.report


def import_tardis(
    files: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    market: Market | None = None,
    skip_bad: bool = False,
    writer_factory: WriterFactory | None = None,
) -> ImportReport:
    """Tardis.dev normalised CSVs (trades, quotes, book_snapshot_N); µs times, recorded
    ``local_timestamp``."""
    paths = _paths(files)
    with _Session(Path(out), RECORDED, skip_bad, writer_factory, [(p, "tardis") for p in paths]) as s:
        for path in paths:
            parser = TardisParser(market=market)
            s.run_lines(path, parser.feed)
            s.sources[str(path)].kind = f"tardis:{parser.kind or 'unknown'}"
            s.ignored.update(parser.ignored)
    assert s.report is not None
    return s.report


def import_depth_csv(
    files: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    market: Market | None = None,
    recv_latency_ns: int = 0,
    skip_bad: bool = False,
    writer_factory: WriterFactory | None = None,
) -> ImportReport:
    """nautilus_trader's flattened depth CSVs: snapshot rows -> one BookSnapshotReceived,
    ``set`` rows -> one BookDeltaReceived per message."""
    paths = _paths(files)
    with _Session(
        Path(out), _constant(recv_latency_ns), skip_bad, writer_factory, [(p, "depth-csv") for p in paths]
    ) as s:
        for path in paths:
            parser = DepthCsvParser(market=market, latency_ns=recv_latency_ns)
            s.run_lines(path, parser.feed, parser.finish)
            s.ignored.update(parser.ignored)
    assert s.report is not None
    return s.report


def import_freqtrade(
    files: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    symbol: str | None = None,
    kind: str | None = None,
    interval: str | None = None,
    market: Market = Market.USDM,
    recv_latency_ns: int = 0,
    skip_bad: bool = False,
    writer_factory: WriterFactory | None = None,
) -> ImportReport:
    """freqtrade JSON files: ``*-funding_rate.json`` -> FundingRateReceived, other candle
    files -> KlineReceived (interval from the name, default 8h). Symbol from the argument,
    else the name (``XRP_USDT-8h-...`` -> XRPUSDT)."""
    paths = _paths(files)
    plans = []
    for p in paths:
        name_symbol, name_kind, name_interval = freqtrade_name_info(p)
        sym = symbol or name_symbol
        if not sym:
            raise ConfigError(f"{p}: the file name does not say the symbol; give --symbol")
        try:
            rows = FreqtradeRows.build(
                symbol=sym,
                kind=kind or name_kind,
                interval=interval or name_interval,
                market=market,
                latency_ns=recv_latency_ns,
            )
        except ValueError as exc:
            raise ConfigError(f"{p}: {exc}") from None
        plans.append((p, rows))
    with _Session(
        Path(out),
        _constant(recv_latency_ns),
        skip_bad,
        writer_factory,
        [(p, f"freqtrade:{r.kind}") for p, r in plans],
    ) as s:
        for path, rows in plans:
            try:
                doc = read_json_document(path)
                if type(doc) is not list:
                    raise BadRecord(
                        "expected a JSON list of [time_ms, open, high, low, close, volume] rows",
                        category="malformed_line",
                    )
            except BadRecord as exc:
                s.bad(exc, str(path), None)
                continue
            s.run_items(path, None, _labelled(doc), rows.row_events)
    assert s.report is not None
    return s.report


def _labelled(rows: list[Any]) -> Iterator[tuple[str, Any]]:
    return ((f"row [{i}]", row) for i, row in enumerate(rows))
