"""A compressed object's resume starts at the seek point its checkpoint kept, not at byte 0."""

from __future__ import annotations

import functools
import gzip
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zstandard

from csvkafka_worker.checkpoint import from_item
from csvkafka_worker.seekpoints import Kind, SeekPoint
from tests.support import WORKER, consume_all, events, run_worker, worker_args

pytestmark = pytest.mark.integration

ROWS = 1_200_000
CHECKPOINTS = ["--checkpoint-every-rows", "20000", "--checkpoint-every-seconds", "0.3", "--lease-seconds", "1",
               "--range-bytes", str(1024 * 1024)]


def body(rows: int) -> bytes:
    """Rows with random digits: gzip shrinks them only to about half, so the object is tens of MB."""
    rng = random.Random(42)
    lines = [b"id,amount,reference\n"]
    lines += [b"%d,%d,%x\n" % (i, rng.getrandbits(40), rng.getrandbits(64)) for i in range(1, rows + 1)]
    return b"".join(lines)


@functools.cache
def gzip_body() -> bytes:
    return gzip.compress(body(ROWS), 6)


class Job:
    def __init__(self, s3: Any, dynamodb: Any, bucket: str, key: str, topic: str, table: str, bootstrap: str) -> None:
        self.s3, self.dynamodb, self.bucket, self.key = s3, dynamodb, bucket, key
        self.topic, self.table, self.bootstrap = topic, table, bootstrap

    def args(self, *extra: str) -> list[str]:
        return worker_args(source=f"s3://{self.bucket}/{self.key}", bootstrap=self.bootstrap, topic=self.topic,
                           table=self.table, job_id="job", extra=list(extra))

    def item(self) -> dict[str, Any]:
        return dict(self.dynamodb.get_item(TableName=self.table, Key={"job_id": {"S": "job"}},
                                           ConsistentRead=True).get("Item", {}))

    def wait_beyond(self, worker: subprocess.Popen[str], rows: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert worker.poll() is None, "the import finished before it could be interrupted; use a bigger file"
            if int(self.item().get("last_line", {}).get("N", "0")) > rows:
                return
            time.sleep(0.05)
        raise AssertionError(f"the checkpoint did not pass row {rows} within {timeout}s")

    def ids(self, isolation: str) -> list[int]:
        return [int(r.value.split(b",", 1)[0]) for r in consume_all(self.bootstrap, self.topic, isolation=isolation)]


@pytest.fixture
def gzip_job(s3: Any, dynamodb: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
             bootstrap_servers: str) -> Iterator[tuple[Job, int]]:
    blob = gzip_body()
    s3.put_object(Bucket=s3_bucket, Key="data.csv.gz", Body=blob)
    yield Job(s3, dynamodb, s3_bucket, "data.csv.gz", kafka_topic, checkpoint_table, bootstrap_servers), len(blob)


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_a_killed_gzip_import_resumes_from_its_seek_point(gzip_job: tuple[Job, int], delivery: str) -> None:
    job, size = gzip_job
    assert size > 20 * 1024 * 1024
    mode = ["--delivery", delivery, "--value-format", "line"]
    worker = subprocess.Popen(job.args(*CHECKPOINTS, *mode), stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    job.wait_beyond(worker, int(ROWS * 0.6))
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    checkpoint = from_item(job.item())
    assert checkpoint.seek_point is not None and checkpoint.byte_offset is not None
    point = SeekPoint.decode(checkpoint.seek_point)
    assert point is not None and point.kind is Kind.DEFLATE
    assert 0 < point.offset <= checkpoint.byte_offset
    assert point.byte > size // 2
    # People see where it is, not its 32 KiB window.
    shown = subprocess.run([*WORKER[:-1], "checkpoint", "show", "--table", job.table, "--job-id", "job"],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert f'"seek_point": "deflate at compressed byte {point.byte},' in shown and len(shown) < 4000, shown

    resumed = run_worker(job.args(*CHECKPOINTS, *mode))
    assert resumed.returncode == 0, resumed.stderr
    start, finish = events(resumed.stderr, "start")[0], events(resumed.stderr, "finish")[-1]
    assert start["read_from"].startswith("seek point at compressed byte"), start
    assert finish["state"] == "completed"
    # The resume fetched the object from its seek point on: what was left, not the whole object again.
    assert finish["bytes_fetched"] < size - point.byte + 16 * 1024 * 1024, (finish, size, point.byte)
    assert finish["bytes_fetched"] < size * 0.5

    ids = job.ids("read_committed" if delivery == "exactly-once" else "read_uncommitted")
    assert set(ids) == set(range(1, ROWS + 1))
    if delivery == "exactly-once":
        assert len(ids) == ROWS


def test_sigterm_during_a_gzip_import_stops_cleanly_and_the_resume_duplicates_nothing(
        gzip_job: tuple[Job, int]) -> None:
    job, _ = gzip_job
    worker = subprocess.Popen(job.args(*CHECKPOINTS, "--value-format", "line"), stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True)
    job.wait_beyond(worker, ROWS // 3)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    # The decoder's threads end with the read: exit 0 and the finish line, no abort at exit.
    assert worker.returncode == 0, stderr
    assert events(stderr, "finish")[-1]["state"] == "interrupted"
    assert "terminate called" not in stderr
    resumed = run_worker(job.args(*CHECKPOINTS, "--value-format", "line"))
    assert resumed.returncode == 0, resumed.stderr
    assert events(resumed.stderr, "start")[0]["read_from"].startswith("seek point at compressed byte")
    ids = job.ids("read_uncommitted")
    assert sorted(ids) == list(range(1, ROWS + 1))


def test_a_single_zstd_frame_says_its_resume_rereads(s3: Any, dynamodb: Any, s3_bucket: str, kafka_topic: str,
                                                       checkpoint_table: str, bootstrap_servers: str) -> None:
    rows = 200_000
    s3.put_object(Bucket=s3_bucket, Key="data.csv.zst", Body=zstandard.ZstdCompressor().compress(body(rows)))
    job = Job(s3, dynamodb, s3_bucket, "data.csv.zst", kafka_topic, checkpoint_table, bootstrap_servers)
    dynamodb.put_item(TableName=checkpoint_table, Item={
        "job_id": {"S": "job"}, "last_line": {"N": "15000"}, "total_sent": {"N": "15000"},
        "timestamp": {"N": str(int(time.time()))}})
    worker = subprocess.Popen(job.args("--value-format", "line", "--checkpoint-every-seconds", "0.1"),
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    # While it runs, its checkpoint item (which the operator shows in the resource's status) says so too.
    messages = set()
    deadline = time.monotonic() + 120
    while worker.poll() is None and time.monotonic() < deadline:
        messages.add(job.item().get("message", {}).get("S", ""))
        time.sleep(0.05)
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stderr
    start = events(stderr, "start")[0]
    assert start["read_from"] == "resume re-reads from byte 0: no zstd frame start kept before offset " \
                                 f"{start['offset']} (a single zstd frame cannot be entered in the middle)"
    assert start["read_from"] in messages
    assert job.ids("read_committed") == list(range(15_001, rows + 1))
