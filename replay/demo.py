"""``tickloop demo``: a whole session end to end with no data and no network.

1. ``replay.synthetic`` writes a seeded two-symbol Binance spot recording (``DIR/raw/*.gz``);
2. the real importer turns it into an event log (``DIR/log``);
3. the log's L2 book is rebuilt and checked against every alignable bookTicker
   (``replay.verify_book``; a synthetic book that disagrees is a generator bug);
4. the log is replayed through a strategy (``rsi`` by default) into ``DIR/run``.

Same seed, same bytes at every step, hence the same run hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from replay.backtest import RunSummary, run_backtest, unused_dir
from replay.synthetic import SESSION_START_NS, write_session

DEFAULT_DEMO_DIR = Path("tickloop-demo")
DEFAULT_DURATION_S = 120.0


@dataclass(frozen=True, slots=True)
class DemoResult:
    """Where everything went and what each step reported."""

    root: Path
    raw: Path
    log: Path
    lines: int
    imported: dict[str, Any]
    book_check: dict[str, Any]
    run: RunSummary

    def to_json(self) -> dict[str, Any]:
        """The backtest summary plus the demo's paths and step results."""
        out = self.run.to_json()
        out.update(
            demo_dir=str(self.root),
            raw=str(self.raw),
            log=str(self.log),
            raw_lines=self.lines,
            imported_events=self.imported.get("events"),
            book_check={k: self.book_check[k] for k in ("ok", "checked", "mismatched", "quotes")},
        )
        return out


def run_demo(
    out: str | Path | None = None,
    *,
    seed: int = 0,
    duration_s: float = DEFAULT_DURATION_S,
    strategy: str = "rsi",
    params: Sequence[str] = (),
) -> DemoResult:
    """Generate, import, verify and replay; ``out`` must not exist or be empty (default ./tickloop-demo[-N])."""
    from catalogs.importers.driver import import_binance_stream
    from replay.verify_book import verify_log

    root = Path(out) if out is not None else unused_dir(DEFAULT_DEMO_DIR)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"demo directory {root} exists and is not empty; pick another --out")
    day = _utc_day(SESSION_START_NS)
    raw = root / "raw" / f"binance-spot-btcusdt-ethusdt-{day}.gz"
    lines = write_session(raw, seed, duration_s)
    log = root / "log"
    report = import_binance_stream([raw], log)
    check = verify_log(log).to_json()
    summary = run_backtest(log, strategy, params, seed=seed, out=root / "run")
    return DemoResult(root, raw, log, lines, report.summary(), check, summary)


def _utc_day(ts_ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y%m%d")
