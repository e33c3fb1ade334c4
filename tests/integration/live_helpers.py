"""Helpers shared by the live adapter's integration tests (not a test module)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(cond: Callable[[], bool], what: str, limit_s: float = 20.0) -> None:
    """Poll ``cond`` (a condition, not a timing assertion): fail naming ``what`` if it never holds."""
    for _ in range(int(limit_s / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")
