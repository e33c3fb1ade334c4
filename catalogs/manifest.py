"""``manifest.json``: what a log directory holds, written atomically and deterministically.

The manifest is the log's table of contents: schema version, the code version that
created it, the caller's ``meta`` (instruments, config hash, ts_recv model...), the
seq range, one entry per segment (sealed ones with their SHA-256) and one entry per
writer session. It is rewritten whole (temp file, fsync, ``os.replace``, fsync of
the directory) so a reader sees either the old or the new one, never half.

It may lag the segment being written (it is not rewritten on every flush), so
readers trust segment bytes for the unsealed tail and the manifest for sealed
segments. The JSON has sorted keys and no wall-clock fields: a deterministic run
gives a byte-identical manifest, which run hashes rely on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from catalogs.schema import SCHEMA_VERSION
from engine.errors import LogError

MANIFEST_NAME = "manifest.json"
FORMAT = "tickloop-log"


def code_version() -> str:
    """The installed ``tickloop`` version, or ``0+unknown`` when it is not installed."""
    try:
        return metadata.version("tickloop")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One ``NNNNNN.arrows`` file. ``first_seq > last_seq`` (and ``events == 0``) when it holds no event."""

    name: str
    first_seq: int
    last_seq: int
    events: int
    bytes: int
    sealed: bool
    sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "events": self.events,
            "bytes": self.bytes,
            "sealed": self.sealed,
        }
        if self.sealed:
            out["sha256"] = self.sha256
        return out


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One writer open: the first seq it assigned (or would have) and whether it resumed a log."""

    start_seq: int
    resumed: bool

    def to_json(self) -> dict[str, Any]:
        return {"start_seq": self.start_seq, "resumed": self.resumed}


@dataclass(frozen=True, slots=True)
class Manifest:
    """The parsed ``manifest.json``. ``last_seq`` is 0 (and ``first_seq`` 1) for an empty log."""

    schema_version: int = SCHEMA_VERSION
    code_version: str = field(default_factory=code_version)
    meta: Mapping[str, Any] = field(default_factory=dict)
    first_seq: int = 1
    last_seq: int = 0
    segments: tuple[SegmentInfo, ...] = ()
    sessions: tuple[SessionInfo, ...] = ()

    def with_segments(self, segments: tuple[SegmentInfo, ...]) -> Manifest:
        """A copy with ``segments`` replaced and the seq range recomputed from them."""
        first = next((s.first_seq for s in segments if s.events), self.first_seq)
        last = max((s.last_seq for s in segments if s.events), default=self.last_seq)
        return replace(self, segments=segments, first_seq=first, last_seq=last)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": self.schema_version,
            "code_version": self.code_version,
            "meta": dict(self.meta),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "segments": [s.to_json() for s in self.segments],
            "sessions": [s.to_json() for s in self.sessions],
        }

    def dumps(self) -> bytes:
        """Canonical JSON bytes (sorted keys, fixed indentation, trailing newline)."""
        try:
            text = json.dumps(self.to_json(), sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise LogError(
                f"log meta is not plain JSON (str keys; str/int/float/bool/None/list/dict values): {exc}"
            ) from exc
        return (text + "\n").encode()


def check_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` as a plain dict that survives a JSON round trip unchanged, else LogError."""
    plain = dict(meta)
    probe = Manifest(meta=plain, code_version="").dumps()
    if json.loads(probe)["meta"] != plain:
        raise LogError("log meta changes through JSON (tuples, non-str keys?); pass lists and str keys")
    return plain


# --------------------------------------------------------------------------- parsing


def _get(obj: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise LogError(f"{where}: field {key!r} missing or not {getattr(typ, '__name__', typ)}: {value!r}")
    return value


def _segment(obj: Any, where: str) -> SegmentInfo:
    if not isinstance(obj, dict):
        raise LogError(f"{where}: segment entry is not an object")
    sealed = _get(obj, "sealed", bool, where)
    return SegmentInfo(
        name=_get(obj, "name", str, where),
        first_seq=_get(obj, "first_seq", int, where),
        last_seq=_get(obj, "last_seq", int, where),
        events=_get(obj, "events", int, where),
        bytes=_get(obj, "bytes", int, where),
        sealed=sealed,
        sha256=_get(obj, "sha256", str, where) if sealed else None,
    )


def parse_manifest(data: bytes, source: str) -> Manifest:
    """Parse and sanity-check manifest bytes; LogError names ``source`` and what is wrong."""
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise LogError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise LogError(f"{source}: not a tickloop log manifest (format != {FORMAT!r})")
    version = _get(obj, "schema_version", int, source)
    if version != SCHEMA_VERSION:
        raise LogError(f"{source}: log schema version {version}, this code reads version {SCHEMA_VERSION}")
    segments = tuple(
        _segment(s, f"{source}: segments[{i}]") for i, s in enumerate(_get(obj, "segments", list, source))
    )
    sessions = tuple(
        SessionInfo(_get(s, "start_seq", int, source), _get(s, "resumed", bool, source))
        for s in _get(obj, "sessions", list, source)
        if isinstance(s, dict)
    )
    names = [s.name for s in segments]
    if names != sorted(set(names)):
        raise LogError(f"{source}: segment names not unique and increasing: {names}")
    return Manifest(
        schema_version=version,
        code_version=_get(obj, "code_version", str, source),
        meta=_get(obj, "meta", dict, source),
        first_seq=_get(obj, "first_seq", int, source),
        last_seq=_get(obj, "last_seq", int, source),
        segments=segments,
        sessions=sessions,
    )


# --------------------------------------------------------------------------- I/O


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created, renamed files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(directory: Path) -> Manifest:
    """Load ``directory/manifest.json``; LogError naming the path when absent or invalid."""
    path = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise LogError(f"log directory not found: {directory}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LogError(f"not a tickloop log: {path} is missing") from None
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc}") from exc
    return parse_manifest(data, str(path))


def write_manifest(directory: Path, manifest: Manifest, *, fsync: bool = True) -> None:
    """Atomically replace ``directory/manifest.json`` (temp file + ``os.replace`` + dir fsync)."""
    data = manifest.dumps()
    tmp = directory / (MANIFEST_NAME + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, directory / MANIFEST_NAME)
        if fsync:
            fsync_dir(directory)
    except OSError as exc:
        raise LogError(f"cannot write {directory / MANIFEST_NAME}: {exc}") from exc
