"""The package's structure: one-way layers, no import circles, no hidden imports, small modules.

The layer contract itself lives in ``pyproject.toml`` (``[tool.importlinter]``) and is run
here with import-linter; the other rules walk the package's own import graph (grimp, the
library import-linter is built on) and its source.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import biotech_ma_db

PACKAGE_DIR = Path(biotech_ma_db.__file__).parent
PROJECT_ROOT = PACKAGE_DIR.parents[1]
PYPROJECT = PROJECT_ROOT / "pyproject.toml"

MAX_MODULE_LINES = 500
# Modules allowed past MAX_MODULE_LINES: data tables, not logic.
DATA_TABLE_MODULES: frozenset[str] = frozenset()
# The ORM models may refer to each other (relationships both ways); nothing else may.
CIRCLE_ALLOWED_UNDER = "biotech_ma_db.models"


def _lint_imports(pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; "
            "sys.exit(lint_imports_command())",
            "--config",
            str(PYPROJECT),
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
        timeout=120,
    )


def _circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
    )


def _nested_package_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Imports of this package's modules that are not at a module's top level."""
    nested: list[tuple[int, str]] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom) and not top_level:
                names = (
                    [child.module or ""]
                    if isinstance(child, ast.ImportFrom)
                    else [a.name for a in child.names]
                )
                if isinstance(child, ast.ImportFrom) and child.level > 0:
                    names = ["biotech_ma_db"]
                for name in names:
                    if name == "biotech_ma_db" or name.startswith("biotech_ma_db."):
                        nested.append((child.lineno, name))
            if _is_type_checking_block(child):
                continue
            still_top = top_level and isinstance(child, ast.If | ast.Try | ast.With)
            visit(child, still_top)

    visit(tree, top_level=True)
    return nested


class TestLayers:
    """The layer contract in pyproject.toml holds, and would catch an upward import."""

    def test_contract_is_kept(self) -> None:
        """import-linter finds no import from a lower layer into a higher one."""
        result = _lint_imports()
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 broken" in result.stdout

    def test_an_upward_import_breaks_the_contract(self, tmp_path: Path) -> None:
        """A copy of the package whose models import the facade fails the same check."""
        copy = tmp_path / "biotech_ma_db"
        shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
        base = copy / "models" / "base.py"
        base.write_text(
            base.read_text() + "\nfrom biotech_ma_db.database import Database as _Upward\n"
        )
        result = _lint_imports(pythonpath=tmp_path)
        assert result.returncode != 0, result.stdout
        assert "biotech_ma_db.models.base -> biotech_ma_db.database" in result.stdout


@pytest.fixture(name="graph", scope="module")
def fixture_graph() -> grimp.ImportGraph:
    """The package's import graph, as import-linter sees it."""
    return grimp.build_graph("biotech_ma_db", exclude_type_checking_imports=True)


class TestImportGraph:
    """What import-linter's layers do not say on their own."""

    def test_no_import_circles_outside_the_models(self, graph: grimp.ImportGraph) -> None:
        """Every import circle lies inside the ORM models (their mutual relationships)."""
        outside = [
            circle
            for circle in _circles(graph)
            if not all(m.startswith(CIRCLE_ALLOWED_UNDER) for m in circle)
        ]
        assert outside == []

    def test_no_package_import_inside_a_function(self) -> None:
        """The package's modules import each other at the top, where the graph sees them."""
        offenders = [
            f"{path.relative_to(PACKAGE_DIR)}:{line} imports {name}"
            for path in sorted(PACKAGE_DIR.rglob("*.py"))
            for line, name in _nested_package_imports(ast.parse(path.read_text()))
        ]
        assert offenders == []


class TestModuleSize:
    """Rooms stay small enough to read in one sitting."""

    def test_no_module_over_the_limit(self) -> None:
        """No module in src/ is longer than MAX_MODULE_LINES, data tables aside."""
        too_long = {
            str(path.relative_to(PACKAGE_DIR)): lines
            for path in sorted(PACKAGE_DIR.rglob("*.py"))
            if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
            and str(path.relative_to(PACKAGE_DIR)) not in DATA_TABLE_MODULES
        }
        assert too_long == {}
