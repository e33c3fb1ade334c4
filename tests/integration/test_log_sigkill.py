"""Integration: SIGKILL a writer process mid-stream; the log must hold a clean prefix and resume.

The child (``_sigkill_writer.py``) appends a deterministic event stream and reports
the flushed seq after every flush. After the kill, the reader must see no corrupt
batch, exactly a prefix of the generated stream, at least everything reported
flushed and at most one more batch. ``resume=True`` then cuts any torn tail and
continues the seq.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalogs.log import FlushPolicy, LogReader, LogWriter
from engine.events import Event, with_seq
from tests.integration._sigkill_writer import generate

pytestmark = pytest.mark.edge

HELPER = Path(__file__).with_name("_sigkill_writer.py")
REPO = Path(__file__).resolve().parents[2]


def _reported(report: Path) -> int:
    """The last complete line of the child's report (0 before its first flush)."""
    lines = report.read_bytes().split(b"\n")[:-1] if report.exists() else []
    return int(lines[-1]) if lines else 0


def _run_and_kill(log: Path, report: Path, mode: str, max_events: int, interval_ns: int, target: int) -> int:
    """Start the child, let it flush past ``target`` seq, SIGKILL it; returns the last reported seq."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, str(HELPER), str(log), mode, str(max_events), str(interval_ns), str(report)]
    child = subprocess.Popen(args, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # a safety net against a hung child, not a timing assertion
        while _reported(report) < target:
            if child.poll() is not None:
                raise AssertionError(f"writer exited early ({child.returncode}): {child.stderr.read()!r}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError(f"writer did not reach seq {target}; reported {_reported(report)}")
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stderr is not None
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    return _reported(report)


def _expected(n: int) -> list[Event]:
    return [with_seq(generate(i), i + 1) for i in range(n)]


@pytest.mark.parametrize(
    ("mode", "max_events", "interval_ns", "target"),
    [
        ("count", 64, 0, 3_000),  # small batches, many flushes and segment rolls
        ("count", 4096, 0, 12_000),  # ~600 KB writes: a kill can land inside one
        ("time", 100_000, 2_000_000, 1_500),  # flushes driven by the 2 ms time policy
    ],
)
def test_sigkill_leaves_a_clean_prefix_and_resume_continues(
    tmp_path: Path, mode: str, max_events: int, interval_ns: int, target: int
) -> None:
    log, report = tmp_path / "log", tmp_path / "flushed.txt"
    reported = _run_and_kill(log, report, mode, max_events, interval_ns, target)

    with LogReader(log) as reader:
        got = list(reader.events())
        torn = reader.torn_tail
        batch_sizes = [b.length for b in reader.batches()]
    n = len(got)
    assert got == _expected(n), "the log must hold exactly a prefix of the generated stream"
    assert reported <= n <= reported + max_events, (reported, n)
    assert len(torn) <= 1
    if mode == "time":
        assert max(batch_sizes) < max_events  # only the time policy flushed

    policy = FlushPolicy(max_events=max_events, max_interval_ns=None, segment_max_bytes=300_000, fsync=True)
    with LogWriter(log, policy=policy, resume=True, meta={"gen": 1}) as writer:
        assert writer.torn_tail == torn  # resume cut exactly what the reader ignored
        assert writer.last_seq == n
        for i in range(n, n + 500):
            assert writer.append(generate(i)) == i + 1

    with LogReader(log) as reader:
        assert reader.torn_tail == []
        reader.verify()
        assert list(reader.events()) == _expected(n + 500)
        assert all(s.sealed for s in reader.manifest.segments)
        sessions = [(s.start_seq, s.resumed) for s in reader.manifest.sessions]
        assert sessions == [(1, False), (n + 1, True)]
