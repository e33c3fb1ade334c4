"""ONNX operators in numpy: the set small linear/logistic models and MLPs are exported with.

Supported (default domain only; ``ai.onnx.ml`` ops such as LinearClassifier or ZipMap are
not — export with standard ops, see :mod:`strategies.inference.export`):

- algebra: Gemm, MatMul, Add, Sub, Mul, Div
- activations: Relu, Sigmoid, Tanh, LeakyRelu, Elu, Softplus, HardSigmoid, Clip,
  Softmax, LogSoftmax
- plumbing: Identity, Dropout (inference: identity), Flatten, Reshape, Transpose, Squeeze,
  Unsqueeze, Concat, Cast, Constant

Each entry is a *builder*: it reads and checks the node's attributes once, at load time,
and returns the function run per call, so a bad attribute fails at load, not mid-backtest.
Opset-dependent semantics (Softmax's axis before/after 13, Clip/Squeeze/Unsqueeze/Reshape
inputs vs attributes) follow the imported opset. Arithmetic keeps the model's dtype
(python scalars never widen float32 to float64), which is why results stay within float32
rounding of onnxruntime's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from engine.errors import ConfigError
from strategies.inference.graph import AttrValue, Node, numpy_dtype

Array = np.ndarray
OpFn = Callable[..., tuple[Array, ...]]
"""Runs a node: positional inputs (None for an omitted optional input) -> outputs."""
Builder = Callable[[Node, int, Mapping[str, Array]], OpFn]
"""(node, opset of its domain, constant tensors by name) -> run function."""


def _bad(node: Node, why: str) -> ConfigError:
    return ConfigError(f"{node.where()}: {why}")


def _int(node: Node, name: str, default: int) -> int:
    v: AttrValue = node.attributes.get(name, default)
    if not isinstance(v, int):
        raise _bad(node, f"attribute {name} must be an int, got {v!r}")
    return v


def _float(node: Node, name: str, default: float) -> float:
    v: AttrValue = node.attributes.get(name, default)
    if isinstance(v, bool) or not isinstance(v, float | int):
        raise _bad(node, f"attribute {name} must be a float, got {v!r}")
    return float(v)


def _ints(node: Node, name: str) -> tuple[int, ...] | None:
    v = node.attributes.get(name)
    if v is None:
        return None
    if not isinstance(v, tuple) or not all(isinstance(i, int) for i in v):
        raise _bad(node, f"attribute {name} must be a list of ints, got {v!r}")
    return tuple(int(i) for i in v)


def _arity(node: Node, lo: int, hi: int, outs: int = 1) -> None:
    n = len(node.inputs)
    if not lo <= n <= hi:
        raise _bad(node, f"expects {lo}..{hi} inputs, has {n}")
    if not 1 <= len(node.outputs) <= outs:
        raise _bad(node, f"expects 1..{outs} outputs, has {len(node.outputs)}")


def _gemm(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    """Gemm; a constant B is transposed once here and a constant ``beta * C`` precomputed."""
    _arity(node, 2, 3)
    alpha, beta = _float(node, "alpha", 1.0), _float(node, "beta", 1.0)
    ta, tb = _int(node, "transA", 0), _int(node, "transB", 0)
    b_const = consts.get(node.inputs[1])
    c_name = node.inputs[2] if len(node.inputs) == 3 else ""
    c_const = consts.get(c_name)
    if b_const is not None and tb:
        b_const, tb = np.ascontiguousarray(b_const.T), 0
    if c_const is not None and beta != 1.0:
        c_const, beta = c_const * beta, 1.0

    def run(a: Array, b: Array, c: Array | None = None) -> tuple[Array]:
        bb = b if b_const is None else b_const
        y = np.dot(a.T if ta else a, bb.T if tb else bb)
        if alpha != 1.0:
            y = y * alpha
        if c is not None:
            cc = c if c_const is None else c_const
            y = y + (cc if beta == 1.0 else cc * beta)
        return (y,)

    return run


def _binary(fn: Callable[[Array, Array], Array]) -> Builder:
    def build(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
        _arity(node, 2, 2)

        def run(a: Array, b: Array) -> tuple[Array]:
            return (fn(a, b),)

        return run

    return build


def _div(a: Array, b: Array) -> Array:
    if a.dtype.kind in "iu":  # ONNX integer division truncates toward zero
        q: Array = np.trunc(np.true_divide(a, b)).astype(a.dtype)
        return q
    out: Array = np.divide(a, b)
    return out


def _unary(fn: Callable[[Array], Array]) -> Builder:
    def build(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
        _arity(node, 1, 1)

        def run(x: Array) -> tuple[Array]:
            return (fn(x),)

        return run

    return build


_ZERO = {np.dtype(t).char: np.dtype(t).type(0) for t in (np.float16, np.float32, np.float64)}
# exp(-x) overflows below these; sigmoid there is below the dtype's resolution anyway
_SIGMOID_FLOOR = {
    np.dtype(t).char: -float(np.log(np.finfo(t).max)) + 1.0 for t in (np.float16, np.float32, np.float64)
}


def _relu(x: Array) -> Array:
    out: Array = np.maximum(x, _ZERO.get(x.dtype.char, 0))
    return out


def _sigmoid(x: Array) -> Array:
    """1 / (1 + e^-x), with x floored where e^-x would overflow (no warning, same value)."""
    out: Array = 1 / (1 + np.exp(-np.maximum(x, _SIGMOID_FLOOR.get(x.dtype.char, -700.0))))
    return out


def _tanh(x: Array) -> Array:
    out: Array = np.tanh(x)
    return out


def _leaky_relu(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    _arity(node, 1, 1)
    alpha = _float(node, "alpha", 0.01)
    return lambda x: (np.where(x >= 0, x, x * alpha),)


def _elu(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    _arity(node, 1, 1)
    alpha = _float(node, "alpha", 1.0)
    return lambda x: (np.where(x >= 0, x, alpha * (np.exp(np.minimum(x, 0)) - 1)),)


def _softplus(x: Array) -> Array:
    out: Array = np.logaddexp(x, 0)
    return out


def _hard_sigmoid(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    _arity(node, 1, 1)
    alpha, beta = _float(node, "alpha", 0.2), _float(node, "beta", 0.5)
    return lambda x: (np.clip(x * alpha + beta, 0, 1),)


def _clip(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    if opset < 11:
        _arity(node, 1, 1)
        lo_attr, hi_attr = _float(node, "min", -np.inf), _float(node, "max", np.inf)
        return lambda x: (np.clip(x, lo_attr, hi_attr),)
    _arity(node, 1, 3)

    def run(x: Array, lo: Array | None = None, hi: Array | None = None) -> tuple[Array]:
        y = x if lo is None else np.maximum(x, lo)
        y = y if hi is None else np.minimum(y, hi)
        return (y.copy() if y is x else y,)

    return run


def _softmax_family(log: bool) -> Builder:
    """Softmax/LogSoftmax: opset >= 13 works along ``axis`` (default -1); earlier opsets
    flatten the input to 2-D at ``axis`` (default 1) and normalise each row."""

    def normalise(x: Array, axis: int) -> Array:
        shifted = x - np.max(x, axis=axis, keepdims=True)
        e = np.exp(shifted)
        s = np.sum(e, axis=axis, keepdims=True)
        out: Array = shifted - np.log(s) if log else e / s
        return out

    def build(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
        _arity(node, 1, 1)
        axis = _int(node, "axis", -1 if opset >= 13 else 1)
        if opset >= 13:
            return lambda x: (normalise(x, axis),)

        def run(x: Array) -> tuple[Array]:
            a = axis + x.ndim if axis < 0 else axis
            rows = int(np.prod(x.shape[:a], dtype=np.int64))
            return (normalise(x.reshape(rows, -1), 1).reshape(x.shape),)

        return run

    return build


def _identity(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    _arity(node, 1, 1)
    return lambda x: (x,)


def _dropout(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    _arity(node, 1, 3, outs=2)
    if len(node.outputs) == 2:
        return lambda x, *_: (x, np.ones(x.shape, dtype=np.bool_))
    return lambda x, *_: (x,)


def _flatten(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    _arity(node, 1, 1)
    axis = _int(node, "axis", 1)

    def run(x: Array) -> tuple[Array]:
        a = axis + x.ndim if axis < 0 else axis
        if not 0 <= a <= x.ndim:
            raise _bad(node, f"axis {axis} out of range for rank {x.ndim}")
        outer = int(np.prod(x.shape[:a], dtype=np.int64))
        inner = int(np.prod(x.shape[a:], dtype=np.int64))
        return (x.reshape(outer, inner),)

    return run


def _reshape(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    allowzero = _int(node, "allowzero", 0)

    def target(x: Array, shape: Sequence[int]) -> tuple[int, ...]:
        dims = [int(d) for d in shape]
        if not allowzero:
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return tuple(dims)

    if opset < 5:
        _arity(node, 1, 1)
        shape = _ints(node, "shape") or ()
        return lambda x: (x.reshape(target(x, shape)),)
    _arity(node, 2, 2)
    return lambda x, s: (x.reshape(target(x, s.tolist())),)


def _transpose(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    _arity(node, 1, 1)
    perm = _ints(node, "perm")
    return lambda x: (np.transpose(x, perm),)


def _squeeze(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    if opset < 13:
        _arity(node, 1, 1)
        axes = _ints(node, "axes")
        return lambda x: (np.squeeze(x, axis=axes),)
    _arity(node, 1, 2)

    def run(x: Array, axes: Array | None = None) -> tuple[Array]:
        return (np.squeeze(x, axis=None if axes is None else tuple(int(a) for a in axes.tolist())),)

    return run


def _unsqueeze(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    if opset < 13:
        _arity(node, 1, 1)
        axes = _ints(node, "axes")
        if axes is None:
            raise _bad(node, "attribute axes is required")
        return lambda x: (np.expand_dims(x, axes),)
    _arity(node, 2, 2)
    return lambda x, axes: (np.expand_dims(x, tuple(int(a) for a in axes.tolist())),)


def _concat(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    _arity(node, 1, 1 << 16)
    if "axis" not in node.attributes:
        raise _bad(node, "attribute axis is required")
    axis = _int(node, "axis", 0)
    return lambda *xs: (np.concatenate(xs, axis=axis),)


def _cast(node: Node, opset: int, consts: Mapping[str, Array]) -> OpFn:
    _arity(node, 1, 1)
    try:
        dtype = numpy_dtype(_int(node, "to", 0))
    except ConfigError as exc:
        raise _bad(node, f"Cast: {exc}") from None
    return lambda x: (x.astype(dtype),)


def constant_value(node: Node) -> Array:
    """The value a Constant node produces (folded at load time)."""
    _arity(node, 0, 0)
    attrs = node.attributes
    value: Any
    if isinstance(attrs.get("value"), np.ndarray):
        value = attrs["value"]
    elif "value_float" in attrs:
        value = np.array(_float(node, "value_float", 0.0), dtype=np.float32)
    elif "value_floats" in attrs:
        value = np.array(attrs["value_floats"], dtype=np.float32)
    elif "value_int" in attrs:
        value = np.array(_int(node, "value_int", 0), dtype=np.int64)
    elif "value_ints" in attrs:
        value = np.array(_ints(node, "value_ints"), dtype=np.int64)
    else:
        raise _bad(
            node, f"unsupported Constant attributes {sorted(attrs)} (value, value_float(s), value_int(s) are)"
        )
    arr: Array = np.array(value)
    arr.flags.writeable = False
    return arr


BUILDERS: dict[str, Builder] = {
    "Gemm": _gemm,
    "MatMul": _binary(np.matmul),
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(_div),
    "Relu": _unary(_relu),
    "Sigmoid": _unary(_sigmoid),
    "Tanh": _unary(_tanh),
    "LeakyRelu": _leaky_relu,
    "Elu": _elu,
    "Softplus": _unary(_softplus),
    "HardSigmoid": _hard_sigmoid,
    "Clip": _clip,
    "Softmax": _softmax_family(log=False),
    "LogSoftmax": _softmax_family(log=True),
    "Identity": _identity,
    "Dropout": _dropout,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": _concat,
    "Cast": _cast,
}
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted([*BUILDERS, "Constant"]))
"""Operators of the default ONNX domain the numpy backend runs."""
