"""A tiny protobuf wire-format reader for the parts of ONNX that inference needs.

Why: the riscv64 board may have neither ``onnx`` nor ``protobuf``, yet it must load the
same ``.onnx`` file the workstation exported. ONNX files are plain protobuf, and the
handful of messages a small model uses (ModelProto, GraphProto, NodeProto, AttributeProto,
TensorProto, ValueInfoProto and the type/shape messages) are decoded here by field number
(see ``onnx/onnx.proto``). Unknown fields are skipped, as protobuf requires; repeated
scalars are accepted packed and unpacked. Nothing is copied from ``onnx``: the field
numbers are the format, the code is ours.

Errors (truncated buffer, bad wire type, unsupported tensor storage) raise
:class:`engine.errors.ConfigError` naming the file and, where it helps, the byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from engine.errors import ConfigError
from strategies.inference.graph import AttrValue, Graph, Node, ValueInfo, numpy_dtype

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_U64 = 1 << 64
# data types stored in int32_data (TensorProto comment: int32, int16, int8, uint16, uint8, bool, float16)
_IN_INT32_DATA = {2, 3, 4, 5, 6, 9, 10}


class _Reader:
    """Walks the fields of one message in ``buf[start:end]``."""

    __slots__ = ("buf", "source")

    def __init__(self, buf: memoryview, source: str) -> None:
        self.buf = buf
        self.source = source

    def fail(self, pos: int, why: str) -> ConfigError:
        return ConfigError(f"{self.source}: malformed ONNX protobuf at byte {pos}: {why}")

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """(value, next position) of the varint at ``pos``."""
        buf = self.buf
        result = 0
        shift = 0
        while True:
            if pos >= end:
                raise self.fail(pos, "truncated varint")
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result, pos
            shift += 7
            if shift >= 70:
                raise self.fail(pos, "varint longer than 10 bytes")

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, Any, int]]:
        """(field number, wire type, value, offset) for each field.

        The value is an int for varint/fixed fields and a ``(start, end)`` pair for
        length-delimited ones (decoded lazily by the caller).
        """
        pos = start
        while pos < end:
            at = pos
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise self.fail(at, "field number 0")
            value: Any
            if wire == _VARINT:
                value, pos = self.varint(pos, end)
            elif wire == _I64:
                if pos + 8 > end:
                    raise self.fail(pos, "truncated 64-bit field")
                value = int.from_bytes(self.buf[pos : pos + 8], "little")
                pos += 8
            elif wire == _I32:
                if pos + 4 > end:
                    raise self.fail(pos, "truncated 32-bit field")
                value = int.from_bytes(self.buf[pos : pos + 4], "little")
                pos += 4
            elif wire == _LEN:
                length, pos = self.varint(pos, end)
                if pos + length > end:
                    raise self.fail(pos, f"length {length} runs past the end of the message")
                value = (pos, pos + length)
                pos += length
            else:
                raise self.fail(at, f"unsupported wire type {wire} (field {number})")
            yield number, wire, value, at

    def text(self, span: tuple[int, int]) -> str:
        return bytes(self.buf[span[0] : span[1]]).decode("utf-8", errors="replace")

    def raw(self, span: tuple[int, int]) -> bytes:
        return bytes(self.buf[span[0] : span[1]])

    def packed_varints(self, span: tuple[int, int]) -> list[int]:
        out = []
        pos, end = span
        while pos < end:
            v, pos = self.varint(pos, end)
            out.append(v)
        return out


def _signed64(v: int) -> int:
    return v - _U64 if v >= 1 << 63 else v


def _f32(bits: int) -> float:
    value: float = struct.unpack("<f", bits.to_bytes(4, "little"))[0]
    return value


def _f64(bits: int) -> float:
    value: float = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
    return value


def _ints(r: _Reader, wire: int, value: Any, out: list[int]) -> None:
    """Append a repeated int64/int32 field's values (packed or not)."""
    if wire == _LEN:
        out.extend(_signed64(v) for v in r.packed_varints(value))
    else:
        out.append(_signed64(value))


def _floats(r: _Reader, wire: int, value: Any, out: list[float]) -> None:
    """Append a repeated float field's values (packed or not)."""
    if wire == _LEN:
        out.extend(float(v) for v in np.frombuffer(r.raw(value), dtype="<f4"))
    else:
        out.append(_f32(value))


