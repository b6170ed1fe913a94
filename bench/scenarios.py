"""The measurements: throughput runs, the resume-at-90 % comparison, and profiles.

Each run gets a fresh topic and job id, and ends with a count of the records in the topic; a run
that left fewer (or more) records than it should have is a failed run, whatever its speed.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer

from bench import measure, profile
from bench.contenders import Contender, Target, worker_argv
from bench.data import DataFile
from bench.stack import Stack
from csvkafka_worker.checkpoint import Checkpoint, State, to_item

MB = 1_000_000


@dataclass
class Run:
    contender: Contender
    data: DataFile
    measured: measure.Measured
    records: int
    expected: int

    @property
    def ok(self) -> bool:
        return self.measured.exit_code == 0 and self.records == self.expected

    @property
    def rows_per_s(self) -> float:
        return self.expected / self.measured.wall_s

    @property
    def mb_per_s(self) -> float:
        return self.data.size / MB / self.measured.wall_s

    @property
    def cpu_us_per_row(self) -> float:
        """CPU time (user + system) of the contender's whole process tree per row, in microseconds."""
        return self.measured.cpu_s * 1e6 / self.expected

    @property
    def cores(self) -> float:
        """CPU cores the contender kept busy on average: CPU seconds over wall seconds."""
        return self.measured.cpu_s / self.measured.wall_s

    @property
    def rows_per_cpu_s(self) -> float:
        """Rows per second per core it used (= rows/s divided by `cores`): rows per CPU second."""
        return self.expected / self.measured.cpu_s if self.measured.cpu_s > 0 else float("nan")

    @property
    def streaming_rows_per_s(self) -> float | None:
        """Rows per second between the worker's `start` and `finish` events (after start-up)."""
        start, finish = self.measured.event("start"), self.measured.event("finish")
        if start is None or finish is None or finish["ts"] <= start["ts"]:
            return None
        return float(self.expected / (finish["ts"] - start["ts"]))

    def problem(self) -> str:
        if self.measured.exit_code != 0:
            return f"exit code {self.measured.exit_code} (log: {self.measured.log})"
        if self.records != self.expected:
            return f"{self.records:,} records in the topic, {self.expected:,} expected"
        return ""


@dataclass
class Bench:
    """What every scenario needs: the stack, where logs go, and whether to keep what runs create."""

    stack: Stack
    logs: Path
    keep: bool = False
    pause_s: float = 2.0
    say: Callable[[str], None] = print
    worker_flags: tuple[str, ...] = ()  # added to every `csvkafka run` (--worker-flags)

    def target(self, data: DataFile, uri: str, name: str) -> Target:
        topic = self.stack.create_topic(name)
        return Target(path=data.path, uri=uri, topic=topic, table=self.stack.table, job_id=topic,
                      bootstrap=self.stack.bootstrap, rows=data.rows)

    def done_with(self, topic: str) -> None:
        if not self.keep:
            self.stack.delete_topic(topic)
        # Topic deletion and log-segment cleanup happen in the background on the broker; let them settle.
        time.sleep(self.pause_s)

    def throughput(self, contender: Contender, data: DataFile, uri: str, tag: str = "") -> Run:
        target = self.target(data, uri, contender.name)
        extra_env = contender.env()
        measured = measure.run(contender.argv(target), log=self.logs / f"{contender.name}{tag}.log",
                               env={**os.environ, **extra_env} if extra_env else None)
        records = self.stack.count_records(target.topic, transactional=contender.transactional)
        self.done_with(target.topic)
        run = Run(contender, data, measured, records, contender.expected_records(data))
        self.say(f"  {contender.name:<18} {run.measured.wall_s:7.2f} s  {run.rows_per_s:>10,.0f} rows/s  "
                 f"{run.cpu_us_per_row:6.2f} CPU µs/row  {run.measured.peak_rss_bytes / MB:6.0f} MB  "
                 f"{'ok' if run.ok else 'FAILED: ' + run.problem()}")
        return run

    def profile(self, value_format: str, data: DataFile, uri: str) -> tuple[Run, list[profile.Stage]]:
        target = self.target(data, uri, f"profile-{value_format}")
        stacks = self.logs / f"profile-{value_format}.txt"
        argv = profile.wrap(worker_argv(target, value_format, "at-least-once", self.worker_flags), stacks)
        measured = measure.run(argv, log=self.logs / f"profile-{value_format}.log")
        records = self.stack.count_records(target.topic, transactional=False)
        self.done_with(target.topic)
        contender = Contender(f"profile-{value_format}", "worker", "under py-spy", value_format=value_format)
        run = Run(contender, data, measured, records, data.rows)
        self.say(f"  profile {value_format}: {measured.wall_s:.2f} s under py-spy, "
                 f"{'ok' if run.ok else 'FAILED: ' + run.problem()}")
        return run, profile.stages(stacks)


