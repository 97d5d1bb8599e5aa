"""engine/accounts and engine/exchange.py stay pure: no clock, randomness, OS, threads or I/O."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
ALLOWED = {
    "__future__",
    "collections",
    "dataclasses",
    "decimal",
    "enum",
    "hashlib",
    "logging",
    "typing",
    "engine",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_accounts_and_exchange_import_only_pure_modules() -> None:
    paths = [*sorted((ROOT / "engine" / "accounts").glob("*.py")), ROOT / "engine" / "exchange.py"]
    assert len(paths) > 5
    for path in paths:
        assert _imports(path) <= ALLOWED, f"{path.name} imports {_imports(path) - ALLOWED}"
