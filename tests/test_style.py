"""Library style limits that ruff does not check (issue 14): no function or method in the library
packages is longer than 80 lines (``def`` line to last line, docstring included). Complexity is
ruff's C901 (max 15, in pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_PACKAGES = ("rlreg", "agents", "envs")
MAX_FUNCTION_LINES = 80


def _long_functions(root: Path, packages: tuple[str, ...], limit: int) -> list[str]:
    """``"path:line name (N lines)"`` for every function or method over ``limit`` lines."""
    offenders = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > limit:
                        rel = path.relative_to(root).as_posix()
                        offenders.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
    return offenders


def test_library_packages_exist():
    for package in LIBRARY_PACKAGES:
        assert (ROOT / package / "__init__.py").is_file(), package


def test_no_library_function_over_80_lines():
    offenders = _long_functions(ROOT, LIBRARY_PACKAGES, MAX_FUNCTION_LINES)
    assert not offenders, (
        f"functions over {MAX_FUNCTION_LINES} lines (split them into helpers):\n" + "\n".join(offenders)
    )


def test_long_function_check_reports_offenders(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "\n".join(f"        x{i} = {i}" for i in range(80))
    (pkg / "mod.py").write_text(f"def short():\n    return 1\n\n\nclass C:\n    def long(self):\n{body}\n")
    assert _long_functions(tmp_path, ("pkg",), MAX_FUNCTION_LINES) == ["pkg/mod.py:6 long (81 lines)"]
