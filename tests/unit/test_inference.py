"""Model inference: the numpy backend against onnxruntime, and our protobuf reader against onnx.

The edge half (no onnx, no onnxruntime) runs the checked-in models of tests/data with the
built-in reader and compares with onnxruntime's outputs recorded by make_models.py and
with an independent float64 forward pass; hand-encoded protobuf covers the reader's
corner cases. The other half builds graphs with onnx.helper and compares live.
"""

from __future__ import annotations

import hashlib
import importlib.util
import struct
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from engine.errors import ConfigError, InputError
from strategies.inference import (
    SUPPORTED_OPS,
    TOLERANCE,
    Graph,
    load_model,
    model_from_bytes,
    parse_graph,
)

pytestmark = pytest.mark.edge

DATA = Path(__file__).resolve().parents[1] / "data"
MODELS = ("logreg_4", "mlp_4_16_8_1")
RTOL32, ATOL32 = TOLERANCE["float32"]
RTOL64, ATOL64 = TOLERANCE["float64"]


def _expected() -> dict[str, np.ndarray]:
    with np.load(DATA / "models_expected.npz") as npz:
        return {k: npz[k] for k in npz.files}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


def _reference(name: str, e: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The models' maths written out in float64 from the stored weights."""
    w = {k: v.astype(np.float64) for k, v in e.items()}
    z = (x.astype(np.float64) - w["mean"]) / w["scale"]
    if name == "logreg_4":
        return _sigmoid(z @ w["lr_w"] + w["lr_b"])
    h = np.maximum(z @ w["w1"].T + w["b1"], 0)
    h = np.maximum(h @ w["w2"].T + w["b2"], 0)
    return _sigmoid(h @ w["w3"].T + w["b3"])


# ---------------------------------------------------------------- edge: checked-in models


@pytest.mark.parametrize("name", MODELS)
def test_numpy_backend_matches_recorded_onnxruntime_outputs(name: str) -> None:
    e = _expected()
    model = load_model(DATA / f"{name}.onnx", backend="numpy", parser="pure")
    got = model.predict(e["x"])
    assert got.dtype == np.float32 and got.shape == (len(e["x"]), 1)
    np.testing.assert_allclose(got, e[f"ort_{name}"], rtol=RTOL32, atol=ATOL32)
    np.testing.assert_allclose(got, _reference(name, e, e["x"]), rtol=1e-5, atol=1e-6)
    assert float(np.std(got)) > 0.01, "probe inputs should not saturate the model"


@pytest.mark.parametrize("name", MODELS)
def test_predict_one_is_predict_on_one_row(name: str) -> None:
    """Equal to the batch within float32 rounding (BLAS may use another kernel for one row),
    and bit-identical to a one-row batch."""
    e = _expected()
    model = load_model(DATA / f"{name}.onnx", backend="numpy", parser="pure")
    batch = model.predict(e["x"])
    for i in range(0, len(e["x"]), 7):
        one = model.predict_one([float(v) for v in e["x"][i]])
        assert isinstance(one, float)
        assert one == float(model.predict(e["x"][i : i + 1])[0, 0])
        assert one == pytest.approx(float(batch[i, 0]), rel=RTOL32, abs=ATOL32)


@pytest.mark.parametrize("name", MODELS)
def test_model_info_describes_the_file(name: str) -> None:
    path = DATA / f"{name}.onnx"
    model = load_model(path, backend="numpy", parser="pure")
    info = model.info
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (info.backend, info.input_name, info.input_dtype, info.n_features) == (
        "numpy",
        "features",
        "float32",
        4,
    )
    assert (info.output_name, info.output_shape) == ("probability", ("batch", 1))
    assert info.feature_names == ("rsi_14", "obi", "tfi", "vol_20")
    assert dict(info.opsets) == {"": 17}
    assert model.n_features == 4 and model.backend == "numpy"


def test_pure_reader_gives_the_generated_weights() -> None:
    e = _expected()
    graph = parse_graph((DATA / "mlp_4_16_8_1.onnx").read_bytes(), source="mlp", parser="pure")
    for key in ("w1", "b1", "w2", "b2", "w3", "b3", "mean", "scale"):
        arr = graph.initializers[key]
        assert arr.dtype == np.float32 and np.array_equal(arr, e[key]), key
        assert not arr.flags.writeable
    assert [n.op_type for n in graph.nodes] == [
        "Sub",
        "Div",
        "Gemm",
        "Relu",
        "Gemm",
        "Relu",
        "Gemm",
        "Sigmoid",
    ]
    assert graph.nodes[2].attributes == {"transB": 1} and graph.nodes[2].name == "fc1"


@pytest.mark.parametrize("cut", [0, 1, 10, 100, 400, 1000, -1])
def test_truncated_file_is_a_config_error_naming_it(tmp_path: Path, cut: int) -> None:
    data = (DATA / "mlp_4_16_8_1.onnx").read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[:cut])
    with pytest.raises(ConfigError, match="cut.onnx"):
        load_model(bad, backend="numpy", parser="pure")


