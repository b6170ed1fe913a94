"""The measurements: throughput runs, the resume-at-90 % comparison, profiles, and an open quote.

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
from bench.contenders import ENGINES, Contender, Target, with_engine_via, with_flags, worker_argv
from bench.data import DataFile, OpenQuoteFile
from bench.stack import Stack
from csvkafka_worker.checkpoint import Checkpoint, State, to_item
from csvkafka_worker.spec import CsvDialect

MB = 1_000_000
MIB = 1024 * 1024


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


# -- an unterminated quote ------------------------------------------------------------------------------

DEFAULT_MAX_RECORD = int(CsvDialect.model_fields["max_record_bytes"].default)
OPEN_QUOTE_LIMITS: tuple[int | None, ...] = (None, MIB)  # None: the worker's default --max-record-bytes
BAD_INPUT_EXIT = 65


@dataclass
class OpenQuoteRun:
    """One `csvkafka run` on the open-quote object (or, `clean`, on the rows before its bad row alone)."""

    contender: Contender
    file: OpenQuoteFile
    limit: int | None  # --max-record-bytes given, None for the worker's default
    clean: bool
    measured: measure.Measured
    records: int
    last_line: str  # the log's last line: stderr's (stdout, empty with --progress log, shares the log)

    @property
    def engine(self) -> str:
        return self.contender.engine

    @property
    def engine_ran(self) -> str:
        start = self.measured.event("start")
        return str(start["engine"]) if start and "engine" in start else ""

    @property
    def effective_limit(self) -> int:
        return self.limit if self.limit is not None else DEFAULT_MAX_RECORD

    @property
    def to_eof(self) -> bool:
        """Whether the open record reaches the end of the object before the record limit."""
        return self.file.past_bad <= self.effective_limit

    @property
    def read_past(self) -> int:
        """Bytes past the bad row's offset the worker is known to have scanned: to the end of the
        object, or the record limit (it is fed 1 MiB blocks, so it may have scanned up to a block
        more, and its S3 prefetch fetches further ahead: neither is visible from outside)."""
        if self.clean:
            return 0
        return self.file.past_bad if self.to_eof else self.effective_limit

    @property
    def cpu_s_per_mib(self) -> float | None:
        return self.measured.cpu_s / (self.read_past / MIB) if self.read_past else None

    @property
    def expected_message(self) -> str:
        if self.to_eof:
            return "quoted field not closed at the end of the object"
        return f"does not end within {self.effective_limit} bytes"

    def problems(self) -> list[str]:
        found = []
        expected_records = self.file.bad_row - 1
        if self.clean:
            if self.measured.exit_code != 0:
                found.append(f"exit code {self.measured.exit_code}, 0 expected (log: {self.measured.log})")
        else:
            prefix = f"csvkafka: error: row {self.file.bad_row} (byte offset {self.file.bad_offset})"
            if self.measured.exit_code != BAD_INPUT_EXIT:
                found.append(f"exit code {self.measured.exit_code}, {BAD_INPUT_EXIT} expected "
                             f"(log: {self.measured.log})")
            if not self.last_line.startswith(prefix):
                found.append(f"last stderr line does not start with {prefix!r}")
            if self.expected_message not in self.last_line:
                found.append(f"last stderr line does not say {self.expected_message!r}")
        if self.records != expected_records:
            found.append(f"{self.records:,} records in the topic, {expected_records:,} expected")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems()


@dataclass
class OpenQuoteResult:
    file: OpenQuoteFile
    runs: list[OpenQuoteRun] = field(default_factory=list)

    def clean_cpu_s(self, engine: str) -> float | None:
        found = [r.measured.cpu_s for r in self.runs if r.clean and r.engine == engine and r.ok]
        return found[0] if found else None

    @property
    def problems(self) -> list[str]:
        return [f"open-quote {r.contender.name}: {p}" for r in self.runs for p in r.problems()]


def open_quote_contender(engine: str, limit: int | None, *, clean: bool = False) -> Contender:
    flags = ("--max-record-bytes", str(limit)) if limit is not None else ()
    name = f"open-quote-{engine}" + ("-clean" if clean else "") + (f"-{limit}" if limit is not None else "")
    return Contender(name=name, kind="worker", engine=engine, worker_flags=flags,
                     label=f"csvkafka run --engine {engine} --value-format json --delivery at-least-once"
                     + "".join(f" {f}" for f in flags))


def open_quote(bench: Bench, file: OpenQuoteFile, uri: str, clean_uri: str, via: str) -> OpenQuoteResult:
    """`csvkafka run` on an object whose row `file.bad_row` opens a quote that never closes, once per
    engine and record limit (default bad-row policy, fail), and once per engine on the rows before
    that row alone: what the run would cost had it stopped at the bad row at once."""
    result = OpenQuoteResult(file)
    for engine in ENGINES:
        for limit, clean in ((None, True), *((limit, False) for limit in OPEN_QUOTE_LIMITS)):
            contender = with_flags(with_engine_via(open_quote_contender(engine, limit, clean=clean), via),
                                   bench.worker_flags)
            data = file.clean if clean else file.data
            target = bench.target(data, clean_uri if clean else uri, contender.name)
            extra_env = contender.env()
            measured = measure.run(contender.argv(target), log=bench.logs / f"{contender.name}.log",
                                   env={**os.environ, **extra_env} if extra_env else None)
            records = bench.stack.count_records(target.topic, transactional=False)
            bench.done_with(target.topic)
            lines = [line for line in measured.log.read_text(errors="replace").splitlines() if line.strip()]
            run = OpenQuoteRun(contender, file, limit, clean, measured, records, lines[-1] if lines else "")
            result.runs.append(run)
            per_mib = f"{run.cpu_s_per_mib:.3f} CPU s/MiB past row {file.bad_row:,}" if run.cpu_s_per_mib else ""
            bench.say(f"  {contender.name:<28} exit {measured.exit_code}  {measured.wall_s:6.2f} s  "
                      f"{measured.cpu_s:6.2f} CPU s  {per_mib}  {records:,} records  "
                      f"{'ok' if run.ok else 'FAILED: ' + '; '.join(run.problems())}")
    return result
