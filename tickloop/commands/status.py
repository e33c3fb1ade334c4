"""``tickloop status [--root /var/lib/tickloop] [--json]``: what the board is doing, at a glance.

For every session directory under ROOT (a directory holding ``session.json``, at depth 1
or 2): whether its process is alive, how old the last event of each stream is, how much
disk it uses, and the risk breaker's state; then the filesystem's free space.

Why read the logs rather than ask the process: status must also work when the process is
hung or dead (that is when it is needed), and the logs are the truth a replay would see.

- **running**: ``session.json``'s ``pid`` is alive *and* its command line mentions
  tickloop (a pid reused by another program after a crash is not a running session).
- **streams**: per ``(instrument, kind)`` the newest ``ts_recv`` in the input log's newest
  segment, and the last ``FeedStatusChanged`` per feed; ``age_s`` is against the wall clock.
- **breaker**: the last of ``CircuitBreakerTripped`` / ``KillSwitchEngaged`` / ``RiskReset``
  in the output log (a ``daily_loss`` halt whose ``until`` has passed counts as lifted).

Imports only the pyarrow-free log reader: it runs on the edge profile.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import ConfigError, LogError

if TYPE_CHECKING:
    from catalogs.log import LogReader

DEFAULT_ROOT = "/var/lib/tickloop"
SESSION_JSON = "session.json"
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class StreamAge:
    """The newest event of one stream (``BTCUSDT.SPOT trade``) in the input log's newest segment."""

    stream: str
    last_ts_recv_ns: int
    age_s: float
    events_in_segment: int


@dataclass(frozen=True, slots=True)
class Breaker:
    """``ok``, ``tripped`` (a loss breaker) or ``killed`` (kill switch); ``rule``/``until_ns`` when tripped."""

    state: str
    rule: str = ""
    since_ns: int = 0
    until_ns: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """One session directory as the status table shows it."""

    name: str
    path: str
    mode: str
    pid: int | None
    running: bool
    started_at: str
    stop_reason: str
    disk_bytes: int
    input_events: int
    streams: tuple[StreamAge, ...]
    feeds: dict[str, str]
    breaker: Breaker
    problems: tuple[str, ...]


# --------------------------------------------------------------------------- process


def pid_running(pid: int) -> bool:
    """Alive and a tickloop process (``/proc/PID/cmdline`` mentions it, where /proc exists)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user (the tickloop service user)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs at all: trust kill(0)
    except OSError:
        return True
    return b"tickloop" in cmdline


# --------------------------------------------------------------------------- logs


def _newest_segment_start(reader: LogReader) -> int:
    """First seq of the newest segment (listed or not yet listed in the manifest)."""
    names = reader.segments
    if not names:
        return reader.manifest.last_seq + 1
    info = {s.name: s for s in reader.manifest.segments}.get(names[-1])
    return info.first_seq if info is not None else reader.manifest.last_seq + 1


def stream_ages(input_log: Path, now_ns: int) -> tuple[tuple[StreamAge, ...], dict[str, str], int]:
    """Per-stream newest ``ts_recv`` in the newest segment, feed states, and the log's last seq."""
    from catalogs.log import LogReader
    from catalogs.loginfo import kind_name
    from catalogs.schema import iter_events
    from engine.events import FeedStatusChanged, Kind

    last: dict[str, int] = {}
    counts: dict[str, int] = {}
    feeds: dict[str, str] = {}
    last_seq = 0
    feed_kind = int(Kind.FEED_STATUS)
    with LogReader(input_log) as reader:
        for batch in reader.batches(start_seq=_newest_segment_start(reader)):
            if not batch.length:
                continue
            last_seq = int(batch.seq[-1])
            keys = batch.kind.astype(np.int64) << 32 | batch.instrument.astype(np.int64)
            uniq, first_rev, n = np.unique(keys[::-1], return_index=True, return_counts=True)
            ts = batch.ints["ts_recv"]
            for key, rev, count in zip(uniq.tolist(), first_rev.tolist(), n.tolist(), strict=True):
                kind, inst = key >> 32, key & 0xFFFFFFFF
                if kind == feed_kind:
                    continue
                name = f"{batch.instrument_dict[inst] or '-'} {kind_name(kind)}"
                last[name] = max(last.get(name, 0), int(ts[batch.length - 1 - rev]))
                counts[name] = counts.get(name, 0) + count
            for row in np.flatnonzero(batch.kind == feed_kind).tolist():
                for ev in iter_events(batch.slice(row, row + 1)):
                    if isinstance(ev, FeedStatusChanged):
                        feeds[ev.stream] = ev.status
    ages = tuple(
        StreamAge(name, ts, round((now_ns - ts) / _NS, 3), counts[name]) for name, ts in sorted(last.items())
    )
    return ages, feeds, last_seq


