"""The layering of the tree (pyproject.toml's import-linter contracts) holds, and would fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "evaluation", "serve", "ingest", "deployments")
LINTER = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINTER.exists(), reason="import-linter is not installed "
                                "(pip install -e '.[test]')")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the packages under root, not the install
    return subprocess.run([str(LINTER), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_contracts_hold():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("deployments/embedder/encoder.py", "from ray import serve", "never imports Ray"),
    ("deployments/catalogue/store.py", "import serve.search", "cli above serve"),
    ("serve/search.py", "import ingest.pipeline", "cli above serve"),
    ("ingest/stages.py", "import deployments.embedder.deployment", "never the Serve"),
    ("serve/factory.py", "import deployments.tiny.embedder", "tiny model writers"),
    ("evaluation/metrics.py", "import cli.main", "evaluation between"),
    ("serve/search.py", "import evaluation.metrics", "evaluation between"),
    ("evaluation/generate.py", "import deployments.tiny.embedder", "tiny model writers"),
])
def test_a_broken_rule_fails(tmp_path, module, line, contract):
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # planted by the test\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if " BROKEN" in row]
    assert any(contract in row for row in broken), result.stdout[-3000:]
