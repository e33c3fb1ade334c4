"""Architecture rules as a test: layer imports (DESIGN.md §1) and determinism hygiene (§4).

Parses every module with ``ast`` (nothing is imported), so it also runs on the edge profile.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.edge

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("engine", "catalogs", "venues", "strategies", "replay", "tickloop")
# layer -> layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "engine": set(),
    "catalogs": {"engine"},
    "venues": {"engine"},
    "strategies": {"engine"},
    "replay": {"engine", "catalogs", "venues", "strategies"},
    "tickloop": {"engine", "catalogs", "venues", "strategies", "replay"},
}
# Packages whose code runs inside a replay and so must never read wall time or unseeded randomness.
DETERMINISTIC = ("engine", "strategies", "venues/sim")
# The one place allowed to read the OS clock on purpose.
CLOCK_WHITELIST = {"engine/clock.py"}
FORBIDDEN_CALLS = {
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "perf_counter"),
    ("time", "perf_counter_ns"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("os", "urandom"),
    ("uuid", "uuid4"),
    ("uuid", "uuid1"),
}
FORBIDDEN_MODULES = {"random", "secrets"}


def _modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_follow_the_design(layer: str) -> None:
    bad = []
    for path in _modules(layer):
        tree = ast.parse(path.read_text(), filename=str(path))
        for root in _imported_roots(tree) & set(LAYERS):
            if root != layer and root not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(ROOT)} imports {root}")
    assert not bad, "layer violations:\n" + "\n".join(bad)


def _forbidden_uses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_CALLS:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
            if node.value.id in ("random",) or (node.value.id == "np" and node.attr == "random"):
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"line {node.lineno}: import {name}")
            if isinstance(node, ast.ImportFrom) and node.module == "time":
                found.extend(f"line {node.lineno}: from time import {a.name}" for a in node.names)
    return found


@pytest.mark.parametrize("package", DETERMINISTIC)
def test_replay_path_reads_no_wall_clock_or_unseeded_randomness(package: str) -> None:
    """np.random is allowed only as ``np.random.default_rng(seed)`` built by the caller, so
    any ``np.random`` attribute use in these packages must go through an injected Generator."""
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel in CLOCK_WHITELIST:
            continue
        for use in _forbidden_uses(ast.parse(path.read_text(), filename=rel)):
            bad.append(f"{rel} {use}")
    assert not bad, "non-deterministic calls in the replay path:\n" + "\n".join(bad)


def test_the_rules_catch_a_violation() -> None:
    """Guard against a checker that can never fail."""
    tree = ast.parse("import time\nfrom catalogs.log import LogWriter\nx = time.time_ns()\n")
    assert "catalogs" in _imported_roots(tree)
    assert _forbidden_uses(tree) == ["line 3: time.time_ns"]
    assert _forbidden_uses(ast.parse("import random\n")) == ["line 1: import random"]
