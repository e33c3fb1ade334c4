"""``tickloop log info``: a JSON summary of one event log, streamed batch by batch.

Why a separate pass rather than a manifest lookup: the manifest says what the writer
*meant* to write; this reads what is actually there (counts, spans, holes in ``seq``,
breaks in the diff-depth update-id chain) so a recording can be judged before anyone
backtests on it. It must run on the edge profile (no pyarrow): it reads the log with
:class:`catalogs.log.LogReader` and works on each :class:`~catalogs.schema.ColumnBatch`
with numpy, keeping only counters and the first few examples of each anomaly, so memory
does not grow with the log.

Update-id chain rules (per instrument, over ``BOOK_DELTA`` rows in log order):
spot diffs (``prev_update_id == -1``) must satisfy ``U == previous u + 1``; futures diffs
must satisfy ``pu == previous u``. The first diff of each instrument starts the chain.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from catalogs.schema import ColumnBatch
from engine.errors import LogError
from engine.events import Kind

DEFAULT_EXAMPLES = 10
"""How many locations of each anomaly (seq holes, update-id gaps) the summary lists."""

_NS_PER_S = 1_000_000_000
_KIND_BOOK_DELTA = int(Kind.BOOK_DELTA)


def kind_name(code: int) -> str:
    """Lower-case name of a kind code (``trade``, ``book_delta``), or ``kind_<n>`` if unknown."""
    try:
        return Kind(code).name.lower()
    except ValueError:
        return f"kind_{code}"


def iso_utc(ns: int) -> str:
    """ISO-8601 UTC with nanoseconds (``2024-08-08T23:54:13.937000123Z``); exact for any int64."""
    sec, frac = divmod(int(ns), _NS_PER_S)
    return datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


class _Span:
    """First/last (log order), min/max and backwards steps of one time column."""

    __slots__ = ("backwards", "first", "last", "max", "min")

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.min: int | None = None
        self.max: int | None = None
        self.backwards = 0

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        lo, hi = int(values.min()), int(values.max())
        if self.last is None:
            self.first, self.min, self.max = int(values[0]), lo, hi
            steps = np.diff(values)
        else:
            assert self.min is not None and self.max is not None
            self.min, self.max = min(self.min, lo), max(self.max, hi)
            steps = np.diff(values, prepend=np.int64(self.last))
        self.backwards += int(np.count_nonzero(steps < 0))
        self.last = int(values[-1])

    def to_json(self) -> dict[str, Any] | None:
        if self.first is None:
            return None
        out: dict[str, Any] = {}
        for name in ("first", "last", "min", "max"):
            value = getattr(self, name)
            out[name] = value
            out[f"{name}_utc"] = iso_utc(value)
        out["duration_s"] = (self.last - self.first) / _NS_PER_S if self.last is not None else 0.0
        out["backwards_steps"] = self.backwards
        return out


class _SeqCheck:
    """The seq column must step by exactly 1; records holes and steps that go back or repeat."""

    __slots__ = ("disorder", "examples", "first", "holes", "last", "max_examples", "missing", "out_of_order")

    def __init__(self, max_examples: int) -> None:
        self.max_examples = max_examples
        self.first: int | None = None
        self.last: int | None = None
        self.holes = 0
        self.missing = 0
        self.out_of_order = 0
        self.examples: list[dict[str, int]] = []
        self.disorder: list[dict[str, int]] = []

    def add(self, seq: np.ndarray) -> None:
        if not len(seq):
            return
        if self.first is None:
            self.first = int(seq[0])
            prev = seq[:-1]
            cur = seq[1:]
        else:
            prev = np.concatenate((np.asarray([self.last], dtype=np.int64), seq[:-1]))
            cur = seq
        step = cur - prev
        jumps = np.flatnonzero(step > 1)
        back = np.flatnonzero(step < 1)
        self.holes += len(jumps)
        self.missing += int((step[jumps] - 1).sum())
        self.out_of_order += len(back)
        for i in jumps[: max(0, self.max_examples - len(self.examples))]:
            a, b = int(prev[i]), int(cur[i])
            self.examples.append({"after": a, "next": b, "missing": b - a - 1})
        for i in back[: max(0, self.max_examples - len(self.disorder))]:
            self.disorder.append({"after": int(prev[i]), "next": int(cur[i])})
        self.last = int(seq[-1])

    def to_json(self, events: int) -> dict[str, Any]:
        contiguous = self.first is None or (
            self.holes == 0 and self.out_of_order == 0 and self.last == self.first + events - 1
        )
        return {
            "first": self.first,
            "last": self.last,
            "contiguous": contiguous,
            "holes": self.holes,
            "missing": self.missing,
            "hole_examples": self.examples,
            "out_of_order": self.out_of_order,
            "out_of_order_examples": self.disorder,
        }


@dataclasses.dataclass(slots=True)
class _Chain:
    """Update-id chain state of one instrument's diff stream."""

    last_u: int | None = None
    deltas: int = 0
    gaps: int = 0
    spot: int = 0
    futures: int = 0
    examples: list[dict[str, int]] = dataclasses.field(default_factory=list)


