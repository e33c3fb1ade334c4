"""Reading source files: plain, gzip or single-member zip, streamed line by line.

This is the only I/O the importers do (besides the log writer). Compression is told by
the file's magic bytes, not its name. A truncated or corrupt archive becomes a located
:class:`BadRecord` naming the first line that could not be read, after every complete
line before it was handed out, so nothing before the cut is lost.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
import zlib
from collections.abc import Generator, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import IO, Any

from engine.errors import InputError

from .common import ENCODING, MALFORMED_JSON, TRUNCATED, BadRecord

_ARCHIVE_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile)


@contextmanager
def open_binary(path: str | Path) -> Iterator[IO[bytes]]:
    """The decompressed bytes of ``path`` as a buffered stream (gzip/zip by magic bytes)."""
    src = str(path)
    with ExitStack() as stack:
        try:
            raw = stack.enter_context(open(path, "rb"))
        except OSError as exc:
            raise InputError(f"cannot open: {exc.strerror or exc}", source=src) from exc
        magic = raw.read(4)
        raw.seek(0)
        if magic[:2] == b"\x1f\x8b":
            unzipped = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
            yield stack.enter_context(io.BufferedReader(unzipped, buffer_size=1 << 16))
        elif magic == b"PK\x03\x04":
            yield _zip_member(raw, src, stack)
        else:
            yield raw


def _zip_member(raw: IO[bytes], src: str, stack: ExitStack) -> IO[bytes]:
    """The one file inside a data.binance.vision style zip."""
    try:
        archive = stack.enter_context(zipfile.ZipFile(raw))
        names = [n for n in archive.namelist() if not n.endswith("/")]
    except _ARCHIVE_ERRORS as exc:
        raise BadRecord(f"truncated or corrupt zip: {exc}", category=TRUNCATED, source=src) from exc
    if len(names) != 1:
        raise InputError(f"zip must hold exactly one file, found {len(names)}: {names[:5]}", source=src)
    return stack.enter_context(archive.open(names[0]))


def iter_lines(path: str | Path) -> Generator[tuple[int, bytes], None, None]:
    """``(line number, line without its newline)`` for every line, streaming.

    A cut archive raises a located BadRecord (category ``truncated_input``) at the first line
    that could not be read completely; every complete line before it has been yielded.
    """
    src = str(path)
    lineno = 0
    with open_binary(path) as stream:
        while True:
            try:
                line = stream.readline()
                if line and not line.endswith(b"\n"):
                    stream.read(1)  # the unterminated last line: make sure the stream ended cleanly
            except _ARCHIVE_ERRORS as exc:
                raise BadRecord(
                    f"truncated or corrupt compressed file: no complete line after line {lineno} ({exc})",
                    category=TRUNCATED,
                    source=src,
                    line=lineno + 1,
                ) from exc
            if not line:
                return
            lineno += 1
            yield lineno, line.rstrip(b"\r\n")


def head_lines(path: str | Path, limit: int) -> list[bytes]:
    """Up to ``limit`` first lines, for sniffing; reading errors just end the list."""
    out: list[bytes] = []
    try:
        with closing(iter_lines(path)) as lines:
            for _, line in lines:
                out.append(line)
                if len(out) >= limit:
                    break
    except BadRecord:
        pass
    return out


def decode_text(line: bytes) -> str:
    """A line as UTF-8 text, or a BadRecord."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRecord(f"not UTF-8 text: {exc}", category=ENCODING) from None


def read_json_document(path: str | Path, *, exact_floats: bool = True) -> Any:
    """A whole (small) JSON document such as a REST response body.

    With ``exact_floats`` JSON floats are kept as their decimal text (``parse_float=str``)
    so no binary rounding ever happens (freqtrade stores floats; Binance sends strings).
    """
    import json

    src = str(path)
    with open_binary(path) as stream:
        try:
            data = stream.read()
        except _ARCHIVE_ERRORS as exc:
            raise BadRecord(
                f"truncated or corrupt compressed file ({exc})", category=TRUNCATED, source=src
            ) from exc
    try:
        return json.loads(
            decode_text(data), parse_float=str if exact_floats else float, parse_constant=_reject_constant
        )
    except BadRecord as exc:
        raise exc.at(src, None) from None
    except json.JSONDecodeError as exc:
        raise BadRecord(
            f"malformed JSON: {exc.msg} (column {exc.colno})",
            category=MALFORMED_JSON,
            source=src,
            line=exc.lineno,
        ) from None


def _reject_constant(name: str) -> Any:
    raise BadRecord(f"{name} is not a number Binance sends", category=MALFORMED_JSON)


def sha256_of(path: str | Path) -> str:
    """SHA-256 of the file's bytes as stored (compressed), for the manifest's provenance."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=str(path)) from exc
    return digest.hexdigest()
