"""`bin/query "SELECT ..."`: SQL over the history tables, printed as a table, JSON or CSV.

The history is found at `<home>/history`, where home is `--home`, else `$SHMEX_HOME`, else
`./var/<prefix>` with the prefix from `--prefix`, `$SHMEX_PREFIX` or "shmex" (shared/DESIGN.md
"Conventions").
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson
import polars as pl

from storage.query import HistoryQuery
from storage.schemas import TABLES


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    query = HistoryQuery(history_root(args.home, args.prefix))
    if args.tables:
        for name, schema in TABLES.items():
            print(f"{name}: {', '.join(schema.names)}, date, instrument")
        return 0
    if not args.sql:
        print("bin/query: give a SQL statement, or --tables", file=sys.stderr)
        return 2
    try:
        frame = query.sql(args.sql)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        print(f"bin/query: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(frame.to_dicts(), default=str) + b"\n")
    elif args.csv:
        sys.stdout.write(frame.write_csv())
    else:
        with pl.Config(tbl_rows=args.max_rows, tbl_cols=-1, tbl_width_chars=200):
            print(frame)
    return 0


def history_root(home: str | None, prefix: str | None) -> Path:
    """Where the history lives: `<home>/history` by the shmex configuration rules."""
    if home is None:
        home = os.environ.get("SHMEX_HOME")
    if home is None:
        home = str(Path("var") / (prefix or os.environ.get("SHMEX_PREFIX") or "shmex"))
    return Path(home) / "history"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bin/query",
        description="SQL over the shmex history (tables: " + ", ".join(TABLES) + ").",
    )
    parser.add_argument("sql", nargs="?", help='e.g. "SELECT COUNT(*) FROM trades"')
    parser.add_argument("--home", help="run directory (default: $SHMEX_HOME or ./var/<prefix>)")
    parser.add_argument("--prefix", help="instance prefix (default: $SHMEX_PREFIX or shmex)")
    parser.add_argument("--max-rows", type=int, default=50, help="rows shown in the table")
    parser.add_argument("--tables", action="store_true", help="list the tables and columns")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON array of rows")
    output.add_argument("--csv", action="store_true", help="print CSV with a header")
    return parser


if __name__ == "__main__":
    sys.exit(main())
