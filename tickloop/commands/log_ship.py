"""``tickloop log ship LOGDIR DEST``: copy a log's SEALED segments off the board, verified.

Why sealed only: a sealed segment is immutable and its SHA-256 is in the manifest, so a
copy can be proven identical at the destination; the open segment is still growing and
is shipped on a later run, once the writer has rolled or closed it.

What it guarantees:

- **verified**: every segment is hashed *at the destination* and compared with the source
  manifest's SHA-256 before it is given its final name and listed in DEST's manifest;
- **resumable**: a segment is copied to ``NAME.partial``; an interrupted copy continues
  from the bytes already there (a hash mismatch restarts that segment once from zero);
- **idempotent**: segments DEST's manifest already lists with the same SHA-256 are skipped;
  DEST is itself a valid log (manifest + sealed segments) that ``tickloop catalog compact``
  reads on the workstation, and it only ever grows;
- ``--delete-after-verify`` then removes the shipped segments from LOGDIR and rewrites its
  manifest without them, only when no writer holds the log (the writer's ``flock``): a live
  writer rewrites the manifest from memory and would list the deleted files again. The newest
  segment is always kept, so a writer resuming the log numbers its next segment after it
  (never reusing a name DEST already holds); it goes on a later run.

DEST is a local path or ``[user@]host:path`` (ssh with coreutils on the far side: ``stat``,
``cat``, ``sha256sum``, ``mv``; ``$TICKLOOP_SSH`` overrides the ssh command, e.g. to add ``-i KEY``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from catalogs.manifest import (
    MANIFEST_NAME,
    Manifest,
    SegmentInfo,
    parse_manifest,
    read_manifest,
    write_manifest,
)
from engine.errors import ConfigError, LogCorruptError, LogError

_CHUNK = 1 << 20
_REMOTE_RE = re.compile(r"^(?P<host>[^/:]+):(?P<path>.+)$")
PARTIAL = ".partial"


# --------------------------------------------------------------------------- destinations


class Destination(Protocol):
    """Where segments go. Every method names DEST in its errors."""

    @property
    def label(self) -> str: ...

    def prepare(self) -> None: ...
    def read_manifest(self) -> bytes | None: ...
    def size(self, name: str) -> int | None: ...
    def append(self, src: Path, name: str, offset: int) -> None: ...
    def sha256(self, name: str) -> str: ...
    def rename(self, src: str, dst: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def write_manifest(self, manifest: Manifest) -> None: ...


def _chunks(src: Path, offset: int) -> Iterator[bytes]:
    with open(src, "rb") as fh:
        fh.seek(offset)
        while chunk := fh.read(_CHUNK):
            yield chunk


@dataclass(frozen=True, slots=True)
class LocalDestination:
    """A directory on this machine (another disk, an NFS mount)."""

    path: Path

    @property
    def label(self) -> str:
        return str(self.path)

    def prepare(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LogError(f"cannot create destination {self.path}: {exc}") from exc

    def read_manifest(self) -> bytes | None:
        try:
            return (self.path / MANIFEST_NAME).read_bytes()
        except FileNotFoundError:
            return None

    def size(self, name: str) -> int | None:
        try:
            return (self.path / name).stat().st_size
        except FileNotFoundError:
            return None

    def append(self, src: Path, name: str, offset: int) -> None:
        target = self.path / name
        try:
            with open(target, "r+b" if offset else "wb") as out:
                out.truncate(offset)
                out.seek(offset)
                for chunk in _chunks(src, offset):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise LogError(f"copy of {src} to {target} failed: {exc}") from exc

    def sha256(self, name: str) -> str:
        h = hashlib.sha256()
        for chunk in _chunks(self.path / name, 0):
            h.update(chunk)
        return h.hexdigest()

    def rename(self, src: str, dst: str) -> None:
        os.replace(self.path / src, self.path / dst)

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / name).unlink()

    def write_manifest(self, manifest: Manifest) -> None:
        write_manifest(self.path, manifest)


@dataclass(frozen=True, slots=True)
class SshDestination:
    """``host:path`` over ssh; only coreutils are needed on the far side (no rsync, no tickloop)."""

    host: str
    path: str
    ssh: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.host}:{self.path}"

    def _run(self, command: str, *, stdin: BinaryIO | None = None, data: bytes | None = None) -> str:
        """Run ``command`` on the far side; ``stdin`` (a file at the right offset) or ``data`` feed it."""
        argv = [*self.ssh, self.host, command]
        try:
            if stdin is not None:
                proc = subprocess.run(argv, stdin=stdin, capture_output=True, check=False)
            else:
                proc = subprocess.run(argv, input=data or b"", capture_output=True, check=False)
        except OSError as exc:
            raise ConfigError(f"cannot run {argv[0]!r} for destination {self.label}: {exc}") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise LogError(f"{self.label}: `{command}` failed ({proc.returncode}): {err}")
        return proc.stdout.decode()

    def _q(self, name: str = "") -> str:
        return shlex.quote(f"{self.path.rstrip('/')}/{name}" if name else self.path)

    def prepare(self) -> None:
        self._run(f"mkdir -p {self._q()}")

    def read_manifest(self) -> bytes | None:
        out = self._run(f"if [ -f {self._q(MANIFEST_NAME)} ]; then cat {self._q(MANIFEST_NAME)}; else echo -n; fi")
        return out.encode() if out else None

    def size(self, name: str) -> int | None:
        out = self._run(f"stat -c %s {self._q(name)} 2>/dev/null || true").strip()
        return int(out) if out.isdigit() else None

    def append(self, src: Path, name: str, offset: int) -> None:
        with open(src, "rb") as fh:
            fh.seek(offset)
            self._run(f"truncate -s {int(offset)} {self._q(name)} && cat >> {self._q(name)} && sync {self._q(name)}",
                      stdin=fh)

    def sha256(self, name: str) -> str:
        return self._run(f"sha256sum {self._q(name)}").split()[0]

    def rename(self, src: str, dst: str) -> None:
        self._run(f"mv -f {self._q(src)} {self._q(dst)}")

    def remove(self, name: str) -> None:
        self._run(f"rm -f {self._q(name)}")

    def write_manifest(self, manifest: Manifest) -> None:
        tmp = MANIFEST_NAME + ".tmp"
        data = manifest.dumps()
        self._run(f"cat > {self._q(tmp)} && sync {self._q(tmp)} && mv -f {self._q(tmp)} {self._q(MANIFEST_NAME)}",
                  data=data)


def destination(dest: str, ssh_command: str | None = None) -> Destination:
    """``host:path`` (no ``/`` before the colon) is remote; anything else is a local path."""
    match = _REMOTE_RE.match(dest)
    if match is None or Path(dest).exists():
        return LocalDestination(Path(dest))
    ssh = shlex.split(ssh_command or os.environ.get("TICKLOOP_SSH", "ssh -o BatchMode=yes"))
    if not ssh:
        raise ConfigError("$TICKLOOP_SSH is empty: it must name the ssh command")
    return SshDestination(match["host"], match["path"], tuple(ssh))


# --------------------------------------------------------------------------- shipping


@dataclass(frozen=True, slots=True)
class ShipResult:
    """What one run did; ``shipped`` and ``present`` list segment names."""

    source: str
    dest: str
    shipped: tuple[str, ...]
    present: tuple[str, ...]
    unsealed: tuple[str, ...]
    deleted: tuple[str, ...]
    bytes_copied: int
    delete_deferred: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "dest": self.dest,
            "shipped": list(self.shipped),
            "already_present": list(self.present),
            "unsealed_skipped": list(self.unsealed),
            "deleted": list(self.deleted),
            "bytes_copied": self.bytes_copied,
            "delete_deferred": self.delete_deferred or None,
        }


def _dest_manifest(dest: Destination, source: Manifest) -> Manifest:
    """DEST's manifest, or an empty one carrying the source's meta; refuses a different log."""
    data = dest.read_manifest()
    if data is None:
        return Manifest(code_version=source.code_version, meta=dict(source.meta), sessions=source.sessions)
    have = parse_manifest(data, f"{dest.label}/{MANIFEST_NAME}")
    ours = {s.name: s.sha256 for s in source.segments if s.sealed}
    for seg in have.segments:
        if seg.name in ours and ours[seg.name] != seg.sha256:
            raise LogError(
                f"{dest.label}: segment {seg.name} has SHA-256 {seg.sha256}, the source log's is {ours[seg.name]}:"
                " DEST holds a different log"
            )
    return have


def _merge(dest_m: Manifest, source: Manifest, seg: SegmentInfo) -> Manifest:
    """DEST's manifest with ``seg`` listed (kept in name order) and the source's meta and sessions."""
    segments = sorted((*(s for s in dest_m.segments if s.name != seg.name), seg), key=lambda s: s.name)
    merged = replace(dest_m, meta=dict(source.meta), sessions=source.sessions, code_version=source.code_version)
    return merged.with_segments(tuple(segments))


def _ship_one(dest: Destination, logdir: Path, seg: SegmentInfo) -> int:
    """Copy (resuming a ``.partial``), verify at DEST, give the final name; returns bytes copied."""
    partial = seg.name + PARTIAL
    copied = 0
    for attempt in range(2):
        have = dest.size(partial)
        offset = have if have is not None and have <= seg.bytes and attempt == 0 else 0
        if offset < seg.bytes:
            dest.append(logdir / seg.name, partial, offset)
            copied += seg.bytes - offset
        if dest.size(partial) == seg.bytes and dest.sha256(partial) == seg.sha256:
            dest.rename(partial, seg.name)
            return copied
        dest.remove(partial)
    raise LogCorruptError(
        f"{logdir / seg.name}: the copy at {dest.label} does not match the manifest's SHA-256 {seg.sha256}"
        f" after two attempts (run `tickloop log info {logdir}` / LogReader.verify on the source)"
    )


def _already_there(dest: Destination, dest_m: Manifest, seg: SegmentInfo) -> bool:
    """Listed in DEST's manifest with the same hash, or a verified file a crash left unlisted."""
    listed = next((s for s in dest_m.segments if s.name == seg.name), None)
    if listed is not None and dest.size(seg.name) == seg.bytes:
        return True
    return dest.size(seg.name) == seg.bytes and dest.sha256(seg.name) == seg.sha256