def test_missing_or_garbage_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read model file .*nope.onnx"):
        load_model(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(ConfigError, match="junk.onnx"):
        load_model(junk, backend="numpy", parser="pure")


def test_bad_inputs_are_input_errors() -> None:
    model = load_model(DATA / "logreg_4.onnx", backend="numpy", parser="pure")
    with pytest.raises(InputError, match="4 features per row, got 3"):
        model.predict(np.zeros((2, 3)))
    with pytest.raises(InputError, match="2-D"):
        model.predict(np.zeros(4))
    with pytest.raises(InputError, match="numeric"):
        model.predict(np.array([["a", "b", "c", "d"]]))
    with pytest.raises(InputError, match="4 features, got 5"):
        model.predict_one([1.0] * 5)
    assert model.predict(np.zeros((0, 4))).shape == (0, 1)
    assert model.predict(np.ones((2, 4), dtype=np.int64)).dtype == np.float32


def test_bad_options_are_config_errors() -> None:
    path = DATA / "logreg_4.onnx"
    with pytest.raises(ConfigError, match="unknown inference backend 'gpu'"):
        load_model(path, backend="gpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown ONNX parser"):
        load_model(path, parser="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no output named 'label'; outputs: probability"):
        load_model(path, backend="numpy", output="label")
    with pytest.raises(ConfigError, match="output index 1 out of range"):
        load_model(path, backend="numpy", output=1)


def test_without_onnxruntime_auto_is_numpy_and_explicit_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    path = DATA / "logreg_4.onnx"
    assert load_model(path).backend == "numpy"
    with pytest.raises(ConfigError, match="onnxruntime is not installed"):
        load_model(path, backend="onnxruntime")


def test_without_onnx_the_pure_reader_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    e = _expected()
    model = load_model(DATA / "mlp_4_16_8_1.onnx", backend="numpy")
    np.testing.assert_allclose(model.predict(e["x"]), e["ort_mlp_4_16_8_1"], rtol=RTOL32, atol=ATOL32)
    with pytest.raises(ConfigError, match="onnx package is not installed"):
        load_model(DATA / "logreg_4.onnx", backend="numpy", parser="onnx")


# ------------------------------------------------------- edge: hand-encoded protobuf


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _vint(field: int, v: int) -> bytes:
    return _varint(field << 3) + _varint(v)


def _f32(field: int, x: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", x)


def _msg(field: int, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _s(field: int, text: str) -> bytes:
    return _msg(field, text.encode())


def _tensor_unpacked(name: str, arr: np.ndarray) -> bytes:
    """A float TensorProto with unpacked dims and float_data (legal, though onnx packs them)."""
    dims = b"".join(_vint(1, d) for d in arr.shape)
    values = b"".join(_f32(4, float(v)) for v in arr.ravel())
    return dims + _vint(2, 1) + values + _s(8, name)


def _value_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(_msg(1, _vint(1, d) if isinstance(d, int) else _s(2, d)) for d in dims)
    return _s(1, name) + _msg(2, _msg(1, _vint(1, 1), _msg(2, shape)))


def _node(
    op: str, inputs: list[str], outputs: list[str], name: str, *attrs: bytes, domain: str = ""
) -> bytes:
    parts = [_s(1, i) for i in inputs] + [_s(2, o) for o in outputs] + [_s(3, name), _s(4, op)]
    parts += [_msg(5, a) for a in attrs]
    if domain:
        parts.append(_s(7, domain))
    parts.append(_vint(99, 7))  # an unknown field: must be skipped
    return b"".join(parts)


HAND_W = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=np.float32)
HAND_B = np.array([0.1, -0.2], dtype=np.float32)


def _hand_model(*extra_nodes: bytes, opset: int = 9) -> bytes:
    """Gemm(transB) -> LeakyRelu(0.2) -> Softmax(axis=-1), attributes written without their type field."""
    nodes = [
        _node("Gemm", ["x", "W", "b"], ["h"], "fc", _s(1, "transB") + _vint(3, 1)),
        _node("LeakyRelu", ["h"], ["a"], "leaky", _s(1, "alpha") + _f32(2, 0.2)),
        _node("Softmax", ["a"], ["y"], "softmax", _s(1, "axis") + _vint(3, -1)),
        *extra_nodes,
    ]
    graph = b"".join(_msg(1, n) for n in nodes) + _s(2, "hand")
    graph += _msg(5, _tensor_unpacked("W", HAND_W)) + _msg(5, _tensor_unpacked("b", HAND_B))
    graph += _msg(11, _value_info("x", ["N", 3])) + _msg(12, _value_info("y", ["N", 2]))
    return _vint(1, 3) + _s(2, "hand-encoder") + _msg(8, _vint(2, opset)) + _msg(7, graph)


def test_pure_reader_handles_unpacked_fields_untyped_attributes_and_negative_ints() -> None:
    graph = parse_graph(_hand_model(), source="hand", parser="pure")
    assert np.array_equal(graph.initializers["W"], HAND_W) and graph.initializers["W"].dtype == np.float32
    assert graph.nodes[0].attributes == {"transB": 1}
    assert graph.nodes[1].attributes == {"alpha": float(np.float32(0.2))}
    assert graph.nodes[2].attributes == {"axis": -1}
    assert graph.inputs[0].shape == ("N", 3) and graph.producer == "hand-encoder" and graph.opsets == {"": 9}
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0], [10.0, -10.0, 3.0]])
    h = x @ HAND_W.T.astype(np.float64) + HAND_B
    a = np.where(h >= 0, h, 0.2 * h)
    ref = np.exp(a - a.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    got = model_from_bytes(_hand_model(), backend="numpy", parser="pure").predict(x)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_unsupported_operator_names_the_op_and_the_node() -> None:
    erf = _node("Erf", ["y"], ["z"], "my_erf")
    with pytest.raises(ConfigError, match="node my_erf \\(Erf\\): operator 'Erf' is not supported") as err:
        model_from_bytes(_hand_model(erf), source="erf.onnx", backend="numpy", parser="pure")
    assert "erf.onnx" in str(err.value) and "Gemm" in str(err.value)
    zipmap = _node("ZipMap", ["y"], ["z"], "zm", domain="ai.onnx.ml")
    with pytest.raises(
        ConfigError, match="node zm \\(ai.onnx.ml::ZipMap\\): operators of domain 'ai.onnx.ml'"
    ):
        model_from_bytes(_hand_model(zipmap), backend="numpy", parser="pure")


def test_an_input_used_before_it_exists_is_refused() -> None:
    early = _node("Relu", ["later"], ["r"], "early")
    with pytest.raises(ConfigError, match="node early \\(Relu\\): input 'later' is not produced"):
        model_from_bytes(_hand_model(early), backend="numpy", parser="pure")


def test_supported_ops_cover_the_brief() -> None:
    brief = {
        "Gemm",
        "MatMul",
        "Add",
        "Relu",
        "Sigmoid",
        "Tanh",
        "LeakyRelu",
        "Softmax",
        "Identity",
        "Flatten",
        "Cast",
    }
    assert brief <= set(SUPPORTED_OPS)


# ------------------------------------------------ onnx / onnxruntime: live comparisons


def _onnx() -> Any:
    return pytest.importorskip("onnx")


def _ort() -> Any:
    return pytest.importorskip("onnxruntime")


def _build(
    nodes: list[Any], inits: dict[str, np.ndarray], k: int, *, opset: int = 17, double: bool = False
) -> bytes:
    onnx = _onnx()
    h = onnx.helper
    elem = onnx.TensorProto.DOUBLE if double else onnx.TensorProto.FLOAT
    graph = h.make_graph(
        nodes,
        "case",
        [h.make_tensor_value_info("x", elem, ["n", k])],
        [h.make_tensor_value_info("y", elem, None)],
        initializer=[onnx.numpy_helper.from_array(v, name) for name, v in inits.items()],
    )
    ir = 8 if opset >= 15 else 6
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], ir_version=ir)
    data: bytes = model.SerializeToString()
    return data


