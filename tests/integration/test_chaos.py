"""Chaos on the three-broker cluster (RF 3, min.insync.replicas=2, like MSK): the worker runs as a
process, everything it talks to (each broker, S3, DynamoDB) goes through Toxiproxy, a fault hits
mid-import, and the topic is compared with the file row by row at the end. Each test puts the
cluster back (every broker running and in sync, no toxic left) however it ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import pytest
from confluent_kafka.admin import AdminClient

from devstack import kafka_ha
from devstack.faults import MiB, Toxiproxy
from devstack.layout import Layout
from tests.integration.test_worker_recovery import FAST_CHECKPOINTS, Import, wait_for_progress
from tests.support import events

pytestmark = pytest.mark.integration

BROKER_PROXIES = [f"kafka-ha-{node}" for node in kafka_ha.NODES]
# The S3 proxy's rate for the tests that need an import to last a while: 1 MiB/s, so that the
# 400,000 rows (14 MiB) of the broker test take about 14 s and the fault lands mid-import.
PACE_KIB_PER_SECOND = 1024


@dataclass
class ChaosImport(Import):
    """An import into the three-broker cluster; the worker's stderr goes to a file (an outage makes
    librdkafka log a lot, which a pipe nobody reads would block on)."""

    log: IO[str] | None = None

    def start(self, *extra: str) -> subprocess.Popen[str]:
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (read and closed by finish())
        return subprocess.Popen(self.args(*extra), stdout=subprocess.DEVNULL, stderr=self.log, text=True)

    @contextlib.contextmanager
    def running(self, *extra: str) -> Iterator[subprocess.Popen[str]]:
        """A worker that is killed when the block ends, however it ends."""
        worker = self.start(*FAST_CHECKPOINTS, *extra)
        try:
            yield worker
        finally:
            worker.kill()
            worker.wait()

    def finish(self, worker: subprocess.Popen[str], timeout: float = 240) -> str:
        """Waits for the worker, which must end with exit 0 within `timeout`; its stderr."""
        try:
            code = worker.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            code = worker.wait()
        assert self.log is not None
        self.log.seek(0)
        stderr = self.log.read()
        self.log.close()
        assert code == 0, stderr
        return stderr

    def assert_every_row(self, rows: int, delivery: str, *, duplicates: bool) -> None:
        """Every row of the file is in the topic; and once only unless `duplicates` may be there."""
        counts = self.row_counts("read_committed" if delivery == "exactly-once" else "read_uncommitted")
        assert set(range(1, rows + 1)) - set(counts) == set()
        assert len(counts) == rows
        if not duplicates:
            assert max(counts.values()) == 1


@pytest.fixture
def cluster(stack_env: dict[str, str], toxiproxy: Toxiproxy) -> Iterator[Layout]:
    """The three-broker cluster, healthy before the test and made healthy again after it."""
    layout = Layout.from_env()
    restore(layout, toxiproxy)
    yield layout
    restore(layout, toxiproxy)


def restore(layout: Layout, toxiproxy: Toxiproxy) -> None:
    toxiproxy.reset()
    kafka_ha.up(layout)
    wait_in_sync(kafka_ha.bootstrap(layout))


def wait_in_sync(bootstrap: str, timeout: float = 120) -> None:
    """Until every partition of the cluster (the internal topics too) has all its replicas in sync."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    lagging: list[str] = []
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=10).topics
        lagging = [f"{name}/{p.id}" for name, t in topics.items() for p in t.partitions.values()
                   if len(p.isrs) < len(p.replicas)]
        if not lagging:
            return
        time.sleep(1)
    raise AssertionError(f"partitions still out of sync after {timeout:.0f}s: {lagging[:5]}")


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch, stack_env: dict[str, str], cluster: Layout, s3: Any, dynamodb: Any,
        s3_bucket: str, ha_topic: str, checkpoint_table: str, ha_bootstrap: str) -> ChaosImport:
    # The worker reaches S3 and DynamoDB through their proxies (the test's own clients go to moto).
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", stack_env["CSVKAFKA_S3_PROXY_URL"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", stack_env["CSVKAFKA_DYNAMODB_PROXY_URL"])
    return ChaosImport(s3, dynamodb, s3_bucket, ha_topic, checkpoint_table, ha_bootstrap)


def leader(bootstrap: str, topic: str) -> int:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return int(metadata.topics[topic].partitions[0].leader)


def sigkill(broker: kafka_ha.Broker, timeout: float = 10) -> None:
    pid = broker.service.pid()
    assert pid is not None, f"{broker.name} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while broker.service.running():
        assert time.monotonic() < deadline, f"{broker.name} survived SIGKILL"
        time.sleep(0.1)


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_the_partition_leaders_broker_sigkilled_mid_import(job: ChaosImport, cluster: Layout,
                                                           toxiproxy: Toxiproxy, delivery: str) -> None:
    rows = job.upload(400_000)
    toxiproxy.bandwidth("s3", PACE_KIB_PER_SECOND)
    with job.running("--delivery", delivery) as worker:
        assert wait_for_progress(job, worker, 0)
        killed = kafka_ha.Broker(cluster, leader(job.bootstrap, job.topic))
        sigkill(killed)
        at_kill = job.last_line()
        # The import goes on with two brokers (min.insync.replicas=2): a new leader takes over.
        assert wait_for_progress(job, worker, at_kill, timeout=90), "the worker ended right after the kill"
        assert leader(job.bootstrap, job.topic) != killed.node
        kafka_ha.up(cluster)
        job.finish(worker)
    wait_in_sync(job.bootstrap)  # read the topic from a whole cluster, as a consumer would afterwards
    job.assert_every_row(rows, delivery, duplicates=delivery == "at-least-once")


def test_the_whole_cluster_unreachable_for_60_seconds(job: ChaosImport, toxiproxy: Toxiproxy) -> None:
    """In exactly-once mode, the stricter case: a transaction is open when the cluster goes away."""
    rows = job.upload(300_000)
    toxiproxy.bandwidth("s3", PACE_KIB_PER_SECOND)
    with job.running("--delivery", "exactly-once") as worker:
        assert wait_for_progress(job, worker, 0)
        with toxiproxy.disabled(*BROKER_PROXIES):
            time.sleep(5)  # what was acknowledged before the cut is checkpointed by now
            during = job.last_line()
            time.sleep(55)
            # Nothing is acknowledged while the cluster is away, so the checkpoint stands still,
            # and the worker waits (the Kafka retry budget, 120 s by default, is not spent).
            assert job.last_line() == during
            assert worker.poll() is None, "the worker gave up during the outage"
        assert during < rows
        job.finish(worker)
    job.assert_every_row(rows, "exactly-once", duplicates=False)


def test_s3_connections_cut_every_2_mib(job: ChaosImport, toxiproxy: Toxiproxy) -> None:
    rows = job.upload(1_000_000)
    size = int(job.s3.head_object(Bucket=job.bucket, Key="data.csv")["ContentLength"])
    cut_every = 2 * MiB
    toxiproxy.limit_data("s3", cut_every)
    with job.running("--range-bytes", str(64 * MiB)) as worker:  # each 64 MiB GET is cut many times
        stderr = job.finish(worker)
    # Every connection was cut after 2 MiB, and the read went on from where it broke off.
    assert events(stderr, "finish")[-1]["retries"]["s3"] >= size // cut_every - 1
    # One worker, never restarted: even at-least-once, not one row twice.
    job.assert_every_row(rows, "at-least-once", duplicates=False)
