"""Regenerate the tiny ONNX test models and their expected outputs.

    /tmp/dev/bin/python tests/data/make_models.py        # needs onnx + onnxruntime

Why checked in: the edge profile (riscv64) has neither package, yet must prove the numpy
backend reads a real exported file and matches onnxruntime. So the files, a batch of
inputs and onnxruntime's outputs on them are committed; ``tests/unit/test_inference.py``
checks they still equal what this script builds.

The models are built with ``onnx.helper`` directly (not with strategies.inference.export)
so they exercise the layouts other exporters write:

- ``logreg_4.onnx``: logistic regression as MatMul + Add + Sigmoid (sklearn-style).
- ``mlp_4_16_8_1.onnx``: the seed system's four-feature model (RSI(14), order-book
  imbalance, trade-flow imbalance, volatility): standardisation (Sub, Div), then
  Gemm(transB=1) layers with torch's ``(out, in)`` weight layout, Relu, Relu, Sigmoid.

Weights come from ``numpy.random.default_rng(SEED)``, so reruns write identical bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20240808
FEATURES = ("rsi_14", "obi", "tfi", "vol_20")
MEAN = np.array([50.0, 0.0, 0.0, 0.002], dtype=np.float32)
SCALE = np.array([20.0, 0.5, 0.5, 0.002], dtype=np.float32)
N_PROBE = 64


def _model(graph: Any) -> Any:
    from onnx import helper

    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8, producer_name="tickloop-tests"
    )
    helper.set_model_props(model, {"tickloop.features": ",".join(FEATURES)})
    return model


def weights() -> dict[str, np.ndarray]:
    """All weights, drawn in a fixed order from one seeded generator."""
    rng = np.random.default_rng(SEED)
    return {
        "lr_w": rng.normal(0.0, 0.8, (4, 1)).astype(np.float32),
        "lr_b": rng.normal(0.0, 0.2, (1,)).astype(np.float32),
        "w1": rng.normal(0.0, 0.5, (16, 4)).astype(np.float32),
        "b1": rng.normal(0.0, 0.1, (16,)).astype(np.float32),
        "w2": rng.normal(0.0, 0.35, (8, 16)).astype(np.float32),
        "b2": rng.normal(0.0, 0.1, (8,)).astype(np.float32),
        "w3": rng.normal(0.0, 0.5, (1, 8)).astype(np.float32),
        "b3": rng.normal(0.0, 0.1, (1,)).astype(np.float32),
    }


def probe_inputs() -> np.ndarray:
    """Feature rows in realistic ranges: RSI 0..100, imbalances -1..1, volatility 0..1%."""
    rng = np.random.default_rng(SEED + 1)
    x = np.column_stack(
        [
            rng.uniform(0, 100, N_PROBE),
            rng.uniform(-1, 1, N_PROBE),
            rng.uniform(-1, 1, N_PROBE),
            rng.uniform(0, 0.01, N_PROBE),
        ]
    )
    return x.astype(np.float32)


def build_logreg(w: dict[str, np.ndarray]) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"], name="standardise_sub"),
        helper.make_node("Div", ["centred", "scale"], ["z"], name="standardise_div"),
        helper.make_node("MatMul", ["z", "coef"], ["xw"], name="matmul"),
        helper.make_node("Add", ["xw", "intercept"], ["logit"], name="add"),
        helper.make_node("Sigmoid", ["logit"], ["probability"], name="sigmoid"),
    ]
    inits = [
        numpy_helper.from_array(MEAN, "mean"),
        numpy_helper.from_array(SCALE, "scale"),
        numpy_helper.from_array(w["lr_w"], "coef"),
        numpy_helper.from_array(w["lr_b"], "intercept"),
    ]
    data: bytes = _model(
        helper.make_graph(nodes, "logreg_4", [x], [y], initializer=inits)
    ).SerializeToString()
    return data


def build_mlp(w: dict[str, np.ndarray]) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"], name="standardise_sub"),
        helper.make_node("Div", ["centred", "scale"], ["z"], name="standardise_div"),
        helper.make_node("Gemm", ["z", "w1", "b1"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], name="fc2", transB=1),
        helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["logit"], name="fc3", transB=1),
        helper.make_node("Sigmoid", ["logit"], ["probability"], name="sigmoid"),
    ]
    inits = [numpy_helper.from_array(MEAN, "mean"), numpy_helper.from_array(SCALE, "scale")]
    inits += [numpy_helper.from_array(w[k], k) for k in ("w1", "b1", "w2", "b2", "w3", "b3")]
    data: bytes = _model(
        helper.make_graph(nodes, "mlp_4_16_8_1", [x], [y], initializer=inits)
    ).SerializeToString()
    return data


def build_all() -> dict[str, bytes]:
    """File name -> serialized model."""
    w = weights()
    return {"logreg_4.onnx": build_logreg(w), "mlp_4_16_8_1.onnx": build_mlp(w)}


def main() -> int:
    import onnx
    import onnxruntime as ort

    models = build_all()
    x = probe_inputs()
    expected: dict[str, np.ndarray] = {"x": x, "mean": MEAN, "scale": SCALE, **weights()}
    for name, data in models.items():
        onnx.checker.check_model(onnx.load_model_from_string(data))
        (HERE / name).write_bytes(data)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        expected[f"ort_{name.removesuffix('.onnx')}"] = session.run(None, {"features": x})[0]
        print(f"wrote {HERE / name} ({len(data)} bytes)")
    np.savez(HERE / "models_expected.npz", **expected)
    print(f"wrote {HERE / 'models_expected.npz'} (onnxruntime {ort.__version__}, onnx {onnx.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
