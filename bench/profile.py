"""Where the worker's time goes: py-spy samples of a whole run, summed per pipeline stage.

py-spy samples every Python thread (idle ones too, so the main thread's samples add up to its wall
time) and writes collapsed stacks; each stack is given to the first stage whose marker appears in
it. Native time inside a call (the native core's scan, encode and produce, the csv module, orjson)
counts for the Python frame that made the call.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RATE = 250  # samples per second

# (stage, markers): a stack belongs to the first stage one of whose markers is in one of its frames.
MAIN_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("startup: imports", ("_find_and_load",)),
    ("end: flush + final checkpoint", ("Stream.finish",)),
    ("checkpoints (DynamoDB put, EOS commit)", ("Stream.checkpoint", "maybe_checkpoint")),
    ("split: the engine's scanner", ("Scanner.feed", "Scanner.finish")),
    ("encode: the engine's encoder", ("Encoder.encode", "RowEncoder.")),
    ("produce: the engine's sender (native: GIL released)", ("Flight.produce", "Sender.send")),
    ("bad rows: triage and reasons", ("triage", "Stream._report_bad", "Stream._reason")),
    ("poll(0) between chunks", ("KafkaSink.poll",)),
    ("S3: waiting for the next piece", ("RangedReader.chunks",)),
    ("block bookkeeping (Stream.send)", ("Stream.send",)),
    ("stream loop (other)", ("Stream.run",)),
    ("startup: HEAD, claim, probe, preamble", ("Importer.run",)),
)
S3_THREAD_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("S3 thread: waiting for room in the queue", ("Queue.put",)),
    ("S3 thread: GET + socket reads", ("",)),
)


@dataclass(frozen=True)
class Stage:
    thread: str
    name: str
    samples: int

    @property
    def seconds(self) -> float:
        return self.samples / RATE


def py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def wrap(argv: list[str], output: Path) -> list[str]:
    """`argv` run under py-spy, writing collapsed stacks to `output`."""
    spy = py_spy()
    if spy is None:
        raise FileNotFoundError("py-spy is not installed: .venv/bin/pip install py-spy")
    return [spy, "record", "--idle", "--threads", "--rate", str(RATE), "--format", "raw", "--output", str(output),
            "--", *argv]


def stages(collapsed: Path) -> list[Stage]:
    counts: Counter[tuple[str, str]] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].partition(": ")[2] or frames[0]
        if thread.startswith("thread (") and any("_run_module_as_main" in frame for frame in frames):
            thread = "MainThread"  # sampled before py-spy could read the thread's name
        rules = MAIN_STAGES if thread == "MainThread" else S3_THREAD_STAGES if thread == "s3-prefetch" else None
        if rules is None:
            counts[(thread, "other thread")] += int(count)
            continue
        counts[(thread, _classify(frames[1:], rules))] += int(count)
    return [Stage(thread, name, n) for (thread, name), n in counts.most_common()]


def _classify(frames: list[str], rules: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    for name, markers in rules:
        if any(marker in frame for marker in markers for frame in frames):
            return name
    return "interpreter start/exit" if not frames else "other"


def table(found: list[Stage], rows: int) -> str:
    """A markdown table: per thread, each stage's seconds, share of that thread's samples, µs per row."""
    lines = ["| thread | stage | seconds | share | µs/row |", "|---|---|---:|---:|---:|"]
    for thread in sorted({s.thread for s in found}, key=lambda t: (t != "MainThread", t)):
        mine = [s for s in found if s.thread == thread]
        total = sum(s.samples for s in mine)
        for stage in mine:
            lines.append(f"| {thread} | {stage.name} | {stage.seconds:.2f} | {100 * stage.samples / total:.1f} % | "
                         f"{1e6 * stage.seconds / rows:.2f} |")
        lines.append(f"| {thread} | **total** | {total / RATE:.2f} | 100 % | {1e6 * total / RATE / rows:.2f} |")
    return "\n".join(lines)