def parse_model(data: bytes, source: str) -> Graph:
    """Decode a serialized ModelProto into a :class:`Graph`."""
    r = _Reader(memoryview(data), source)
    ir_version = 0
    producer = ""
    opsets: dict[str, int] = {}
    metadata: dict[str, str] = {}
    graph_span: tuple[int, int] | None = None
    for number, wire, value, _ in r.fields(0, len(data)):
        if number == 1 and wire == _VARINT:
            ir_version = _signed64(value)
        elif number == 2 and wire == _LEN:
            producer = r.text(value)
        elif number == 7 and wire == _LEN:
            graph_span = value
        elif number == 8 and wire == _LEN:
            domain, version = _opset(r, value)
            opsets[domain] = version
        elif number == 14 and wire == _LEN:
            key, text = _string_pair(r, value)
            metadata[key] = text
    if graph_span is None:
        raise ConfigError(f"{source}: not an ONNX model (no graph found)")
    return _graph(r, graph_span, ir_version=ir_version, producer=producer, opsets=opsets, metadata=metadata)


def _string_pair(r: _Reader, span: tuple[int, int]) -> tuple[str, str]:
    """(key, value) of a StringStringEntryProto."""
    key = value_text = ""
    for number, wire, value, _ in r.fields(*span):
        if number == 1 and wire == _LEN:
            key = r.text(value)
        elif number == 2 and wire == _LEN:
            value_text = r.text(value)
    return key, value_text


def _opset(r: _Reader, span: tuple[int, int]) -> tuple[str, int]:
    domain, version = "", 0
    for number, wire, value, _ in r.fields(*span):
        if number == 1 and wire == _LEN:
            domain = r.text(value)
        elif number == 2 and wire == _VARINT:
            version = _signed64(value)
    return domain, version


def _graph(
    r: _Reader,
    span: tuple[int, int],
    *,
    ir_version: int,
    producer: str,
    opsets: dict[str, int],
    metadata: dict[str, str],
) -> Graph:
    name = ""
    nodes: list[Node] = []
    inits: dict[str, np.ndarray] = {}
    inputs: list[ValueInfo] = []
    outputs: list[ValueInfo] = []
    for number, wire, value, at in r.fields(*span):
        if wire != _LEN:
            continue
        if number == 1:
            nodes.append(_node(r, value))
        elif number == 2:
            name = r.text(value)
        elif number == 5:
            tname, arr = _tensor(r, value, at)
            inits[tname] = arr
        elif number == 15:
            raise r.fail(at, "sparse initializers are not supported")
        elif number == 11:
            inputs.append(_value_info(r, value))
        elif number == 12:
            outputs.append(_value_info(r, value))
    return Graph(
        name=name,
        nodes=tuple(nodes),
        initializers=inits,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        opsets=opsets,
        ir_version=ir_version,
        producer=producer,
        metadata=metadata,
    )


def _node(r: _Reader, span: tuple[int, int]) -> Node:
    inputs: list[str] = []
    outputs: list[str] = []
    name = op_type = domain = ""
    attrs: dict[str, AttrValue] = {}
    for number, wire, value, at in r.fields(*span):
        if wire != _LEN:
            continue
        if number == 1:
            inputs.append(r.text(value))
        elif number == 2:
            outputs.append(r.text(value))
        elif number == 3:
            name = r.text(value)
        elif number == 4:
            op_type = r.text(value)
        elif number == 7:
            domain = r.text(value)
        elif number == 5:
            aname, avalue = _attribute(r, value, at)
            attrs[aname] = avalue
    return Node(
        name=name,
        op_type=op_type,
        domain=domain,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        attributes=attrs,
    )


def _attribute(r: _Reader, span: tuple[int, int], at: int) -> tuple[str, AttrValue]:
    """(name, value) of an AttributeProto; values of graph/sparse/type kinds become None."""
    name = ""
    kind = 0
    f: float | None = None
    i: int | None = None
    s: bytes | None = None
    t: np.ndarray | None = None
    floats: list[float] = []
    ints: list[int] = []
    strings: list[bytes] = []
    tensors: list[np.ndarray] = []
    for number, wire, value, fat in r.fields(*span):
        if number == 1 and wire == _LEN:
            name = r.text(value)
        elif number == 20 and wire == _VARINT:
            kind = value
        elif number == 2 and wire == _I32:
            f = _f32(value)
        elif number == 3 and wire == _VARINT:
            i = _signed64(value)
        elif number == 4 and wire == _LEN:
            s = r.raw(value)
        elif number == 5 and wire == _LEN:
            t = _tensor(r, value, fat)[1]
        elif number == 7:
            _floats(r, wire, value, floats)
        elif number == 8:
            _ints(r, wire, value, ints)
        elif number == 9 and wire == _LEN:
            strings.append(r.raw(value))
        elif number == 10 and wire == _LEN:
            tensors.append(_tensor(r, value, fat)[1])
    by_kind: dict[int, AttrValue] = {
        1: f if f is not None else 0.0,
        2: i if i is not None else 0,
        3: s if s is not None else b"",
        4: t,
        6: tuple(floats),
        7: tuple(ints),
        8: tuple(strings),
        9: tuple(tensors),
    }
    if kind == 0:  # pre-IR-3 files may omit the type: infer it from the field present
        kind = next((k for k, v in ((1, f), (2, i), (3, s), (4, t)) if v is not None), 0)
        kind = kind or next((k for k, v in ((6, floats), (7, ints), (8, strings), (9, tensors)) if v), 0)
    return name, by_kind.get(kind)


