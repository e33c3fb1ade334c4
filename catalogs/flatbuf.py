"""A minimal FlatBuffers builder and bounds-checked reader, just enough for Arrow IPC metadata.

Why hand-written: the log writer must run where pyarrow does not exist, and Arrow's
metadata uses a handful of FlatBuffers features only (tables, strings, vectors of
tables, vectors of structs, one-byte unions). A 200-line codec with no dependency is
easier to audit, deterministic by construction and faster to read than the generic
runtime.

Layout choice (builder): the buffer is written front to back (root offset, then each
table preceded by its own vtable, then its children depth first). Every ``uoffset``
therefore points forward, as the format requires, and the same tree always yields
the same bytes. Tables start 8-aligned, scalars are aligned to their size relative
to the buffer start, vectors of 8-byte structs have 8-aligned elements, strings are
NUL-terminated: what the C++ verifier that pyarrow runs insists on.

The reader never trusts an offset: every access is bounds-checked and a bad one
raises :class:`FlatbufferError` (a ``LogCorruptError``), which callers re-raise with
the file name and byte offset of the message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from engine.errors import LogCorruptError


class FlatbufferError(LogCorruptError):
    """Malformed FlatBuffers metadata (offset out of bounds, bad vtable, ...)."""


@dataclass(frozen=True, slots=True)
class Scalar:
    """An inline scalar; ``fmt`` is a ``struct`` code without byte order ("q", "B", "?"...)."""

    fmt: str
    value: int


@dataclass(frozen=True, slots=True)
class String:
    """A length-prefixed, NUL-terminated byte string (FlatBuffers strings are UTF-8)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Table:
    """A table: ``(slot, item)`` pairs; absent slots read back as their schema default."""

    fields: tuple[tuple[int, Item], ...]


@dataclass(frozen=True, slots=True)
class TableVector:
    """A vector of offsets to tables (e.g. ``[Field]``, ``[KeyValue]``)."""

    items: tuple[Table, ...]


@dataclass(frozen=True, slots=True)
class StructVector:
    """A vector of inline structs given as raw little-endian bytes (e.g. ``[Buffer]``)."""

    count: int
    data: bytes
    align: int = 8


Item = Scalar | String | Table | TableVector | StructVector


def build(root: Table) -> bytes:
    """Serialize ``root`` as a complete FlatBuffer (root offset first)."""
    ser = _Serializer()
    pos = ser.table(root)
    struct.pack_into("<I", ser.buf, 0, pos)
    return bytes(ser.buf)


def _align_up(n: int, align: int) -> int:
    return n + (-n % align)


class _Serializer:
    def __init__(self) -> None:
        self.buf = bytearray(4)  # root uoffset, patched last

    def _pad(self, align: int, extra: int = 0) -> None:
        """Zero-pad so that ``len(buf) + extra`` is a multiple of ``align``."""
        self.buf += bytes(-(len(self.buf) + extra) % align)

    def table(self, t: Table) -> int:
        items = sorted(t.fields, key=lambda f: f[0])
        nslots = items[-1][0] + 1 if items else 0
        layout: list[tuple[int, int, Item]] = []
        off = 4  # after the soffset to the vtable
        for slot, item in items:
            size = struct.calcsize("<" + item.fmt) if isinstance(item, Scalar) else 4
            off = _align_up(off, size)
            layout.append((slot, off, item))
            off += size
        vt_size = 4 + 2 * nslots
        vtable = [vt_size, off] + [0] * nslots
        for slot, field_off, _ in layout:
            vtable[2 + slot] = field_off
        self._pad(8, extra=vt_size)  # the table itself then starts 8-aligned
        vt_pos = len(self.buf)
        self.buf += struct.pack(f"<{len(vtable)}H", *vtable)
        tpos = len(self.buf)
        self.buf += bytes(off)
        struct.pack_into("<i", self.buf, tpos, tpos - vt_pos)
        children: list[tuple[int, Item]] = []
        for _, field_off, item in layout:
            if isinstance(item, Scalar):
                struct.pack_into("<" + item.fmt, self.buf, tpos + field_off, item.value)
            else:
                children.append((tpos + field_off, item))
        for field_pos, item in children:
            struct.pack_into("<I", self.buf, field_pos, self._place(item) - field_pos)
        return tpos

    def _place(self, item: Item) -> int:
        if isinstance(item, Table):
            return self.table(item)
        if isinstance(item, String):
            self._pad(4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(item.data)) + item.data + b"\x00"
            return pos
        if isinstance(item, StructVector):
            self._pad(item.align, extra=4)  # elements (after the length) aligned
            pos = len(self.buf)
            self.buf += struct.pack("<I", item.count) + item.data
            return pos
        if isinstance(item, TableVector):
            self._pad(4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(item.items)) + bytes(4 * len(item.items))
            for i, sub in enumerate(item.items):
                slot_pos = pos + 4 + 4 * i
                struct.pack_into("<I", self.buf, slot_pos, self.table(sub) - slot_pos)
            return pos
        raise TypeError(f"cannot serialize {item!r} as a flatbuffer field")  # pragma: no cover


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_VT_HEAD = struct.Struct("<HH")