def _f(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).normal(0, 1, shape).astype(np.float32)


def _case_gemm() -> bytes:
    n = _onnx().helper.make_node
    nodes = [n("Gemm", ["x", "W", "c"], ["y"], alpha=0.7, beta=-1.3, transB=1)]
    return _build(nodes, {"W": _f(5, 4), "c": _f(5)}, 4)


def _case_gemm_trans_a() -> bytes:
    n = _onnx().helper.make_node
    nodes = [n("Transpose", ["x"], ["xt"], perm=[1, 0]), n("Gemm", ["xt", "W"], ["y"], transA=1)]
    return _build(nodes, {"W": _f(4, 3)}, 4)


def _case_arith() -> bytes:
    n = _onnx().helper.make_node
    nodes = [
        n("MatMul", ["x", "W"], ["a"]),
        n("Add", ["a", "c"], ["b"]),
        n("Sub", ["b", "d"], ["e"]),
        n("Mul", ["e", "s"], ["f"]),
        n("Div", ["f", "g"], ["y"]),
    ]
    g = np.abs(_f(6)) + 0.5
    return _build(
        nodes, {"W": _f(4, 6), "c": _f(6), "d": _f(1, 6), "s": np.float32(1.7).reshape(()), "g": g}, 4
    )


def _case_activation(op: str, **attrs: float) -> Callable[[], bytes]:
    def build() -> bytes:
        n = _onnx().helper.make_node
        nodes = [n("Mul", ["x", "ten"], ["big"]), n(op, ["big"], ["y"], **attrs)]
        return _build(nodes, {"ten": np.array([0.1, 1.0, 10.0, 60.0], dtype=np.float32)}, 4)

    return build


