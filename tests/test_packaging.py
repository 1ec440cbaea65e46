"""The distribution claims one import name, `pardus`: a wheel built from the repository holds
the top-level folders as pardus.cli, pardus.serve, ... and nothing else at the top, and a clean
virtualenv that installs it can `import pardus` and run `pardus --help`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUP = PYPROJECT["tool"]["setuptools"]
FOLDERS = {name: folder for name, folder in SETUP["package-dir"].items()}
GENERIC = ("cli", "serve", "deployments", "ingest", "evaluation")
# What `pardus --help` imports beyond the standard library (checked below: it must run).
HELP_NEEDS = ("typer", "rich", "pyyaml")


def pip(python: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout)


def package_folders() -> dict[str, Path]:
    """Every folder with an __init__.py under the mapped ones, by the package name it gets."""
    found = {"pardus": REPO / "pardus"}
    for name, folder in FOLDERS.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                inner = init.parent.relative_to(root).parts
                found[".".join((name, *inner))] = init.parent
    return found


def test_every_package_folder_is_listed():
    """A new folder with an __init__.py that pyproject.toml does not list would be left out of
    the wheel (the mapping needs an explicit list)."""
    listed = set(SETUP["packages"]) - {"pardus.serve.static"}  # data only
    assert listed == set(package_folders())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of what the Dockerfile's build context holds (setuptools writes its
    build folders beside the sources)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source)
    for folder in FOLDERS.values():  # pardus/ and the folders mapped into it
        shutil.copytree(REPO / folder, source / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    built = pip(Path(sys.executable), "wheel", "--no-deps", "--no-build-isolation", "-q",
                "-w", str(out), str(source))
    assert built.returncode == 0, built.stderr[-3000:]
    return next(out.glob("pardus-*.whl"))


def test_the_wheel_holds_pardus_alone(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"pardus"}
    for package, folder in package_folders().items():  # every module of every folder
        for module in folder.glob("*.py"):
            assert f"{package.replace('.', '/')}/{module.name}" in names
    assert {"pardus/serve/config.yaml", "pardus/serve/static/index.html"} <= set(names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt")))
    assert "pardus = pardus.cli.main:app" in entry.decode()


def test_a_clean_virtualenv_imports_pardus_and_runs_its_help(wheel, tmp_path):
    """Installed into a virtualenv of its own (no system packages): `import pardus` works,
    `pardus --help` lists the commands, and no generic top-level module exists."""
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    for step in (["install", "-q", "--no-deps", str(wheel)], ["install", "-q", *HELP_NEEDS]):
        done = pip(python, *step)
        assert done.returncode == 0, done.stderr[-3000:]
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    found = subprocess.run(
        [str(python), "-c", "import importlib.util as u, pardus; print(pardus.__version__); "
         f"print([m for m in {GENERIC!r} if u.find_spec(m)])"],
        cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split("\n")[:2] == [PYPROJECT["project"]["version"], "[]"]
    helped = subprocess.run([str(env / "bin" / "pardus"), "--help"], cwd=tmp_path, env=clean,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "search", "ingest", "eval", "store", "k8s"):
        assert command in helped.stdout


CPU_TORCH = next(requirement for requirement in PYPROJECT["project"]["optional-dependencies"]["cpu"]
                 if requirement.startswith("torch=="))
TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def install_command(tmp_path: Path, **env: str) -> str:
    """The pip command `make install` would run into a fresh virtualenv, where pip reads no
    configuration file and no PIP_ variable but those in `env` (a plain machine)."""
    plain = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    done = subprocess.run(["make", "-n", "install", f"VENV={tmp_path / 'venv'}"], check=False,
                          cwd=REPO, env={**plain, "PIP_CONFIG_FILE": os.devnull, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return next(line for line in done.stdout.splitlines() if "-e '.[cpu" in line)


def wheel_folder(folder: Path, version: str) -> Path:
    """A folder holding a (metadata-only) torch wheel of this version, as a local one would."""
    folder.mkdir()
    info = f"torch-{version}.dist-info"
    with zipfile.ZipFile(folder / f"torch-{version}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                                      "Root-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    return folder


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_install_finds_the_cpu_torch_with_or_without_a_local_wheel(tmp_path):
    """The default index holds no +cpu build: a plain machine gets PyTorch's CPU index. Where
    pip's find-links (PIP_FIND_LINKS, pip.conf, or --find-links in PIP_ARGS) hold the pinned
    wheel, nothing is added: no index that machine may not reach is asked, no retries."""
    assert TORCH_INDEX in install_command(tmp_path)
    local = wheel_folder(tmp_path / "cpu", CPU_TORCH.removeprefix("torch=="))
    assert "--extra-index-url" not in install_command(tmp_path, PIP_FIND_LINKS=str(local))
    assert "--extra-index-url" not in install_command(tmp_path, PIP_ARGS=f"--find-links {local}")
    cuda = wheel_folder(tmp_path / "cuda", CPU_TORCH.removeprefix("torch==").split("+")[0])
    assert TORCH_INDEX in install_command(tmp_path, PIP_FIND_LINKS=str(cuda))
    assert "--extra-index-url" not in install_command(tmp_path, TORCH_INDEX="")
