"""One model interface over two backends: onnxruntime and a numpy interpreter.

Why two: the workstation and x86/arm servers have onnxruntime; the riscv64 board may not.
Both run the *same file*. The numpy backend interprets the graph with the operators in
:mod:`strategies.inference.ops` and computes in the model's own dtype, so on float32
models the two agree within ``TOLERANCE["float32"]`` (tests compare them on random
inputs; the numpy side is not bit-identical because onnxruntime uses its own GEMM
blocking and approximations of exp/tanh).

A model here has exactly one fed input, a 2-D tensor ``(n, k)`` of float32 or float64,
and one selected output (``output=``: a name or an index, default the first). ``predict``
takes a batch; ``predict_one`` takes one feature vector and is what a strategy calls per
event (a float when the output has one value, else a 1-D array).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from engine.errors import ConfigError, InputError
from strategies.inference.graph import Graph, Node, Parser, ValueInfo, numpy_dtype, parse_graph
from strategies.inference.ops import BUILDERS, SUPPORTED_OPS, OpFn, constant_value

FEATURES_KEY = "tickloop.features"
"""metadata_props key holding the comma-separated input feature names, in column order."""

Backend = Literal["auto", "onnxruntime", "numpy"]

TOLERANCE: dict[str, tuple[float, float]] = {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-12)}
"""(rtol, atol) within which numpy and onnxruntime outputs agree, by the model's float type
(``np.allclose(a, b, rtol, atol)``; measured worst cases are far inside these, see
docs/research.md)."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What was loaded: file, content hash, backend and the input/output contract."""

    source: str
    sha256: str
    backend: str
    input_name: str
    input_dtype: str
    n_features: int | None
    output_name: str
    output_shape: tuple[int | str | None, ...] | None
    opsets: tuple[tuple[str, int], ...]
    producer: str
    metadata: tuple[tuple[str, str], ...]

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """Input column names the exporter recorded (``tickloop.features``), if any."""
        names = dict(self.metadata).get(FEATURES_KEY)
        return tuple(n for n in names.split(",") if n) if names is not None else None


class Model(ABC):
    """A loaded model; see the module doc for the contract."""

    __slots__ = ("_dtype", "_k", "info")

    def __init__(self, info: ModelInfo) -> None:
        self.info = info
        self._dtype = np.dtype(info.input_dtype)
        self._k = info.n_features

    @property
    def backend(self) -> str:
        """Name of the backend running the model: onnxruntime or numpy."""
        return self.info.backend

    @property
    def n_features(self) -> int | None:
        """Width of an input row, when the file fixes it."""
        return self._k

    def predict(self, x: Any) -> np.ndarray:
        """Outputs for each row of ``x`` (shape ``(n, k)``), in the model's output dtype."""
        arr = np.asarray(x)
        if arr.ndim != 2:
            raise InputError(
                f"predict expects a 2-D (n, k) array, got shape {arr.shape}", source=self.info.source
            )
        if arr.dtype.kind not in "fiu":
            raise InputError(
                f"predict expects a real numeric array, got dtype {arr.dtype}", source=self.info.source
            )
        if self._k is not None and arr.shape[1] != self._k:
            raise InputError(
                f"model takes {self._k} features per row, got {arr.shape[1]}", source=self.info.source
            )
        return self._run(np.ascontiguousarray(arr, dtype=self._dtype))

    def predict_one(self, features: Sequence[float]) -> float | np.ndarray:
        """Output for one feature vector: a float when it is a single value, else a 1-D array."""
        x = np.array(features, dtype=self._dtype).reshape(1, -1)
        if self._k is not None and x.shape[1] != self._k:
            raise InputError(f"model takes {self._k} features, got {x.shape[1]}", source=self.info.source)
        out = self._run(x)
        if out.size == 1:
            return float(out.item())
        return out.reshape(-1)

    @abstractmethod
    def _run(self, x: np.ndarray) -> np.ndarray:
        """Run on a validated, contiguous ``(n, k)`` array of the input dtype."""


