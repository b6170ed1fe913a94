"""Exactly-once positions: a compacted Kafka topic keyed by job id, written inside each transaction.

The last committed value for a job is where its committed records end, so a restarted worker
resumes exactly there, whatever DynamoDB says (DynamoDB mirrors it after each commit for people
and the operator, and may lag by one commit after a crash).

A start reads only its own job's records, not the topic's history: the topic has many partitions
and a job writes all its positions to one of them (crc32 of the job id picks it the first time);
and its checkpoint keeps a `Mark`, the partition and the offset of its last positions record known
to be committed (or, before its first commit, the partition's end), so that a start reads that
partition from the mark on: its own last record, and only what other jobs committed there since.
Every record of the job is at or after its mark (a mark is saved only once its record committed,
and a later record has a higher offset), so a crash between a commit and the checkpoint write
costs one commit's worth of extra reading, never the position. Reading under read_committed ends
at the partition's high watermark taken at the start (not at its last stable offset, which another
job's open transaction holds back while committed records of ours may lie after it).

A job without a mark (one started by a worker of before marks, or one that crashed between its
first commit and its first checkpoint) reads its hash partition from the beginning, as every job
once read the one-partition topic: a topic made by an older worker keeps its single partition, so
such a job finds its records there. Adding partitions to the topic moves the hash partition of the
jobs without a mark: do it while no exactly-once import started by an older worker is unfinished.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]

from csvkafka_worker.errors import Infrastructure, Reason
from csvkafka_worker.kafka_config import client_base
from csvkafka_worker.spec import SinkSpec
from csvkafka_worker.watermark import Counts, Position

DEFAULT_TOPIC = "csvkafka-positions"
PARTITIONS = 32
# A partition just made, or moving: another attempt soon succeeds.
_NO_LEADER_YET = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                            KafkaError.UNKNOWN_TOPIC_OR_PART})


@dataclass(frozen=True)
class PositionRecord:
    """Where a job's committed records end, and what they count for: the value of its key in the
    positions topic (a JSON object), written in the same transaction as those records."""

    position: Position
    counts: Counts
    run_id: str | None

    def encode(self) -> bytes:
        # Flat, so that a worker of before the receipt fields still reads row, offset and counts.
        return orjson.dumps({"row": self.position.row, "offset": self.position.offset, **self.counts.to_json(),
                             "run_id": self.run_id})

    @classmethod
    def decode(cls, value: bytes) -> PositionRecord:
        raw = orjson.loads(value)
        return cls(Position(raw["row"], raw["offset"]), Counts.from_json(raw), raw.get("run_id"))


@dataclass(frozen=True)
class Mark:
    """Where a job's positions are: their partition, and an offset at or before its latest record."""

    partition: int
    offset: int

    def encode(self) -> str:
        return f"{self.partition}:{self.offset}"

    @classmethod
    def decode(cls, text: str | None) -> Mark | None:
        """The mark a checkpoint holds (None, or unreadable, means none: the start reads more, not wrong)."""
        if not text:
            return None
        partition, _, offset = text.partition(":")
        try:
            return cls(int(partition), int(offset))
        except ValueError:
            return None


def partition_for(job_id: str, partitions: int) -> int:
    """A job's partition before it has a mark: stable across processes and versions."""
    return zlib.crc32(job_id.encode()) % partitions


@dataclass(frozen=True)
class Lookup:
    """A start's reading: the job's latest committed record (None if it has none), the mark to keep in
    its checkpoint and to write its positions by, and how many records the reading took."""

    record: PositionRecord | None
    mark: Mark
    read: int


class PositionWriter:
    """Writes a job's positions to its mark's partition and learns each record's offset from its
    delivery report, so that after a commit `committed()` is the mark to save with the checkpoint."""

    def __init__(self, topic: str, job_id: str, mark: Mark) -> None:
        self.topic = topic
        self.key = job_id.encode()
        self.mark = mark
        self._pending: int | None = None

    def produce(self, producer: Any, record: PositionRecord) -> None:
        """Into the open transaction, before it is committed."""
        self._pending = None
        producer.produce(self.topic, record.encode(), self.key, partition=self.mark.partition,
                         on_delivery=self._delivered)

    def _delivered(self, error: KafkaError | None, message: Any) -> None:
        offset = message.offset()
        if error is None and offset is not None and offset >= 0:
            self._pending = int(offset)

    def committed(self, poll: Callable[[float], Any] | None = None) -> Mark:
        """The mark once the transaction holding the last produced record committed (`poll` serves a
        delivery report not yet served); the previous mark if its offset is unknown (still correct)."""
        if self._pending is None and poll is not None:
            poll(0)
        if self._pending is not None:
            self.mark = Mark(self.mark.partition, self._pending)
            self._pending = None
        return self.mark


