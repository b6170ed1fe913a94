"""What the numbers were measured on: CPU, memory, and the versions of everything in the path."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

import confluent_kafka


def _first(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1).strip() if found else None


def kafka_version(cache: Path) -> str:
    jars = sorted((cache / "kafka" / "libs").glob("kafka_2.*-*.jar"))
    found = re.search(r"kafka_[\d.]+-([\d.]+)\.jar", jars[-1].name) if jars else None
    return found.group(1) if found else "unknown"


def kcat_version() -> str:
    try:
        out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return "not installed"
    version = _first(r"^Version (\S+)", out) or "unknown"
    librdkafka = _first(r"librdkafka (\S+)", out) or "?"
    return f"{version} (librdkafka {librdkafka})"


def describe() -> list[tuple[str, str]]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(_first(r"^MemTotal:\s+(\d+)", meminfo) or 0)
    cache = Path(os.environ.get("CSVKAFKA_CACHE", Path.home() / ".cache" / "csvkafka"))

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return [
        ("CPUs (nproc)", str(os.cpu_count())),
        ("CPU model", _first(r"^model name\s*:\s*(.+)$", cpuinfo) or "unknown"),
        ("memory", f"{mem_kb / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("Kafka broker", f"{kafka_version(cache)} (KRaft, single node, on the same machine)"),
        ("confluent-kafka / librdkafka", f"{version('confluent-kafka')} / {confluent_kafka.libversion()[0]}"),
        ("kcat", kcat_version()),
        ("orjson", version("orjson")),
        ("boto3", version("boto3")),
        ("smart-open", version("smart-open")),
        ("S3 and DynamoDB", f"moto server {version('moto')} (on the same machine)"),
    ]