class NumpyModel(Model):
    """Interprets the graph with numpy (see :mod:`strategies.inference.ops`).

    Every tensor name gets a slot in a list (constants are born holding their value), so a
    call is one list copy and one indexed call per node: the per-call overhead matters on
    the board, where ``predict_one`` runs on every event. Constant nodes are folded and a
    Gemm's constant weight is transposed once, at load.
    """

    __slots__ = ("_input_slot", "_output_slot", "_slots", "_steps")

    def __init__(self, info: ModelInfo, graph: Graph) -> None:
        super().__init__(info)
        self._steps: list[tuple[OpFn, tuple[int, ...], tuple[int, ...]]] = []
        self._compile(graph)

    def _compile(self, graph: Graph) -> None:
        """Build one step per node, checking op support and that every input exists before use."""
        src = self.info.source
        consts: dict[str, np.ndarray] = dict(graph.initializers)
        index: dict[str, int] = {"": 0}
        values: list[Any] = [None]

        def slot(name: str) -> int:
            """The slot of ``name``; a constant's slot is born holding its value."""
            if name not in index:
                index[name] = len(values)
                values.append(consts.get(name))
            return index[name]

        self._input_slot = slot(self.info.input_name)
        for node in graph.nodes:
            self._check_node(node, index, consts)
            if node.op_type == "Constant":
                consts[node.outputs[0]] = constant_value(node)
                continue
            try:
                fn = BUILDERS[node.op_type](node, graph.opset(node.domain), consts)
            except ConfigError as exc:
                raise ConfigError(f"{src}: {exc}") from None
            self._steps.append(
                (fn, tuple(slot(n) for n in node.inputs), tuple(slot(n) for n in node.outputs))
            )
        out = self.info.output_name
        if out not in index and out not in consts:
            raise ConfigError(f"{src}: output {out!r} is never produced")
        self._output_slot = slot(out)
        self._slots = values

    def _check_node(self, node: Node, index: dict[str, int], consts: dict[str, np.ndarray]) -> None:
        src = self.info.source
        if node.domain not in ("", "ai.onnx"):
            raise ConfigError(
                f"{src}: {node.where()}: operators of domain {node.domain!r} are not supported by the numpy "
                f"backend (export with standard ONNX ops, e.g. strategies.inference.export, or install "
                f"onnxruntime); supported: {', '.join(SUPPORTED_OPS)}"
            )
        if node.op_type != "Constant" and node.op_type not in BUILDERS:
            raise ConfigError(
                f"{src}: {node.where()}: operator {node.op_type!r} is not supported by the numpy backend; "
                f"supported: {', '.join(SUPPORTED_OPS)}"
            )
        for name in node.inputs:
            if name not in index and name not in consts:
                raise ConfigError(f"{src}: {node.where()}: input {name!r} is not produced before it is used")

    def _run(self, x: np.ndarray) -> np.ndarray:
        env = self._slots.copy()
        env[self._input_slot] = x
        for fn, ins, outs in self._steps:
            results = fn(*[env[i] for i in ins])
            if len(outs) == 1:
                env[outs[0]] = results[0]
            else:
                for i, value in zip(outs, results, strict=False):
                    env[i] = value
        out: np.ndarray = env[self._output_slot]
        return out


class OrtModel(Model):
    """Runs the file in an onnxruntime CPU session (one thread: deterministic and cheap per call)."""

    __slots__ = ("_feed", "_fetch", "_fixed_batch", "_run_fn")

    def __init__(self, info: ModelInfo, data: bytes, fixed_batch: int | None) -> None:
        super().__init__(info)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ConfigError(
                f"backend 'onnxruntime' asked for but onnxruntime is not installed ({exc})"
            ) from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ConfigError(f"{info.source}: onnxruntime cannot load the model: {exc}") from exc
        self._feed = info.input_name
        self._fetch = [info.output_name]
        run: Callable[[list[str], dict[str, np.ndarray]], list[Any]] = session.run
        self._run_fn = run
        self._fixed_batch = fixed_batch

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._fixed_batch == 1 and x.shape[0] != 1:  # a file exported for one row at a time
            rows = [self._run_rows(x[i : i + 1]) for i in range(x.shape[0])]
            return np.concatenate(rows, axis=0) if rows else self._run_rows(x)
        return self._run_rows(x)

    def _run_rows(self, x: np.ndarray) -> np.ndarray:
        try:
            out: np.ndarray = np.asarray(self._run_fn(self._fetch, {self._feed: x})[0])
        except Exception as exc:
            raise InputError(
                f"onnxruntime failed on input of shape {x.shape}: {exc}", source=self.info.source
            ) from exc
        return out


