"""Crashes, SIGTERM, hand-written checkpoints and competing workers, on the real broker and moto."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from csvkafka_worker.exit_codes import ExitCode
from tests.support import consume_all, events, last_error_line, run_worker, worker_args

pytestmark = pytest.mark.integration

FAST_CHECKPOINTS = ["--checkpoint-every-rows", "2000", "--checkpoint-every-seconds", "0.3", "--lease-seconds", "1",
                    "--range-bytes", "65536"]


def csv_body(rows: int) -> bytes:
    lines = [b"id,name,comment\n"]
    lines += [b'%d,name-%d,"quoted, %d"\n' % (i, i, i) for i in range(1, rows + 1)]
    return b"".join(lines)


@dataclass
class Import:
    s3: Any
    dynamodb: Any
    bucket: str
    topic: str
    table: str
    bootstrap: str
    job_id: str = "job"

    def upload(self, rows: int) -> int:
        self.s3.put_object(Bucket=self.bucket, Key="data.csv", Body=csv_body(rows))
        return rows

    def args(self, *extra: str) -> list[str]:
        return worker_args(source=f"s3://{self.bucket}/data.csv", bootstrap=self.bootstrap, topic=self.topic,
                           table=self.table, job_id=self.job_id, extra=list(extra))

    def start(self, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.args(*extra), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)

    def last_line(self) -> int:
        item = self.dynamodb.get_item(TableName=self.table, Key={"job_id": {"S": self.job_id}},
                                      ConsistentRead=True).get("Item", {})
        return int(item.get("last_line", {}).get("N", "0"))

    def row_counts(self, isolation: str = "read_committed") -> Counter[int]:
        return Counter(int(r.json()["id"]) for r in consume_all(self.bootstrap, self.topic, isolation=isolation))


@pytest.fixture
def job(s3: Any, dynamodb: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
        bootstrap_servers: str) -> Iterator[Import]:
    yield Import(s3, dynamodb, s3_bucket, kafka_topic, checkpoint_table, bootstrap_servers)


def wait_for_progress(job: Import, worker: subprocess.Popen[str], beyond: int, timeout: float = 60) -> bool:
    """True once the checkpoint passed `beyond`; False if the worker ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            return False
        if job.last_line() > beyond:
            return True
        time.sleep(0.05)
    raise AssertionError("the worker made no progress")


def crash_repeatedly(job: Import, kills: int, *extra: str) -> list[int]:
    """SIGKILLs the worker at random points after it made progress; returns the checkpoint at each kill."""
    rng = random.Random(1234)
    at_kill: list[int] = []
    while len(at_kill) < kills:
        worker = job.start(*FAST_CHECKPOINTS, *extra)
        if not wait_for_progress(job, worker, at_kill[-1] if at_kill else 0):
            raise AssertionError(f"the import finished after only {len(at_kill)} kills; use a bigger file")
        time.sleep(rng.uniform(0, 0.4))
        worker.kill()
        worker.wait()
        at_kill.append(job.last_line())
    final = run_worker(job.args(*FAST_CHECKPOINTS, *extra))
    assert final.returncode == 0, final.stderr
    return at_kill


def test_exactly_once_survives_ten_sigkills(job: Import) -> None:
    rows = job.upload(1_200_000)
    at_kill = crash_repeatedly(job, 10, "--delivery", "exactly-once")
    assert len(set(at_kill)) >= 5, at_kill  # the kills really landed at different points
    counts = job.row_counts("read_committed")
    assert set(counts) == set(range(1, rows + 1))
    assert max(counts.values()) == 1


def test_at_least_once_loses_nothing_and_duplicates_only_rows_after_a_checkpoint(job: Import) -> None:
    rows = job.upload(1_200_000)
    at_kill = crash_repeatedly(job, 10)
    counts = job.row_counts("read_uncommitted")
    assert set(counts) == set(range(1, rows + 1))
    duplicated = {row: n - 1 for row, n in counts.items() if n > 1}
    # Each duplicate is a row the killed worker sent after the checkpoint it was killed at.
    window = 100_000
    for row, extra_copies in duplicated.items():
        assert extra_copies <= sum(1 for c in at_kill if c < row <= c + window), (row, at_kill)
    assert sum(duplicated.values()) <= len(at_kill) * window


def test_sigterm_checkpoints_and_the_resume_duplicates_nothing(job: Import) -> None:
    rows = job.upload(300_000)
    worker = job.start(*FAST_CHECKPOINTS)
    assert wait_for_progress(job, worker, 0)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=25)
    assert worker.returncode == 0, stderr
    assert events(stderr, "finish")[-1]["state"] == "interrupted"
    stopped_at = job.last_line()
    assert 0 < stopped_at < rows
    resumed = run_worker(job.args(*FAST_CHECKPOINTS))
    assert resumed.returncode == 0, resumed.stderr
    assert events(resumed.stderr, "start")[0]["row"] == stopped_at
    counts = job.row_counts("read_uncommitted")
    assert set(counts) == set(range(1, rows + 1))
    assert max(counts.values()) == 1


