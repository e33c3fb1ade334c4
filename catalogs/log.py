"""The append-only event log: a directory of Arrow IPC stream segments plus ``manifest.json``.

Layout (DESIGN.md section 3)::

    LOGDIR/manifest.json      table of contents (catalogs.manifest)
    LOGDIR/000001.arrows      a complete Arrow IPC stream: Schema, [Dictionary]Batches, EOS
    LOGDIR/000002.arrows      ...

Why this shape: a segment is plain Arrow that any Arrow reader opens; a bounded
segment size keeps files movable and lets sealed ones be hashed once and compacted.

Crash semantics. Events are buffered and written as one batch (dictionary delta +
record batch) with a single ``write()`` when the flush policy says so; the file only
ever grows by whole messages, and fsync happens on segment roll and close. A crash
(even SIGKILL mid-``write``) can therefore leave at most one incomplete message at
the end of the newest segment: the *torn tail*. Readers ignore and report it,
:func:`repair` (and ``LogWriter(resume=True)``) cuts it, seals the segment and
continues the seq in a new segment. Damage anywhere else is ``LogCorruptError``.

Sealed segments are trusted through the manifest (size and SHA-256, checked by
:meth:`LogReader.verify`); the unsealed tail is trusted through its bytes only (seq
column, message framing, EOS), because the manifest is not rewritten on every flush.
A writer holds an exclusive ``flock`` on the directory so a second writer or a
repair cannot cut a live log.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import mmap
import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
import numpy as np

from catalogs.arrow_ipc import EOS, StreamDecoder, encode_batch, encode_schema
from catalogs.manifest import (
    Manifest,
    SegmentInfo,
    SessionInfo,
    check_meta,
    fsync_dir,
    read_manifest,
    write_manifest,
)
from catalogs.schema import BatchBuilder, ColumnBatch, iter_events
from engine.errors import ConfigError, LogCorruptError, LogError
from engine.events import EVENT_TYPES, AnyEvent, Event, Kind

SEGMENT_SUFFIX = ".arrows"
_SEGMENT_RE = re.compile(r"^(\d{6})\.arrows$")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """When pending events become a record batch, and when a segment is rolled.

    ``max_interval_ns`` only applies when the writer has a ``monotonic_ns`` clock
    (live/paper); backtests pass none so batch boundaries, hence bytes, are
    deterministic. ``fsync`` applies on segment roll and close.
    """

    max_events: int = 4096
    max_interval_ns: int | None = 200_000_000
    segment_max_bytes: int = 256 * 2**20
    fsync: bool = True

    def __post_init__(self) -> None:
        if self.max_events < 1:
            raise ConfigError(f"FlushPolicy.max_events must be >= 1, got {self.max_events}")
        if self.max_interval_ns is not None and self.max_interval_ns < 0:
            raise ConfigError(f"FlushPolicy.max_interval_ns must be >= 0 or None, got {self.max_interval_ns}")
        if self.segment_max_bytes < 1:
            raise ConfigError(f"FlushPolicy.segment_max_bytes must be >= 1, got {self.segment_max_bytes}")


@dataclass(frozen=True, slots=True)
class TornTail:
    """An incomplete final message: ``nbytes`` bytes from ``offset`` in segment ``segment``."""

    segment: str
    offset: int
    nbytes: int


def segment_name(number: int) -> str:
    """``000001.arrows`` for 1."""
    return f"{number:06d}{SEGMENT_SUFFIX}"


# --------------------------------------------------------------------------- event checks

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class _Shape:
    """What to check on one event class before accepting it (so a flush can never fail on it)."""

    column_ints: tuple[str, ...]  # int fields stored in int64 columns: type and range
    other_ints: tuple[str, ...]  # int fields stored in the JSON payload: type only
    floats: tuple[str, ...]  # must be finite: JSON has no NaN/inf
    strs: tuple[str, ...]
    levels: tuple[str, ...]


def _shape(cls: type[Event]) -> _Shape:
    columns = cls.kind in (Kind.TRADE, Kind.AGG_TRADE, Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT, Kind.QUOTE)
    fields = [f for f in msgspec.structs.fields(cls) if f.name != "seq"]
    ints = tuple(f.name for f in fields if f.type is int)
    column_ints = ints if columns else ("ts_event", "ts_recv")
    return _Shape(
        column_ints=column_ints,
        other_ints=tuple(n for n in ints if n not in column_ints),
        floats=tuple(f.name for f in fields if f.type is float),
        strs=tuple(f.name for f in fields if f.type is str or f.name == "instrument"),
        levels=tuple(f.name for f in fields if f.name in ("bids", "asks")),
    )


def _int64s(values: tuple[Any, ...]) -> bool:
    return all(type(v) is int and _I64_MIN <= v <= _I64_MAX for v in values)


def _levels_ok(side: Iterable[Any]) -> bool:
    lo, hi = _I64_MIN, _I64_MAX
    for level in side:
        if type(level) is not tuple or len(level) != 2:
            return False
        price, qty = level
        if type(price) is not int or type(qty) is not int or not (lo <= price <= hi and lo <= qty <= hi):
            return False
    return True


def _is_utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _compile_check(cls: type[Event], shape: _Shape) -> Callable[[Event], bool]:
    """Generate ``def ok(e): return <one boolean expression over e's fields>`` for one class.

    Why code generation: this runs on every append, and one flat expression is
    several times faster than looping over field names with ``getattr``. The
    names come from the event class's own fields (identifiers), never from data.
    """
    terms = [f"type(e.{n}) is int and {_I64_MIN} <= e.{n} <= {_I64_MAX}" for n in shape.column_ints]
    terms += [f"type(e.{n}) is int" for n in shape.other_ints]
    terms += [f"type(e.{n}) in (float, int) and isfinite(e.{n})" for n in shape.floats]
    terms += [f"type(e.{n}) is str and (e.{n}.isascii() or is_utf8(e.{n}))" for n in shape.strs]
    terms += [f"levels_ok(e.{n})" for n in shape.levels]
    source = "def ok(e):\n    return " + " and ".join(f"({t})" for t in terms or ["True"]) + "\n"
    namespace: dict[str, Any] = {"isfinite": math.isfinite, "is_utf8": _is_utf8, "levels_ok": _levels_ok}
    exec(compile(source, f"<check_event {cls.__name__}>", "exec"), namespace)
    check: Callable[[Event], bool] = namespace["ok"]
    return check


_SHAPES: dict[type, tuple[_Shape, Callable[[Event], bool]]] = {
    cls: (shape, _compile_check(cls, shape)) for cls in EVENT_TYPES for shape in (_shape(cls),)
}


def _bad_event(event: object, why: str) -> LogError:
    return LogError(f"cannot log {type(event).__name__} (ts_event={getattr(event, 'ts_event', '?')}): {why}")


def check_event(event: Event) -> None:
    """Refuse, at append time, anything the columns or the JSON payload could not store exactly.

    Checked: int64 range of column ints, int types, finite floats, UTF-8 str fields,
    (price, qty) int64 tuples in book levels. A bad event must fail here, before it
    gets a seq, not later in a flush where a whole batch would be lost. Only a
    failure walks the fields again to name the culprit.
    """
    entry = _SHAPES.get(type(event))
    if entry is None:
        raise _bad_event(event, "not an engine.events event type")
    if not entry[1](event):
        _explain(event, entry[0])


def _explain(event: Event, shape: _Shape) -> None:
    """Raise the LogError naming the first field ``check_event`` rejects."""
    for name in shape.column_ints:
        v = getattr(event, name)
        if type(v) is not int or not _I64_MIN <= v <= _I64_MAX:
            raise _bad_event(event, f"{name}={v!r} is not an int64")
    for name in shape.other_ints:
        if type(getattr(event, name)) is not int:
            raise _bad_event(event, f"{name}={getattr(event, name)!r} is not an int")
    for name in shape.floats:
        v = getattr(event, name)
        if type(v) not in (float, int) or not math.isfinite(v):
            raise _bad_event(event, f"{name}={v!r} is not a finite number (JSON cannot store NaN/inf)")
    for name in shape.strs:
        v = getattr(event, name)
        if type(v) is not str or not _is_utf8(v):
            raise _bad_event(event, f"{name}={v!r} is not a UTF-8 encodable str")
    for name in shape.levels:
        for level in getattr(event, name):
            if not _levels_ok((level,)):
                raise _bad_event(event, f"{name} level {level!r} is not an int64 (price, qty) pair")
    raise _bad_event(event, "rejected")  # pragma: no cover - the fast check and this walk agree


# --------------------------------------------------------------------------- directory helpers


def _lock(directory: Path) -> int:
    """Exclusive, non-blocking flock on the directory; released on close or process death."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LogError(f"{directory} is locked by another LogWriter or repair in progress") from None
    return fd


