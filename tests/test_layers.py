"""The layering of the tree (pyproject.toml's import-linter contracts) holds, and would fail."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINTER = Path(sys.executable).with_name("lint-imports")
# The folders pyproject.toml maps into the `pardus` package, by subpackage name.
FOLDERS = {name.removeprefix("pardus."): folder for name, folder in tomllib.loads(
    (REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].items()
    if name != "pardus"}

pytestmark = pytest.mark.skipif(not LINTER.exists(), reason="import-linter is not installed "
                                "(pip install -e '.[test]')")


def package_tree(root: Path, copy: bool = False) -> Path:
    """`pardus/` under root as an install lays it out (pardus/serve is serve/, ...): the
    linter walks a package's folder, which the editable install's mapping does not give it.
    Linked folders, or copies that a test may change."""
    package = root / "pardus"
    package.mkdir()
    shutil.copy(REPO / "pardus" / "__init__.py", package)
    for name, folder in FOLDERS.items():
        if copy:
            shutil.copytree(REPO / folder, package / name,
                            ignore=shutil.ignore_patterns("__pycache__", "static"))
        else:
            (package / name).symlink_to(REPO / folder, target_is_directory=True)
    shutil.copy(REPO / "pyproject.toml", root)
    return package


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the tree under root, not the install
    return subprocess.run([str(LINTER), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_contracts_hold(tmp_path):
    package_tree(tmp_path)
    result = lint(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "5 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("deployments/embedder/encoder.py", "from ray import serve", "never imports Ray"),
    ("deployments/catalogue/store.py", "import pardus.serve.search", "cli above serve"),
    ("serve/search.py", "import pardus.ingest.pipeline", "cli above serve"),
    ("ingest/stages.py", "import pardus.deployments.embedder.deployment", "never the Serve"),
    ("serve/factory.py", "import pardus.deployments.tiny.embedder", "tiny model writers"),
    ("evaluation/metrics.py", "import pardus.cli.main", "evaluation between"),
    ("serve/search.py", "import pardus.evaluation.metrics", "evaluation between"),
    ("evaluation/generate.py", "import pardus.deployments.tiny.embedder", "tiny model writers"),
    ("cli/service.py", "import pardus.serve.errors", "HTTP statuses stay in serve"),
    ("evaluation/targets.py", "import fastapi", "HTTP statuses stay in serve"),
])
def test_a_broken_rule_fails(tmp_path, module, line, contract):
    target = package_tree(tmp_path, copy=True) / module
    target.write_text(target.read_text() + f"\n{line}  # planted by the test\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if " BROKEN" in row]
    assert any(contract in row for row in broken), result.stdout[-3000:]


def _import_runs(statements: list[ast.stmt]):
    """Runs of consecutive import statements in a block, and in the blocks inside it."""
    run: list[ast.stmt] = []
    for statement in statements:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            run.append(statement)
            continue
        if run:
            yield run
            run = []
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue  # checked on its own
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(statement, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.AST):
                if field == "handlers":
                    for handler in inner:
                        yield from _import_runs(handler.body)
                else:
                    yield from _import_runs(inner)
    if run:
        yield run


def deferred_imports_without_a_reason(root: Path) -> list[str]:
    """Imports inside functions whose group (consecutive import statements) has no comment
    saying why directly above it or on its first line: imports belong at the top."""
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for run in _import_runs(node.body):
                first = run[0].lineno - 1
                above = lines[first - 1].strip() if first else ""
                if not (above.startswith("#") or "#" in lines[first]):
                    found += [f"{path.relative_to(root)}:{s.lineno}" for s in run]
    return found


@pytest.mark.parametrize("folder", sorted(set(FOLDERS.values())))
def test_imports_are_at_the_top_unless_a_comment_says_why(folder):
    assert deferred_imports_without_a_reason(REPO / folder) == []


def test_a_deferred_import_without_a_reason_is_found(tmp_path):
    module = tmp_path / "late.py"
    module.write_text("def late():\n    # why: a reason\n    import json\n\n\n"
                      "def later():\n    import json\n    from os import path\n")
    assert deferred_imports_without_a_reason(tmp_path) == ["late.py:7", "late.py:8"]