def _case_clip(opset: int) -> bytes:
    n = _onnx().helper.make_node
    if opset < 11:
        return _build([n("Clip", ["x"], ["y"], min=-0.5, max=0.5)], {}, 4, opset=opset)
    nodes = [n("Clip", ["x", "lo", "hi"], ["a"]), n("Clip", ["a", "", "hi2"], ["y"])]
    inits = {
        "lo": np.float32(-0.5).reshape(()),
        "hi": np.float32(0.8).reshape(()),
        "hi2": np.float32(0.6).reshape(()),
    }
    return _build(nodes, inits, 4, opset=opset)


def _case_softmax_3d(op: str, opset: int) -> bytes:
    """(n, 4) -> (n, 2, 2) -> Softmax(axis=1) -> (n, 4): before opset 13 axis=1 normalises
    the trailing 4 values together, from 13 on only along dim 1."""
    n = _onnx().helper.make_node
    nodes = [
        n("Reshape", ["x", "shape"], ["r"]),
        n(op, ["r"], ["s"], axis=1),
        n("Flatten", ["s"], ["y"], axis=1),
    ]
    return _build(nodes, {"shape": np.array([0, 2, 2], dtype=np.int64)}, 4, opset=opset)


def _case_plumbing() -> bytes:
    onnx = _onnx()
    n = onnx.helper.make_node
    nodes = [
        n("Constant", [], ["axes"], value=onnx.numpy_helper.from_array(np.array([1], dtype=np.int64))),
        n("Unsqueeze", ["x", "axes"], ["u"]),
        n("Squeeze", ["u", "axes"], ["sq"]),
        n("Concat", ["sq", "x"], ["cat"], axis=1),
        n("Cast", ["cat"], ["dbl"], to=onnx.TensorProto.DOUBLE),
        n("Cast", ["dbl"], ["flt"], to=onnx.TensorProto.FLOAT),
        n("Identity", ["flt"], ["ident"]),
        n("Dropout", ["ident"], ["drop", "mask"]),
        n("Constant", [], ["k"], value_float=2.5),
        n("Mul", ["drop", "k"], ["m"]),
        n("Flatten", ["m"], ["y"], axis=0),
    ]
    return _build(nodes, {}, 4)