def ensure_topic(sink: SinkSpec, topic: str, client_id: str, timeout: float) -> None:
    admin = AdminClient(client_base(sink, client_id))
    if topic in admin.list_topics(timeout=timeout).topics:
        return
    new = NewTopic(topic, num_partitions=PARTITIONS, replication_factor=-1,
                   config={"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"})
    try:
        admin.create_topics([new])[topic].result(timeout)
    except KafkaException as error:
        if "TOPIC_ALREADY_EXISTS" not in str(error):
            raise Infrastructure(f"cannot create the positions topic {topic!r} for exactly-once delivery "
                                 f"({error}); create it (compacted, {PARTITIONS} partitions) or grant CreateTopic",
                                 reason=Reason.KAFKA_UNREACHABLE) from error


def lookup(sink: SinkSpec, topic: str, job_id: str, client_id: str, timeout: float, *,
           hint: Mark | None = None, new_run: bool = False) -> Lookup:
    """The job's latest committed positions record, reading its partition from `hint` (the mark its
    checkpoint keeps). `new_run`: the job's run id was created by this start, so no record of it can
    exist yet; nothing is read, and the mark is the partition's end."""
    base = client_base(sink, client_id)
    consumer = Consumer({**base, "group.id": f"csvkafka-reader-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True, "fetch.wait.max.ms": 10})
    try:
        count = _partition_count(consumer, topic, timeout)
        partition = hint.partition if hint is not None and hint.partition < count else partition_for(job_id, count)
        end = _high_watermark(base, topic, partition, timeout)
        if new_run and hint is None:
            return Lookup(None, Mark(partition, end), 0)
        start = hint.offset if hint is not None and hint.partition == partition and hint.offset < end else 0
        return _scan(consumer, topic, partition, start, end, job_id.encode(), timeout)
    finally:
        consumer.close()


def _partition_count(consumer: Consumer, topic: str, timeout: float) -> int:
    """The topic's partition count, waiting (within `timeout`) for a topic just created to show up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            metadata = consumer.list_topics(topic, timeout=max(1.0, deadline - time.monotonic())).topics[topic]
        except KafkaException as error:
            raise Infrastructure(f"reading the metadata of positions topic {topic}: {error}",
                                 reason=Reason.KAFKA_UNREACHABLE) from error
        if metadata.error is None and metadata.partitions:
            return len(metadata.partitions)
        if time.monotonic() >= deadline:
            raise Infrastructure(f"positions topic {topic} is not available ({metadata.error}); check the "
                                 "brokers and that the worker may describe it", reason=Reason.KAFKA_UNREACHABLE)
        time.sleep(0.2)


def _high_watermark(base: dict[str, Any], topic: str, partition: int, timeout: float) -> int:
    """The partition's end including records of open transactions: every record committed before now
    lies before it. Retried within `timeout` while the partition has no leader yet (a topic just made)."""
    admin = AdminClient(base)
    wanted = TopicPartition(topic, partition)
    deadline = time.monotonic() + timeout
    while True:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        futures = admin.list_offsets({wanted: latest}, isolation_level=IsolationLevel.READ_UNCOMMITTED,
                                     request_timeout=max(1.0, deadline - time.monotonic()))
        try:
            return int(next(iter(futures.values())).result().offset)
        except KafkaException as error:
            passing = error.args[0].retriable() or error.args[0].code() in _NO_LEADER_YET
            if not passing or time.monotonic() >= deadline:
                raise Infrastructure(f"reading the end of positions topic {topic} [{partition}]: {error}",
                                     reason=Reason.KAFKA_UNREACHABLE) from error
        time.sleep(0.2)


def _scan(consumer: Consumer, topic: str, partition: int, start: int, end: int, key: bytes,
          timeout: float) -> Lookup:
    found: PositionRecord | None = None
    found_at = -1
    read = 0
    if start < end:
        consumer.assign([TopicPartition(topic, partition, start or OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while _position(consumer, topic, partition) < end:
            if time.monotonic() >= deadline:
                raise Infrastructure(f"reading positions topic {topic} [{partition}] up to offset {end} did not "
                                     f"finish in {timeout:g}s (an open transaction of another job holds it back); "
                                     "the import retries, or raise retry.kafkaSeconds",
                                     reason=Reason.KAFKA_UNREACHABLE)
            message = consumer.poll(min(1.0, max(0.0, deadline - time.monotonic())))
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise Infrastructure(f"reading positions topic {topic}: {error.str()}",
                                     reason=Reason.KAFKA_UNREACHABLE)
            read += 1
            value = message.value()
            if message.key() == key and value is not None:
                found, found_at = PositionRecord.decode(value), message.offset() or 0
    return Lookup(found, Mark(partition, found_at if found is not None else end), read)


def _position(consumer: Consumer, topic: str, partition: int) -> int:
    """The next offset the consumer will read (past control records), -1 before its first fetch."""
    offset = consumer.position([TopicPartition(topic, partition)])[0].offset
    return offset if offset >= 0 else -1