class Reader:
    """Bounds-checked access to one FlatBuffer held in ``buf`` (bytes or memoryview).

    Positions are byte offsets inside ``buf``. Table accessors take the position of
    a table and a field slot (0-based, as in the .fbs declaration order, where a
    union counts as two slots: its type then its value).
    """

    __slots__ = ("buf", "size")

    def __init__(self, buf: bytes | memoryview) -> None:
        self.buf = buf
        self.size = len(buf)

    def _need(self, pos: int, n: int, what: str) -> None:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise FlatbufferError(f"{what} at {pos} (+{n} bytes) is outside the {self.size}-byte metadata")

    def _follow(self, pos: int, what: str) -> int:
        self._need(pos, 4, what)
        target: int = pos + _U32.unpack_from(self.buf, pos)[0]
        self._need(target, 4, what)
        return target

    def root(self) -> int:
        """Position of the root table."""
        return self._follow(0, "root table offset")

    def field(self, table: int, slot: int, size: int) -> int | None:
        """Position of a present field of ``size`` bytes, or None when absent."""
        if table < 0 or table + 4 > self.size:
            raise FlatbufferError(f"table at {table} is outside the {self.size}-byte metadata")
        vt = table - _I32.unpack_from(self.buf, table)[0]
        if vt < 0 or vt + 4 > self.size:
            raise FlatbufferError(f"vtable at {vt} is outside the {self.size}-byte metadata")
        vsize, tsize = _VT_HEAD.unpack_from(self.buf, vt)
        if vsize < 4 or vsize % 2 or vt + vsize > self.size or table + tsize > self.size:
            raise FlatbufferError(
                f"vtable at {vt} (size {vsize}, table size {tsize}) is invalid or out of bounds"
            )
        entry = 4 + 2 * slot
        if entry + 2 > vsize:
            return None
        off: int = _U16.unpack_from(self.buf, vt + entry)[0]
        if off == 0:
            return None
        if off < 4 or off + size > tsize:
            raise FlatbufferError(
                f"field {slot} of table at {table} lies outside the table ({off}+{size} > {tsize})"
            )
        return table + off

    def scalar(self, table: int, slot: int, fmt: str, default: int) -> int:
        """A scalar field (``fmt`` is a struct code such as "q", "h", "B", "?")."""
        code = "<" + fmt
        pos = self.field(table, slot, struct.calcsize(code))
        if pos is None:
            return default
        return int(struct.unpack_from(code, self.buf, pos)[0])

    def table(self, table: int, slot: int) -> int | None:
        """The sub-table a field points to, or None."""
        pos = self.field(table, slot, 4)
        return None if pos is None else self._follow(pos, f"table field {slot}")

    def vector(self, table: int, slot: int, elem_size: int) -> tuple[int, int] | None:
        """``(first element position, count)`` of a vector field, or None; elements are checked in bounds."""
        pos = self.field(table, slot, 4)
        if pos is None:
            return None
        vec = self._follow(pos, f"vector field {slot}")
        count: int = _U32.unpack_from(self.buf, vec)[0]
        self._need(vec + 4, count * elem_size, f"vector field {slot} ({count} elements)")
        return vec + 4, count

    def string(self, table: int, slot: int) -> bytes | None:
        """A string field's bytes (without the terminator), or None."""
        vec = self.vector(table, slot, 1)
        if vec is None:
            return None
        start, count = vec
        self._need(start + count, 1, "string terminator")
        return bytes(self.buf[start : start + count])

    def vector_table(self, elems: int, index: int) -> int:
        """Position of table ``index`` of a vector of tables starting at ``elems``."""
        return self._follow(elems + 4 * index, f"vector element {index}")
