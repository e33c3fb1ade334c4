"""Write small models as ONNX with standard operators only (training side; needs ``onnx``).

Why our own exporter: skl2onnx emits ``ai.onnx.ml`` operators (LinearClassifier, ZipMap)
that the numpy backend does not run, and a dense stack is a handful of Gemm and
activation nodes. Everything written here loads in both backends.

- :func:`dense_model`: a stack of :class:`Dense` layers (weights ``(in, out)``, bias,
  activation) -> ONNX bytes; input ``features`` ``(batch, k)``, one output.
- :func:`from_sklearn`: LogisticRegression, linear regressors (LinearRegression, Ridge,
  Lasso, ...), MLPClassifier, MLPRegressor, optionally behind a StandardScaler in a
  Pipeline. A binary classifier's output is ``probability`` ``(batch, 1)``: the
  probability of ``classes_[1]``; a multi-class one gives ``(batch, n_classes)`` in
  ``classes_`` order. The export is checked against the estimator on a probe batch and
  refused (ConfigError) if they disagree.

Feature names, when given, are stored in the model's metadata (``tickloop.features``) so
a strategy can check it feeds columns in the trained order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import ConfigError
from strategies.inference.model import FEATURES_KEY, model_from_bytes

ACTIVATIONS = {
    "identity": None,
    "relu": "Relu",
    "sigmoid": "Sigmoid",
    "logistic": "Sigmoid",
    "tanh": "Tanh",
    "leaky_relu": "LeakyRelu",
    "softmax": "Softmax",
}
OPSET = 17
IR_VERSION = 8
"""Opset 17 / IR 8: read by onnxruntime >= 1.13, old enough for distribution packages."""


@dataclass(frozen=True, slots=True)
class Dense:
    """``y = act(x @ weight + bias)``; weight ``(in, out)``, bias ``(out,)``."""

    weight: np.ndarray
    bias: np.ndarray
    activation: str = "identity"
    alpha: float = 0.01
    """LeakyRelu slope (ignored by other activations)."""


@dataclass(frozen=True, slots=True)
class Standardize:
    """``(x - mean) / scale`` per column, as a StandardScaler does."""

    mean: np.ndarray
    scale: np.ndarray


Stage = Dense | Standardize


def _onnx() -> Any:
    from strategies.inference.graph import import_onnx

    try:
        return import_onnx()
    except ImportError as exc:
        raise ConfigError(f"exporting ONNX needs the onnx package (the 'train' extra): {exc}") from exc


def dense_model(
    stages: Sequence[Stage],
    *,
    n_features: int | None = None,
    input_name: str = "features",
    output_name: str = "output",
    dtype: type[np.floating[Any]] = np.float32,
    feature_names: Sequence[str] | None = None,
    doc: str = "",
) -> bytes:
    """Serialize ``stages`` (applied in order) as an ONNX model; see the module doc."""
    onnx = _onnx()
    helper = onnx.helper
    if not stages:
        raise ConfigError("a model needs at least one stage")
    k = n_features if n_features is not None else _width_in(stages[0])
    if feature_names is not None and len(feature_names) != k:
        raise ConfigError(f"{len(feature_names)} feature names for {k} features")
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes: list[Any] = []
    inits: list[Any] = []
    current, width = input_name, k

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(onnx.numpy_helper.from_array(np.ascontiguousarray(arr, dtype=dtype), name))
        return name

    def emit(op: str, inputs: list[str], **attrs: Any) -> str:
        out = f"{op.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{len(nodes)}", **attrs))
        return out

    for i, stage in enumerate(stages):
        if _width_in(stage) != width:
            raise ConfigError(f"stage {i} takes {_width_in(stage)} inputs but receives {width}")
        if isinstance(stage, Standardize):
            current = emit("Sub", [current, init(f"mean_{i}", stage.mean)])
            current = emit("Div", [current, init(f"scale_{i}", stage.scale)])
            continue
        if stage.activation not in ACTIVATIONS:
            raise ConfigError(
                f"stage {i}: unknown activation {stage.activation!r}; known: {', '.join(ACTIVATIONS)}"
            )
        current = emit("Gemm", [current, init(f"W_{i}", stage.weight), init(f"b_{i}", stage.bias)])
        op = ACTIVATIONS[stage.activation]
        if op == "LeakyRelu":
            current = emit(op, [current], alpha=float(stage.alpha))
        elif op == "Softmax":
            current = emit(op, [current], axis=-1)
        elif op is not None:
            current = emit(op, [current])
        width = int(stage.weight.shape[1])
    nodes[-1].output[0] = output_name
    graph = helper.make_graph(
        nodes,
        "tickloop_dense",
        [helper.make_tensor_value_info(input_name, elem, ["batch", k])],
        [helper.make_tensor_value_info(output_name, elem, ["batch", width])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="tickloop",
        doc_string=doc,
    )
    if feature_names is not None:
        helper.set_model_props(model, {FEATURES_KEY: ",".join(feature_names)})
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def _width_in(stage: Stage) -> int:
    if isinstance(stage, Standardize):
        if stage.mean.shape != stage.scale.shape or stage.mean.ndim != 1:
            raise ConfigError(
                f"Standardize mean/scale must be equal 1-D shapes, got {stage.mean.shape}/{stage.scale.shape}"
            )
        return int(stage.mean.shape[0])
    if stage.weight.ndim != 2 or stage.bias.shape != (stage.weight.shape[1],):
        raise ConfigError(
            f"Dense weight must be (in, out) and bias (out,), got {stage.weight.shape} and {stage.bias.shape}"
        )
    return int(stage.weight.shape[0])


def from_sklearn(
    estimator: Any,
    *,
    feature_names: Sequence[str] | None = None,
    dtype: type[np.floating[Any]] = np.float32,
) -> bytes:
    """ONNX bytes for a fitted scikit-learn estimator (see the module doc for what is supported)."""
    stages, output_name, reference = _sklearn_stages(estimator)
    k = _width_in(stages[0])
    data = dense_model(
        stages, n_features=k, output_name=output_name, dtype=dtype, feature_names=feature_names
    )
    _check_export(data, reference, k, dtype)
    return data


def _sklearn_stages(estimator: Any) -> tuple[list[Stage], str, Any]:
    """(stages, output name, function giving the estimator's own output for a batch)."""
    steps = list(getattr(estimator, "steps", [(None, estimator)]))
    stages: list[Stage] = []
    for _, step in steps[:-1]:
        if type(step).__name__ != "StandardScaler":
            raise ConfigError(f"pipeline step {type(step).__name__} is not supported (only StandardScaler)")
        k = int(step.n_features_in_)
        mean = step.mean_ if step.mean_ is not None else np.zeros(k)
        scale = step.scale_ if step.scale_ is not None else np.ones(k)
        stages.append(Standardize(np.asarray(mean), np.asarray(scale)))
    last = steps[-1][1]
    name = type(last).__name__
    if hasattr(last, "coefs_"):  # MLPClassifier / MLPRegressor
        hidden = "sigmoid" if last.activation == "logistic" else last.activation
        acts = [hidden] * (len(last.coefs_) - 1) + [last.out_activation_]
        stages += [
            Dense(np.asarray(w), np.asarray(b), a)
            for w, b, a in zip(last.coefs_, last.intercepts_, acts, strict=True)
        ]
    elif hasattr(last, "coef_"):
        coef = np.atleast_2d(np.asarray(last.coef_, dtype=np.float64))
        bias = np.atleast_1d(np.asarray(last.intercept_, dtype=np.float64))
        if hasattr(last, "predict_proba"):
            act = "sigmoid" if coef.shape[0] == 1 else "softmax"
        else:
            act = "identity"
        stages.append(Dense(coef.T, np.broadcast_to(bias, (coef.shape[0],)).copy(), act))
    else:
        raise ConfigError(f"cannot export {name}: only linear models and MLPs are supported")
    if hasattr(last, "predict_proba"):
        binary = len(last.classes_) == 2
        return (
            stages,
            "probability",
            (lambda x: estimator.predict_proba(x)[:, 1:] if binary else estimator.predict_proba(x)),
        )
    return stages, "prediction", (lambda x: np.asarray(estimator.predict(x)).reshape(len(x), -1))


def _probe(n: int, k: int) -> np.ndarray:
    """A fixed spread of inputs in [-3, 3] (a Weyl sequence: deterministic, no RNG)."""
    steps = np.sqrt(np.array([2.0, 3.0, 5.0, 7.0, 11.0, 13.0, 17.0, 19.0, 23.0, 29.0]))
    alpha = np.resize(steps, k) * (1 + np.arange(k) // len(steps))
    frac = np.modf(np.outer(np.arange(1, n + 1), alpha))[0]
    out: np.ndarray = 6.0 * frac - 3.0
    return out


EXPORT_TOLERANCE: dict[str, tuple[float, float]] = {"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-9)}
"""(rtol, atol) between the exported model and the estimator: wider than backend parity
because the weights themselves are rounded to the model's dtype."""


def _check_export(data: bytes, reference: Any, k: int, dtype: Any, n: int = 256) -> None:
    """Refuse an export whose numpy evaluation differs from the estimator (e.g. one-vs-rest
    logistic regression, whose probabilities are not a softmax)."""
    x = _probe(n, k)
    ours = model_from_bytes(data, source="<export>", backend="numpy").predict(x)
    theirs = np.asarray(reference(x.astype(dtype).astype(np.float64)))
    rtol, atol = EXPORT_TOLERANCE["float32" if np.dtype(dtype) == np.float32 else "float64"]
    if ours.shape != theirs.shape or not np.allclose(ours, theirs, rtol=rtol, atol=atol):
        worst = float(np.max(np.abs(ours - theirs))) if ours.shape == theirs.shape else float("nan")
        raise ConfigError(
            f"export check failed: ONNX output {ours.shape} differs from the estimator's {theirs.shape} "
            f"(max abs diff {worst:.3g})"
        )