def onnxruntime_available() -> bool:
    """True when onnxruntime is importable."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> tuple[str, ...]:
    """Backends that can run here, preferred first."""
    return ("onnxruntime", "numpy") if onnxruntime_available() else ("numpy",)


def load_model(
    path: str | os.PathLike[str],
    *,
    backend: Backend = "auto",
    output: str | int = 0,
    parser: Parser = "auto",
) -> Model:
    """Load an ONNX file. ``backend="auto"`` is onnxruntime when installed, else numpy.

    ``output`` picks the graph output ``predict`` returns (name or index). ``parser``
    chooses how the file is decoded for metadata and the numpy backend (``auto``: the onnx
    package when installed, else the built-in reader). Errors are ConfigError naming the
    file (and the node, for an unsupported operator).
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read model file {source}: {exc.strerror or exc}") from exc
    return model_from_bytes(data, source=source, backend=backend, output=output, parser=parser)


def model_from_bytes(
    data: bytes,
    *,
    source: str = "<bytes>",
    backend: Backend = "auto",
    output: str | int = 0,
    parser: Parser = "auto",
) -> Model:
    """:func:`load_model` for a serialized model already in memory (``source`` names it in errors)."""
    if backend not in ("auto", "onnxruntime", "numpy"):
        raise ConfigError(f"unknown inference backend {backend!r}; expected auto, onnxruntime or numpy")
    graph = parse_graph(data, source=source, parser=parser)
    feed = _single_input(graph, source)
    out = _check_tensor_output(_select_output(graph, output, source), source)
    chosen = ("onnxruntime" if onnxruntime_available() else "numpy") if backend == "auto" else backend
    info = ModelInfo(
        source=source,
        sha256=hashlib.sha256(data).hexdigest(),
        backend=chosen,
        input_name=feed.name,
        input_dtype=str(numpy_dtype(feed.elem_type)),
        n_features=_n_features(feed),
        output_name=out.name,
        output_shape=out.shape,
        opsets=tuple(sorted(graph.opsets.items())),
        producer=graph.producer,
        metadata=tuple(sorted(graph.metadata.items())),
    )
    if chosen == "numpy":
        return NumpyModel(info, graph)
    batch = feed.shape[0] if feed.shape else None
    return OrtModel(info, data, batch if isinstance(batch, int) else None)


def _single_input(graph: Graph, source: str) -> ValueInfo:
    feeds = graph.feed_inputs()
    if len(feeds) != 1:
        names = ", ".join(v.name for v in feeds) or "none"
        raise ConfigError(f"{source}: the model must take exactly one input tensor (n, k); it takes: {names}")
    feed = feeds[0]
    if feed.elem_type not in (1, 11):
        raise ConfigError(
            f"{source}: input {feed.name!r} must be float or double, got ONNX type code {feed.elem_type}"
        )
    if feed.shape is not None and len(feed.shape) != 2:
        raise ConfigError(
            f"{source}: input {feed.name!r} must be 2-D (n, k), declared shape {list(feed.shape)}"
        )
    return feed


def _n_features(feed: ValueInfo) -> int | None:
    if feed.shape is None:
        return None
    k = feed.shape[1]
    return k if isinstance(k, int) and k > 0 else None


def _select_output(graph: Graph, output: str | int, source: str) -> ValueInfo:
    names = [v.name for v in graph.outputs]
    if isinstance(output, int) and not isinstance(output, bool):
        if not 0 <= output < len(names):
            raise ConfigError(f"{source}: output index {output} out of range; outputs: {', '.join(names)}")
        return graph.outputs[output]
    if output not in names:
        raise ConfigError(f"{source}: no output named {output!r}; outputs: {', '.join(names)}")
    return graph.outputs[names.index(output)]


def _check_tensor_output(out: ValueInfo, source: str) -> ValueInfo:
    if out.elem_type == 0:
        raise ConfigError(
            f"{source}: output {out.name!r} is not a tensor (a sequence or map, e.g. ZipMap's); select a tensor "
            "output with output=, or export without ZipMap"
        )
    return out