def _case_squeeze_attrs() -> bytes:
    n = _onnx().helper.make_node
    nodes = [
        n("Unsqueeze", ["x"], ["u"], axes=[0]),
        n("Squeeze", ["u"], ["s"], axes=[0]),
        n("Relu", ["s"], ["y"]),
    ]
    return _build(nodes, {}, 4, opset=11)


def _case_float64_mlp() -> bytes:
    n = _onnx().helper.make_node
    nodes = [
        n("Gemm", ["x", "W1", "b1"], ["h"]),
        n("Tanh", ["h"], ["a"]),
        n("Gemm", ["a", "W2", "b2"], ["z"]),
        n("Softmax", ["z"], ["y"]),
    ]
    inits = {
        k: v.astype(np.float64) for k, v in {"W1": _f(4, 8), "b1": _f(8), "W2": _f(8, 3), "b2": _f(3)}.items()
    }
    return _build(nodes, inits, 4, double=True)


CASES: dict[str, Callable[[], bytes]] = {
    "gemm_alpha_beta_transB": _case_gemm,
    "gemm_transA": _case_gemm_trans_a,
    "matmul_add_sub_mul_div": _case_arith,
    "relu": _case_activation("Relu"),
    "sigmoid": _case_activation("Sigmoid"),
    "tanh": _case_activation("Tanh"),
    "leaky_relu": _case_activation("LeakyRelu", alpha=0.1),
    "elu": _case_activation("Elu", alpha=0.7),
    "softplus": _case_activation("Softplus"),
    "hard_sigmoid": _case_activation("HardSigmoid", alpha=0.3, beta=0.4),
    "softmax": _case_activation("Softmax"),
    "log_softmax": _case_activation("LogSoftmax"),
    "clip_inputs": lambda: _case_clip(17),
    "clip_attributes_opset6": lambda: _case_clip(6),
    "softmax_axis1_opset17": lambda: _case_softmax_3d("Softmax", 17),
    "softmax_axis1_opset11": lambda: _case_softmax_3d("Softmax", 11),
    "log_softmax_axis1_opset11": lambda: _case_softmax_3d("LogSoftmax", 11),
    "plumbing": _case_plumbing,
    "squeeze_attributes_opset11": _case_squeeze_attrs,
    "float64_mlp": _case_float64_mlp,
}


def _inputs(model_k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 3, (33, model_k))


@pytest.mark.parametrize("case", sorted(CASES))
def test_numpy_matches_onnxruntime_per_operator(case: str) -> None:
    _ort()
    data = CASES[case]()
    fast = model_from_bytes(data, source=case, backend="onnxruntime")
    ours = model_from_bytes(data, source=case, backend="numpy")
    x = _inputs(4, seed=len(case))
    want, got = fast.predict(x), ours.predict(x)
    assert got.dtype == want.dtype and got.shape == want.shape
    rtol, atol = TOLERANCE[str(want.dtype)]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert np.isfinite(got).all()


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b)
        )
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _assert_same_graph(a: Graph, b: Graph) -> None:
    assert (a.name, a.ir_version, a.producer, dict(a.opsets)) == (
        b.name,
        b.ir_version,
        b.producer,
        dict(b.opsets),
    )
    assert (a.inputs, a.outputs, dict(a.metadata)) == (b.inputs, b.outputs, dict(b.metadata))
    assert sorted(a.initializers) == sorted(b.initializers)
    for key, value in a.initializers.items():
        assert _same_value(value, b.initializers[key]), key
    assert len(a.nodes) == len(b.nodes)
    for na, nb in zip(a.nodes, b.nodes, strict=True):
        assert (na.name, na.op_type, na.domain, na.inputs, na.outputs) == (
            nb.name,
            nb.op_type,
            nb.domain,
            nb.inputs,
            nb.outputs,
        )
        assert sorted(na.attributes) == sorted(nb.attributes)
        for key, value in na.attributes.items():
            assert _same_value(value, nb.attributes[key]), (na.name, key, value, nb.attributes[key])


