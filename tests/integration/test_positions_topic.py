"""Exactly-once positions on the real broker: a start reads its own partition from its mark, not the
topic's history, and still finds its latest committed position after a crash at any point."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from csvkafka_worker import positions
from csvkafka_worker.positions import Mark, PositionRecord, PositionWriter, lookup, partition_for
from csvkafka_worker.spec import SinkSpec
from csvkafka_worker.watermark import Counts, Position
from tests.conftest import unique_name

pytestmark = pytest.mark.integration

OTHERS = 3000  # other jobs' records before the job's first commit


@pytest.fixture
def sink(bootstrap_servers: str) -> SinkSpec:
    return SinkSpec(bootstrap_servers=bootstrap_servers, topic="unused")


@pytest.fixture
def positions_topic(sink: SinkSpec, bootstrap_servers: str) -> Iterator[str]:
    name = unique_name("positions")
    positions.ensure_topic(sink, name, "test", 30)
    yield name
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.delete_topics([name])[name].result(30)


def transactional(bootstrap: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"test-{uuid.uuid4().hex}",
                         "linger.ms": 5})
    producer.init_transactions(30)
    return producer


def others(producer: Producer, topic: str, partition: int, count: int) -> None:
    """`count` positions records of other jobs into `partition`, committed a few hundred at a time."""
    for start in range(0, count, 500):
        producer.begin_transaction()
        for i in range(start, min(count, start + 500)):
            record = PositionRecord(Position(i, i * 10), Counts(sent=i), "other-run")
            producer.produce(topic, record.encode(), f"other-{i % 997}".encode(), partition=partition)
        producer.commit_transaction(30)


def commit(producer: Producer, writer: PositionWriter, record: PositionRecord) -> Mark:
    """A worker's commit: rows (left out here) and the position in one transaction; the new mark."""
    producer.begin_transaction()
    writer.produce(producer, record)
    producer.commit_transaction(30)
    return writer.committed(producer.poll)


def record(row: int) -> PositionRecord:
    return PositionRecord(Position(row, row * 100),
                          Counts(sent=row, dead_lettered=1, skipped=2, checksum=2**63 + row, offsets={3: (7, 7 + row)}),
                          "run-1")


def test_a_start_reads_its_own_partition_from_its_mark(sink: SinkSpec, positions_topic: str,
                                                        bootstrap_servers: str) -> None:
    job = unique_name("orders")
    partition = partition_for(job, positions.PARTITIONS)
    other = transactional(bootstrap_servers)
    others(other, positions_topic, partition, OTHERS)
    others(other, positions_topic, (partition + 1) % positions.PARTITIONS, OTHERS)

    # A new run reads nothing: no record of its run can exist yet; its mark is the partition's end.
    fresh = lookup(sink, positions_topic, job, "test", 30, new_run=True)
    assert (fresh.record, fresh.read) == (None, 0)
    assert fresh.mark.partition == partition and fresh.mark.offset >= OTHERS

    worker = transactional(bootstrap_servers)
    writer = PositionWriter(positions_topic, job, fresh.mark)
    first = commit(worker, writer, record(100))
    assert first.partition == partition and first.offset >= fresh.mark.offset
    others(other, positions_topic, partition, 400)
    second = commit(worker, writer, record(200))
    assert second.offset > first.offset + 400

    # The checkpoint saved the second mark: the start reads that record and none before it.
    found = lookup(sink, positions_topic, job, "test", 30, hint=second)
    assert found.record == record(200)
    assert found.mark == second
    assert found.read == 1

    # A crash between the second commit and its checkpoint: the checkpoint still has the first mark.
    # The start reads from there (what the partition got since), and finds the second record.
    crashed = lookup(sink, positions_topic, job, "test", 30, hint=first)
    assert crashed.record == record(200) and crashed.mark == second
    assert crashed.read == 400 + 2

    # Without a mark (a job of before marks), the whole partition is read; the answer is the same.
    legacy = lookup(sink, positions_topic, job, "test", 30)
    assert legacy.record == record(200) and legacy.mark == second
    assert legacy.read == OTHERS + 400 + 2