def _tensor(r: _Reader, span: tuple[int, int], at: int) -> tuple[str, np.ndarray]:
    """(name, array) of a TensorProto; the array is read-only."""
    dims: list[int] = []
    dtype_code = 0
    name = ""
    raw: bytes | None = None
    location = 0
    ints: list[int] = []
    floats: list[float] = []
    doubles: list[float] = []
    strings: list[bytes] = []
    for number, wire, value, _ in r.fields(*span):
        if number == 1:
            _ints(r, wire, value, dims)
        elif number == 2 and wire == _VARINT:
            dtype_code = value
        elif number == 8 and wire == _LEN:
            name = r.text(value)
        elif number == 9 and wire == _LEN:
            raw = r.raw(value)
        elif number == 14 and wire == _VARINT:
            location = value
        elif number in (5, 7, 11):  # int32_data, int64_data, uint64_data (varints)
            if wire == _LEN:
                ints.extend(r.packed_varints(value))
            else:
                ints.append(value)
        elif number == 4:
            _floats(r, wire, value, floats)
        elif number == 10:
            if wire == _LEN:
                doubles.extend(float(v) for v in np.frombuffer(r.raw(value), dtype="<f8"))
            else:
                doubles.append(_f64(value))
        elif number == 6 and wire == _LEN:
            strings.append(r.raw(value))
    if location == 1:
        raise r.fail(at, f"tensor {name!r} keeps its data in an external file, which is not supported")
    return name, _tensor_array(r, at, name, dtype_code, dims, raw, ints, floats, doubles, strings)


def _tensor_array(
    r: _Reader,
    at: int,
    name: str,
    code: int,
    dims: list[int],
    raw: bytes | None,
    ints: list[int],
    floats: list[float],
    doubles: list[float],
    strings: list[bytes],
) -> np.ndarray:
    """Build the array from whichever storage field the writer used."""
    shape = tuple(dims)
    if code == 8:
        arr = np.empty(len(strings), dtype=object)
        arr[:] = [b.decode("utf-8", errors="replace") for b in strings]
    else:
        try:
            dtype = numpy_dtype(code)
        except ConfigError as exc:
            raise r.fail(at, f"tensor {name!r}: {exc}") from None
        if raw is not None:
            arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
        elif code == 1:
            arr = np.array(floats, dtype=np.float32)
        elif code == 11:
            arr = np.array(doubles, dtype=np.float64)
        elif code == 10:  # float16 bits in int32_data
            arr = np.array(ints, dtype=np.uint16).view(np.float16)
        elif code in _IN_INT32_DATA:
            arr = np.array([_signed64(v) for v in ints], dtype=np.int64).astype(dtype)
        elif code == 7:
            arr = np.array([_signed64(v) for v in ints], dtype=np.int64)
        else:  # uint32 / uint64 in uint64_data
            arr = np.array(ints, dtype=np.uint64).astype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if arr.size != size:
        raise r.fail(at, f"tensor {name!r} has {arr.size} values for shape {list(shape)}")
    arr = arr.reshape(shape)
    arr.flags.writeable = False
    return arr


def _value_info(r: _Reader, span: tuple[int, int]) -> ValueInfo:
    name = ""
    elem_type = 0
    shape: tuple[int | str | None, ...] | None = None
    for number, wire, value, _ in r.fields(*span):
        if number == 1 and wire == _LEN:
            name = r.text(value)
        elif number == 2 and wire == _LEN:
            elem_type, shape = _type_proto(r, value)
    return ValueInfo(name=name, elem_type=elem_type, shape=shape)


def _type_proto(r: _Reader, span: tuple[int, int]) -> tuple[int, tuple[int | str | None, ...] | None]:
    """(elem_type, shape) of a tensor TypeProto; (0, None) for other kinds (sequence, map...)."""
    for number, wire, value, _ in r.fields(*span):
        if number == 1 and wire == _LEN:
            elem_type = 0
            shape: tuple[int | str | None, ...] | None = None
            for n2, w2, v2, _ in r.fields(*value):
                if n2 == 1 and w2 == _VARINT:
                    elem_type = v2
                elif n2 == 2 and w2 == _LEN:
                    shape = tuple(_dim(r, d) for n3, w3, d, _ in r.fields(*v2) if n3 == 1 and w3 == _LEN)
            return elem_type, shape
    return 0, None


def _dim(r: _Reader, span: tuple[int, int]) -> int | str | None:
    for number, wire, value, _ in r.fields(*span):
        if number == 1 and wire == _VARINT:
            return _signed64(value)
        if number == 2 and wire == _LEN:
            return r.text(value)
    return None