@pytest.mark.parametrize("case", sorted(CASES))
def test_pure_reader_equals_onnx_on_operator_graphs(case: str) -> None:
    data = CASES[case]()
    _assert_same_graph(
        parse_graph(data, source=case, parser="pure"), parse_graph(data, source=case, parser="onnx")
    )
    x = _inputs(4, seed=1)
    a = model_from_bytes(data, backend="numpy", parser="pure").predict(x)
    b = model_from_bytes(data, backend="numpy", parser="onnx").predict(x)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_pure_reader_equals_onnx_on_checked_in_models(name: str) -> None:
    _onnx()
    data = (DATA / f"{name}.onnx").read_bytes()
    _assert_same_graph(
        parse_graph(data, source=name, parser="pure"), parse_graph(data, source=name, parser="onnx")
    )


def test_pure_reader_equals_onnx_on_every_tensor_storage_and_attribute_kind() -> None:
    onnx = _onnx()
    h, tp = onnx.helper, onnx.TensorProto
    rng = np.random.default_rng(7)
    arrays = {
        tp.FLOAT: rng.normal(size=(2, 3)).astype(np.float32),
        tp.DOUBLE: rng.normal(size=(3,)),
        tp.FLOAT16: rng.normal(size=(4,)).astype(np.float16),
        tp.INT8: np.array([-128, -1, 0, 127], dtype=np.int8),
        tp.UINT8: np.array([0, 1, 255], dtype=np.uint8),
        tp.INT16: np.array([-32768, 5, 32767], dtype=np.int16),
        tp.UINT16: np.array([0, 65535], dtype=np.uint16),
        tp.INT32: np.array([-(2**31), -1, 2**31 - 1], dtype=np.int32),
        tp.INT64: np.array([[-(2**63), -1], [0, 2**63 - 1]], dtype=np.int64),
        tp.UINT32: np.array([0, 2**32 - 1], dtype=np.uint32),
        tp.UINT64: np.array([0, 2**64 - 1], dtype=np.uint64),
        tp.BOOL: np.array([True, False, True]),
    }
    inits = []
    for code, arr in arrays.items():
        for raw in (False, True):
            payload = arr.tobytes() if raw else arr.ravel().tolist()  # float16 goes to int32_data as bits
            inits.append(h.make_tensor(f"t{code}_{raw}", code, arr.shape, payload, raw=raw))
    inits.append(h.make_tensor("scalar", tp.FLOAT, [], [3.5]))
    inits.append(h.make_tensor("strings", tp.STRING, [2], [b"ab", "\u00e9".encode()]))
    attrs = {
        "f": -0.1,
        "i": -(2**40),
        "s": b"bytes",
        "t": h.make_tensor("at", tp.INT64, [2], [-5, 6]),
        "floats": [1.5, -2.25],
        "ints": [-1, 0, 2**62],
        "strings": [b"a", b"b"],
        "tensors": [h.make_tensor("t1", tp.FLOAT, [1], [1.0])],
    }
    node = h.make_node("Custom", ["x"], ["y"], name="custom", domain="my.domain", **attrs)
    graph = h.make_graph(
        [node],
        "kinds",
        [h.make_tensor_value_info("x", tp.FLOAT, ["n", 2])],
        [h.make_tensor_value_info("y", tp.FLOAT, [None, 2])],
        initializer=inits,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("my.domain", 1)])
    h.set_model_props(model, {"a": "1", "b": "two"})
    data = model.SerializeToString()
    pure, ref = (
        parse_graph(data, source="kinds", parser="pure"),
        parse_graph(data, source="kinds", parser="onnx"),
    )
    _assert_same_graph(pure, ref)
    for code, arr in arrays.items():
        assert _same_value(pure.initializers[f"t{code}_False"], arr)
        assert _same_value(pure.initializers[f"t{code}_True"], arr)
    assert pure.initializers["scalar"].shape == () and pure.outputs[0].shape == (None, 2)


