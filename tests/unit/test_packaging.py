"""The install profiles of DESIGN.md §7, checked from pyproject.toml's own markers.

On riscv64 (the Orange Pi RV2) ``pip install .`` must pull only the edge set; on
x86_64/arm64 it must pull the heavy set too. Evaluating the markers here proves that
without a riscv64 machine (the emulated check lives in scripts/edge-check.sh).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

pytestmark = pytest.mark.edge

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
HEAVY = {"pyarrow", "duckdb", "numba", "scipy", "nautilus-trader", "nautilus_trader", "onnxruntime"}
EDGE = {"numpy", "msgspec", "websockets", "httpx"}


def _installed_names(machine: str, extras: tuple[str, ...] = ()) -> set[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    env = dict(default_environment())
    env.update(platform_machine=machine, python_version="3.11")
    return {r.name.lower() for r in reqs if r.marker is None or r.marker.evaluate(env)}


def test_riscv64_gets_only_the_edge_set() -> None:
    names = _installed_names("riscv64")
    assert names >= EDGE
    assert not names & HEAVY, f"heavy packages on riscv64: {names & HEAVY}"


def test_riscv64_compare_extra_pulls_no_nautilus() -> None:
    assert not _installed_names("riscv64", ("compare",)) & HEAVY


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_workstations_get_everything(machine: str) -> None:
    names = _installed_names(machine, ("dev", "compare"))
    assert names >= EDGE | {"pyarrow", "duckdb", "numba", "scipy", "pytest", "hypothesis"}
    assert "nautilus-trader" in names or "nautilus_trader" in names