def breaker_state(out_log: Path, now_ns: int) -> Breaker:
    """The risk breaker as the output log's last breaker event leaves it."""
    from catalogs.log import LogReader
    from catalogs.schema import iter_events
    from engine.events import CircuitBreakerTripped, KillSwitchEngaged, Kind, RiskReset

    codes = np.array(
        [int(Kind.CIRCUIT_BREAKER_TRIPPED), int(Kind.KILL_SWITCH_ENGAGED), int(Kind.RISK_RESET)], dtype=np.uint8
    )
    last: Any = None
    with LogReader(out_log) as reader:
        for batch in reader.batches():
            rows = np.flatnonzero(np.isin(batch.kind, codes))
            if len(rows):
                row = int(rows[-1])
                last = next(iter_events(batch.slice(row, row + 1)))
    if last is None:
        return Breaker("ok", detail="no breaker event")
    if isinstance(last, RiskReset):
        return Breaker("ok", since_ns=last.ts_event, detail=f"reset: {last.reason}")
    if isinstance(last, KillSwitchEngaged):
        return Breaker("killed", rule="kill_switch", since_ns=last.ts_event, detail=last.reason)
    assert isinstance(last, CircuitBreakerTripped)
    if last.until and last.until <= now_ns:
        return Breaker("ok", rule=last.rule, since_ns=last.ts_event, until_ns=last.until, detail="lifted at until")
    return Breaker("tripped", rule=last.rule, since_ns=last.ts_event, until_ns=last.until,
                   detail=f"loss {last.loss} limit {last.limit}")


# --------------------------------------------------------------------------- sessions


def disk_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (apparent size; the logs are not sparse)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                continue  # a manifest.json.tmp renamed under us
    return total


def find_sessions(root: Path) -> Iterator[Path]:
    """Directories holding ``session.json``, at depth 1 or 2 under ``root`` (``paper/2024-08-09``)."""
    if not root.is_dir():
        raise ConfigError(f"status root {root} is not a directory (--root)")
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if (child / SESSION_JSON).is_file():
            yield child
            continue
        for grandchild in sorted(p for p in child.iterdir() if p.is_dir()):
            if (grandchild / SESSION_JSON).is_file():
                yield grandchild


def session_status(path: Path, root: Path, now_ns: int) -> SessionStatus:
    """Everything the table shows for one session; problems are listed, never raised."""
    problems: list[str] = []
    try:
        info = json.loads((path / SESSION_JSON).read_text(encoding="utf-8"))
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        info = {}
        problems.append(f"{path / SESSION_JSON}: unreadable ({exc})")
    pid = info.get("pid") if isinstance(info.get("pid"), int) else None
    running = pid is not None and not info.get("stopped_at") and pid_running(pid)
    streams: tuple[StreamAge, ...] = ()
    feeds: dict[str, str] = {}
    seq = 0
    if (path / "input" / "manifest.json").is_file():
        try:
            streams, feeds, seq = stream_ages(path / "input", now_ns)
        except LogError as exc:
            problems.append(str(exc))
    breaker = Breaker("n/a", detail="no output log (record mode)")
    if (path / "out" / "manifest.json").is_file():
        try:
            breaker = breaker_state(path / "out", now_ns)
        except LogError as exc:
            breaker = Breaker("unknown", detail=str(exc))
    return SessionStatus(
        name=str(path.relative_to(root)),
        path=str(path),
        mode=str(info.get("mode", "?")),
        pid=pid,
        running=running,
        started_at=str(info.get("started_at") or ""),
        stop_reason=str(info.get("stop_reason") or ""),
        disk_bytes=disk_bytes(path),
        input_events=seq,
        streams=streams,
        feeds=feeds,
        breaker=breaker,
        problems=tuple(problems),
    )


def collect(root: Path, now_ns: int) -> dict[str, Any]:
    """The whole status document (what ``--json`` prints)."""
    sessions = [session_status(p, root, now_ns) for p in find_sessions(root)]
    usage = shutil.disk_usage(root)
    return {
        "root": str(root),
        "sessions": [asdict(s) for s in sessions],
        "disk": {"total_bytes": usage.total, "used_bytes": usage.used, "free_bytes": usage.free,
                 "sessions_bytes": sum(s.disk_bytes for s in sessions)},
    }


# --------------------------------------------------------------------------- output


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def render(doc: dict[str, Any]) -> str:
    """The human table: one line per session, its streams indented below it."""
    lines = [f"{'SESSION':<28} {'MODE':<7} {'PID':>7} {'STATE':<8} {'BREAKER':<9} {'EVENTS':>10} {'DISK':>10}"]
    for s in doc["sessions"]:
        state = "running" if s["running"] else "stopped"
        pid = str(s["pid"]) if s["pid"] is not None else "-"
        b = s["breaker"]
        breaker = b["state"] + (f"({b['rule']})" if b["state"] in ("tripped", "killed") else "")
        lines.append(
            f"{s['name']:<28} {s['mode']:<7} {pid:>7} {state:<8} {breaker:<9} {s['input_events']:>10} "
            f"{_size(s['disk_bytes']):>10}"
        )
        for st in s["streams"]:
            lines.append(f"    {st['stream']:<40} last event {st['age_s']:>10.1f} s ago ({st['events_in_segment']} in segment)")
        for feed, status in sorted(s["feeds"].items()):
            lines.append(f"    feed {feed:<35} {status}")
        lines.extend(f"    ! {p}" for p in s["problems"])
    d = doc["disk"]
    lines.append(
        f"disk {doc['root']}: {_size(d['free_bytes'])} free of {_size(d['total_bytes'])}; "
        f"sessions use {_size(d['sessions_bytes'])}"
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=DEFAULT_ROOT, help=f"where sessions live (default {DEFAULT_ROOT})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args: argparse.Namespace) -> int:
    doc = collect(Path(args.root), time.time_ns())
    sys.stdout.write((json.dumps(doc, sort_keys=True) if args.json else render(doc)) + "\n")
    return 0
