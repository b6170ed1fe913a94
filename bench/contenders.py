"""The contenders: what each one runs, and how many records it must leave in the topic.

kcat gets the worker's own librdkafka settings (kafka_config.PRODUCER_DEFAULTS), so the two differ
only in what produces the records, not in how librdkafka batches, compresses and acknowledges them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from bench.data import DataFile
from csvkafka_worker.kafka_config import PRODUCER_DEFAULTS

PYTHON = sys.executable
WORKER = [PYTHON, "-m", "csvkafka_worker", "run"]
# message.timeout.ms and socket.keepalive.enable do not change throughput; the rest is passed as is.
KCAT_SETTINGS = {key: str(value).lower() if isinstance(value, bool) else str(value)
                 for key, value in PRODUCER_DEFAULTS.items()}


@dataclass(frozen=True)
class Target:
    """Where one contender writes: the object (and its local copy), the topic, the checkpoint item."""

    path: Path
    uri: str
    topic: str
    table: str
    job_id: str
    bootstrap: str


@dataclass(frozen=True)
class Contender:
    name: str
    kind: str  # kcat | naive | worker | floor
    label: str
    value_format: str = "json"
    delivery: str = "at-least-once"
    variant: str = ""
    worker_flags: tuple[str, ...] = ()

    @property
    def transactional(self) -> bool:
        return self.kind == "worker" and self.delivery == "exactly-once"

    def argv(self, target: Target) -> list[str]:
        if self.kind == "kcat":
            settings = [arg for key, value in KCAT_SETTINGS.items() for arg in ("-X", f"{key}={value}")]
            return ["kcat", "-P", "-b", target.bootstrap, "-t", target.topic, "-l", *settings, str(target.path)]
        if self.kind == "naive":
            return [PYTHON, "-m", "bench.naive", "--source", target.uri, "--topic", target.topic,
                    "--table", target.table, "--job-id", target.job_id, "--bootstrap-servers", target.bootstrap]
        if self.kind == "floor":
            return [PYTHON, "-m", "bench.floor", str(target.path), "--topic", target.topic, "--variant", self.variant,
                    "--bootstrap-servers", target.bootstrap]
        return worker_argv(target, self.value_format, self.delivery, self.worker_flags, patches=self.variant)

    def expected_records(self, data: DataFile) -> int:
        """kcat and the Python floor send every line, header included; the naive loop every line after
        the header; the worker one record per CSV row."""
        if self.kind in ("kcat", "floor"):
            return data.lines
        if self.kind == "naive":
            return data.lines - 1
        return data.rows


def with_flags(contender: Contender, flags: tuple[str, ...]) -> Contender:
    """`contender` with more `csvkafka run` flags (no change for the other kinds)."""
    if contender.kind != "worker" or not flags:
        return contender
    return replace(contender, worker_flags=contender.worker_flags + flags,
                   label=f"{contender.label} {' '.join(flags)}")


def worker_argv(target: Target, value_format: str, delivery: str, flags: tuple[str, ...] = (), *,
                patches: str = "") -> list[str]:
    """`csvkafka run` for `target`; with `patches`, run through bench.patched with those changes."""
    command = [PYTHON, "-m", "bench.patched", patches] if patches else WORKER
    return [*command, "--source", target.uri, "--bootstrap-servers", target.bootstrap, "--topic", target.topic,
            "--checkpoint-table", target.table, "--job-id", target.job_id, "--value-format", value_format,
            "--delivery", delivery, "--progress", "log", *flags]


def _worker(fmt: str, delivery: str, suffix: str = "", label: str = "", *, variant: str = "",
            worker_flags: tuple[str, ...] = ()) -> Contender:
    short = {"at-least-once": "alo", "exactly-once": "eos"}[delivery]
    return Contender(name=f"{fmt}-{short}{suffix}", kind="worker", value_format=fmt, delivery=delivery,
                     label=f"csvkafka run --value-format {fmt} --delivery {delivery}{label}", variant=variant,
                     worker_flags=worker_flags)


CORE = (
    Contender("kcat", "kcat", "kcat -P -l (local file, worker's librdkafka settings)"),
    Contender("naive", "naive", "naive loop (smart_open lines, produce+poll(0), put_item/50k)"),
    _worker("json", "at-least-once"),
    _worker("json", "exactly-once"),
    _worker("line", "at-least-once"),
    _worker("line", "exactly-once"),
)
# What the worker pays per row, taken apart: the Kafka calls alone, without and with what it adds.
FLOOR = tuple(Contender(f"floor-{v}", "floor", f"python produce() floor: {v}", variant=v)
              for v in ("plain", "callback", "headers", "full", "batch", "batch-callback"))
# Worker changes tried from outside the worker (bench.patched): without record headers, with the
# cyclic GC tuned, with right-sized JSON values, with smaller blocks, and all of them together.
NO_HEADERS = ("--no-record-headers",)
SMALL_BLOCKS = ("--range-bytes", str(1024 * 1024))
EXPERIMENTS = (
    _worker("json", "at-least-once", "-nohdr", " --no-record-headers", worker_flags=NO_HEADERS),
    _worker("line", "at-least-once", "-nohdr", " --no-record-headers", worker_flags=NO_HEADERS),
    _worker("json", "at-least-once", "-gc", " [patch: gc tuned]", variant="gc"),
    _worker("line", "at-least-once", "-gc", " [patch: gc tuned]", variant="gc"),
    _worker("json", "at-least-once", "-trim", " [patch: trim-json]", variant="trim-json"),
    _worker("json", "at-least-once", "-1mib", " --range-bytes 1048576", worker_flags=SMALL_BLOCKS),
    _worker("line", "at-least-once", "-1mib", " --range-bytes 1048576", worker_flags=SMALL_BLOCKS),
    _worker("json", "at-least-once", "-all", " --no-record-headers --range-bytes 1048576 [patch: gc, trim-json]",
            variant="gc,trim-json", worker_flags=NO_HEADERS + SMALL_BLOCKS),
    _worker("line", "at-least-once", "-all", " --no-record-headers --range-bytes 1048576 [patch: gc]",
            variant="gc", worker_flags=NO_HEADERS + SMALL_BLOCKS),
)
ALL = {c.name: c for c in (*CORE, *FLOOR, *EXPERIMENTS)}
