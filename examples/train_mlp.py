"""Train a small classifier on a ``tickloop dataset`` file and export it as ONNX for ``model``.

    python examples/train_mlp.py DATASET.parquet --out model.onnx [--folds 4] [--embargo 5s]
        [--model mlp|logreg] [--hidden 16,8] [--max-iter 200] [--seed 0]

Needs the ``train`` extra (scikit-learn, onnx) and pyarrow. The target is ``label == +1``
(the take-profit barrier was touched first), so the model's output is P(up) as the
``model`` strategy reads it.

**Purged walk-forward.** Rows are in time order; they are cut into ``folds + 1`` equal
blocks and fold k tests on block k + 1 with a model trained on the rows *before* it. A
training row whose label was only known at ``label_ts`` >= the test fold's first ``ts``
is dropped (purged: its outcome overlaps the test period), and so is any training row
within ``--embargo`` of the test start (features computed on overlapping windows are
serially correlated with the first test rows). Per fold: AUC, accuracy at 0.5, base rate,
rows used and purged, as JSON on stdout (one object, last line).

**Export.** The final model is fitted on every row and written with our own exporter
(``strategies.inference.export.from_sklearn``: standard ONNX ops both backends run) in
**float64**, so onnxruntime and the numpy backend agree to ~1e-16 and the strategy's
quantised probability (1e-6) is the same under both. The ONNX metadata gets the dataset's
canonical feature spec (``tickloop.feature_spec``, which ``model`` checks against its own),
the column names (``tickloop.features``), the label spec and the dataset's source digest.

Deterministic: fixed ``random_state``, BLAS limited to one thread, rows in file order.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: the same floats on every run

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

DATASET_KEY = b"tickloop.dataset"
SPEC_KEY = "tickloop.feature_spec"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("dataset", help="a Parquet file written by `tickloop dataset`")
    p.add_argument("--out", required=True, help="the ONNX file to write")
    p.add_argument("--folds", type=int, default=4, help="walk-forward test folds (default 4)")
    p.add_argument("--embargo", default="5s", help="gap before each test fold, e.g. 5s or 0s (default 5s)")
    p.add_argument("--model", choices=("mlp", "logreg"), default="mlp")
    p.add_argument("--hidden", default="16,8", help="MLP hidden layer sizes (default 16,8)")
    p.add_argument("--max-iter", type=int, default=200, help="MLP epochs / solver iterations (default 200)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(X, y, ts, label_ts, dataset metadata) from a dataset file."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(DATASET_KEY)
    if raw is None:
        raise SystemExit(f"{path}: no tickloop.dataset metadata (write it with `tickloop dataset`)")
    meta: dict[str, Any] = json.loads(raw)
    cols = meta["columns"]
    x = np.column_stack([table.column(c).to_numpy() for c in cols]).astype(np.float64)
    y = (table.column("label").to_numpy() == 1).astype(np.int64)
    ts = table.column("ts").to_numpy().astype(np.int64)
    label_ts = table.column("label_ts").to_numpy().astype(np.int64)
    if len(y) == 0:
        raise SystemExit(f"{path}: the dataset has no rows")
    return x, y, ts, label_ts, meta


def duration_ns(text: str) -> int:
    units = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    raise SystemExit(f"bad duration {text!r}: expected e.g. 5s, 500ms, 0s")


def purged_folds(
    ts: np.ndarray, label_ts: np.ndarray, folds: int, embargo_ns: int
) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(train rows, test rows, rows purged) per fold; see the module doc."""
    blocks = np.array_split(np.arange(len(ts)), folds + 1)
    out = []
    for k in range(1, folds + 1):
        test = blocks[k]
        if len(test) == 0:
            continue
        start = int(ts[test[0]])
        before = np.arange(int(test[0]))
        keep = (label_ts[before] < start) & (ts[before] < start - embargo_ns)
        out.append((before[keep], test, int((~keep).sum())))
    return out


def make_model(args: argparse.Namespace) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if args.model == "logreg":
        est: Any = LogisticRegression(max_iter=args.max_iter, random_state=args.seed)
    else:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
        est = MLPClassifier(hidden_layer_sizes=hidden, max_iter=args.max_iter, random_state=args.seed,
                            learning_rate_init=1e-3, alpha=1e-4)  # fmt: skip
    return Pipeline([("scale", StandardScaler()), ("clf", est)])


def fit(model: Any, x: np.ndarray, y: np.ndarray) -> bool:
    """Fit; True when the solver converged (its warning is reported in the JSON, not raised)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    return not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def evaluate(args: argparse.Namespace, x: np.ndarray, y: np.ndarray, ts: np.ndarray,
             label_ts: np.ndarray) -> list[dict[str, Any]]:  # fmt: skip
    from sklearn.metrics import accuracy_score, roc_auc_score

    report = []
    for k, (train, test, purged) in enumerate(purged_folds(ts, label_ts, args.folds, duration_ns(args.embargo))):
        row: dict[str, Any] = {"fold": k + 1, "train": len(train), "test": len(test), "purged": purged,
                               "test_start_ts": int(ts[test[0]]), "base_rate": round(float(y[test].mean()), 6)}  # fmt: skip
        if len(train) == 0 or len(set(y[train].tolist())) < 2:
            row.update(auc=None, accuracy=None, note="training rows hold one class only")
            report.append(row)
            continue
        model = make_model(args)
        row["converged"] = fit(model, x[train], y[train])
        p = model.predict_proba(x[test])[:, 1]
        row["auc"] = round(float(roc_auc_score(y[test], p)), 6) if len(set(y[test].tolist())) == 2 else None
        row["accuracy"] = round(float(accuracy_score(y[test], p >= 0.5)), 6)
        report.append(row)
    return report


def export(model: Any, meta: dict[str, Any], out: Path) -> bytes:
    """ONNX bytes (float64) with the feature spec, columns, label and source in the metadata."""
    import onnx

    from strategies.inference.export import from_sklearn

    data = from_sklearn(model, feature_names=meta["columns"], dtype=np.float64)
    proto = onnx.load_from_string(data)
    props = {p.key: p.value for p in proto.metadata_props}
    props.update({SPEC_KEY: meta["features"], "tickloop.label": meta["label"],
                  "tickloop.source_digest": meta["source_digest"], "tickloop.target": "label==+1"})  # fmt: skip
    onnx.helper.set_model_props(proto, props)
    blob: bytes = proto.SerializeToString()
    out.write_bytes(blob)
    return blob


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    np.random.seed(args.seed)  # belt and braces: sklearn uses random_state, nothing else should draw
    x, y, ts, label_ts, meta = load(args.dataset)
    print(f"train_mlp: {len(y)} rows, {x.shape[1]} features ({meta['features']}), "
          f"base rate {y.mean():.3f}", file=sys.stderr)  # fmt: skip
    folds = evaluate(args, x, y, ts, label_ts)
    model = make_model(args)
    converged = fit(model, x, y)
    out = Path(args.out)
    blob = export(model, meta, out)
    p = model.predict_proba(x)[:, 1]
    aucs = [f["auc"] for f in folds if f.get("auc") is not None]
    result = {
        "dataset": args.dataset,
        "features": meta["features"],
        "label": meta["label"],
        "rows": len(y),
        "model": args.model,
        "folds": folds,
        "mean_auc": round(float(np.mean(aucs)), 6) if aucs else None,
        "final": {"converged": converged, "p_quantiles": [round(float(q), 6) for q in
                                                          np.quantile(p, [0.5, 0.9, 0.99, 1.0])]},  # fmt: skip
        "out": str(out),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