def test_seed_format_checkpoint_resumes_at_last_line_plus_one(job: Import) -> None:
    rows = job.upload(1_000)
    job.dynamodb.put_item(TableName=job.table, Item={
        "job_id": {"S": job.job_id}, "last_line": {"N": "600"}, "total_sent": {"N": "600"},
        "timestamp": {"N": str(int(time.time()))}})
    result = run_worker(job.args())
    assert result.returncode == 0, result.stderr
    records = consume_all(job.bootstrap, job.topic)
    assert [int(r.json()["id"]) for r in records] == list(range(601, rows + 1))
    assert records[0].row == 601
    assert job.last_line() == rows


def test_two_workers_on_one_job_one_finishes_the_other_stops(job: Import) -> None:
    rows = job.upload(300_000)
    first, second = job.start(*FAST_CHECKPOINTS), job.start(*FAST_CHECKPOINTS)
    outcomes = [(w.wait(timeout=180), w.stderr.read() if w.stderr else "") for w in (first, second)]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [ExitCode.OK, ExitCode.INFRASTRUCTURE], outcomes
    loser = next(err for code, err in outcomes if code == ExitCode.INFRASTRUCTURE)
    assert "is being imported by another live worker" in last_error_line(loser)
    counts = job.row_counts("read_uncommitted")
    assert set(counts) == set(range(1, rows + 1))
    assert max(counts.values()) == 1


def test_sigterm_while_waiting_for_a_dead_workers_lease_stops_at_once(job: Import) -> None:
    job.upload(300_000)
    crashed = job.start("--lease-seconds", "60", "--checkpoint-every-seconds", "0.3")
    assert wait_for_progress(job, crashed, 0)
    crashed.kill()
    crashed.wait()
    waiting = job.start("--lease-seconds", "60")
    time.sleep(3)  # long enough to find the dead worker's lease held
    assert waiting.poll() is None
    waiting.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, stderr = waiting.communicate(timeout=20)
    assert waiting.returncode == 0, stderr
    assert time.monotonic() - started < 5
    assert events(stderr, "waiting-for-lease") and events(stderr, "stopped")


def body_with_bad_rows(rows: int, every: int) -> tuple[bytes, set[int]]:
    """A CSV whose every `every`-th row has a field too few (a dead letter), some with quoted newlines."""
    lines, bad = [b"id,name,comment\n"], set()
    for i in range(1, rows + 1):
        if i % every == 0:
            lines.append(b"%d,missing-a-field\n" % i)
            bad.add(i)
        else:
            lines.append(b'%d,name-%d,"quoted, %d%s"\n' % (i, i, i, b"\nsecond line" if i % 101 == 0 else b""))
    return b"".join(lines), bad


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_three_shards_with_dead_letters_survive_ten_sigkills(job: Import, delivery: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    from tests.conftest import unique_name

    rows = 900_000
    body, bad = body_with_bad_rows(rows, 997)
    job.s3.put_object(Bucket=job.bucket, Key="data.csv", Body=body)
    dlq = unique_name("dlq")
    admin = AdminClient({"bootstrap.servers": job.bootstrap})
    admin.create_topics([NewTopic(dlq, 1, 1)])[dlq].result(30)
    # 150,000 rows/s for the import (50,000 a shard): ten kills land before the shards can finish, however
    # fast the machine.
    extra = ["--delivery", delivery, "--on-bad-row", "dead-letter", "--dead-letter-topic", dlq,
             "--rate-rows", "150000"]

    def start(shard: int) -> subprocess.Popen[str]:
        return job.start(*FAST_CHECKPOINTS, "--shard", f"{shard}/3", *extra)

    def progress(shard: int) -> int:
        item = job.dynamodb.get_item(TableName=job.table, Key={"job_id": {"S": f"{job.job_id}#{shard}/3"}},
                                     ConsistentRead=True).get("Item", {})
        return int(item.get("last_line", {}).get("N", "0"))

    rng = random.Random(99)
    workers = {shard: start(shard) for shard in range(3)}
    kills = 0
    deadline = time.monotonic() + 300
    while kills < 10:
        assert time.monotonic() < deadline, f"only {kills} kills landed"
        running = [s for s, w in workers.items() if w.poll() is None]
        assert running, f"every shard finished after only {kills} kills; use a bigger file"
        shard = rng.choice(running)
        before = progress(shard)
        while progress(shard) <= before and workers[shard].poll() is None:
            time.sleep(0.05)
        if workers[shard].poll() is not None:
            continue
        time.sleep(rng.uniform(0, 0.3))
        workers[shard].kill()
        workers[shard].wait()
        kills += 1
        workers[shard] = start(shard)
    for worker in workers.values():
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    isolation = "read_committed" if delivery == "exactly-once" else "read_uncommitted"
    counts = job.row_counts(isolation)
    dead = Counter(int(r.value.split(b",")[0]) for r in consume_all(job.bootstrap, dlq, isolation=isolation))
    assert set(counts) == set(range(1, rows + 1)) - bad
    assert set(dead) == bad
    if delivery == "exactly-once":
        assert max(counts.values()) == 1 and max(dead.values()) == 1
