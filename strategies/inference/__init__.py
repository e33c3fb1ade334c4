"""Model inference behind one interface: onnxruntime when installed, numpy otherwise.

``load_model(path, backend="auto"|"onnxruntime"|"numpy")`` returns a :class:`Model` with
``predict(x (n, k)) -> array`` and ``predict_one(features) -> float | array``. The numpy
backend reads the ONNX file itself (with ``onnx`` when installed, else a built-in
protobuf reader) and runs the operators listed in :data:`SUPPORTED_OPS`; outputs agree
with onnxruntime within :data:`TOLERANCE`. See docs/research.md.
"""

from __future__ import annotations

from strategies.inference.graph import Graph, Node, ValueInfo, onnx_available, parse_graph
from strategies.inference.model import (
    FEATURES_KEY,
    TOLERANCE,
    Backend,
    Model,
    ModelInfo,
    available_backends,
    load_model,
    model_from_bytes,
    onnxruntime_available,
)
from strategies.inference.ops import SUPPORTED_OPS

__all__ = [
    "FEATURES_KEY",
    "SUPPORTED_OPS",
    "TOLERANCE",
    "Backend",
    "Graph",
    "Model",
    "ModelInfo",
    "Node",
    "ValueInfo",
    "available_backends",
    "load_model",
    "model_from_bytes",
    "onnx_available",
    "onnxruntime_available",
    "parse_graph",
]
