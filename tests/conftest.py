"""Shared fixtures: where the real Binance data lives, and the hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

SHARED_DATA = Path(os.environ.get("TICKLOOP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
BINANCE_DATA = SHARED_DATA / "binance"

settings.register_profile(
    "ci", derandomize=True, max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def binance_file(relative: str) -> Path:
    """Path of a file under ../shared/data/binance, or skip the test saying why."""
    path = BINANCE_DATA / relative
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (../shared/data is not checked out beside the repo)")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data/binance directory; skips the test when it is absent."""
    if not BINANCE_DATA.is_dir():
        pytest.skip(f"real data not available: {BINANCE_DATA} is absent")
    return BINANCE_DATA