def _unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _segment_plan(directory: Path, manifest: Manifest) -> list[tuple[str, SegmentInfo | None]]:
    """Segments in order: the manifest's, then files on disk it does not list yet (an unsealed tail)."""
    files = sorted(p.name for p in directory.iterdir() if _SEGMENT_RE.match(p.name))
    on_disk = set(files)
    for info in manifest.segments:
        if info.name not in on_disk:
            raise LogCorruptError(f"{directory / info.name}: segment listed in the manifest is missing")
    listed = {s.name for s in manifest.segments}
    extra = [f for f in files if f not in listed]
    if extra and manifest.segments and extra[0] < manifest.segments[-1].name:
        raise LogCorruptError(
            f"{directory / extra[0]}: segment file not in the manifest and older than its segments"
        )
    return [(s.name, s) for s in manifest.segments] + [(f, None) for f in extra]


class _Mapped:
    """A read-only mmap of one segment (None-safe for empty files); closing tolerates live views."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.map: mmap.mmap | None = None
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size:
                    self.map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise LogError(f"cannot open segment {path}: {exc}") from exc

    @property
    def buffer(self) -> bytes | mmap.mmap:
        return b"" if self.map is None else self.map

    def close(self) -> None:
        """Unmap now if no batch still views it; else the map lives until the last view is gone."""
        if self.map is not None:
            with contextlib.suppress(BufferError):
                self.map.close()
            self.map = None


@dataclass(frozen=True, slots=True)
class _Inspected:
    """An unsealed segment as its bytes say."""

    first_seq: int
    last_seq: int
    events: int
    end: int  # offset after the last complete message
    eos: bool
    torn: TornTail | None


def _inspect(path: Path, prev_seq: int) -> _Inspected:
    """Decode a whole unsealed segment (validating it) to learn its seq range, EOS and torn tail."""
    mapped = _Mapped(path)
    try:
        return _inspect_mapped(mapped, path, prev_seq)  # its views are gone when it returns
    finally:
        mapped.close()


def _inspect_mapped(mapped: _Mapped, path: Path, prev_seq: int) -> _Inspected:
    dec = StreamDecoder(mapped.buffer, str(path), prev_seq=prev_seq)
    first, events = prev_seq + 1, 0
    for batch in dec.batches(allow_torn=True):
        if batch.length and not events:
            first = int(batch.seq[0])
        events += batch.length
    torn = TornTail(path.name, dec.torn[0], dec.torn[1]) if dec.torn else None
    end = torn.offset if torn else len(mapped.buffer)
    return _Inspected(first, dec.last_seq, events, end, dec.eos, torn)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _repair_locked(directory: Path, *, fsync: bool) -> list[TornTail]:
    """Cut torn tails, seal every unsealed segment, drop event-less ones; the caller holds the lock."""
    try:
        return _repair_segments(directory, fsync=fsync)
    except OSError as exc:
        raise LogError(f"repair of log {directory} failed: {exc}") from exc


def _repair_segments(directory: Path, *, fsync: bool) -> list[TornTail]:
    manifest = read_manifest(directory)
    segments: list[SegmentInfo] = []
    torn: list[TornTail] = []
    remove: list[Path] = []
    prev = 0
    for name, info in _segment_plan(directory, manifest):
        if info is not None and info.sealed:
            segments.append(info)
            prev = info.last_seq if info.events else prev
            continue
        path = directory / name
        seen = _inspect(path, prev)
        if seen.torn is not None:
            torn.append(seen.torn)
            os.truncate(path, seen.end)
        if not seen.events:
            remove.append(path)
            continue
        if not seen.eos:
            with open(path, "ab") as fh:
                fh.write(EOS)
        if fsync:
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
        size = path.stat().st_size
        segments.append(
            SegmentInfo(name, seen.first_seq, seen.last_seq, seen.events, size, True, _sha256(path))
        )
        prev = seen.last_seq
    repaired = manifest.with_segments(tuple(segments))
    if repaired != manifest:
        write_manifest(directory, repaired, fsync=fsync)
    for path in remove:
        path.unlink()
    if remove and fsync:
        fsync_dir(directory)
    return torn


def repair(path: str | Path, *, fsync: bool = True) -> list[TornTail]:
    """Physically cut torn tails and seal the segments a crash left open (what ``resume`` does).

    Each unsealed segment is decoded and validated; a torn final message is
    truncated away, the end-of-stream marker appended, the segment hashed and marked
    sealed in the manifest; a segment left with no event is deleted. Returns what was
    cut. Corruption before the tail is not repaired: it raises ``LogCorruptError``.
    """
    directory = Path(path)
    read_manifest(directory)  # LogError naming the path when it is not a log
    fd = _lock(directory)
    try:
        return _repair_locked(directory, fsync=fsync)
    finally:
        _unlock(fd)


# --------------------------------------------------------------------------- writer


@dataclass(slots=True)
class _OpenSegment:
    name: str
    fd: int
    first_seq: int
    last_seq: int
    events: int = 0
    batches: int = 0
    bytes: int = 0
    dict_len: int = 0
    sha: Any = None


class LogWriter:
    """Appends events to a log, assigning seq 1, 2, 3... across segments and restarts.

    A new log needs a missing or empty directory. ``resume=True`` opens an existing
    log instead: torn tails are cut (see :func:`repair`; ``torn_tail`` lists them),
    and seq continues in a new segment. ``meta`` goes into the manifest; on resume,
    every key given must equal the stored one (None checks nothing).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        meta: Mapping[str, Any] | None = None,
        policy: FlushPolicy = FlushPolicy(),
        monotonic_ns: Callable[[], int] | None = None,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        self._policy = policy
        interval = policy.max_interval_ns
        self._timer = (monotonic_ns, interval) if monotonic_ns is not None and interval is not None else None
        self._max_events = policy.max_events
        self._builder = BatchBuilder()
        self._pending = 0
        self._oldest_ns = 0
        self._segment: _OpenSegment | None = None
        self._closed = False
        self._failed: str | None = None
        self.torn_tail: list[TornTail] = []
        self._lock_fd = -1
        manifest = self._open_existing(meta) if resume else self._create(meta)
        try:
            self._next_seq = manifest.last_seq + 1
            self._flushed_seq = manifest.last_seq
            session = SessionInfo(start_seq=self._next_seq, resumed=resume)
            self._manifest = replace(manifest, sessions=(*manifest.sessions, session))
            write_manifest(self.path, self._manifest, fsync=policy.fsync)
        except BaseException:
            _unlock(self._lock_fd)
            raise

    def _create(self, meta: Mapping[str, Any] | None) -> Manifest:
        plain = check_meta(meta or {})
        if self.path.exists():
            if not self.path.is_dir():
                raise LogError(f"cannot create a log at {self.path}: it exists and is not a directory")
            if any(self.path.iterdir()):
                raise LogError(
                    f"refusing to create a log in non-empty directory {self.path} (resume=True continues a log)"
                )
        else:
            try:
                self.path.mkdir(parents=True)
            except OSError as exc:
                raise LogError(f"cannot create log directory {self.path}: {exc}") from exc
        self._lock_fd = _lock(self.path)
        return Manifest(meta=plain)

    def _open_existing(self, meta: Mapping[str, Any] | None) -> Manifest:
        read_manifest(self.path)  # LogError naming the path when it is not a log
        self._lock_fd = _lock(self.path)
        try:
            self.torn_tail = _repair_locked(self.path, fsync=self._policy.fsync)
            manifest = read_manifest(self.path)
            stored = dict(manifest.meta)
            differ = sorted(k for k, v in check_meta(meta or {}).items() if k not in stored or stored[k] != v)
            if differ:
                raise LogError(f"resume of {self.path}: meta differs from the log's on keys {differ}")
        except BaseException:
            _unlock(self._lock_fd)
            raise
        return manifest

    # ------------------------------------------------------------------ properties

    @property
    def last_seq(self) -> int:
        """The seq of the last appended event (flushed or not); 0 for an empty log."""
        return self._next_seq - 1

    @property
    def flushed_seq(self) -> int:
        """The seq of the last event written to a segment file (survives a process crash)."""
        return self._flushed_seq

    @property
    def manifest(self) -> Manifest:
        """The manifest as last written."""
        return self._manifest

    def update_meta(self, meta: Mapping[str, Any]) -> None:
        """Merge keys into the manifest's ``meta`` (counts, stats known only at the end).

        Written with the next manifest write: a segment roll or :meth:`close`.
        """
        if self._closed or self._failed:
            raise self._unusable()
        merged = check_meta({**self._manifest.meta, **meta})
        self._manifest = replace(self._manifest, meta=merged)

    # ------------------------------------------------------------------ appending

    def append(self, event: Event) -> int:
        """Buffer one event, assign and return its seq; flush when the policy says so."""
        if self._closed or self._failed:
            raise self._unusable()
        check_event(event)
        seq = self._next_seq
        self._builder.add(event, seq)
        self._next_seq = seq + 1
        self._pending += 1
        if self._pending >= self._max_events:
            self.flush()
        elif self._timer is not None:
            now = self._timer[0]()
            if self._pending == 1:
                self._oldest_ns = now
            elif now - self._oldest_ns >= self._timer[1]:
                self.flush()
        return seq

    def extend(self, events: Iterable[Event]) -> int:
        """Append each event; returns the last seq (``last_seq`` when ``events`` is empty)."""
        for event in events:
            self.append(event)
        return self.last_seq

    def poll(self) -> bool:
        """Flush if the oldest pending event is older than ``max_interval_ns``; for an idle live loop."""
        timer = self._timer
        if not self._pending or timer is None or timer[0]() - self._oldest_ns < timer[1]:
            return False
        self.flush()
        return True

    def flush(self) -> None:
        """Write pending events as one batch (one ``write()``); rolls the segment when it would grow too big."""
        if self._closed or self._failed:
            raise self._unusable()
        if not self._pending:
            return
        batch = self._builder.build()
        self._pending = 0
        try:
            self._write_batch(batch)
        except BaseException as exc:
            # The batch's seqs are handed out but its bytes may be missing or partial:
            # appending more would leave a hole or a torn message mid-file. Stop here.
            self._failed = self._failed or f"flush of seq {int(batch.seq[0])}.. failed: {exc!r}"
            raise

    def _write_batch(self, batch: ColumnBatch) -> None:
        seg = self._segment or self._open_segment()
        message = encode_batch(batch, seg.dict_len)
        if seg.batches and seg.bytes + len(message) + len(EOS) > self._policy.segment_max_bytes:
            self._seal()
            seg = self._open_segment()
            message = encode_batch(batch, 0)
        self._write(seg, message)
        seg.batches += 1
        seg.events += batch.length
        seg.last_seq = int(batch.seq[-1])
        seg.dict_len = len(batch.instrument_dict)
        self._flushed_seq = seg.last_seq

    def _unusable(self) -> LogError:
        if self._failed:
            return LogError(
                f"log writer for {self.path} failed earlier ({self._failed}); reopen with resume=True"
            )
        return LogError(f"log writer for {self.path} is closed")

    def _write(self, seg: _OpenSegment, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(seg.fd, view)
                view = view[written:]
        except OSError as exc:
            self._failed = f"write to {self.path / seg.name} failed: {exc}"
            raise LogError(self._failed) from exc
        seg.bytes += len(data)
        seg.sha.update(data)

    def _open_segment(self) -> _OpenSegment:
        number = max((int(s.name[:6]) for s in self._manifest.segments), default=0) + 1
        name = segment_name(number)
        try:
            fd = os.open(
                self.path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            raise LogError(f"cannot create segment {self.path / name}: {exc}") from exc
        seg = _OpenSegment(
            name, fd, first_seq=self._flushed_seq + 1, last_seq=self._flushed_seq, sha=hashlib.sha256()
        )
        self._segment = seg
        self._write(seg, encode_schema())
        info = SegmentInfo(name, seg.first_seq, seg.last_seq, 0, seg.bytes, sealed=False)
        self._set_manifest((*self._manifest.segments, info))
        return seg

    def _set_manifest(self, segments: tuple[SegmentInfo, ...]) -> None:
        self._manifest = self._manifest.with_segments(segments)
        write_manifest(self.path, self._manifest, fsync=self._policy.fsync)

    def _seal(self) -> None:
        seg = self._segment
        assert seg is not None
        self._write(seg, EOS)
        try:
            if self._policy.fsync:
                os.fsync(seg.fd)
        except OSError as exc:
            self._failed = f"fsync of {self.path / seg.name} failed: {exc}"
            raise LogError(self._failed) from exc
        finally:
            os.close(seg.fd)
            self._segment = None
        info = SegmentInfo(
            seg.name, seg.first_seq, seg.last_seq, seg.events, seg.bytes, True, seg.sha.hexdigest()
        )
        self._set_manifest((*self._manifest.segments[:-1], info))

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Flush, end the stream (EOS), fsync, seal the segment in the manifest, release the log. Idempotent."""
        if self._closed:
            return
        try:
            if not self._failed:
                self.flush()
                if self._segment is not None:
                    self._seal()
                else:
                    write_manifest(self.path, self._manifest, fsync=self._policy.fsync)
        finally:
            self._release()

    def abort(self) -> None:
        """Stop without flushing or sealing: pending events are dropped and the segment stays open on disk.

        This is what a crash leaves (tests use it); the next ``resume`` or
        :func:`repair` seals the segment.
        """
        if not self._closed:
            self._release()

    def _release(self) -> None:
        self._closed = True
        if self._segment is not None:
            os.close(self._segment.fd)
            self._segment = None
        if self._lock_fd >= 0:
            _unlock(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- reader


class LogReader:
    """Reads a log in seq order without modifying it; a torn tail is ignored and listed in ``torn_tail``.

    Batches are zero-copy views into an mmap of their segment; one segment is
    mapped at a time, so memory stays bounded by what the caller keeps.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self._plan = _segment_plan(self.path, self.manifest)
        self.torn_tail: list[TornTail] = []
        self._open: set[_Mapped] = set()
        for name, info in self._plan:
            seg_path = self.path / name
            if info is not None and info.sealed:
                size = seg_path.stat().st_size
                if size != info.bytes:
                    raise LogCorruptError(
                        f"{seg_path}: sealed segment is {size} bytes, the manifest says {info.bytes}"
                    )
                continue
            mapped = _Mapped(seg_path)
            try:
                scan = StreamDecoder(mapped.buffer, str(seg_path)).scan()
            finally:
                mapped.close()
            if scan.torn_bytes:
                self.torn_tail.append(TornTail(name, scan.end, scan.torn_bytes))

    @property
    def segments(self) -> list[str]:
        """Segment file names in read order (the manifest's, then unlisted ones on disk)."""
        return [name for name, _ in self._plan]

    def batches(self, *, start_seq: int = 1) -> Iterator[ColumnBatch]:
        """Every record batch in seq order, starting at the row with seq >= ``start_seq``."""
        for _, batch in self._sourced_batches(start_seq):
            yield batch

    def _sourced_batches(self, start_seq: int) -> Iterator[tuple[str, ColumnBatch]]:
        prev = 0
        for name, info in self._plan:
            sealed = info if info is not None and info.sealed else None
            if sealed is not None and (not sealed.events or sealed.last_seq < start_seq):
                prev = sealed.last_seq if sealed.events else prev
                continue
            mapped = _Mapped(self.path / name)
            self._open.add(mapped)
            try:
                prev = yield from self._segment_batches(mapped, sealed, prev, start_seq)
            finally:
                self._open.discard(mapped)
                mapped.close()  # succeeds unless the caller still holds batches of this segment

    def _segment_batches(
        self, mapped: _Mapped, sealed: SegmentInfo | None, prev: int, start_seq: int
    ) -> Generator[tuple[str, ColumnBatch], None, int]:
        """One segment's batches from ``start_seq``; returns its last seq."""
        source = str(mapped.path)
        dec = StreamDecoder(mapped.buffer, source, prev_seq=prev)
        for batch in dec.batches(allow_torn=sealed is None):
            if not batch.length or int(batch.seq[-1]) < start_seq:
                continue
            if int(batch.seq[0]) < start_seq:
                batch = batch.slice(int(np.searchsorted(batch.seq, start_seq)), batch.length)
            yield source, batch
        if sealed is not None:
            self._check_sealed(mapped.path, dec, sealed)
        return dec.last_seq

    @staticmethod
    def _check_sealed(seg_path: Path, dec: StreamDecoder, info: SegmentInfo) -> None:
        if not dec.eos:
            raise LogCorruptError(f"{seg_path}: sealed segment has no end-of-stream marker")
        if dec.last_seq != info.last_seq:
            raise LogCorruptError(f"{seg_path}: last seq {dec.last_seq}, the manifest says {info.last_seq}")

    def events(self, *, start_seq: int = 1) -> Iterator[AnyEvent]:
        """Every event in seq order from ``start_seq``, decoded by ``catalogs.schema.iter_events``."""
        for source, batch in self._sourced_batches(start_seq):
            try:
                yield from iter_events(batch)
            except (msgspec.DecodeError, ValueError) as exc:
                first = int(batch.seq[0]) if batch.length else 0
                raise LogCorruptError(
                    f"{source}: undecodable event in the batch starting at seq {first}: {exc}"
                ) from exc

    def verify(self) -> None:
        """Recompute every sealed segment's SHA-256 against the manifest, then decode every batch.

        Raises ``LogCorruptError`` naming the segment on the first mismatch.
        """
        for name, info in self._plan:
            if info is not None and info.sealed:
                try:
                    digest = _sha256(self.path / name)
                except OSError as exc:
                    raise LogError(f"cannot read segment {self.path / name}: {exc}") from exc
                if digest != info.sha256:
                    raise LogCorruptError(
                        f"{self.path / name}: SHA-256 {digest} does not match the manifest's {info.sha256}"
                    )
        for _ in self._sourced_batches(1):
            pass

    def close(self) -> None:
        """Unmap segments still open (an abandoned iteration)."""
        for mapped in list(self._open):
            mapped.close()
        self._open.clear()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = [
    "FlushPolicy",
    "LogReader",
    "LogWriter",
    "TornTail",
    "check_event",
    "repair",
    "segment_name",
]
