"""``tickloop sql CATDIR "SELECT ..." [--format table|json|jsonl|csv]``: DuckDB over the catalog's views.

Rows are fetched in chunks and written as they come for json/jsonl/csv, so a large result
does not have to fit in memory; ``table`` shows at most ``--max-rows`` rows (it needs every
shown row to size its columns). Values that JSON lacks are rendered as text: dates and
timestamps in ISO-8601, NaN/inf as null, nested lists/structs (book levels) as JSON.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import decimal
import json
import math
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

FORMATS = ("table", "json", "jsonl", "csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "catalog", metavar="CATDIR", help="catalog directory (from `tickloop catalog compact`)"
    )
    parser.add_argument("query", metavar="SQL", help='the query, e.g. "SELECT count(*) FROM trades"')
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default, readable), json (one array of objects), jsonl (one object per line), csv",
    )
    parser.add_argument(
        "--max-rows", type=int, default=1000, metavar="N", help="rows shown by --format table (default 1000)"
    )


def run(args: argparse.Namespace) -> int:
    from catalogs.catalog import query

    with query(args.catalog, args.query) as result:
        rows = (row for chunk in result.chunks() for row in chunk)
        write(sys.stdout, args.format, result.columns, rows, max_rows=args.max_rows)
    return 0


def write(
    out: TextIO, fmt: str, columns: Sequence[str], rows: Iterator[tuple[Any, ...]], *, max_rows: int
) -> None:
    """Write a result in one of :data:`FORMATS`."""
    if fmt == "json":
        out.write("[")
        for i, row in enumerate(rows):
            out.write(",\n" if i else "\n")
            out.write(_dumps(dict(zip(columns, row, strict=True))))
        out.write("\n]\n")
    elif fmt == "jsonl":
        for row in rows:
            out.write(_dumps(dict(zip(columns, row, strict=True))) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
    else:
        _table(out, columns, rows, max_rows)


def jsonable(value: Any) -> Any:
    """A query value as JSON data (ints stay exact; floats that JSON cannot hold become null)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps({k: jsonable(v) for k, v in obj.items()}, separators=(",", ":"), allow_nan=False)


def _cell(value: Any) -> str:
    """One value as text for csv/table: scalars as-is, nested values as JSON, null as empty."""
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(jsonable(value), separators=(",", ":"))
    data = jsonable(value)
    return "" if data is None else str(data)


def _table(out: TextIO, columns: Sequence[str], rows: Iterator[tuple[Any, ...]], max_rows: int) -> None:
    shown: list[list[str]] = []
    numeric = [True] * len(columns)
    total = 0
    for row in rows:
        total += 1
        if len(shown) < max_rows:
            for j, v in enumerate(row):
                if v is not None and (
                    isinstance(v, bool) or not isinstance(v, int | float | decimal.Decimal)
                ):
                    numeric[j] = False
            shown.append([_cell(v) for v in row])
    widths = [max([len(c), *(len(r[j]) for r in shown)]) for j, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if numeric[j] else c.ljust(w)
            for j, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return " | ".join(parts).rstrip()

    out.write(line(columns) + "\n")
    out.write("-+-".join("-" * w for w in widths) + "\n")
    for r in shown:
        out.write(line(r) + "\n")
    more = f", showing the first {len(shown)}" if total > len(shown) else ""
    out.write(f"({total} row{'s' if total != 1 else ''}{more})\n")
