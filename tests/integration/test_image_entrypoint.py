"""What the image runs works, from an install made the way the Dockerfile makes it (no Docker here).

The build stage's COPY lines are read from the Dockerfile and its install commands are checked to
be the ones run here: a wheel of the copied sources, installed with --only-binary and the lock as
constraints into a fresh venv, pip removed. The commands then run as in the image: HOME and TMPDIR
in a scratch directory, no bytecode written, and nothing in the venv may change (read-only root).
Needs the package index (pip) but none of dev/stack's services.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.unit.test_dockerfile import read_lock

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
BUILD_STAGE = DOCKERFILE.split("\nFROM ")[1]
INSTALL = ("pip wheel --no-deps --wheel-dir /wheels .",
           "/opt/csvkafka/bin/pip install --only-binary=:all: --constraint requirements.lock /wheels/csvkafka-*.whl",
           "/opt/csvkafka/bin/pip uninstall --yes pip setuptools",
           "from csvkafka_worker import _native; assert _native.check() is None")
# The command that has all four subcommands (the worker's own main lacks `operator`).
OPERATOR_SCRIPT = 'csvkafka = "csvkafka_operator.cli:main"'
COMMANDS = [["--help"], ["run", "--help"], ["checkpoint", "--help"], ["operator", "--help"]]

pytestmark = pytest.mark.timeout(900)


def copy_build_context(target: Path) -> None:
    """Does what the build stage's `COPY src... dest` lines do, from the repository root."""
    for line in BUILD_STAGE.splitlines():
        if not line.startswith("COPY ") or "--from" in line:
            continue
        *sources, dest = line.split()[1:]
        for source in sources:
            origin = ROOT / source
            place = target / dest / (origin.name if dest.endswith("/") and origin.is_file() else "")
            if origin.is_dir():
                shutil.copytree(origin, place, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                place.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, place)


def tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for command in INSTALL:
        assert command in BUILD_STAGE, f"the Dockerfile no longer runs {command!r}; update this test with it"
    work = tmp_path_factory.mktemp("image")
    src, wheels, venv = work / "src", work / "wheels", work / "opt-csvkafka"
    copy_build_context(src)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), "."], cwd=src, env=env, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--only-binary=:all:", "--constraint",
                    "requirements.lock", *map(str, wheels.glob("csvkafka-*.whl"))],
                   cwd=src, env=env, check=True)
    # The venv's seeded pip and setuptools are not needed at run time (old setuptools trips scanners).
    subprocess.run([str(venv / "bin" / "pip"), "uninstall", "--quiet", "--yes", "pip", "setuptools"], env=env,
                   check=True)
    return venv


def test_install_is_exactly_the_lock(image_venv: Path) -> None:
    listed = subprocess.run(
        [str(image_venv / "bin" / "python"), "-c",
         "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name']: d.version "
         "for d in m.distributions()}))"],
        capture_output=True, text=True, check=True)
    installed: dict[str, str] = {canonicalize_name(name): version
                                 for name, version in json.loads(listed.stdout).items()}
    assert installed.pop("csvkafka")
    assert installed == read_lock()


def test_the_image_runs_the_native_core(image_venv: Path, tmp_path: Path) -> None:
    """The wheel carries the native core, it binds to the image's librdkafka, and the worker picks it."""
    env = {"PATH": f"{image_venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [str(image_venv / "bin" / "python"), "-c",
         "from csvkafka_worker.engine import choose; from csvkafka_worker.options import EngineChoice; "
         "from csvkafka_worker.records import Dialect; engine, why = choose(EngineChoice.NATIVE, Dialect(), 'utf-8'); "
         "print(engine.name, engine.native.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    name, path = done.stdout.split()
    assert name == "native"
    assert Path(path).is_relative_to(image_venv), f"the native core was loaded from {path}, not from the image"


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_entrypoint_command_runs_read_only(image_venv: Path, tmp_path: Path, args: list[str]) -> None:
    if args[0] == "operator" and OPERATOR_SCRIPT not in (ROOT / "pyproject.toml").read_text():
        pytest.skip(f"pyproject.toml's console script is not {OPERATOR_SCRIPT} yet")
    before = tree(image_venv)
    env = {"PATH": f"{image_venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(["csvkafka", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "usage: csvkafka" in done.stdout
    assert tree(image_venv) == before, "the command wrote into the image's venv"