def test_unsupported_tensor_types_are_config_errors_in_both_readers() -> None:
    onnx = _onnx()
    h, tp = onnx.helper, onnx.TensorProto
    t = h.make_tensor("bf", tp.BFLOAT16, [2], np.zeros(2, dtype=np.uint16).tobytes(), raw=True)
    graph = h.make_graph([], "g", [h.make_tensor_value_info("x", tp.FLOAT, [1, 1])], [], initializer=[t])
    data = h.make_model(graph).SerializeToString()
    for parser in ("pure", "onnx"):
        with pytest.raises(ConfigError, match="bfloat16"):
            parse_graph(data, source="bf.onnx", parser=parser)  # type: ignore[arg-type]


def _make_models_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_models", DATA / "make_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_models_are_what_make_models_builds() -> None:
    _onnx()
    mm = _make_models_module()
    for name, data in mm.build_all().items():
        assert (DATA / name).read_bytes() == data, f"{name} is stale: rerun tests/data/make_models.py"
    e = _expected()
    assert np.array_equal(e["x"], mm.probe_inputs())
    for key, value in mm.weights().items():
        assert np.array_equal(e[key], value), key


@pytest.mark.parametrize("name", MODELS)
def test_checked_in_models_numpy_vs_onnxruntime_on_random_inputs(name: str) -> None:
    _ort()
    path = DATA / f"{name}.onnx"
    fast, ours = load_model(path, backend="onnxruntime"), load_model(path, backend="numpy")
    rng = np.random.default_rng(11)
    x = np.column_stack([rng.uniform(0, 100, 500), rng.uniform(-1, 1, (500, 2)), rng.uniform(0, 0.02, 500)])
    np.testing.assert_allclose(ours.predict(x), fast.predict(x), rtol=RTOL32, atol=ATOL32)
    assert fast.predict_one(x[3].tolist()) == pytest.approx(
        ours.predict_one(x[3].tolist()), rel=RTOL32, abs=ATOL32
    )


def test_onnxruntime_runs_a_fixed_batch_of_one_row_by_row() -> None:
    _ort()
    onnx = _onnx()
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Sigmoid", ["x"], ["y"])],
        "one",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
    )
    data = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8).SerializeToString()
    x = np.linspace(-3, 3, 12).reshape(4, 3)
    got = model_from_bytes(data, backend="onnxruntime").predict(x)
    np.testing.assert_allclose(
        got, model_from_bytes(data, backend="numpy").predict(x), rtol=RTOL32, atol=ATOL32
    )


# ------------------------------------------------------------------- the exporter