def test_a_record_committed_after_another_jobs_open_transaction_is_found(sink: SinkSpec, positions_topic: str,
                                                                          bootstrap_servers: str) -> None:
    """The last stable offset stops at the oldest open transaction; the job's record may lie after it."""
    job = unique_name("orders")
    mark = lookup(sink, positions_topic, job, "test", 30, new_run=True).mark
    worker, other = transactional(bootstrap_servers), transactional(bootstrap_servers)
    other.begin_transaction()
    other.produce(positions_topic, b"{}", b"other", partition=mark.partition)
    other.flush(30)
    writer = PositionWriter(positions_topic, job, mark)
    commit(worker, writer, record(1))
    ends = threading.Timer(2.0, lambda: other.commit_transaction(30))
    ends.start()
    try:
        found = lookup(sink, positions_topic, job, "test", 30, hint=mark)
    finally:
        ends.join()
    assert found.record == record(1)


def test_a_crash_before_the_first_checkpoint_of_marks_still_finds_the_position(
        sink: SinkSpec, positions_topic: str, bootstrap_servers: str) -> None:
    """A run that committed but saved no mark (or a worker of before marks, which wrote by key with the
    default partitioner) is found in its hash partition."""
    job = unique_name("orders")
    producer = transactional(bootstrap_servers)
    producer.begin_transaction()
    delivered: list[int] = []
    producer.produce(positions_topic, record(5).encode(), job.encode(),
                     on_delivery=lambda error, message: delivered.append(message.partition()))
    producer.commit_transaction(30)
    producer.poll(0)
    assert delivered == [partition_for(job, positions.PARTITIONS)]
    found = lookup(sink, positions_topic, job, "test", 30)
    assert found.record == record(5)


def test_a_one_partition_topic_with_records_of_before_is_read(sink: SinkSpec, bootstrap_servers: str) -> None:
    """A topic made by an older worker (one partition), holding a record of before the receipt fields."""
    from confluent_kafka.admin import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    name = unique_name("positions")
    admin.create_topics([NewTopic(name, 1, 1, config={"cleanup.policy": "compact"})])[name].result(30)
    try:
        positions.ensure_topic(sink, name, "test", 30)  # left as it is
        producer = Producer({"bootstrap.servers": bootstrap_servers})
        old = {"row": 12, "offset": 345, "sent": 10, "dead_lettered": 1, "skipped": 1, "run_id": "r"}
        producer.produce(name, orjson.dumps(old), b"legacy-job")
        producer.produce(name, b'{"row": 1, "offset": 2}', b"someone-else")
        assert producer.flush(30) == 0
        found = lookup(sink, name, "legacy-job", "test", 30)
        assert found.record == PositionRecord(Position(12, 345), Counts(sent=10, dead_lettered=1, skipped=1), "r")
        assert found.mark == Mark(0, 0) and found.read == 2
        assert positions.lookup(sink, name, "legacy-job", "test", 30, hint=found.mark).record == found.record
    finally:
        admin.delete_topics([name])[name].result(30)


def test_a_transaction_left_open_ends_the_reading_within_its_budget(sink: SinkSpec, positions_topic: str,
                                                                     bootstrap_servers: str) -> None:
    from csvkafka_worker.errors import Infrastructure

    job = unique_name("orders")
    mark = lookup(sink, positions_topic, job, "test", 30, new_run=True).mark
    other = transactional(bootstrap_servers)
    other.begin_transaction()
    other.produce(positions_topic, b"{}", b"other", partition=mark.partition)
    other.flush(30)
    try:
        with pytest.raises(Infrastructure, match=r"did not finish in 3s \(an open transaction of another job"):
            lookup(sink, positions_topic, job, "test", 3, hint=Mark(mark.partition, 0))
    finally:
        other.abort_transaction(30)
    assert lookup(sink, positions_topic, job, "test", 30, hint=Mark(mark.partition, 0)).record is None
