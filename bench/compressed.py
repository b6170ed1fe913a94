"""Resume at 90 % of a big gzip object: from byte 0 (decompress and skip) against from a seek point.

Both runs start from the same checkpoint item at an indexed record boundary near 90 % of the CSV;
one item has no seek point (what every compressed resume did before seek points, and what a
single zstd frame or bz2 stream still does), the other the seek point the worker keeps at that
offset (found here by the worker's own gzip reader over the local file). Each run goes on to the
end and must add exactly the rows after the boundary. Reported: wall time, time to the first
record, the worker's own time from its start line to its finish line (without the process start,
the lease and Kafka set-up that both pay alike), CPU, and the compressed bytes the worker fetched
from S3 (its finish line).
"""

from __future__ import annotations

import gzip
import shutil
import statistics
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer

from bench import measure
from bench.contenders import worker_argv
from bench.data import DataFile
from bench.scenarios import Bench
from csvkafka_worker import gzip_blocks
from csvkafka_worker.checkpoint import Checkpoint, State, to_item
from csvkafka_worker.decompress import START
from csvkafka_worker.seekpoints import SeekIndex, SeekPoint

MODES = ("skip", "seek")  # from byte 0 and skip; from the seek point
LABELS = {"skip": "no seek point: from byte 0, skip to the offset", "seek": "from the seek point"}


@dataclass
class GzipResumeResult:
    data: DataFile
    gz_size: int
    rows_before: int
    offset: int
    point: SeekPoint
    runs: dict[str, list[measure.Measured]] = field(default_factory=lambda: {mode: [] for mode in MODES})
    problems: list[str] = field(default_factory=list)

    def median(self, mode: str, what: str) -> float:
        values = [_value(run, what) for run in self.runs[mode]]
        return statistics.median(values) if values else float("nan")

    def ratio(self, what: str) -> float:
        return self.median("skip", what) / self.median("seek", what)


def _value(run: measure.Measured, what: str) -> float:
    if what == "wall":
        return run.wall_s
    if what == "first":
        return run.first_record_s if run.first_record_s is not None else float("nan")
    if what == "cpu":
        return run.cpu_s
    if what == "worker":
        began, ended = run.since_spawn("start"), run.since_spawn("finish")
        return ended - began if began is not None and ended is not None else float("nan")
    return float((run.event("finish") or {}).get("bytes_fetched", "nan"))


def ensure_gzip(data: DataFile) -> Path:
    """The CSV gzipped (level 6, as `gzip` does by default) next to it, made on first use."""
    path = data.path.with_name(data.path.name + ".gz")
    if not path.exists() or path.stat().st_mtime < data.path.stat().st_mtime:
        partial = path.with_suffix(".partial")
        with data.path.open("rb") as source, gzip.open(partial, "wb", compresslevel=6) as target:
            shutil.copyfileobj(source, target, 16 * 1024 * 1024)
        partial.rename(path)
    return path


def seek_point(path: Path, offset: int) -> SeekPoint:
    """The seek point the worker keeps for a checkpoint at `offset`: the last one its read passes at or below."""
    def read(byte: int) -> Generator[bytes, None, None]:
        with path.open("rb") as file:
            file.seek(byte)
            while piece := file.read(1024 * 1024):
                yield piece

    index, best, produced = SeekIndex(), START, 0
    for chunk in gzip_blocks.decompressed(read, path.stat().st_size, START, str(path), index):
        best = index.best(offset) or best
        produced += len(chunk)
        if produced >= offset:  # every point at or below the offset has been passed
            break
    return best


def gzip_resume(bench: Bench, data: DataFile, repeats: int) -> GzipResumeResult:
    path = ensure_gzip(data)
    rows_before, offset = data.boundary_near(0.9)
    point = seek_point(path, offset)
    uri, etag = bench.stack.upload(path)
    result = GzipResumeResult(data, path.stat().st_size, rows_before, offset, point)
    bench.say(f"gzip object: {result.gz_size / 1e6:,.1f} MB for {data.size / 1e6:,.1f} MB of CSV; resume at row "
              f"{rows_before:,} (offset {offset:,}); seek point at compressed byte {point.byte:,} (offset "
              f"{point.offset:,})")
    watch = bench.stack.watermark_consumer()
    try:
        for attempt in range(repeats):
            for mode in MODES:
                _resumed(bench, result, uri, etag, mode, attempt, watch)
    finally:
        watch.close()
        bench.stack.delete_object(uri)
    return result


def _resumed(bench: Bench, result: GzipResumeResult, uri: str, etag: str, mode: str, attempt: int,
             watch: Consumer) -> None:
    target = bench.target(result.data, uri, f"resume-gzip-{mode}")
    bench.stack.put_checkpoint(to_item(Checkpoint(
        job_id=target.job_id, last_line=result.rows_before, total_sent=result.rows_before,
        timestamp=int(time.time()), byte_offset=result.offset, source_uri=uri, source_etag=etag,
        seek_point=result.point.encode() if mode == "seek" else None, state=State.INTERRUPTED,
        message="written by bench")))
    run = measure.run(worker_argv(target, "line", "at-least-once", bench.worker_flags),
                      log=bench.logs / f"resume-gzip-{mode}-{attempt}.log",
                      first_record=lambda: bench.stack.high_watermark(watch, target.topic) > 0)
    records = bench.stack.count_records(target.topic, transactional=False)
    expected = result.data.rows - result.rows_before
    if run.exit_code != 0 or records != expected:
        result.problems.append(f"resume-gzip {mode}: exit {run.exit_code}, {records:,} records, {expected:,} "
                               f"expected ({run.log})")
    else:
        result.runs[mode].append(run)
    bench.say(f"  resume-gzip {mode}: {run.wall_s:.2f} s, first record after "
              f"{run.first_record_s or float('nan'):.2f} s, {_value(run, 'fetched') / 1e6:,.1f} MB fetched; "
              f"{records:,}/{expected:,} records")
    bench.done_with(target.topic)


def table(result: GzipResumeResult) -> str:
    def row(mode: str) -> str:
        runs = result.runs[mode]
        return (f"| {LABELS[mode]} | {len(runs)} | {result.median(mode, 'wall'):.2f} | "
                f"{result.median(mode, 'worker'):.2f} | {result.median(mode, 'first'):.2f} | "
                f"{result.median(mode, 'cpu'):.2f} | "
                f"{result.median(mode, 'fetched') / 1e6:,.1f} |")

    return "\n".join([
        f"gzip object {result.gz_size / 1e6:,.1f} MB ({result.data.size / 1e6:,.1f} MB of CSV, "
        f"{result.data.rows:,} rows); resume at row {result.rows_before:,}, offset {result.offset:,} "
        f"({100 * result.offset / result.data.size:.1f} %); seek point at compressed byte {result.point.byte:,} "
        f"({100 * result.point.byte / result.gz_size:.1f} %), offset {result.point.offset:,}.",
        "",
        "| resume | runs | wall s (median) | start → finish line s | first record s | CPU s | MB fetched from S3 |",
        "|---|---|---|---|---|---|---|",
        row("skip"), row("seek"),
        f"| ratio (from byte 0 / seek point) | | {result.ratio('wall'):.1f}x | {result.ratio('worker'):.1f}x | "
        f"{result.ratio('first'):.1f}x | "
        f"{result.ratio('cpu'):.1f}x | {result.ratio('fetched'):.1f}x |",
        *(f"| problem | {p} | | | | | |" for p in result.problems),
    ])