@dataclass
class ResumeResult:
    data: DataFile
    rows_before: int
    offset: int
    fresh_s: list[float] = field(default_factory=list)
    resumed_s: list[float] = field(default_factory=list)
    stop_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    restart_after_sigterm: str = "not run"

    @property
    def ratio(self) -> float:
        return statistics.median(self.resumed_s) / statistics.median(self.fresh_s)


def resume(bench: Bench, data: DataFile, uri: str, etag: str, repeats: int, value_format: str = "line") -> ResumeResult:
    """Time from spawn to the first record in the topic: a fresh start against a resume at ~90 %.

    The resume starts from a checkpoint item written by hand at an indexed record boundary near
    90 % of the object, as `csvkafka checkpoint` or a crashed worker would leave it; its run then
    goes on to the end and must add exactly the rows after that boundary. The first fresh run is
    stopped with SIGTERM right after its first record and restarted, and must end with every row
    exactly once.
    """
    rows_before, offset = data.boundary_near(0.9)
    result = ResumeResult(data, rows_before, offset)
    watch = bench.stack.watermark_consumer()
    try:
        for attempt in range(repeats):
            _fresh(bench, data, uri, value_format, result, watch, restart=attempt == 0)
            _resumed(bench, data, uri, etag, value_format, result, watch)
    finally:
        watch.close()
    return result


def _fresh(bench: Bench, data: DataFile, uri: str, value_format: str, result: ResumeResult, watch: Consumer,
           *, restart: bool) -> None:
    target = bench.target(data, uri, "fresh")
    argv = worker_argv(target, value_format, "at-least-once", bench.worker_flags)
    measured = measure.run(argv, log=bench.logs / f"resume-fresh-{len(result.fresh_s)}.log",
                           first_record=lambda: bench.stack.high_watermark(watch, target.topic) > 0,
                           stop_after_first=True)
    if measured.first_record_s is None or measured.exit_code != 0:
        result.problems.append(f"fresh start: exit {measured.exit_code}, no first record ({measured.log})")
    else:
        result.fresh_s.append(measured.first_record_s)
        result.stop_s.append(measured.stopped_s or 0.0)
    if restart:
        rest = measure.run(argv, log=bench.logs / "resume-fresh-restart.log")
        records = bench.stack.count_records(target.topic, transactional=False)
        result.restart_after_sigterm = (
            f"ok: {records:,} records, every row once" if rest.exit_code == 0 and records == data.rows
            else f"FAILED: exit {rest.exit_code}, {records:,} records for {data.rows:,} rows ({rest.log})")
    bench.say(f"  fresh start: first record after {measured.first_record_s or float('nan'):.2f} s; "
              f"SIGTERM→exit {measured.stopped_s or float('nan'):.2f} s"
              + (f"; restarted to the end: {result.restart_after_sigterm}" if restart else ""))
    bench.done_with(target.topic)


def _resumed(bench: Bench, data: DataFile, uri: str, etag: str, value_format: str, result: ResumeResult,
             watch: Consumer) -> None:
    target = bench.target(data, uri, "resume")
    bench.stack.put_checkpoint(to_item(Checkpoint(
        job_id=target.job_id, last_line=result.rows_before, total_sent=result.rows_before,
        timestamp=int(time.time()), byte_offset=result.offset, bytes_total=data.size, source_uri=uri,
        source_etag=etag, state=State.INTERRUPTED, message="written by bench")))
    measured = measure.run(worker_argv(target, value_format, "at-least-once", bench.worker_flags),
                           log=bench.logs / f"resume-90-{len(result.resumed_s)}.log",
                           first_record=lambda: bench.stack.high_watermark(watch, target.topic) > 0)
    records = bench.stack.count_records(target.topic, transactional=False)
    expected = data.rows - result.rows_before
    if measured.first_record_s is None or measured.exit_code != 0 or records != expected:
        result.problems.append(f"resume at {result.rows_before:,}: exit {measured.exit_code}, {records:,} records, "
                               f"{expected:,} expected ({measured.log})")
    else:
        result.resumed_s.append(measured.first_record_s)
    bench.say(f"  resume at row {result.rows_before:,}: first record after "
              f"{measured.first_record_s or float('nan'):.2f} s; {records:,}/{expected:,} records")
    bench.done_with(target.topic)
