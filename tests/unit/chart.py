"""The Helm chart as `helm template` renders it, and the tools that read it (helm, promtool), built from
the Go module proxy into the cache on first use (dev/build/*.sh; a no-op once built)."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "csvkafka"
KUBE_VERSION = "1.34.0"
RELEASE_NAMESPACE = "csvkafka-system"


@cache
def tool(name: str) -> str:
    """dev/build/NAME.sh builds NAME once (it says so, and how long, on stderr); the path of the binary."""
    subprocess.run([str(REPO / "dev" / "build" / f"{name}.sh")], check=True)
    cache_dir = Path(os.environ.get("CSVKAFKA_CACHE") or Path.home() / ".cache" / "csvkafka")
    return str(cache_dir / "bin" / name)


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=120)


def render(values: dict[str, Any], *extra: str, namespace: str = RELEASE_NAMESPACE) -> list[dict[str, Any]]:
    """The chart's manifests for these values (on top of values.yaml), as Kubernetes objects; `helm test`'s
    hooks left out."""
    done = run(tool("helm"), "template", "csvkafka", str(CHART), "--namespace", namespace, "--skip-tests",
               "--kube-version", KUBE_VERSION, "--values", "-", *extra, stdin=yaml.safe_dump(values))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_error(values: dict[str, Any]) -> str:
    """What `helm template` says when it refuses these values."""
    done = run(tool("helm"), "template", "csvkafka", str(CHART), "--kube-version", KUBE_VERSION, "--values", "-",
               stdin=yaml.safe_dump(values))
    assert done.returncode != 0, f"helm template accepted {values}"
    return done.stderr


def of_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"{len(found)} {kind}s rendered"
    return found[0]