def test_dense_model_export_matches_a_float64_forward_pass() -> None:
    _onnx()
    from strategies.inference.export import Dense, Standardize, dense_model

    rng = np.random.default_rng(3)
    mean, scale = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    layers = [
        Dense(rng.normal(size=(4, 6)), rng.normal(size=6), "leaky_relu", alpha=0.05),
        Dense(rng.normal(size=(6, 3)), rng.normal(size=3), "softmax"),
    ]
    data = dense_model(
        [Standardize(mean, scale), *layers], feature_names=["a", "b", "c", "d"], dtype=np.float64
    )
    model = model_from_bytes(data, backend="numpy")
    assert model.info.feature_names == ("a", "b", "c", "d") and model.info.input_dtype == "float64"
    x = rng.normal(size=(50, 4))
    z = (x - mean) / scale
    h1 = z @ layers[0].weight + layers[0].bias
    h1 = np.where(h1 >= 0, h1, float(np.float32(0.05)) * h1)  # ONNX float attributes are float32
    h2 = h1 @ layers[1].weight + layers[1].bias
    ref = np.exp(h2 - h2.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(x), ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(ConfigError, match="stage 1 takes 5 inputs but receives 4"):
        dense_model([Standardize(mean, scale), Dense(np.ones((5, 1)), np.ones(1))])
    with pytest.raises(ConfigError, match="unknown activation 'gelu'"):
        dense_model([Dense(np.ones((4, 1)), np.ones(1), "gelu")])


def _fit_quietly(estimator: Any, x: np.ndarray, y: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on deliberately short fits
        return estimator.fit(x, y)


def _sklearn_cases() -> dict[str, tuple[Any, np.ndarray]]:
    sk = pytest.importorskip("sklearn")
    del sk
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 4)) * np.array([20.0, 0.5, 0.5, 0.002]) + np.array([50.0, 0, 0, 0.002])
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    binary = (z @ np.array([1.0, -0.5, 0.8, 0.2]) + rng.normal(0, 0.5, 400) > 0).astype(int)
    three = np.digitize(z[:, 0] + 0.3 * z[:, 1], [-0.5, 0.5])
    target = z @ np.array([0.3, 1.0, -2.0, 0.1])
    mlp = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=60, random_state=0)
    return {
        "logreg_binary": (_fit_quietly(make_pipeline(StandardScaler(), LogisticRegression()), x, binary), x),
        "logreg_3_classes": (_fit_quietly(LogisticRegression(max_iter=500), z, three), z),
        "mlp_classifier_scaled": (_fit_quietly(make_pipeline(StandardScaler(), mlp), x, binary), x),
        "mlp_classifier_tanh_3": (
            _fit_quietly(
                MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", max_iter=60, random_state=0),
                z,
                three,
            ),
            z,
        ),
        "mlp_regressor_logistic": (
            _fit_quietly(
                MLPRegressor(hidden_layer_sizes=(8,), activation="logistic", max_iter=60, random_state=0),
                z,
                target,
            ),
            z,
        ),
        "linear_regression_2_targets": (
            _fit_quietly(LinearRegression(), z, np.column_stack([target, -target])),
            z,
        ),
        "ridge": (_fit_quietly(Ridge(alpha=2.0), z, target), z),
    }


SKLEARN_CASES = (
    "logreg_binary",
    "logreg_3_classes",
    "mlp_classifier_scaled",
    "mlp_classifier_tanh_3",
    "mlp_regressor_logistic",
    "linear_regression_2_targets",
    "ridge",
)


@pytest.mark.parametrize("case", SKLEARN_CASES)
def test_sklearn_export_reproduces_the_estimator(case: str) -> None:
    _onnx()
    from strategies.inference.export import EXPORT_TOLERANCE, from_sklearn

    estimator, x = _sklearn_cases()[case]
    data = from_sklearn(estimator, feature_names=["rsi_14", "obi", "tfi", "vol_20"])
    model = model_from_bytes(data, source=case, backend="numpy")
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(x.astype(np.float32).astype(np.float64))
        want = proba[:, 1:] if proba.shape[1] == 2 else proba
        assert model.info.output_name == "probability"
    else:
        want = np.asarray(estimator.predict(x.astype(np.float32).astype(np.float64))).reshape(len(x), -1)
        assert model.info.output_name == "prediction"
    got = model.predict(x)
    rtol, atol = EXPORT_TOLERANCE["float32"]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    if importlib.util.find_spec("onnxruntime") is not None:
        fast = model_from_bytes(data, source=case, backend="onnxruntime")
        np.testing.assert_allclose(got, fast.predict(x), rtol=RTOL32, atol=ATOL32)


def test_sklearn_export_refuses_what_it_cannot_reproduce() -> None:
    _onnx()
    from strategies.inference.export import from_sklearn

    class NotASoftmax:
        """Looks like a 3-class linear classifier but normalises one-vs-rest sigmoids."""

        coef_ = np.eye(3, 4)
        intercept_ = np.zeros(3)
        classes_ = np.arange(3)

        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            s = _sigmoid(x @ self.coef_.T)
            out: np.ndarray = s / s.sum(axis=1, keepdims=True)
            return out

    with pytest.raises(ConfigError, match="export check failed"):
        from_sklearn(NotASoftmax())

    class Tree:
        pass

    with pytest.raises(ConfigError, match="cannot export Tree"):
        from_sklearn(Tree())
