"""The images the nodes run, built from this repository (dev/build/images.sh) and loaded into each
node's containerd: there is no registry, so pods use them with imagePullPolicy IfNotPresent."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack.layout import REPO, Layout
from devstack.processes import StackError, run_build

PAUSE = "localhost/pause:csvkafka"
CSVKAFKA = "localhost/csvkafka:dev"
NAMESPACE = "k8s.io"  # the containerd namespace the kubelet's CRI plugin uses


def build(layout: Layout) -> list[Path]:
    """Builds what changed; returns the archives to load (where dev/build/images.sh writes them)."""
    run_build(REPO / "dev" / "build" / "images.sh", what="building the images")
    return [layout.cache / "images" / name for name in ("pause.tar", "csvkafka.tar")]


def load(socket: Path, root: Path, archives: list[Path]) -> None:
    """Imports each archive into the containerd at `socket`, unless it already holds that build; the
    stamps live beside the containerd's `root`, so they go when its images do."""
    for archive in archives:
        stamp = root / f"{archive.stem}.loaded"
        key = f"{archive.stat().st_mtime_ns}"
        if stamp.exists() and stamp.read_text() == key:
            continue
        result = subprocess.run(["ctr", "--address", str(socket), "--namespace", NAMESPACE, "images", "import",
                                 "--no-unpack", str(archive)],
                                capture_output=True, text=True, check=False, timeout=600)
        if result.returncode != 0:
            raise StackError(f"loading {archive.name} into the containerd at {socket} failed: {result.stderr.strip()}")
        stamp.write_text(key)
