"""The ONNX graph as plain frozen values, read by ``onnx`` or by our own protobuf reader.

Why a neutral form: the numpy backend, the model metadata and the tests should not care
which parser read the file. ``onnx`` is used when it is installed (``parser="auto"``); the
riscv64 board usually lacks it, and then :mod:`strategies.inference._proto` decodes the
same fields. Tests check both give identical graphs and weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from engine.errors import ConfigError

AttrValue = (
    float
    | int
    | bytes
    | np.ndarray
    | tuple[float, ...]
    | tuple[int, ...]
    | tuple[bytes, ...]
    | tuple[np.ndarray, ...]
    | None
)
"""An attribute's value; graph/sparse/type attributes (unused by supported ops) are None."""

Parser = Literal["auto", "onnx", "pure"]

# TensorProto.DataType -> numpy dtype, for the types a small model can use.
_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int8),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int16),
    6: np.dtype(np.int32),
    7: np.dtype(np.int64),
    9: np.dtype(np.bool_),
    10: np.dtype(np.float16),
    11: np.dtype(np.float64),
    12: np.dtype(np.uint32),
    13: np.dtype(np.uint64),
}
_TYPE_NAMES = {
    0: "undefined", 8: "string", 14: "complex64", 15: "complex128", 16: "bfloat16",
}  # fmt: skip


def numpy_dtype(code: int) -> np.dtype[Any]:
    """The numpy dtype of ONNX TensorProto data type ``code``; ConfigError when unsupported."""
    dtype = _DTYPES.get(code)
    if dtype is None:
        raise ConfigError(f"unsupported tensor data type {_TYPE_NAMES.get(code, code)} (code {code})")
    return dtype


@dataclass(frozen=True, slots=True)
class ValueInfo:
    """A graph input/output: name, element type code (0 when not a tensor) and shape.

    Shape entries are ints for fixed dimensions, strings for named ones ("batch") and None
    for unknown ones; ``shape`` is None when the file gives no shape.
    """

    name: str
    elem_type: int
    shape: tuple[int | str | None, ...] | None


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One operator application (attributes as decoded Python/numpy values)."""

    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: Mapping[str, AttrValue]

    def where(self) -> str:
        """How errors name this node: its name, else its op and first output."""
        label = self.name or f"<unnamed, output {self.outputs[0] if self.outputs else '?'}>"
        return f"node {label} ({(self.domain + '::') if self.domain else ''}{self.op_type})"


@dataclass(frozen=True, slots=True, eq=False)
class Graph:
    """A model's main graph with its initializers (read-only arrays) and opset imports."""

    name: str
    nodes: tuple[Node, ...]
    initializers: Mapping[str, np.ndarray]
    inputs: tuple[ValueInfo, ...]
    outputs: tuple[ValueInfo, ...]
    opsets: Mapping[str, int]
    ir_version: int
    producer: str
    metadata: Mapping[str, str]
    """The model's ``metadata_props`` (e.g. ``tickloop.features``, written by the exporter)."""

    def opset(self, domain: str) -> int:
        """The imported version of ``domain`` ("" and "ai.onnx" are the same domain)."""
        if domain in ("", "ai.onnx"):
            return self.opsets.get("", self.opsets.get("ai.onnx", 0))
        return self.opsets.get(domain, 0)

    def feed_inputs(self) -> tuple[ValueInfo, ...]:
        """Inputs the caller must feed: those not also given as initializers (IR < 4 lists both)."""
        return tuple(v for v in self.inputs if v.name not in self.initializers)


def import_onnx() -> Any:
    """``import onnx`` without letting its import-time noise become an error.

    Debian trixie's python3-onnx (the board's OS package) emits a protobuf DeprecationWarning
    while importing; under ``-W error`` (our pytest config) that turns into an exception that
    is not ours to fix. Warnings raised by *our* calls into onnx still surface.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import onnx
    return onnx


def onnx_available() -> bool:
    """True when the ``onnx`` package is importable."""
    try:
        import_onnx()
    except ImportError:
        return False
    return True


def parse_graph(data: bytes, *, source: str, parser: Parser = "auto") -> Graph:
    """Decode serialized ONNX ``data`` (``source`` names it in errors).

    ``parser``: ``"onnx"`` (the onnx package, required), ``"pure"`` (our reader) or
    ``"auto"`` (onnx when installed).
    """
    if parser not in ("auto", "onnx", "pure"):
        raise ConfigError(f"unknown ONNX parser {parser!r}; expected auto, onnx or pure")
    if parser == "pure" or (parser == "auto" and not onnx_available()):
        from strategies.inference._proto import parse_model

        return parse_model(data, source)
    return _parse_with_onnx(data, source)


def _parse_with_onnx(data: bytes, source: str) -> Graph:
    try:
        onnx = import_onnx()
        from onnx import numpy_helper
    except ImportError as exc:
        raise ConfigError(f"parser 'onnx' asked for but the onnx package is not installed ({exc})") from exc
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ConfigError(f"{source}: not a readable ONNX model: {exc}") from exc
    if not model.HasField("graph"):
        raise ConfigError(f"{source}: not an ONNX model (no graph found)")
    g = model.graph
    if len(g.sparse_initializer):
        raise ConfigError(f"{source}: sparse initializers are not supported")

    def array(t: Any) -> np.ndarray:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise ConfigError(
                f"{source}: tensor {t.name!r} keeps its data in an external file, which is not supported"
            )
        if t.data_type != onnx.TensorProto.STRING:
            numpy_dtype(t.data_type)  # same refusal as the pure reader
        arr = np.array(numpy_helper.to_array(t))
        if arr.dtype == object:  # string tensors: str, as the pure reader gives
            arr = np.array(
                [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in arr.ravel()],
                dtype=object,
            ).reshape(arr.shape)
        arr.flags.writeable = False
        return arr

    def attr(a: Any) -> AttrValue:
        value = onnx.helper.get_attribute_value(a)
        if a.type == onnx.AttributeProto.TENSOR:
            return array(value)
        if a.type == onnx.AttributeProto.TENSORS:
            return tuple(array(t) for t in value)
        if a.type in (onnx.AttributeProto.FLOATS, onnx.AttributeProto.INTS, onnx.AttributeProto.STRINGS):
            return tuple(value)
        if a.type in (onnx.AttributeProto.FLOAT, onnx.AttributeProto.INT, onnx.AttributeProto.STRING):
            converted: float | int | bytes = value
            return converted
        return None

    def info(v: Any) -> ValueInfo:
        if not v.type.HasField("tensor_type"):
            return ValueInfo(v.name, 0, None)
        tt = v.type.tensor_type
        shape: tuple[int | str | None, ...] | None = None
        if tt.HasField("shape"):
            shape = tuple(
                d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
                for d in tt.shape.dim
            )
        return ValueInfo(v.name, tt.elem_type, shape)

    nodes = tuple(
        Node(
            name=n.name,
            op_type=n.op_type,
            domain=n.domain,
            inputs=tuple(n.input),
            outputs=tuple(n.output),
            attributes={a.name: attr(a) for a in n.attribute},
        )
        for n in g.node
    )
    return Graph(
        name=g.name,
        nodes=nodes,
        initializers={t.name: array(t) for t in g.initializer},
        inputs=tuple(info(v) for v in g.input),
        outputs=tuple(info(v) for v in g.output),
        opsets={o.domain: o.version for o in model.opset_import},
        ir_version=model.ir_version,
        producer=model.producer_name,
        metadata={p.key: p.value for p in model.metadata_props},
    )