class LogStats:
    """Accumulates the summary of a stream of batches; :meth:`summary` renders it as JSON-ready data."""

    def __init__(self, *, max_examples: int = DEFAULT_EXAMPLES) -> None:
        self.max_examples = max_examples
        self.events = 0
        self.batches = 0
        self.kinds: Counter[int] = Counter()
        self.instruments: Counter[str] = Counter()
        self.instrument_kinds: Counter[tuple[str, int]] = Counter()
        self.ts_event = _Span()
        self.ts_recv = _Span()
        self.seq = _SeqCheck(max_examples)
        self.chains: dict[str, _Chain] = {}

    def add(self, batch: ColumnBatch) -> None:
        """Fold one batch in (rows must come in log order)."""
        n = batch.length
        if n == 0:
            return
        self.events += n
        self.batches += 1
        names = batch.instrument_dict
        pair = batch.instrument.astype(np.int64) * 256 + batch.kind.astype(np.int64)
        keys, counts = np.unique(pair, return_counts=True)
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            iid, code = names[key >> 8], key & 0xFF
            self.kinds[code] += count
            self.instruments[iid] += count
            self.instrument_kinds[(iid, code)] += count
        self.ts_event.add(batch.ints["ts_event"])
        self.ts_recv.add(batch.ints["ts_recv"])
        self.seq.add(batch.ints["seq"])
        self._check_update_ids(batch)

    def _check_update_ids(self, batch: ColumnBatch) -> None:
        rows = np.flatnonzero(batch.kind == _KIND_BOOK_DELTA)
        if not len(rows):
            return
        instr = batch.instrument[rows]
        order = np.argsort(instr, kind="stable")
        rows = rows[order]
        starts = np.flatnonzero(np.diff(instr[order], prepend=-1))
        bounds = [*starts.tolist(), len(rows)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            group = rows[a:b]
            iid = batch.instrument_dict[int(batch.instrument[group[0]])]
            self._check_chain(self.chains.setdefault(iid, _Chain()), batch, group)

    def _check_chain(self, chain: _Chain, batch: ColumnBatch, rows: np.ndarray) -> None:
        first_u = batch.ints["first_id"][rows]
        last_u = batch.ints["last_id"][rows]
        pu = batch.ints["prev_id"][rows]
        spot = pu == -1
        chain.deltas += len(rows)
        chain.spot += int(np.count_nonzero(spot))
        chain.futures += len(rows) - int(np.count_nonzero(spot))
        if chain.last_u is None:
            prev_u, first_u, pu, spot, rows_c = last_u[:-1], first_u[1:], pu[1:], spot[1:], rows[1:]
        else:
            prev_u = np.concatenate((np.asarray([chain.last_u], dtype=np.int64), last_u[:-1]))
            rows_c = rows
        broken = np.where(spot, first_u != prev_u + 1, pu != prev_u)
        bad = np.flatnonzero(broken)
        chain.gaps += len(bad)
        seq = batch.ints["seq"]
        for i in bad[: max(0, self.max_examples - len(chain.examples))]:
            chain.examples.append(
                {
                    "seq": int(seq[rows_c[i]]),
                    "prev_last_update_id": int(prev_u[i]),
                    "first_update_id": int(first_u[i]),
                    "prev_update_id": int(pu[i]),
                }
            )
        chain.last_u = int(last_u[-1])

    def summary(self) -> dict[str, Any]:
        """The counters as JSON-ready data (kinds by name, sorted for stable output)."""
        per_instrument: dict[str, dict[str, int]] = {}
        for (iid, code), count in sorted(self.instrument_kinds.items()):
            per_instrument.setdefault(iid, {})[kind_name(code)] = count
        return {
            "events": self.events,
            "batches": self.batches,
            "kinds": {kind_name(code): self.kinds[code] for code in sorted(self.kinds)},
            "instruments": dict(sorted(self.instruments.items())),
            "instrument_kinds": per_instrument,
            "ts_event": self.ts_event.to_json(),
            "ts_recv": self.ts_recv.to_json(),
            "seq": self.seq.to_json(self.events),
            "book_update_ids": {
                iid: {
                    "deltas": c.deltas,
                    "rule": _rule(c),
                    "gaps": c.gaps,
                    "gap_examples": c.examples,
                }
                for iid, c in sorted(self.chains.items())
            },
        }


def _rule(chain: _Chain) -> str:
    if chain.futures and chain.spot:
        return "mixed: U == prev u + 1 (spot rows), pu == prev u (futures rows)"
    return "pu == prev u" if chain.futures else "U == prev u + 1"


def summarize_batches(
    batches: Iterable[ColumnBatch], *, max_examples: int = DEFAULT_EXAMPLES
) -> dict[str, Any]:
    """Summary of batches in log order (what :func:`log_info` does after opening the log)."""
    stats = LogStats(max_examples=max_examples)
    for batch in batches:
        stats.add(batch)
    return stats.summary()


def log_info(path: str | Path, *, max_examples: int = DEFAULT_EXAMPLES) -> dict[str, Any]:
    """Read the log at ``path`` once and return its summary (see the module docstring).

    Raises :class:`LogError` when ``path`` is not a log directory; damaged segments
    surface as the reader's own :class:`LogError`/``LogCorruptError``.
    """
    root = Path(path)
    if not root.exists():
        raise LogError(f"{root}: no such log directory")
    if not root.is_dir():
        raise LogError(f"{root}: not a log directory (a log is a directory with manifest.json and segments)")
    from catalogs.log import LogReader

    with LogReader(root) as reader:
        manifest = reader.manifest
        body = summarize_batches(reader.batches(), max_examples=max_examples)
        listed = {s.name for s in manifest.segments}
        unlisted = [name for name in reader.segments if name not in listed]
        torn = reader.torn_tail
    body["seq"]["manifest_first"] = manifest.first_seq
    body["seq"]["manifest_last"] = manifest.last_seq
    segments = _segments(list(manifest.segments))
    segments["unlisted"] = unlisted  # on disk, not yet in the manifest (a crashed writer's new segment)
    return {
        "path": str(root),
        **body,
        "segments": segments,
        "torn_tail": _jsonable(torn) or None,
        "source_files": _source_files(manifest.meta),
        "ts_recv_model": _jsonable(manifest.meta.get("ts_recv_model")),
        "meta": _summarize_json(dict(manifest.meta)),
    }


def _source_files(meta: Any) -> list[str]:
    """The files a log was imported from, whichever way the importer listed them in ``meta``."""
    listed = meta.get("source") or meta.get("sources") or meta.get("source_files") or []
    if isinstance(listed, str | dict):
        listed = [listed]
    files = []
    for item in listed if isinstance(listed, list) else []:
        name = item.get("file") or item.get("path") if isinstance(item, dict) else item
        if name is not None:
            files.append(str(name))
    return files


def _segments(segments: list[Any]) -> dict[str, Any]:
    rows = [
        {
            "name": getattr(s, "name", None),
            "first_seq": getattr(s, "first_seq", None),
            "last_seq": getattr(s, "last_seq", None),
            "events": getattr(s, "events", None),
            "bytes": getattr(s, "bytes", None),
            "sealed": bool(getattr(s, "sealed", False)),
        }
        for s in segments
    ]
    return {
        "count": len(rows),
        "sealed": sum(1 for r in rows if r["sealed"]),
        "unsealed": [r["name"] for r in rows if not r["sealed"]],
        "bytes": sum(int(r["bytes"] or 0) for r in rows),
        "list": rows,
    }


def _jsonable(value: Any) -> Any:
    """Render whatever the reader reports (None, a flag, a dataclass, a msgspec Struct) as JSON data."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    fields = getattr(value, "__struct_fields__", None)
    if fields is not None:
        return {name: _jsonable(getattr(value, name)) for name in fields}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return str(value)


_MAX_LIST = 20
_MAX_STR = 400


def _summarize_json(value: Any) -> Any:
    """Manifest meta, with long lists and strings shortened so the summary stays readable."""
    if isinstance(value, dict):
        return {str(k): _summarize_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if len(value) > _MAX_LIST:
            return {"count": len(value), "first": [_summarize_json(v) for v in value[:_MAX_LIST]]}
        return [_summarize_json(v) for v in value]
    if isinstance(value, str) and len(value) > _MAX_STR:
        return f"{value[:_MAX_STR]}... ({len(value)} chars)"
    return _jsonable(value)