def ship(logdir: str | Path, dest_spec: str, *, delete_after_verify: bool = False) -> ShipResult:
    """Ship every sealed segment of ``logdir`` to ``dest_spec``; see the module docstring."""
    src = Path(logdir)
    source = read_manifest(src)
    dest = destination(dest_spec)
    dest.prepare()
    dest_m = _dest_manifest(dest, source)
    sealed = [s for s in source.segments if s.sealed and s.events]
    unsealed = tuple(s.name for s in source.segments if not s.sealed)
    shipped: list[str] = []
    present: list[str] = []
    copied = 0
    for seg in sealed:
        if _already_there(dest, dest_m, seg):
            present.append(seg.name)
        else:
            copied += _ship_one(dest, src, seg)
            shipped.append(seg.name)
        dest_m = _merge(dest_m, source, seg)
        dest.write_manifest(dest_m)
    if not sealed and dest.read_manifest() is None:
        dest.write_manifest(dest_m)
    deleted: tuple[str, ...] = ()
    deferred = ""
    if delete_after_verify and sealed:
        deleted, deferred = _delete_shipped(src, {s.name for s in sealed})
    return ShipResult(str(src), dest.label, tuple(shipped), tuple(present), unsealed, deleted, copied, deferred)


def _delete_shipped(src: Path, verified: set[str]) -> tuple[tuple[str, ...], str]:
    """Remove verified segments from the source log under its lock; defer when a writer holds it."""
    fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return (), f"{src} is open by a writer; its shipped segments stay until it is closed"
        manifest = read_manifest(src)  # re-read under the lock
        newest = manifest.segments[-1].name if manifest.segments else ""
        # The newest segment stays: the writer numbers a new segment after the newest one listed,
        # and an empty manifest would make it reuse 000001, a name DEST already holds.
        gone = tuple(s.name for s in manifest.segments if s.name in verified and s.sealed and s.name != newest)
        keep = tuple(s for s in manifest.segments if s.name not in gone)
        write_manifest(src, manifest.with_segments(keep))
        for name in gone:
            with contextlib.suppress(FileNotFoundError):
                (src / name).unlink()
        return gone, ""
    finally:
        os.close(fd)  # releases the flock


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logdir", metavar="LOGDIR", help="the log directory to ship from")
    parser.add_argument("dest", metavar="DEST", help="a local directory or [user@]host:path (ssh)")
    parser.add_argument(
        "--delete-after-verify",
        action="store_true",
        help="remove shipped segments from LOGDIR once verified at DEST (only when no writer has LOGDIR open)",
    )


def run(args: argparse.Namespace) -> int:
    result = ship(args.logdir, args.dest, delete_after_verify=args.delete_after_verify)
    json.dump(result.to_json(), sys.stdout)
    sys.stdout.write("\n")
    return 0
